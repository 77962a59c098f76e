//! Webhook ingestion, as a provider would deliver it: late, twice, out of order, garbled.

use serde_json::{Value, json};

use crate::common::{TestApp, code, eventually};
use crate::on_both;

pub const AGENT: &str = "6f1c2d7e-3b4a-4c59-9e21-0d8a7b6c5e41";
pub const STATUSES: [&str; 5] = [
    "initiated",
    "ringing",
    "in-progress",
    "call-disconnected",
    "completed",
];

/// A Bolna execution body at `status`, filled the way Bolna fills it at that stage.
pub fn bolna_report(id: &str, agent: &str, status: &str) -> Value {
    let mut v = json!({
        "id": id, "agent_id": agent, "status": status, "batch_id": null,
        "created_at": "2025-09-02T05:00:03Z", "updated_at": "2025-09-02T05:04:41Z",
        "telephony_data": { "to_number": "+91 98123 45678", "from_number": "+918045671234",
                            "call_type": "outbound", "provider": "twilio", "recording_url": "" },
        "context_details": { "recipient_data": { "customer_name": "Priya" } },
        "transcript": null, "summary": null, "extracted_data": null
    });
    if matches!(status, "call-disconnected" | "completed") {
        v["transcript"] = json!("assistant: Hi Priya\nuser: Call me next week.");
        v["conversation_duration"] = json!(74.6);
        v["telephony_data"]["duration"] = json!("76");
        v["telephony_data"]["hangup_reason"] = json!("Call recipient hung up");
    }
    if status == "completed" {
        v["summary"] = json!("Wants a callback next week.");
        v["total_cost"] = json!(9.8);
        v["telephony_data"]["recording_url"] = json!("https://rec.example/abc.mp3");
        v["extracted_data"] = json!({ "interested": true });
    }
    v
}

const CALL_BY_EXECUTION: &str = "query { calls(first: 50) { totalCount edges { node { id status providerExecutionId transcript summary recordingUrl durationSeconds cost hangupReason extractedData agent { id } customer { phoneNumber name lastContactedAt } events { status source } } } } }";

/// Waits until the tenant has `n` calls, each with `events` events; returns them.
async fn calls_settled(app: &TestApp, key: &str, n: u64, events: usize) -> Vec<Value> {
    // A page and its nested events are read by separate statements, so one answer can
    // straddle a commit: settled means the same answer twice in a row.
    let previous = std::sync::Mutex::new(Value::Null);
    eventually(15, || async {
        let data = app.ok(key, CALL_BY_EXECUTION, json!({})).await;
        let edges = data["calls"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let done = data["calls"]["totalCount"] == n
            && edges.len() as u64 == n
            && edges
                .iter()
                .all(|e| e["node"]["events"].as_array().map(Vec::len) == Some(events));
        let same = {
            let mut prev = previous.lock().unwrap();
            let same = *prev == data;
            *prev = data;
            same
        };
        (done && same).then(|| edges.into_iter().map(|e| e["node"].clone()).collect())
    })
    .await
}

async fn five_report_happy_path(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    let agent = app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    for status in STATUSES {
        let (code, body) = app
            .webhook(
                "bolna",
                &t.webhook_token,
                bolna_report("exec-1", AGENT, status).to_string(),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["status"], "accepted");
    }
    let calls = calls_settled(&app, &t.key, 1, 5).await;
    let call = &calls[0];
    assert_eq!(call["status"], "COMPLETED");
    assert_eq!(call["providerExecutionId"], "exec-1");
    assert_eq!(call["agent"]["id"], agent);
    assert_eq!(call["summary"], "Wants a callback next week.");
    assert_eq!(call["recordingUrl"], "https://rec.example/abc.mp3");
    assert_eq!(call["durationSeconds"], 74.6);
    assert_eq!(call["customer"]["phoneNumber"], "+919812345678");
    assert_eq!(call["customer"]["name"], "Priya");
    assert!(call["customer"]["lastContactedAt"].is_string());
    let statuses: Vec<&str> = call["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "INITIATED",
            "RINGING",
            "IN_PROGRESS",
            "CALL_DISCONNECTED",
            "COMPLETED"
        ]
    );
    assert!(
        call["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source"] == "WEBHOOK")
    );
    // Nothing is left waiting in the queue.
    let pending = app
        .ok(&t.key, "{ customers(first: 5) { totalCount } }", json!({}))
        .await;
    assert_eq!(pending["customers"]["totalCount"], 1);
}
on_both!(five_report_happy_path, five_report_happy_path);

