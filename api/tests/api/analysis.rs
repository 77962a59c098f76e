//! Post-call analysis end to end: enqueued once by the call's first terminal status with a
//! transcript (whatever the duplicates and their order), run by the worker with the
//! heuristic analyzer, stored in its own table and shown on `Call.analysis` and the
//! customer's interactions.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::common::{TestApp, eventually};
use crate::on_both;
use crate::webhooks::{AGENT, STATUSES, bolna_report};

const CALLS: &str = "{ calls(first: 10) { edges { node { id status providerExecutionId
    analysis { sentiment sentimentScore outcome summary extractedData model analyzedAt status error promptTokens completionTokens }
    customer { interactions { callId outcome } } } } } }";

async fn analyses_of(app: &TestApp, execution: &str) -> Vec<entity::call_analysis::Model> {
    let Some(call) = entity::call::Entity::find()
        .filter(entity::call::Column::ProviderExecutionId.eq(execution))
        .one(&app.db)
        .await
        .unwrap()
    else {
        return Vec::new();
    };
    entity::call_analysis::Entity::find()
        .filter(entity::call_analysis::Column::CallId.eq(call.id))
        .all(&app.db)
        .await
        .unwrap()
}

async fn node(app: &TestApp, key: &str, execution: &str) -> Value {
    let data = app.ok(key, CALLS, json!({})).await;
    data["calls"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .find(|n| n["providerExecutionId"] == execution)
        .unwrap_or(Value::Null)
}

/// Fifty deliveries of a call's five stages, shuffled and all at once: one analysis.
async fn one_analysis_whatever_the_duplicates(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let mut bodies = Vec::new();
    for _ in 0..10 {
        for status in STATUSES {
            bodies.push(bolna_report("exec-an", AGENT, status).to_string());
        }
    }
    // A fixed shuffle (reversed halves interleaved), so a failure replays.
    let (a, b) = bodies.split_at(bodies.len() / 2);
    let mut shuffled = Vec::new();
    for (x, y) in a.iter().rev().zip(b.iter()) {
        shuffled.push(y.clone());
        shuffled.push(x.clone());
    }
    let posts = shuffled
        .into_iter()
        .map(|body| app.webhook("bolna", &t.webhook_token, body));
    for (code, body) in futures_util::future::join_all(posts).await {
        assert_eq!(code, 200, "{body}");
    }
    let n = eventually(30, || async {
        let n = node(&app, &t.key, "exec-an").await;
        (n["analysis"]["status"] == "DONE").then_some(n)
    })
    .await;
    let a = &n["analysis"];
    // The report's transcript: "assistant: Hi Priya\nuser: Call me next week."
    assert_eq!(a["outcome"], "CALLBACK_REQUESTED", "{a}");
    assert_eq!(a["model"], "heuristic-v1");
    assert_eq!(a["summary"], "Asked to be called back (next week).");
    assert!(a["sentimentScore"].as_f64().unwrap().abs() <= 1.0);
    assert_eq!(a["promptTokens"], 0);
    assert!(a["analyzedAt"].is_string());
    assert_eq!(
        n["customer"]["interactions"][0]["outcome"], "CALLBACK_REQUESTED",
        "{n}"
    );
    // Later duplicates change nothing: still one analysis, and one job ever enqueued.
    for status in STATUSES {
        app.webhook(
            "bolna",
            &t.webhook_token,
            bolna_report("exec-an", AGENT, status).to_string(),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(analyses_of(&app, "exec-an").await.len(), 1);
    let jobs = entity::job::Entity::find()
        .filter(entity::job::Column::Kind.is_in(["analyze_call", "analyze_calls"]))
        .count(&app.db)
        .await
        .unwrap();
    assert!(jobs <= 1, "{jobs} analysis jobs");
}
on_both!(
    one_analysis_whatever_the_duplicates,
    one_analysis_whatever_the_duplicates,
    [("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20")]
);

/// A transcript too short to analyse is SKIPPED, spending nothing; a call that ended with
/// no transcript (busy) gets no analysis at all.
async fn short_and_missing_transcripts(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let mut short = bolna_report("exec-short", AGENT, "completed");
    short["transcript"] = json!("assistant: Hello?\nuser: Bye.");
    let mut busy = bolna_report("exec-busy", AGENT, "busy");
    busy["transcript"] = Value::Null;
    for body in [short, busy] {
        let (code, body) = app
            .webhook("bolna", &t.webhook_token, body.to_string())
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let n = eventually(30, || async {
        let n = node(&app, &t.key, "exec-short").await;
        (n["analysis"]["status"] == "SKIPPED").then_some(n)
    })
    .await;
    assert_eq!(n["analysis"]["outcome"], Value::Null);
    assert_eq!(n["analysis"]["promptTokens"], 0);
    assert!(
        n["analysis"]["error"]
            .as_str()
            .unwrap()
            .contains("too little")
    );
    let busy = eventually(10, || async {
        let n = node(&app, &t.key, "exec-busy").await;
        (n["status"] == "BUSY").then_some(n)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(busy["analysis"], Value::Null);
    assert!(analyses_of(&app, "exec-busy").await.is_empty());
}
on_both!(
    short_and_missing_transcripts,
    short_and_missing_transcripts,
    [("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20")]
);

const SET_FIELDS: &str = "mutation($f: [AnalysisFieldInput!]!) { setAnalysisFields(fields: $f) { name description type values } }";

/// An ADMIN sets the tenant's fields (validated, replaced as a whole); other roles and
/// other tenants cannot; the next analysis fills them.
async fn custom_fields_are_validated_and_filled(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let fields = json!([
        { "name": "callback_time", "description": "When to call back", "type": "STRING" },
        { "name": "budget", "description": "Budget in rupees", "type": "NUMBER" },
        { "name": "property_type", "description": "What they want", "type": "ENUM", "values": ["Flat", "Villa"] },
    ]);
    let set = app.ok(&t.key, SET_FIELDS, json!({ "f": fields })).await;
    assert_eq!(set["setAnalysisFields"].as_array().unwrap().len(), 3);
    let read = app
        .ok(&t.key, "{ analysisFields { name type values } }", json!({}))
        .await;
    assert_eq!(
        read["analysisFields"][2]["values"],
        json!(["Flat", "Villa"])
    );
    // Refusals: a bad name, an ENUM without values, a duplicate.
    for bad in [
        json!([{ "name": "Bad Name", "description": "x", "type": "STRING" }]),
        json!([{ "name": "e", "description": "x", "type": "ENUM" }]),
        json!([{ "name": "a", "description": "x", "type": "STRING" }, { "name": "a", "description": "y", "type": "NUMBER" }]),
    ] {
        let body = app.gql(Some(&t.key), SET_FIELDS, json!({ "f": bad })).await;
        assert_eq!(crate::common::code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "fields", "{body}");
    }
    // A lower role may read them, not replace them.
    let viewer = app
        .ok(
            &t.key,
            "mutation { createApiKey(input: {name: \"v\", role: VIEWER}) { apiKey } }",
            json!({}),
        )
        .await["createApiKey"]["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = app.gql(Some(&viewer), SET_FIELDS, json!({ "f": [] })).await;
    assert_eq!(crate::common::code(&body), "FORBIDDEN", "{body}");
    let read = app
        .ok(&viewer, "{ analysisFields { name } }", json!({}))
        .await;
    assert_eq!(read["analysisFields"].as_array().unwrap().len(), 3);
    // Another tenant sees none of them.
    let other = app.create_tenant("Other", "IN").await;
    let read = app
        .ok(&other.key, "{ analysisFields { name } }", json!({}))
        .await;
    assert_eq!(read["analysisFields"], json!([]));
    // The next analysis fills what the transcript says.
    let mut report = bolna_report("exec-fields", AGENT, "completed");
    report["transcript"] = json!(
        "assistant: Hello Priya\nuser: I want a villa, budget around 80 lakh. Call me back tomorrow at 6 pm."
    );
    let (code, body) = app
        .webhook("bolna", &t.webhook_token, report.to_string())
        .await;
    assert_eq!(code, 200, "{body}");
    let n = eventually(30, || async {
        let n = node(&app, &t.key, "exec-fields").await;
        (n["analysis"]["status"] == "DONE").then_some(n)
    })
    .await;
    let extracted = &n["analysis"]["extractedData"];
    assert_eq!(extracted["callback_time"], "tomorrow 6 pm", "{extracted}");
    assert_eq!(extracted["budget"], 8_000_000.0, "{extracted}");
    assert_eq!(extracted["property_type"], "Villa", "{extracted}");
    // Re-analysis with a changed set: the new fields are filled, the old analysis is kept.
    let fields = json!([{ "name": "wants_callback", "description": "Asked for a callback", "type": "BOOLEAN" }]);
    app.ok(&t.key, SET_FIELDS, json!({ "f": fields })).await;
    let id = n["id"].as_str().unwrap().to_owned();
    app.ok(
        &t.key,
        "mutation($id: ID!) { reanalyzeCall(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let n = eventually(30, || async {
        let n = node(&app, &t.key, "exec-fields").await;
        (n["analysis"]["extractedData"]["wants_callback"] == true).then_some(n)
    })
    .await;
    assert_eq!(n["analysis"]["extractedData"].as_object().unwrap().len(), 1);
    let history = analyses_of(&app, "exec-fields").await;
    assert_eq!(history.len(), 2);
    assert_eq!(history.iter().filter(|a| a.current).count(), 1);
    // Another tenant cannot re-analyse it.
    let body = app
        .gql(
            Some(&other.key),
            "mutation($id: ID!) { reanalyzeCall(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(crate::common::code(&body), "NOT_FOUND", "{body}");
    // Replacing with an empty set clears them.
    let cleared = app.ok(&t.key, SET_FIELDS, json!({ "f": [] })).await;
    assert_eq!(cleared["setAnalysisFields"], json!([]));
}
on_both!(
    custom_fields_are_validated_and_filled,
    custom_fields_are_validated_and_filled,
    [("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20")]
);
