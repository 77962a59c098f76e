//! Sync against a fake Bolna holding three agents (two registered here), 600 executions
//! over two 7-day windows, numbers in two formats, executions without a number, a row
//! shown on two pages, a 500 once and a 429 with Retry-After.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{TestApp, code, eventually};
use crate::on_both;

const AGENTS: [&str; 3] = ["agent-one", "agent-two", "agent-unknown"];

/// Three weeks ago at midnight: inside the audit's 31-day window, and whole days so the
/// 7-day sync windows fall on the same boundaries every run.
fn since() -> DateTime<Utc> {
    let day = (Utc::now() - Duration::days(21)).date_naive();
    Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
}

struct Exec {
    id: String,
    agent: &'static str,
    at: DateTime<Utc>,
    person: Option<usize>,
    national: bool,
}

fn dataset() -> Vec<Exec> {
    (0..600)
        .map(|i| {
            let agent = AGENTS[if i < 250 {
                0
            } else if i < 500 {
                1
            } else {
                2
            }];
            Exec {
                id: format!("exec-{i:04}"),
                agent,
                // Spread over 14 days: two windows.
                at: since() + Duration::minutes((i as i64) * 33),
                person: (i % 25 != 7).then_some(i % 150),
                national: i % 2 == 0,
            }
        })
        .collect()
}

fn body(e: &Exec) -> Value {
    let number = e.person.map(|p| {
        if e.national {
            format!("098765{p:05}")
        } else {
            format!("+9198765{p:05}")
        }
    });
    json!({ "id": e.id, "agent_id": e.agent, "status": "completed",
            "created_at": e.at.to_rfc3339(), "updated_at": e.at.to_rfc3339(),
            "transcript": format!("assistant: hello\nuser: call {}", e.id),
            "summary": format!("Summary of {}", e.id),
            "telephony_data": { "to_number": number, "call_type": "outbound" },
            "extracted_data": { "intent": "interested" } })
}

struct FakeBolna {
    data: Vec<Exec>,
    requests: AtomicUsize,
    fail_once: Mutex<HashSet<String>>,
}

impl Respond for FakeBolna {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if std::env::var("TEST_LOG").is_ok() {
            eprintln!("fake bolna: {}", req.url);
        }
        let agent = req
            .url
            .path()
            .split('/')
            .nth(3)
            .unwrap_or_default()
            .to_owned();
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().into_owned().collect();
        let page: usize = q["page_number"].parse().unwrap();
        let size: usize = q["page_size"].parse().unwrap();
        let from: DateTime<Utc> = q["from"].parse().unwrap();
        let to: DateTime<Utc> = q["to"].parse().unwrap();
        let window_two = from >= since() + Duration::days(7);
        // A 429 (with Retry-After) and a 500, each once.
        let key = format!("{agent}/{page}/{window_two}");
        if (agent == "agent-one" && page == 1 && window_two)
            || (agent == "agent-two" && page == 3 && window_two)
        {
            let mut failed = self.fail_once.lock().unwrap();
            if failed.insert(key) {
                return if agent == "agent-one" {
                    ResponseTemplate::new(429).insert_header("Retry-After", "1")
                } else {
                    ResponseTemplate::new(500).set_body_string("boom")
                };
            }
        }
        let mut rows: Vec<&Exec> = self
            .data
            .iter()
            .filter(|e| e.agent == agent && e.at >= from && e.at <= to)
            .collect();
        rows.sort_by_key(|e| std::cmp::Reverse(e.at));
        let start = (page - 1) * size;
        let mut items: Vec<Value> = rows
            .iter()
            .skip(start)
            .take(size)
            .map(|e| body(e))
            .collect();
        // As if a row moved while paging: page 2 shows page 1's last row again.
        if page == 2 {
            items.insert(0, body(rows[start - 1]));
        }
        let has_more = start + size < rows.len();
        ResponseTemplate::new(200).set_body_json(json!({
            "page_number": page, "page_size": size, "total": rows.len(), "has_more": has_more, "data": items }))
    }
}

