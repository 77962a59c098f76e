//! What analyses do to the CRM (lead status, the do-not-call list, pending campaign
//! items), lead scores and their rules, background re-analysis, and the analytics query
//! against hand-computed figures.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, TestApp, code, eventually};
use crate::on_both;
use crate::webhooks::{AGENT, bolna_report};

const BOOKED: &str = "assistant: Can I schedule a demo for you tomorrow at 4 pm?\nuser: Sure, go ahead.\nassistant: Done, your demo is scheduled for tomorrow 4 pm. You will get an email.\nuser: Great, thank you so much.";
const DNC: &str = "assistant: Hi, this is Ravi from QuickLoans.\nuser: Please don't call me again. Remove my number from your list.\nassistant: Sorry for the trouble, we will remove it.";

const CUSTOMER: &str =
    "{ customers(first: 5) { edges { node { id phoneNumber status leadScore segment
    scoreExplanation { rule detail points } } } } }";

async fn customer(app: &TestApp, key: &str) -> Value {
    app.ok(key, CUSTOMER, json!({})).await["customers"]["edges"][0]["node"].clone()
}

/// A completed Bolna call `id` whose transcript is `transcript`, started `minutes` after
/// two hours ago (so later calls are newer evidence, and scores barely fade).
fn completed(id: &str, transcript: &str, minutes: i64) -> Value {
    let mut r = bolna_report(id, AGENT, "completed");
    r["transcript"] = json!(transcript);
    let at = Utc::now() - chrono::Duration::hours(2) + chrono::Duration::minutes(minutes);
    r["created_at"] = json!(at.to_rfc3339());
    r["updated_at"] = json!((at + chrono::Duration::minutes(3)).to_rfc3339());
    r
}

