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
        .filter(entity::job::Column::Kind.eq("analyze_call"))
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