const TRIGGER: &str = "mutation($i: TriggerSyncInput!) { triggerSync(input: $i) { id status } }";
const RUN: &str = "query($id: ID!) { syncRun(id: $id) { status totalCalls syncedCalls newCustomers updatedCustomers duplicateCalls skippedUnknownAgent skippedNoPhone errors callsByAgent { agentId agentName count } finishedAt } }";

async fn run_to_end(app: &TestApp, key: &str, dry_run: bool) -> Value {
    let until = since() + Duration::days(14);
    let started = app
        .ok(key, TRIGGER, json!({ "i": { "provider": "BOLNA", "since": since().to_rfc3339(), "until": until.to_rfc3339(), "dryRun": dry_run } }))
        .await;
    assert_eq!(started["triggerSync"]["status"], "RUNNING");
    let id = started["triggerSync"]["id"].as_str().unwrap().to_owned();
    eventually(60, || async {
        let r = app.ok(key, RUN, json!({ "id": id })).await["syncRun"].clone();
        (r["status"] != "RUNNING").then_some(r)
    })
    .await
}

/// `GET /executions/{id}` from the dataset.
struct ById(Vec<Exec>);

impl Respond for ById {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let id = req.url.path().rsplit('/').next().unwrap_or_default();
        match self.0.iter().find(|e| e.id == id) {
            Some(e) => ResponseTemplate::new(200).set_body_json(body(e)),
            None => ResponseTemplate::new(404).set_body_json(json!({"detail": "not found"})),
        }
    }
}

/// The fake Bolna, a tenant with its credentials, and the two registered agents' ids.
async fn setup(app: &TestApp) -> (MockServer, crate::common::Tenant, String, String) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/agent/all"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!(AGENTS.iter().map(|a| json!({"id": a, "agent_name": a})).collect::<Vec<_>>()),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/agent/[^/]+/executions$"))
        .respond_with(FakeBolna {
            data: dataset(),
            requests: AtomicUsize::new(0),
            fail_once: Mutex::default(),
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/executions/[^/]+$"))
        .respond_with(ById(dataset()))
        .mount(&server)
        .await;
    let t = app.create_tenant("Acme", "IN").await;
    app.ok(&t.key, "mutation($u: String) { setProviderCredentials(input: {provider: BOLNA, apiKey: \"bn-key\", baseUrl: $u}) }", json!({ "u": server.uri() })).await;
    let one = app.create_agent_for(&t.key, "BOLNA", "agent-one").await;
    let two = app.create_agent_for(&t.key, "BOLNA", "agent-two").await;
    (server, t, one, two)
}

async fn bolna_sync_counts_everything_exactly(app: TestApp) {
    let (_server, t, one, two) = setup(&app).await;

    // What the dataset holds, computed independently.
    let data = dataset();
    let known: Vec<&Exec> = data.iter().filter(|e| e.agent != "agent-unknown").collect();
    let with_phone: Vec<&&Exec> = known.iter().filter(|e| e.person.is_some()).collect();
    let people: HashSet<usize> = with_phone.iter().filter_map(|e| e.person).collect();
    let per_agent = |a: &str| with_phone.iter().filter(|e| e.agent == a).count() as i64;

    // Dry run: the same counts, nothing written.
    let dry = run_to_end(&app, &t.key, true).await;
    // The 429 and the 500 were retried; the unknown agent is listed, not a failure.
    assert_eq!(dry["status"], "SUCCEEDED", "{dry}");
    assert_eq!(dry["totalCalls"], 600, "{dry}");
    assert_eq!(dry["syncedCalls"], with_phone.len(), "{dry}");
    assert_eq!(dry["newCustomers"], people.len(), "{dry}");
    let calls = app
        .ok(
            &t.key,
            "{ calls { totalCount } customers { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        (
            calls["calls"]["totalCount"].as_u64(),
            calls["customers"]["totalCount"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let run = run_to_end(&app, &t.key, false).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["totalCalls"], 600, "{run}");
    assert_eq!(run["skippedUnknownAgent"], 100);
    assert_eq!(run["skippedNoPhone"], known.len() - with_phone.len());
    assert_eq!(run["syncedCalls"], with_phone.len());
    assert_eq!(run["duplicateCalls"], 0);
    assert_eq!(run["newCustomers"], people.len());
    assert_eq!(run["updatedCustomers"], with_phone.len() - people.len());
    let errors: Vec<String> = serde_json::from_value(run["errors"].clone()).unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("agent-unknown"), "{errors:?}");
    let mut by_agent: Vec<(String, String, i64)> = run["callsByAgent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["agentId"].as_str().unwrap().to_owned(),
                c["agentName"].as_str().unwrap().to_owned(),
                c["count"].as_i64().unwrap(),
            )
        })
        .collect();
    by_agent.sort();
    let mut expected = vec![
        (one, "Acme Homes".to_owned(), per_agent("agent-one")),
        (two, "Acme Homes".to_owned(), per_agent("agent-two")),
    ];
    expected.sort();
    assert_eq!(by_agent, expected);
    let stored = app
        .ok(
            &t.key,
            "{ calls { totalCount } customers { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(stored["calls"]["totalCount"], with_phone.len());
    assert_eq!(stored["customers"]["totalCount"], people.len());
    // One customer per person, whichever format the number came in, with their history.
    let c = app
        .ok(&t.key, "{ customerByPhone(phone: \"09876500003\") { phoneNumber interactions { callId summary } } }", json!({}))
        .await;
    let interactions = c["customerByPhone"]["interactions"].as_array().unwrap();
    assert_eq!(c["customerByPhone"]["phoneNumber"], "+919876500003");
    assert_eq!(
        interactions.len(),
        with_phone.iter().filter(|e| e.person == Some(3)).count()
    );

    // Again over the same window: everything is a duplicate, nothing changes.
    let again = run_to_end(&app, &t.key, false).await;
    assert_eq!(again["syncedCalls"], 0, "{again}");
    assert_eq!(again["duplicateCalls"], with_phone.len());
    assert_eq!(again["newCustomers"], 0);
    let stored_again = app
        .ok(
            &t.key,
            "{ calls { totalCount } customers { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(stored_again, stored);
}
on_both!(
    bolna_sync_counts_everything_exactly,
    bolna_sync_counts_everything_exactly,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("ALLOW_PROVIDER_BASE_URL", "true"),
        ("SYNC_INTERVAL_SECONDS", "86400")
    ]
);