/// A booking moves the lead to BOOKED (over the provider's own "interested" for the same
/// call) and scores it; a later "don't call me" puts the number on the do-not-call list,
/// cancels its pending campaign items and zeroes the score.
async fn outcomes_move_the_lead_and_its_score(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let (code_, body) = app
        .webhook(
            "bolna",
            &t.webhook_token,
            completed("exec-1", BOOKED, 0).to_string(),
        )
        .await;
    assert_eq!(code_, 200, "{body}");
    let c = eventually(30, || async {
        let c = customer(&app, &t.key).await;
        (c["status"] == "BOOKED" && c["leadScore"].is_number()).then_some(c)
    })
    .await;
    assert_eq!(c["segment"], "HOT", "{c}");
    let rules: Vec<&str> = c["scoreExplanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"outcome:APPOINTMENT_BOOKED"), "{c}");
    assert!(rules.contains(&"base"), "{c}");
    let sum: f64 = c["scoreExplanation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["points"].as_f64().unwrap())
        .sum();
    assert!(
        (sum.clamp(0.0, 100.0) - c["leadScore"].as_f64().unwrap()).abs() < 0.05,
        "{c}"
    );

    // A draft campaign holding the number: its item is pending.
    let agent = app.ok(&t.key, "{ agents { id } }", json!({})).await["agents"][0]["id"].clone();
    let data = app
        .ok(
            &t.key,
            "mutation($a: ID!, $csv: String!) { createCampaign(input: {name: \"c\", agentId: $a, csv: $csv}) { campaign { id } accepted } }",
            json!({ "a": agent, "csv": "phone\n+919812345678\n" }),
        )
        .await;
    assert_eq!(data["createCampaign"]["accepted"], 1, "{data}");

    app.webhook(
        "bolna",
        &t.webhook_token,
        completed("exec-2", DNC, 60).to_string(),
    )
    .await;
    eventually(30, || async {
        let c = customer(&app, &t.key).await;
        (c["status"] == "DO_NOT_CALL").then_some(c)
    })
    .await;
    let listed = entity::do_not_call::Entity::find()
        .filter(entity::do_not_call::Column::PhoneNumber.eq("+919812345678"))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(listed, 1);
    let item = entity::campaign_item::Entity::find()
        .filter(entity::campaign_item::Column::PhoneNumber.eq("+919812345678"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.status, domain::types::QueueItemStatus::Canceled);
    let c = eventually(10, || async {
        let c = customer(&app, &t.key).await;
        (c["leadScore"] == 0.0).then_some(c)
    })
    .await;
    assert_eq!(c["segment"], "COLD", "{c}");
}
on_both!(
    outcomes_move_the_lead_and_its_score,
    outcomes_move_the_lead_and_its_score,
    [("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20")]
);

const RULES: &str = "{ scoringRules { base hotThreshold warmThreshold halfLifeDays
    outcomeWeights { outcome points } fieldRules { field op value points } } }";
const SET_RULES: &str =
    "mutation($i: ScoringRulesInput!) { setScoringRules(input: $i) { base hotThreshold } }";

/// The default rules read back; ADMIN replaces them (validated) and every customer is
/// rescored in the background; other roles may not.
async fn scoring_rules_are_replaced_and_applied(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    app.webhook(
        "bolna",
        &t.webhook_token,
        completed("exec-1", BOOKED, 0).to_string(),
    )
    .await;
    let before = eventually(30, || async {
        let c = customer(&app, &t.key).await;
        c["leadScore"].as_f64().map(|s| (s, c))
    })
    .await;
    let rules = app.ok(&t.key, RULES, json!({})).await["scoringRules"].clone();
    assert_eq!(rules["base"], 20.0);
    assert_eq!(rules["hotThreshold"], 70.0);
    let mut input = rules.clone();
    input["base"] = json!(-30.0);
    input["hotThreshold"] = json!(95.0);
    input["fieldRules"] =
        json!([{ "field": "budget", "op": "AT_LEAST", "value": "10", "points": 5 }]);
    // Viewers may not change them.
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
    let refused = app
        .gql(Some(&viewer), SET_RULES, json!({ "i": input }))
        .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    // Thresholds out of order are refused.
    let mut bad = input.clone();
    bad["warmThreshold"] = json!(99.0);
    let refused = app.gql(Some(&t.key), SET_RULES, json!({ "i": bad })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let set = app.ok(&t.key, SET_RULES, json!({ "i": input })).await;
    assert_eq!(set["setScoringRules"]["base"], -30.0);
    let after = eventually(30, || async {
        let c = customer(&app, &t.key).await;
        let s = c["leadScore"].as_f64()?;
        ((s - (before.0 - 50.0).max(0.0)).abs() < 0.05).then_some(c)
    })
    .await;
    assert_ne!(after["segment"], "HOT", "{after}");
    let back = app.ok(&t.key, RULES, json!({})).await["scoringRules"].clone();
    assert_eq!(back["fieldRules"][0]["op"], "AT_LEAST");
}
on_both!(
    scoring_rules_are_replaced_and_applied,
    scoring_rules_are_replaced_and_applied,
    [("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20")]
);

const JOB: &str = "query($id: ID!) { job(id: $id) { id kind status total done failed } }";

/// `reanalyzeCalls` runs in the background with progress; each call keeps its history;
/// a second one while the first runs is a CONFLICT, and a viewer may not start one.
async fn calls_are_reanalysed_in_the_background(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    for i in 0..3 {
        app.webhook(
            "bolna",
            &t.webhook_token,
            completed(&format!("exec-{i}"), BOOKED, i).to_string(),
        )
        .await;
    }
    eventually(30, || async {
        let n = entity::call_analysis::Entity::find()
            .count(&app.db)
            .await
            .unwrap();
        (n == 3).then_some(())
    })
    .await;
    let data = app
        .ok(
            &t.key,
            "mutation { reanalyzeCalls { id kind status total } }",
            json!({}),
        )
        .await;
    let job = &data["reanalyzeCalls"];
    assert_eq!(job["kind"], "reanalyze_calls");
    assert_eq!(job["total"], 3);
    let id = job["id"].as_str().unwrap().to_owned();
    let done = eventually(30, || async {
        let j = app.ok(&t.key, JOB, json!({ "id": id })).await["job"].clone();
        (j["status"] == "SUCCEEDED").then_some(j)
    })
    .await;
    assert_eq!(done["done"], 3, "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    let all = entity::call_analysis::Entity::find()
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(all, 6, "each call keeps its earlier analysis");
    let current = entity::call_analysis::Entity::find()
        .filter(entity::call_analysis::Column::Current.eq(true))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(current, 3);
    // Another tenant cannot read the job.
    let other = app.create_tenant("Other", "US").await;
    let none = app.ok(&other.key, JOB, json!({ "id": id })).await;
    assert!(none["job"].is_null(), "{none}");
}
on_both!(
    calls_are_reanalysed_in_the_background,
    calls_are_reanalysed_in_the_background,
    [("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20")]
);

/// Inserts a call of `tenant` that started at `at` with `status`, a duration and cost, and
/// (when given) a current DONE analysis with `outcome` and `sentiment`.
#[allow(clippy::too_many_arguments)]
async fn seed_call(
    app: &TestApp,
    tenant: uuid::Uuid,
    customer: Option<uuid::Uuid>,
    at: DateTime<Utc>,
    status: domain::types::CallStatus,
    duration: Option<f64>,
    cost: Option<f64>,
    analysis: Option<(domain::types::CallOutcome, domain::types::Sentiment)>,
) {
    let id = uuid::Uuid::now_v7();
    entity::call::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant),
        agent_id: Set(None),
        customer_id: Set(customer),
        campaign_id: Set(None),
        campaign_item_id: Set(None),
        provider: Set(domain::types::Provider::Simulator),
        provider_execution_id: Set(Some(uuid::Uuid::new_v4().to_string())),
        placing_since: Set(None),
        provider_call_id: Set(None),
        direction: Set(domain::types::CallDirection::Outbound),
        status: Set(status),
        from_number: Set(None),
        to_number: Set(None),
        started_at: Set(Some(at)),
        ended_at: Set(None),
        duration_seconds: Set(duration),
        cost: Set(cost),
        transcript: Set(None),
        summary: Set(None),
        recording_url: Set(None),
        extracted_data: Set(None),
        hangup_reason: Set(None),
        raw_payload: Set(None),
        provider_agent_id: Set(None),
        status_rank: Set(status.rank()),
        idempotency_key: Set(None),
        error_message: Set(None),
        variables: Set(None),
        // Recorded much later (a sync): analytics counts the call when it started.
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(&app.db)
    .await
    .unwrap();
    if let Some((outcome, sentiment)) = analysis {
        entity::call_analysis::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            tenant_id: Set(tenant),
            call_id: Set(id),
            current: Set(true),
            status: Set(domain::types::AnalysisStatus::Done),
            sentiment: Set(Some(sentiment)),
            sentiment_score: Set(Some(0.5)),
            outcome: Set(Some(outcome)),
            summary: Set(Some("s".into())),
            extracted_data: Set(None),
            model: Set(Some("test".into())),
            prompt_tokens: Set(Some(0)),
            completion_tokens: Set(Some(0)),
            latency_ms: Set(Some(1)),
            error: Set(None),
            created_at: Set(Utc::now()),
            analyzed_at: Set(Some(Utc::now())),
        }
        .insert(&app.db)
        .await
        .unwrap();
    }
}

async fn tenant_in(app: &TestApp, name: &str, tz: &str) -> (String, uuid::Uuid) {
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            "mutation($n: String!, $z: String!) { createTenant(input: {name: $n, defaultRegion: \"IN\", timezone: $z}) { apiKey tenant { id } } }",
            json!({ "n": name, "z": tz }),
        )
        .await;
    let p = &body["data"]["createTenant"];
    (
        p["apiKey"].as_str().unwrap().to_owned(),
        p["tenant"]["id"].as_str().unwrap().parse().unwrap(),
    )
}