async fn fifty_duplicate_deliveries_make_one_call(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    // Every stage delivered ten times, all at once, as retries and two load-balanced
    // replicas would: 50 posts.
    let mut posts = Vec::new();
    for _ in 0..10 {
        for status in STATUSES {
            let body = bolna_report("exec-dup", AGENT, status).to_string();
            posts.push(app.webhook("bolna", &t.webhook_token, body));
        }
    }
    for (code, body) in futures_util::future::join_all(posts).await {
        assert_eq!(code, 200, "{body}");
    }
    let calls = calls_settled(&app, &t.key, 1, 5).await;
    assert_eq!(calls[0]["status"], "COMPLETED");
    let customers = app
        .ok(&t.key, "{ customers(first: 5) { totalCount } }", json!({}))
        .await;
    assert_eq!(customers["customers"]["totalCount"], 1);
}
on_both!(
    fifty_duplicate_deliveries_make_one_call,
    fifty_duplicate_deliveries_make_one_call
);

async fn out_of_order_and_sparse_reports_never_regress_or_wipe(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    // completed before call-disconnected, then a late ringing, then a sparse completed.
    for status in ["completed", "call-disconnected", "ringing"] {
        let (code, _) = app
            .webhook(
                "bolna",
                &t.webhook_token,
                bolna_report("exec-ooo", AGENT, status).to_string(),
            )
            .await;
        assert_eq!(code, 200);
    }
    let sparse = json!({ "id": "exec-ooo", "agent_id": AGENT, "status": "completed", "transcript": null,
                         "summary": "", "telephony_data": { "recording_url": "" } });
    assert_eq!(
        app.webhook("bolna", &t.webhook_token, sparse.to_string())
            .await
            .0,
        200
    );
    let calls = calls_settled(&app, &t.key, 1, 3).await;
    let call = &calls[0];
    assert_eq!(
        call["status"], "COMPLETED",
        "a late report moved the call backwards"
    );
    assert_eq!(
        call["transcript"],
        "assistant: Hi Priya\nuser: Call me next week."
    );
    assert_eq!(call["summary"], "Wants a callback next week.");
    assert_eq!(call["recordingUrl"], "https://rec.example/abc.mp3");
    assert_eq!(call["extractedData"]["interested"], true);
}
on_both!(
    out_of_order_and_sparse_reports_never_regress_or_wipe,
    out_of_order_and_sparse_reports_never_regress_or_wipe
);