async fn sync_edges(app: TestApp) {
    let settings = domain::settings::Settings::from_lookup(|k| app.env.get(k).cloned()).unwrap();
    let worker = workers::runner(app.services.clone(), &settings);
    let t = app.create_tenant("Acme", "IN").await;
    // No credentials: the run ends FAILED with a clear message.
    let r = app
        .ok(&t.key, TRIGGER, json!({ "i": { "provider": "BOLNA" } }))
        .await;
    let id = r["triggerSync"]["id"].as_str().unwrap().to_owned();
    worker.run_pending_jobs().await.unwrap();
    let done = app.ok(&t.key, RUN, json!({ "id": id })).await["syncRun"].clone();
    assert_eq!(done["status"], "FAILED");
    assert!(
        done["errors"][0]
            .as_str()
            .unwrap()
            .contains("no credentials"),
        "{done}"
    );
    // A bad window is refused.
    let body = app
        .gql(Some(&t.key), TRIGGER, json!({ "i": { "provider": "SIMULATOR", "since": "2026-10-02T00:00:00Z", "until": "2026-10-01T00:00:00Z" } }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    // Two triggers at once: one run.
    let (a, b) = tokio::join!(
        app.gql(
            Some(&t.key),
            TRIGGER,
            json!({ "i": { "provider": "SIMULATOR" } })
        ),
        app.gql(
            Some(&t.key),
            TRIGGER,
            json!({ "i": { "provider": "SIMULATOR" } })
        )
    );
    assert_eq!(
        a["data"]["triggerSync"]["id"], b["data"]["triggerSync"]["id"],
        "{a} {b}"
    );
    let runs = app
        .ok(
            &t.key,
            "{ syncRuns { totalCount edges { node { id provider trigger } } } }",
            json!({}),
        )
        .await;
    assert_eq!(runs["syncRuns"]["totalCount"], 2);
    // The scheduler starts a run for every tenant with credentials (here: none running yet).
    app.ok(
        &t.key,
        "mutation { setProviderCredentials(input: {provider: BOLNA, apiKey: \"bn\"}) }",
        json!({}),
    )
    .await;
    assert_eq!(
        domain::sync::schedule_syncs(&app.services).await.unwrap(),
        1
    );
    assert_eq!(
        domain::sync::schedule_syncs(&app.services).await.unwrap(),
        0,
        "one is already running"
    );
    let runs = app
        .ok(
            &t.key,
            "{ syncRuns(first: 1) { edges { node { provider trigger status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        runs["syncRuns"]["edges"][0]["node"],
        json!({"provider": "BOLNA", "trigger": "SCHEDULED", "status": "RUNNING"})
    );
}
on_both!(sync_edges, sync_edges);

const AUDIT: &str = "query($s: DateTime) { syncAudit(provider: BOLNA, since: $s) { providerCallCount storedCallCount missingInStore staleCalls { providerExecutionId } orphanedCustomers { id } } }";

/// The audit finds a deleted call and a stale one; the reconciler repairs both.
async fn audit_and_reconcile(app: TestApp) {
    use sea_orm::ConnectionTrait;
    let (_server, t, _, _) = setup(&app).await;
    run_to_end(&app, &t.key, false).await;
    let expected = dataset()
        .iter()
        .filter(|e| e.agent != "agent-unknown" && e.person.is_some())
        .count();
    let vars = json!({ "s": since().to_rfc3339() });
    let clean = app.ok(&t.key, AUDIT, vars.clone()).await["syncAudit"].clone();
    assert_eq!(clean["providerCallCount"], expected, "{clean}");
    assert_eq!(clean["storedCallCount"], expected);
    assert_eq!(clean["missingInStore"], json!([]));

    app.db
        .execute_unprepared("DELETE FROM calls WHERE provider_execution_id = 'exec-0001'")
        .await
        .unwrap();
    app.db
        .execute_unprepared("UPDATE calls SET status = 'IN_PROGRESS', status_rank = 6, updated_at = '2026-01-01 00:00:00+00:00' WHERE provider_execution_id = 'exec-0002'")
        .await
        .unwrap();
    let audit = app.ok(&t.key, AUDIT, vars.clone()).await["syncAudit"].clone();
    assert_eq!(audit["storedCallCount"], expected - 1, "{audit}");
    assert_eq!(audit["missingInStore"], json!(["exec-0001"]));
    assert_eq!(
        audit["staleCalls"],
        json!([{ "providerExecutionId": "exec-0002" }])
    );

    let tenant_id = uuid::Uuid::parse_str(&t.id).unwrap();
    let repaired = domain::sync::reconcile_one(
        &app.services,
        tenant_id,
        domain::types::Provider::Bolna,
        since(),
    )
    .await
    .unwrap();
    // The worker's stale-call sweep (every 300 s) may refresh the stale call first on a
    // busy machine; either way both calls end up repaired.
    assert!(
        matches!(
            (repaired.missing, repaired.stale, repaired.repaired),
            (1, 1, 2) | (1, 0, 1)
        ),
        "{repaired:?}"
    );
    let after = app.ok(&t.key, AUDIT, vars).await["syncAudit"].clone();
    assert_eq!(
        (after["missingInStore"].clone(), after["staleCalls"].clone()),
        (json!([]), json!([])),
        "{after}"
    );
    assert_eq!(after["storedCallCount"], expected);
    // A provider the tenant has no credentials for is a clear error.
    let body = app
        .gql(
            Some(&t.key),
            "{ syncAudit(provider: TELI) { providerCallCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}
on_both!(
    audit_and_reconcile,
    audit_and_reconcile,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("ALLOW_PROVIDER_BASE_URL", "true"),
        ("SYNC_INTERVAL_SECONDS", "86400"),
        ("RECONCILE_INTERVAL_SECONDS", "604800")
    ]
);

struct TeliCall {
    id: String,
    agent: &'static str,
    at_ms: i64,
    person: Option<usize>,
}

fn teli_dataset() -> Vec<TeliCall> {
    let start = since().timestamp_millis();
    (0..250)
        .map(|i| TeliCall {
            id: format!("call_{i:04}"),
            agent: if i % 5 == 4 {
                "teli-unknown"
            } else {
                "teli-agent"
            },
            // Ten days, newest last.
            at_ms: start + (i as i64) * 3_456_000,
            person: (i % 20 != 3).then_some(i % 60),
        })
        .collect()
}

fn teli_item(c: &TeliCall, detail: bool) -> Value {
    let mut v = json!({ "call_id": c.id, "agent_id": c.agent, "call_status": "ended", "direction": "outbound",
                        "start_timestamp": c.at_ms, "end_timestamp": c.at_ms + 60_000,
                        "call_analyzed_at": "2026-10-01T00:00:00" });
    if detail {
        v["duration_ms"] = json!(60_000);
        v["transcript"] = json!(format!("Agent: hi\nUser: about {}", c.id));
        v["call_analysis"] = json!({ "call_summary": format!("Summary {}", c.id) });
        if let Some(p) = c.person {
            v["from_number"] = json!("+15125550100");
            v["to_number"] = json!(format!("(512) 555-{:04}", 1000 + p));
        }
    }
    v
}

struct FakeTeli(Vec<TeliCall>);

impl Respond for FakeTeli {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let q: std::collections::HashMap<String, String> =
            req.url.query_pairs().into_owned().collect();
        if q.get("organization_id").map(String::as_str) != Some("org-1") {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"error": "organization_id is required"}));
        }
        let path = req.url.path();
        if let Some(id) = path.strip_prefix("/v1/voice/calls/") {
            if id == "call_0010" {
                return ResponseTemplate::new(400)
                    .set_body_json(json!({"error": "call is archived"}));
            }
            return match self.0.iter().find(|c| c.id == id) {
                Some(c) => ResponseTemplate::new(200)
                    .set_body_json(json!({"success": true, "call": teli_item(c, true)})),
                None => ResponseTemplate::new(404),
            };
        }
        assert_eq!(q["is_admin"], "true");
        let limit: usize = q["limit"].parse().unwrap();
        assert!(limit <= 100);
        let from = q["start_date"]
            .parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp_millis();
        let to = q["end_date"]
            .parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp_millis();
        let mut rows: Vec<&TeliCall> = self
            .0
            .iter()
            .filter(|c| c.at_ms >= from && c.at_ms <= to)
            .collect();
        rows.sort_by_key(|c| std::cmp::Reverse(c.at_ms));
        let calls: Vec<Value> = rows
            .iter()
            .take(limit)
            .map(|c| teli_item(c, false))
            .collect();
        ResponseTemplate::new(200).set_body_json(
            json!({"success": true, "count": calls.len(), "calls": calls, "powered_by": "Teli"}),
        )
    }
}