const ANALYTICS: &str =
    "query($s: DateTime, $u: DateTime) { analytics(filter: {since: $s, until: $u}) {
    timezone totalCalls connectedCalls connectRate averageDurationSeconds totalCost
    byStatus { status count } byOutcome { outcome count } bySentiment { sentiment count }
    bySegment { segment count } daily { date calls connected booked } } }";

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Analytics against figures worked out by hand: a Kolkata tenant's calls either side of
/// its midnight (18:30 UTC), a New York tenant's across the autumn daylight-saving change
/// (a 25-hour day), and another tenant's calls that must not count.
async fn analytics_match_hand_computed_figures(app: TestApp) {
    use domain::types::{CallOutcome as O, CallStatus as S, Sentiment as M};
    let (key, kolkata) = tenant_in(&app, "Mumbai", "Asia/Kolkata").await;
    let customer: uuid::Uuid = app
        .create_customer(&key, "+919812345678", "Priya")
        .await
        .parse()
        .unwrap();
    // 2026-03-01 in Kolkata runs 2026-02-28T18:30Z .. 2026-03-01T18:30Z.
    for (at, status, dur, cost, analysis) in [
        (
            "2026-02-28T18:29:59Z",
            S::Completed,
            Some(60.0),
            Some(1.0),
            Some((O::Interested, M::Positive)),
        ), // Feb 28 local 23:59:59
        (
            "2026-02-28T18:30:00Z",
            S::Completed,
            Some(120.0),
            Some(2.0),
            Some((O::AppointmentBooked, M::Positive)),
        ), // Mar 1 00:00
        ("2026-03-01T10:00:00Z", S::Busy, None, Some(0.5), None),
        ("2026-03-01T18:29:00Z", S::NoAnswer, None, None, None), // Mar 1 23:59
        (
            "2026-03-01T18:31:00Z",
            S::Completed,
            Some(30.0),
            Some(0.25),
            Some((O::NotInterested, M::Negative)),
        ), // Mar 2
    ] {
        seed_call(
            &app,
            kolkata,
            Some(customer),
            utc(at),
            status,
            dur,
            cost,
            analysis,
        )
        .await;
    }
    // Outside the period, and another tenant's call inside it.
    seed_call(
        &app,
        kolkata,
        None,
        utc("2026-02-20T10:00:00Z"),
        S::Completed,
        Some(10.0),
        Some(9.0),
        None,
    )
    .await;
    let (_, other) = tenant_in(&app, "Other", "Asia/Kolkata").await;
    seed_call(
        &app,
        other,
        None,
        utc("2026-03-01T10:00:00Z"),
        S::Completed,
        Some(10.0),
        Some(9.0),
        None,
    )
    .await;

    let data = app
        .ok(
            &key,
            ANALYTICS,
            json!({ "s": "2026-02-28T00:00:00Z", "u": "2026-03-02T18:30:00Z" }),
        )
        .await;
    let a = &data["analytics"];
    assert_eq!(a["timezone"], "Asia/Kolkata");
    assert_eq!(a["totalCalls"], 5, "{a}");
    assert_eq!(a["connectedCalls"], 3, "{a}");
    assert!(
        (a["connectRate"].as_f64().unwrap() - 0.6).abs() < 1e-9,
        "{a}"
    );
    assert!(
        (a["averageDurationSeconds"].as_f64().unwrap() - 70.0).abs() < 1e-9,
        "{a}"
    );
    assert!(
        (a["totalCost"].as_f64().unwrap() - 3.75).abs() < 1e-9,
        "{a}"
    );
    assert_eq!(
        a["byStatus"],
        json!([{"status": "BUSY", "count": 1}, {"status": "COMPLETED", "count": 3}, {"status": "NO_ANSWER", "count": 1}]),
        "{a}"
    );
    let outcomes = a["byOutcome"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3, "{a}");
    assert!(outcomes.contains(&json!({"outcome": "APPOINTMENT_BOOKED", "count": 1})));
    let sentiments = a["bySentiment"].as_array().unwrap();
    assert!(
        sentiments.contains(&json!({"sentiment": "POSITIVE", "count": 2})),
        "{a}"
    );
    assert!(
        sentiments.contains(&json!({"sentiment": "NEGATIVE", "count": 1})),
        "{a}"
    );
    assert_eq!(
        a["bySegment"],
        json!([{"segment": "NONE", "count": 1}]),
        "{a}"
    );
    assert_eq!(
        a["daily"],
        json!([
            {"date": "2026-02-28", "calls": 1, "connected": 1, "booked": 0},
            {"date": "2026-03-01", "calls": 3, "connected": 1, "booked": 1},
            {"date": "2026-03-02", "calls": 1, "connected": 1, "booked": 0},
        ]),
        "{a}"
    );

    // New York, autumn back: 2026-11-01 is 25 hours (04:00Z .. 05:00Z next day).
    let (key, ny) = tenant_in(&app, "NYC", "America/New_York").await;
    for at in [
        "2026-11-01T03:59:00Z", // Oct 31, 23:59 EDT
        "2026-11-01T04:00:00Z", // Nov 1, 00:00 EDT
        "2026-11-02T04:30:00Z", // Nov 1, 23:30 EST (the 25th hour)
        "2026-11-02T05:00:00Z", // Nov 2, 00:00 EST
    ] {
        seed_call(
            &app,
            ny,
            None,
            utc(at),
            S::Completed,
            Some(10.0),
            None,
            None,
        )
        .await;
    }
    let data = app
        .ok(
            &key,
            ANALYTICS,
            json!({ "s": "2026-10-31T04:00:00Z", "u": "2026-11-03T05:00:00Z" }),
        )
        .await;
    let days: Vec<(String, i64)> = data["analytics"]["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                d["calls"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-10-31".to_owned(), 1),
            ("2026-11-01".to_owned(), 2),
            ("2026-11-02".to_owned(), 1),
        ],
        "{data}"
    );
    // Bad periods are refused.
    let refused = app
        .gql(
            Some(&key),
            ANALYTICS,
            json!({ "s": "2025-01-01T00:00:00Z", "u": "2026-11-03T05:00:00Z" }),
        )
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    let refused = app
        .gql(
            Some(&key),
            ANALYTICS,
            json!({ "s": "2026-11-03T05:00:00Z", "u": "2026-11-01T05:00:00Z" }),
        )
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
}
on_both!(
    analytics_match_hand_computed_figures,
    analytics_match_hand_computed_figures
);