async fn unknown_agents_are_kept_and_visible_to_every_role(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    let (code, _) = app
        .webhook(
            "bolna",
            &t.webhook_token,
            bolna_report("exec-x", "agent-nobody-knows", "completed").to_string(),
        )
        .await;
    assert_eq!(code, 200);
    let q = "{ calls(first: 5, filter: {unmatched: true}) { totalCount edges { node { providerAgentId agent { id } status } } } }";
    let data = eventually(10, || async {
        let d = app.ok(&t.key, q, json!({})).await;
        (d["calls"]["totalCount"] == 1).then_some(d)
    })
    .await;
    let node = &data["calls"]["edges"][0]["node"];
    assert_eq!(node["providerAgentId"], "agent-nobody-knows");
    assert!(node["agent"].is_null());
    // Unmatched calls are the tenant's data like any other: a VIEWER sees them in plain
    // `calls`, so it may filter for them too (one rule, not two).
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
    let seen = app.ok(&viewer, q, json!({})).await;
    assert_eq!(seen["calls"]["totalCount"], 1);
    let plain = app
        .ok(
            &viewer,
            "{ calls(first: 5) { edges { node { providerAgentId } } } }",
            json!({}),
        )
        .await;
    assert!(
        plain["calls"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"]["providerAgentId"] == "agent-nobody-knows")
    );
}
on_both!(
    unknown_agents_are_kept_and_visible_to_every_role,
    unknown_agents_are_kept_and_visible_to_every_role
);

async fn garbage_gets_clear_errors_and_loses_nothing(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    assert_eq!(
        app.webhook(
            "bolna",
            &t.webhook_token,
            bolna_report("exec-g", AGENT, "ringing").to_string()
        )
        .await
        .0,
        200
    );

    let (status, body) = app
        .webhook(
            "bolna",
            "not-a-token",
            bolna_report("exec-g", AGENT, "completed").to_string(),
        )
        .await;
    assert_eq!((status, body["error"].is_string()), (404, true), "{body}");
    for garbage in [
        "{not json",
        "[]",
        "\"x\"",
        "{\"status\": \"completed\"}",
        "{\"id\": \"e\", \"status\": \"exploded\"}",
        "{\"id\": 42, \"status\": \"queued\"}",
    ] {
        let (status, body) = app.webhook("bolna", &t.webhook_token, garbage).await;
        assert_eq!(status, 400, "{garbage}: {body}");
        assert!(body["error"].is_string(), "{garbage}: {body}");
    }
    let big = format!(
        "{{\"id\": \"e\", \"status\": \"queued\", \"transcript\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let (status, body) = app.webhook("bolna", &t.webhook_token, big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].is_string(), "{body}");
    // The call stored before is intact.
    let calls = calls_settled(&app, &t.key, 1, 1).await;
    assert_eq!(calls[0]["status"], "RINGING");
}
on_both!(
    garbage_gets_clear_errors_and_loses_nothing,
    garbage_gets_clear_errors_and_loses_nothing
);

async fn teli_reports_are_ingested(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    app.create_agent_for(&t.key, "TELI", "0d3f6a2b-91c4-4e7a-a5b2-6c8e1f0d9a34")
        .await;
    let call = json!({ "call_id": "call_5b1e", "agent_id": "0d3f6a2b-91c4-4e7a-a5b2-6c8e1f0d9a34", "direction": "outbound",
        "from_number": "+15125550143", "to_number": "(512) 555-0199", "call_status": "ended",
        "start_timestamp": 1756800003000u64, "end_timestamp": 1756800091000u64, "duration_ms": 88000,
        "transcript": "Agent: Hi Sam\nUser: Sure", "call_analysis": { "call_summary": "Qualified lead." } });
    assert_eq!(
        app.webhook(
            "teli",
            &t.webhook_token,
            json!({"event": "call_analyzed", "call": call}).to_string()
        )
        .await
        .0,
        200
    );
    let calls = calls_settled(&app, &t.key, 1, 1).await;
    assert_eq!(calls[0]["status"], "COMPLETED");
    assert_eq!(calls[0]["customer"]["phoneNumber"], "+15125550199");
    assert_eq!(calls[0]["durationSeconds"], 88.0);
}
on_both!(teli_reports_are_ingested, teli_reports_are_ingested);

/// A report queued by a busy process (or whose process died after queuing it) is applied
/// by a worker, exactly once.
async fn accepted_reports_survive_a_crash(app: TestApp) {
    use domain::ingest;
    use domain::providers::bolna;
    use domain::types::EventSource;
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let tenant_id = uuid::Uuid::parse_str(&t.id).unwrap();
    let report = bolna::parse_execution(bolna_report("exec-crash", AGENT, "completed")).unwrap();
    // What the webhook does before answering, and nothing after.
    ingest::accept(&app.db, tenant_id, report, EventSource::Webhook)
        .await
        .unwrap();
    // Later, a worker (the grace period has passed) takes it.
    sea_orm::ConnectionTrait::execute_unprepared(&app.db, "UPDATE jobs SET run_at = created_at")
        .await
        .unwrap();
    let settings = domain::settings::Settings::from_lookup(|k| app.env.get(k).cloned()).unwrap();
    let stats = workers::runner(app.services.clone(), &settings)
        .run_pending_jobs()
        .await
        .unwrap();
    assert_eq!(stats.succeeded, 1);
    let calls = calls_settled(&app, &t.key, 1, 1).await;
    assert_eq!(calls[0]["status"], "COMPLETED");
}
on_both!(
    accepted_reports_survive_a_crash,
    accepted_reports_survive_a_crash
);

fn permutations(items: &[&'static str]) -> Vec<Vec<&'static str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}

/// All 120 orders of the five reports end in the same call.
async fn every_order_gives_the_same_call(app: TestApp) {
    use domain::providers::bolna;
    use domain::types::EventSource;
    use sea_orm::EntityTrait;
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let tenant = app.tenant_model(&t.id).await;
    let orders = permutations(&STATUSES);
    assert_eq!(orders.len(), 120);
    for (i, order) in orders.iter().enumerate() {
        for status in order {
            let mut body = bolna_report(&format!("perm-{i}"), AGENT, status);
            // A different customer per order keeps every call independent.
            body["telephony_data"]["to_number"] = json!(format!("+91981234{:04}", i));
            let report = bolna::parse_execution(body).unwrap();
            app.services
                .ingestor()
                .ingest(&tenant, &report, EventSource::Webhook)
                .await
                .unwrap();
        }
    }
    let calls = entity::call::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(calls.len(), 120);
    let shape = |c: &entity::call::Model| {
        (
            c.status,
            c.transcript.clone(),
            c.summary.clone(),
            c.recording_url.clone(),
            c.duration_seconds,
            c.cost,
            c.extracted_data.clone(),
            c.hangup_reason.clone(),
            c.agent_id,
        )
    };
    let first = shape(&calls[0]);
    assert_eq!(first.0, domain::types::CallStatus::Completed);
    for c in &calls {
        assert_eq!(
            shape(c),
            first,
            "call {} differs",
            c.provider_execution_id.as_deref().unwrap_or("")
        );
    }
    let events = entity::call_event::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(events.len(), 600);
}
on_both!(
    every_order_gives_the_same_call,
    every_order_gives_the_same_call
);

/// With no room to apply at once, reports are queued, acknowledged, and applied by the worker.
async fn a_busy_process_queues_reports_for_the_worker(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    for status in STATUSES {
        let (code, body) = app
            .webhook(
                "bolna",
                &t.webhook_token,
                bolna_report("exec-q", AGENT, status).to_string(),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let calls = calls_settled(&app, &t.key, 1, 5).await;
    assert_eq!(calls[0]["status"], "COMPLETED");
    let left = entity::job::Entity::find().all(&app.db).await.unwrap();
    assert!(
        left.iter()
            .all(|j| j.kind != <domain::ingest::jobs::IngestReport as domain::jobs::Job>::KIND),
        "queued reports left behind"
    );
}
on_both!(
    a_busy_process_queues_reports_for_the_worker,
    a_busy_process_queues_reports_for_the_worker,
    [
        ("WEBHOOK_INLINE_LIMIT", "0"),
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20")
    ]
);

use sea_orm::EntityTrait as _;

/// Lead status follows the calls: forward along the funnel, or whatever the newest call says.
async fn lead_status_follows_the_calls(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    let agent = app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let post = |id: &'static str, at: &'static str, extracted: Value| {
        let mut body = bolna_report(id, AGENT, "completed");
        body["updated_at"] = json!(at);
        body["created_at"] = json!(at);
        body["extracted_data"] = extracted;
        body["context_details"] = json!(null);
        body["extracted_data"]["name"] = json!("Priya Sharma");
        app.webhook("bolna", &t.webhook_token, body.to_string())
    };
    let status = || async {
        let d = app
            .ok(
                &t.key,
                "{ customerByPhone(phone: \"+919812345678\") { status name } }",
                json!({}),
            )
            .await;
        d["customerByPhone"].clone()
    };
    assert_eq!(
        post("l1", "2026-11-10T10:00:00Z", json!({"intent": "booked"}))
            .await
            .0,
        200
    );
    assert_eq!(
        status().await,
        json!({"status": "BOOKED", "name": "Priya Sharma"})
    );
    // An older call saying "not interested" does not move a booked lead back.
    assert_eq!(
        post(
            "l0",
            "2026-11-01T10:00:00Z",
            json!({"intent": "not interested"})
        )
        .await
        .0,
        200
    );
    assert_eq!(status().await["status"], "BOOKED");
    // A newer one does.
    assert_eq!(
        post(
            "l2",
            "2026-11-12T10:00:00Z",
            json!({"outcome": "not_interested"})
        )
        .await
        .0,
        200
    );
    assert_eq!(status().await["status"], "NOT_INTERESTED");
    // "Do not call" sticks and puts the number on the list.
    assert_eq!(
        post(
            "l3",
            "2026-11-13T10:00:00Z",
            json!({"intent": "do not call"})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            "l4",
            "2026-11-14T10:00:00Z",
            json!({"intent": "interested"})
        )
        .await
        .0,
        200
    );
    assert_eq!(status().await["status"], "DO_NOT_CALL");
    let body = app
        .gql(Some(&t.key), "mutation($a: ID!) { startCall(input: {agentId: $a, phoneNumber: \"9812345678\"}) { id } }", json!({ "a": agent }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}
on_both!(lead_status_follows_the_calls, lead_status_follows_the_calls);

/// What a provider can send that PostgreSQL cannot store or that would corrupt a lead:
/// NUL characters anywhere, times in year 9999, numbers that are not numbers, negative
/// durations. Each report is stored, cleaned, and answered 200.
async fn hostile_reports_are_cleaned_not_refused(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let mut nul = bolna_report("exec-\u{0}nul", AGENT, "completed");
    nul["transcript"] = json!("assistant: hi\u{0}\nuser: yes");
    nul["unknown_field"] = json!({ "k\u{0}": ["v\u{0}"] });
    nul["extracted_data"] = json!({ "note": "a\u{0}b" });
    let (status, body) = app
        .webhook("bolna", &t.webhook_token, nul.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let mut future = bolna_report("exec-future", AGENT, "completed");
    future["created_at"] = json!("9999-12-31T23:59:59Z");
    future["updated_at"] = json!("9999-12-31T23:59:59Z");
    future["telephony_data"]["to_number"] = json!("+91 98123 45679");
    future["telephony_data"]["from_number"] =
        json!(format!("not a number <script>{}", "9".repeat(5000)));
    future["conversation_duration"] = json!(-50);
    future["total_cost"] = json!(-3);
    let (status, body) = app
        .webhook("bolna", &t.webhook_token, future.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let q = "{ calls(first: 10) { edges { node { providerExecutionId transcript fromNumber toNumber durationSeconds cost startedAt customer { phoneNumber lastContactedAt } } } } }";
    let calls = eventually(15, || async {
        let data = app.ok(&t.key, q, json!({})).await;
        (data["calls"]["edges"].as_array().map(Vec::len) == Some(2)).then_some(data)
    })
    .await;
    let edges = calls["calls"]["edges"].as_array().unwrap();
    let by_id = |id: &str| {
        edges
            .iter()
            .map(|e| &e["node"])
            .find(|n| n["providerExecutionId"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {calls}"))
            .clone()
    };
    let cleaned = by_id("exec-nul");
    assert_eq!(cleaned["transcript"], "assistant: hi\nuser: yes");
    let wild = by_id("exec-future");
    assert!(wild["fromNumber"].is_null(), "{wild}");
    assert_eq!(wild["toNumber"], "+919812345679");
    assert!(
        wild["durationSeconds"].is_null() && wild["cost"].is_null(),
        "{wild}"
    );
    let latest = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    for at in [&wild["startedAt"], &wild["customer"]["lastContactedAt"]] {
        assert!(
            at.as_str().unwrap() < latest.as_str(),
            "{at} is in the far future"
        );
    }
}
on_both!(
    hostile_reports_are_cleaned_not_refused,
    hostile_reports_are_cleaned_not_refused
);

/// Another tenant's report with the same execution id and the same number (found through
/// indexes led by those keys) gets its own call and customer, and leaves the first
/// tenant's alone.
async fn another_tenants_execution_id_and_number_stay_apart(app: TestApp) {
    let a = app.create_tenant("Acme", "IN").await;
    let b = app.create_tenant("Beta", "IN").await;
    app.create_agent_for(&a.key, "BOLNA", AGENT).await;
    app.create_agent_for(&b.key, "BOLNA", AGENT).await;
    for (t, status) in [(&a, "completed"), (&b, "initiated")] {
        let body = bolna_report("shared-exec", AGENT, status).to_string();
        let (code, body) = app.webhook("bolna", &t.webhook_token, body).await;
        assert_eq!(code, 200, "{body}");
    }
    let query = "{ calls(first: 5) { totalCount edges { node { status providerExecutionId customer { id phoneNumber } } } } }";
    let mut customers = Vec::new();
    for (t, status) in [(&a, "COMPLETED"), (&b, "INITIATED")] {
        let data = app.ok(&t.key, query, json!({})).await;
        assert_eq!(data["calls"]["totalCount"], 1, "{data}");
        let call = &data["calls"]["edges"][0]["node"];
        assert_eq!(call["status"], status, "{call}");
        assert_eq!(call["providerExecutionId"], "shared-exec");
        assert_eq!(call["customer"]["phoneNumber"], "+919812345678");
        customers.push(call["customer"]["id"].clone());
    }
    assert_ne!(customers[0], customers[1], "one customer across tenants");
}
on_both!(
    another_tenants_execution_id_and_number_stay_apart,
    another_tenants_execution_id_and_number_stay_apart
);

/// Reports arriving together are committed in groups (group commit): every one is still
/// acknowledged only once stored, tenants never mix, and each call's statuses land in the
/// order they were sent.
async fn concurrent_reports_commit_together_in_order(app: TestApp) {
    let a = app.create_tenant("Acme", "IN").await;
    let b = app.create_tenant("Beta", "IN").await;
    app.create_agent_for(&a.key, "BOLNA", AGENT).await;
    app.create_agent_for(&b.key, "BOLNA", AGENT).await;
    // 24 calls per tenant, all at once; each call's five stages one after the other.
    let senders = (0..48).map(|i| {
        let (token, tenant) = if i % 2 == 0 {
            (&a.webhook_token, "a")
        } else {
            (&b.webhook_token, "b")
        };
        let app = &app;
        async move {
            for status in STATUSES {
                let body = bolna_report(&format!("exec-{tenant}-{i}"), AGENT, status).to_string();
                let (code, body) = app.webhook("bolna", token, body).await;
                assert_eq!(code, 200, "{body}");
                assert_eq!(body["status"], "accepted");
            }
        }
    });
    futures_util::future::join_all(senders).await;
    for t in [&a, &b] {
        let data = app
            .ok(
                &t.key,
                "{ calls(first: 50) { totalCount edges { node { status providerExecutionId events { status } } } } }",
                json!({}),
            )
            .await;
        // Acknowledged means committed: no waiting for a worker.
        assert_eq!(data["calls"]["totalCount"], 24, "{data}");
        let prefix = if t.key == a.key { "exec-a-" } else { "exec-b-" };
        for edge in data["calls"]["edges"].as_array().unwrap() {
            let call = &edge["node"];
            assert!(
                call["providerExecutionId"]
                    .as_str()
                    .unwrap()
                    .starts_with(prefix),
                "another tenant's call: {call}"
            );
            assert_eq!(call["status"], "COMPLETED");
            let events: Vec<&str> = call["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["status"].as_str().unwrap())
                .collect();
            assert_eq!(
                events,
                [
                    "INITIATED",
                    "RINGING",
                    "IN_PROGRESS",
                    "CALL_DISCONNECTED",
                    "COMPLETED"
                ],
                "{call}"
            );
        }
    }
}
on_both!(
    concurrent_reports_commit_together_in_order,
    concurrent_reports_commit_together_in_order
);