/// Teli: organisation-wide listing paged back in time, details fetched per call, a call
/// that cannot be fetched listed as an error (PARTIAL), progress pushed to subscribers.
async fn teli_sync_and_progress(app: TestApp) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/voice/calls(/[^/]+)?$"))
        .respond_with(FakeTeli(teli_dataset()))
        .mount(&server)
        .await;
    let t = app.create_tenant("Acme", "US").await;
    app.ok(&t.key, "mutation($u: String) { setProviderCredentials(input: {provider: TELI, apiKey: \"tk\", baseUrl: $u, organizationId: \"org-1\"}) }", json!({ "u": server.uri() })).await;
    app.create_agent_for(&t.key, "TELI", "teli-agent").await;
    let mut ws = crate::wsclient::Ws::connect(app.addr, &t.key).await;
    ws.subscribe(
        "p",
        "subscription { syncRunUpdated { status totalCalls } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let until = since() + Duration::days(11);
    let started = app
        .ok(&t.key, TRIGGER, json!({ "i": { "provider": "TELI", "since": since().to_rfc3339(), "until": until.to_rfc3339() } }))
        .await;
    let id = started["triggerSync"]["id"].as_str().unwrap().to_owned();
    let run = eventually(60, || async {
        let r = app.ok(&t.key, RUN, json!({ "id": id })).await["syncRun"].clone();
        (r["status"] != "RUNNING").then_some(r)
    })
    .await;
    let data = teli_dataset();
    let known: Vec<&TeliCall> = data.iter().filter(|c| c.agent == "teli-agent").collect();
    let fetchable: Vec<&&TeliCall> = known.iter().filter(|c| c.id != "call_0010").collect();
    let with_phone = fetchable.iter().filter(|c| c.person.is_some()).count();
    assert_eq!(run["status"], "PARTIAL", "{run}");
    assert_eq!(run["totalCalls"], 250, "{run}");
    assert_eq!(run["skippedUnknownAgent"], 50);
    assert_eq!(run["skippedNoPhone"], fetchable.len() - with_phone);
    assert_eq!(run["syncedCalls"], with_phone);
    let errors = run["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("call_0010")
                && e.as_str().unwrap().contains("archived")),
        "{errors:?}"
    );
    let stored = app.ok(&t.key, "{ calls { totalCount } }", json!({})).await;
    assert_eq!(
        stored["calls"]["totalCount"], with_phone,
        "what was stored is kept"
    );

    // Progress arrived over the subscription, ending with the final status.
    let mut last = Value::Null;
    while let crate::wsclient::Next::Msg(m) = ws.next(2).await {
        last = m["payload"]["data"]["syncRunUpdated"].clone();
        if last["status"] != "RUNNING" {
            break;
        }
    }
    assert_eq!(last, json!({ "status": "PARTIAL", "totalCalls": 250 }));
}
on_both!(
    teli_sync_and_progress,
    teli_sync_and_progress,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("ALLOW_PROVIDER_BASE_URL", "true"),
        ("SYNC_INTERVAL_SECONDS", "86400")
    ]
);