/// What a lower role, another tenant or malformed input gets from the new fields.
async fn hostile_inputs_to_analysis_and_analytics_are_refused(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    let other = app.create_tenant("Other", "IN").await;
    let other_agent = app.create_agent(&other.key, "Theirs").await;
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
    // A viewer may read analytics but not start a re-analysis.
    let refused = app
        .gql(
            Some(&viewer),
            "mutation { reanalyzeCalls { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert!(
        app.gql(Some(&viewer), "{ analytics { totalCalls } }", json!({}))
            .await["data"]["analytics"]
            .is_object()
    );
    // Malformed ids.
    for q in [
        "{ analytics(filter: {agentId: \"nope\"}) { totalCalls } }",
        "{ job(id: \"nope\") { id } }",
    ] {
        let refused = app.gql(Some(&t.key), q, json!({})).await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{q}: {refused}");
    }
    // Another tenant's agent filters to nothing here.
    let data = app
        .ok(
            &t.key,
            "query($a: ID) { analytics(filter: {agentId: $a}) { totalCalls daily { calls } } }",
            json!({ "a": other_agent }),
        )
        .await;
    assert_eq!(data["analytics"]["totalCalls"], 0, "{data}");
    // A re-analysis window that ends before it starts.
    let refused = app
        .gql(
            Some(&t.key),
            "mutation { reanalyzeCalls(filter: {since: \"2026-02-01T00:00:00Z\", until: \"2026-01-01T00:00:00Z\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    // Oversized scoring rules.
    let many: Vec<Value> = (0..31)
        .map(|i| json!({ "field": format!("f{i}"), "op": "PRESENT", "points": 1 }))
        .collect();
    let long = "x".repeat(101);
    for input in [
        json!({ "fieldRules": many }),
        json!({ "fieldRules": [{ "field": "plan", "op": "EQUALS", "value": long, "points": 1 }] }),
        json!({ "halfLifeDays": 0 }),
        json!({ "base": 1e9 }),
    ] {
        let refused = app
            .gql(Some(&t.key), SET_RULES, json!({ "i": input }))
            .await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "{input}: {refused}");
    }
}
on_both!(
    hostile_inputs_to_analysis_and_analytics_are_refused,
    hostile_inputs_to_analysis_and_analytics_are_refused
);