/// Two API processes (replicas) on one Bolna account count its requests in the same Redis
/// windows: at 21 a minute each 3 s window grants one request, so three requests from the
/// two take at least two window changes. Kept per process, they would all go at once.
async fn replicas_share_a_bolna_budget(app: TestApp) {
    if !app.env.contains_key("REDIS_URL") {
        eprintln!("skipped: TEST_REDIS_URL is not set");
        return;
    }
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/executions/e1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "e1", "agent_id": "agent-one", "status": "completed",
            "created_at": "2026-11-20T05:00:03Z",
            "telephony_data": { "to_number": "+919812345678" }
        })))
        .expect(3)
        .mount(&server)
        .await;
    let t = app.create_tenant("Acme", "IN").await;
    app.ok(&t.key, "mutation($u: String) { setProviderCredentials(input: {provider: BOLNA, apiKey: \"bn-key\", baseUrl: $u}) }", json!({ "u": server.uri() })).await;
    let other = app.sibling(&[]).await;
    let tenant: uuid::Uuid = t.id.parse().unwrap();
    let bolna = domain::types::Provider::Bolna;
    let a = app
        .services
        .providers()
        .for_tenant(tenant, bolna)
        .await
        .unwrap();
    let b = other
        .services
        .providers()
        .for_tenant(tenant, bolna)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let (r1, r2, r3) = tokio::join!(
        a.fetch_execution("e1"),
        a.fetch_execution("e1"),
        b.fetch_execution("e1")
    );
    for r in [r1, r2, r3] {
        assert_eq!(r.unwrap().execution_id, "e1");
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
on_both!(
    replicas_share_a_bolna_budget,
    replicas_share_a_bolna_budget,
    [
        ("BOLNA_REQUESTS_PER_MINUTE", "21"),
        ("ALLOW_PROVIDER_BASE_URL", "true")
    ]
);

/// Windows from far away are refused before anything is walked; dates at the edge of
/// chrono's range answer BAD_USER_INPUT instead of panicking; windows ending in the
/// future are refused.
async fn windows_and_dates_are_bounded(app: TestApp) {
    let (_server, t, _, _) = setup(&app).await;
    for since in [
        (Utc::now() - Duration::days(365 * 40)).to_rfc3339(),
        "1000-01-01T00:00:00Z".to_owned(),
        (Utc::now() - Duration::days(32)).to_rfc3339(),
    ] {
        let started = std::time::Instant::now();
        let body = app.gql(Some(&t.key), AUDIT, json!({ "s": since })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{since}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "since");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
    for (since, until, field) in [
        (None, Some("-262143-01-01T00:00:00Z"), "until"),
        (Some("-262143-01-01T00:00:00Z"), None, "since"),
        (Some("1999-12-31T00:00:00Z"), None, "since"),
        (None, Some("+262142-12-31T23:59:59Z"), "until"),
    ] {
        let body = app
            .gql(
                Some(&t.key),
                TRIGGER,
                json!({ "i": { "provider": "BOLNA", "since": since, "until": until } }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{since:?} {until:?}: {body}");
        if body["errors"][0]["extensions"]["field"].is_string() {
            assert_eq!(body["errors"][0]["extensions"]["field"], field);
        }
    }
    let ahead = (Utc::now() + Duration::minutes(30)).to_rfc3339();
    let body = app
        .gql(
            Some(&t.key),
            TRIGGER,
            json!({ "i": { "provider": "BOLNA", "until": ahead } }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "until", "{body}");
    let body = app
        .gql(
            Some(&t.key),
            "query($s: DateTime) { calls(filter: {since: $s}) { totalCount } }",
            json!({ "s": "0001-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // The server is still up and well.
    app.ok(&t.key, "{ me { id } }", json!({})).await;
}
on_both!(
    windows_and_dates_are_bounded,
    windows_and_dates_are_bounded,
    [("ALLOW_PROVIDER_BASE_URL", "true")]
);

/// One tenant whose scheduled sync cannot start (a cursor far in the future, a broken
/// tenant row) does not stop the others from getting theirs.
async fn one_failing_tenant_does_not_stop_the_schedule(app: TestApp) {
    use sea_orm::ConnectionTrait;
    let (server, good, _, _) = setup(&app).await;
    let broken = app.create_tenant("Broken", "US").await;
    app.ok(&broken.key, "mutation($u: String) { setProviderCredentials(input: {provider: BOLNA, apiKey: \"k\", baseUrl: $u}) }", json!({ "u": server.uri() })).await;
    let future = app.create_tenant("Future", "US").await;
    app.ok(&future.key, "mutation($u: String) { setProviderCredentials(input: {provider: BOLNA, apiKey: \"k\", baseUrl: $u}) }", json!({ "u": server.uri() })).await;
    let backend = app.db.get_database_backend();
    let p = |n| domain::db::param(backend, n);
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE tenants SET default_region = 'XX' WHERE id = {}",
                p(1)
            ),
            [uuid::Uuid::parse_str(&broken.id).unwrap().into()],
        ))
        .await
        .unwrap();
    // A cursor a year ahead, as an older build could leave it.
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            format!("INSERT INTO sync_cursors (tenant_id, provider, synced_until, updated_at) VALUES ({}, 'BOLNA', {}, {})", p(1), p(2), p(3)),
            [
                uuid::Uuid::parse_str(&future.id).unwrap().into(),
                (Utc::now() + Duration::days(365)).into(),
                Utc::now().into(),
            ],
        ))
        .await
        .unwrap();
    let started = domain::sync::schedule_syncs(&app.services).await.unwrap();
    assert_eq!(
        started, 2,
        "the good tenant and the one with a future cursor"
    );
    for key in [&good.key, &future.key] {
        let runs = app
            .ok(
                key,
                "{ syncRuns { totalCount edges { node { status until } } } }",
                json!({}),
            )
            .await;
        assert_eq!(runs["syncRuns"]["totalCount"], 1, "{runs}");
        let until: DateTime<Utc> = runs["syncRuns"]["edges"][0]["node"]["until"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(until <= Utc::now());
    }
}
on_both!(
    one_failing_tenant_does_not_stop_the_schedule,
    one_failing_tenant_does_not_stop_the_schedule,
    [("ALLOW_PROVIDER_BASE_URL", "true")]
);
