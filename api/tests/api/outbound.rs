//! Outbound webhooks end to end: a real receiver on loopback that checks every signature
//! with its own implementation (RustCrypto's HMAC, not the server's ring), answers as
//! scripted (500s, 200, 410, slow), and records what arrived in order.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{TestApp, code, eventually};
use crate::on_both;

/// Verifies a `webhook-signature` header the Standard Webhooks way: any of its
/// space-separated `v1,` signatures matching HMAC-SHA256 of `id.timestamp.body`.
fn verify(secret: &str, id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| B64.decode(k).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|s| s == expected)
}

#[test]
fn the_receivers_verifier_matches_the_specification_example() {
    assert!(verify(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        "1649367553",
        br#"{"email":"test@example.com","username":"test_user"}"#,
        "v1,bm9ldHUjKzFob2VudXRob2VodWUzMjRvdWVvdW9ldQo= v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ));
}

#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub signature: String,
    pub body: Value,
    pub answered: u16,
    /// Whether the signature verified with one of the secrets the receiver holds.
    pub valid: bool,
}

#[derive(Default)]
struct State {
    secrets: Vec<String>,
    script: VecDeque<u16>,
    default: u16,
    retry_after: Option<String>,
    delay: Duration,
    /// Answer body instead of the default text.
    body: Option<Vec<u8>>,
    got: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(State {
            default: 200,
            ..State::default()
        }));
        let s = state.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { receive(s, headers, body).await }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{}/hook", addr.port()),
            state,
        }
    }

    pub fn secrets(&self, secrets: &[&str]) {
        self.state.lock().unwrap().secrets = secrets.iter().map(|s| s.to_string()).collect();
    }
    pub fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script = statuses.iter().copied().collect();
    }
    pub fn answer(&self, status: u16) {
        self.state.lock().unwrap().default = status;
    }
    pub fn retry_after(&self, v: Option<&str>) {
        self.state.lock().unwrap().retry_after = v.map(str::to_owned);
    }
    pub fn body(&self, b: &[u8]) {
        self.state.lock().unwrap().body = Some(b.to_vec());
    }
    pub fn delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }
    pub fn got(&self) -> Vec<Received> {
        self.state.lock().unwrap().got.clone()
    }
    pub fn ok(&self) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }
}

async fn receive(
    state: Arc<Mutex<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    let delay = state.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut s = state.lock().unwrap();
    let valid = fresh && s.secrets.iter().any(|k| verify(k, &id, &ts, &body, &sig));
    let answered = if valid {
        s.script.pop_front().unwrap_or(s.default)
    } else {
        401
    };
    let mut out = HeaderMap::new();
    if let Some(ra) = &s.retry_after
        && !(200..300).contains(&answered)
    {
        out.insert("retry-after", ra.parse().unwrap());
    }
    s.got.push(Received {
        id,
        signature: sig,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
        valid,
    });
    let text = s
        .body
        .clone()
        .unwrap_or_else(|| format!("answered {answered}").into_bytes());
    (StatusCode::from_u16(answered).unwrap(), out, text)
}

const CREATE: &str = "mutation($u: String!, $e: [String!]) { createWebhookEndpoint(input: {url: $u, events: $e, description: \"CRM\"}) { secret endpoint { id url events enabled } } }";

async fn create_endpoint(app: &TestApp, key: &str, url: &str, events: &[&str]) -> (String, String) {
    let d = app.ok(key, CREATE, json!({ "u": url, "e": events })).await;
    let p = &d["createWebhookEndpoint"];
    (
        p["endpoint"]["id"].as_str().unwrap().to_owned(),
        p["secret"].as_str().unwrap().to_owned(),
    )
}

const DELIVERIES: &str = "query($e: ID!, $s: WebhookDeliveryStatus) { webhookDeliveries(endpointId: $e, first: 100, status: $s) { totalCount edges { node { id eventId eventType subjectId status trigger attemptCount nextAttemptAt lastStatusCode payload attempts { attemptedAt statusCode latencyMs responseExcerpt error } } } } }";

async fn deliveries(app: &TestApp, key: &str, endpoint: &str) -> Vec<Value> {
    let d = app.ok(key, DELIVERIES, json!({ "e": endpoint })).await;
    d["webhookDeliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn endpoint_state(app: &TestApp, key: &str, id: &str) -> Value {
    app.ok(
        key,
        "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason failingSince previousSecretExpiresAt } }",
        json!({ "id": id }),
    )
    .await["webhookEndpoint"]
        .clone()
}

async fn update_customer(app: &TestApp, key: &str, id: &str, input: Value) {
    app.ok(
        key,
        "mutation($id: ID!, $i: UpdateCustomerInput!) { updateCustomer(id: $id, input: $i) { id } }",
        json!({ "id": id, "i": input }),
    )
    .await;
}

/// Retries after 500s, in order per customer, 410 disabling the endpoint, enabling it
/// again, redelivery, a test message and a secret rotation.
async fn delivers_signed_events_with_retries_in_order(app: TestApp) {
    let rx = Receiver::start().await;
    let t = app.create_tenant("Acme", "IN").await;
    let (ep, secret) =
        create_endpoint(&app, &t.key, &rx.url, &["customer.*", "webhook.test"]).await;
    assert!(secret.starts_with("whsec_"));
    rx.secrets(&[&secret]);
    rx.script(&[500, 500, 500]);

    let cid = app.create_customer(&t.key, "+919812345678", "Priya").await;
    update_customer(&app, &t.key, &cid, json!({ "name": "Priya S" })).await;
    update_customer(&app, &t.key, &cid, json!({ "status": "INTERESTED" })).await;

    eventually(30, || async { (rx.ok().len() >= 3).then_some(()) }).await;
    let got = rx.got();
    assert!(
        got.iter().all(|r| r.valid),
        "every signature verifies: {got:?}"
    );
    // The created event failed three times and was retried before either update was sent.
    assert_eq!(got.len(), 6, "{got:?}");
    let first_id = got[0].id.clone();
    for r in &got[..4] {
        assert_eq!(r.id, first_id, "a retry keeps its webhook-id");
        assert_eq!(r.body["type"], "customer.created");
    }
    assert_eq!(
        got.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![500, 500, 500, 200, 200, 200]
    );
    assert_eq!(got[4].body["type"], "customer.updated");
    assert_eq!(got[4].body["data"]["customer"]["name"], "Priya S");
    assert_eq!(got[5].body["data"]["customer"]["status"], "INTERESTED");
    assert_eq!(got[0].body["data"]["customer"]["id"], cid.as_str());
    assert!(got[0].body["timestamp"].is_string());
    assert_ne!(got[4].id, got[5].id, "each event has its own id");

    // The log: every attempt with its status, latency and the answer's start.
    let log = deliveries(&app, &t.key, &ep).await;
    assert_eq!(log.len(), 3);
    let created = log
        .iter()
        .find(|d| d["eventType"] == "customer.created")
        .unwrap();
    assert_eq!(created["status"], "SUCCEEDED");
    assert_eq!(created["attemptCount"], 4);
    assert_eq!(created["eventId"], first_id.as_str());
    assert_eq!(created["subjectId"], cid.as_str());
    let codes: Vec<i64> = created["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![200, 500, 500, 500], "newest first");
    assert_eq!(created["attempts"][1]["responseExcerpt"], "answered 500");
    assert_eq!(created["attempts"][1]["error"], "HTTP 500");
    assert!(created["attempts"][0]["latencyMs"].as_i64().unwrap() >= 0);
    let payload: Value = serde_json::from_str(created["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["type"], "customer.created");

    // 410 Gone disables the endpoint; its delivery waits, events meanwhile are not queued.
    rx.script(&[410]);
    update_customer(&app, &t.key, &cid, json!({ "name": "Priya Sharma" })).await;
    let state = eventually(20, || async {
        let s = endpoint_state(&app, &t.key, &ep).await;
        (s["enabled"] == false).then_some(s)
    })
    .await;
    assert!(
        state["disabledReason"].as_str().unwrap().contains("410"),
        "{state}"
    );
    update_customer(&app, &t.key, &cid, json!({ "notes": "while disabled" })).await;
    let log = deliveries(&app, &t.key, &ep).await;
    assert_eq!(
        log.len(),
        4,
        "no delivery is queued for a disabled endpoint"
    );
    let gone = log
        .iter()
        .find(|d| d["lastStatusCode"] == 410)
        .unwrap()
        .clone();
    assert_eq!(gone["status"], "PENDING");
    assert!(
        gone["nextAttemptAt"].is_null(),
        "nothing is due while disabled: {gone}"
    );
    let body = app
        .gql(
            Some(&t.key),
            "mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id } }",
            json!({ "e": ep }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");

    app.ok(
        &t.key,
        "mutation($id: ID!) { enableWebhookEndpoint(id: $id) { enabled } }",
        json!({ "id": ep }),
    )
    .await;
    eventually(20, || async {
        rx.ok()
            .iter()
            .any(|r| r.body["data"]["customer"]["name"] == "Priya Sharma")
            .then_some(())
    })
    .await;

    // A test message and a redelivery (same event id, a new delivery).
    let d = app
        .ok(
            &t.key,
            "mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id trigger status } }",
            json!({ "e": ep }),
        )
        .await;
    assert_eq!(d["sendTestWebhook"]["trigger"], "TEST");
    let d = app
        .ok(
            &t.key,
            "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { id eventId trigger } }",
            json!({ "d": created["id"] }),
        )
        .await;
    assert_eq!(d["redeliverWebhook"]["trigger"], "MANUAL");
    assert_eq!(d["redeliverWebhook"]["eventId"], first_id.as_str());
    eventually(20, || async {
        let ok = rx.ok();
        (ok.iter().any(|r| r.body["type"] == "webhook.test")
            && ok.iter().filter(|r| r.id == first_id).count() == 2)
            .then_some(())
    })
    .await;

    // Rotation: both secrets sign for a while; a receiver holding either verifies.
    let r = app
        .ok(
            &t.key,
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { previousSecretExpiresAt } } }",
            json!({ "id": ep }),
        )
        .await;
    let new_secret = r["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    assert!(r["rotateWebhookSecret"]["endpoint"]["previousSecretExpiresAt"].is_string());
    rx.secrets(&[&new_secret]);
    update_customer(&app, &t.key, &cid, json!({ "name": "Priya R" })).await;
    let last = eventually(20, || async {
        rx.ok()
            .into_iter()
            .find(|r| r.body["data"]["customer"]["name"] == "Priya R")
    })
    .await;
    assert!(last.valid);
    assert_eq!(last.signature.split(' ').count(), 2, "{}", last.signature);

    // Secrets are encrypted at rest and listed nowhere.
    use sea_orm::EntityTrait;
    let row = entity::webhook_endpoint::Entity::find_by_id(uuid::Uuid::parse_str(&ep).unwrap())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let plain = new_secret.trim_start_matches("whsec_");
    assert!(!row.secret_enc.contains(plain) && !row.secret_enc.contains(&new_secret));
    let listed = app
        .ok(
            &t.key,
            "{ webhookEndpoints { id url events enabled } }",
            json!({}),
        )
        .await;
    assert!(!listed.to_string().contains(plain));
}
on_both!(
    delivers_signed_events,
    delivers_signed_events_with_retries_in_order,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1"),
        (
            "WEBHOOK_RETRY_SCHEDULE",
            "0.05,0.05,0.05,0.05,0.05,0.05,0.05"
        ),
    ]
);

/// A call's lifecycle from provider reports: every transition in order, then completed.
async fn call_events_follow_the_lifecycle(app: TestApp) {
    let rx = Receiver::start().await;
    let t = app.create_tenant("Acme", "IN").await;
    let (_, secret) = create_endpoint(&app, &t.key, &rx.url, &["call.*"]).await;
    rx.secrets(&[&secret]);
    app.create_agent_for(&t.key, "BOLNA", "bolna-agent-1").await;
    for status in ["queued", "ringing", "in-progress", "completed"] {
        let report = crate::webhooks::bolna_report("exec-1", "bolna-agent-1", status);
        let (code, body) = app
            .webhook("bolna", &t.webhook_token, report.to_string())
            .await;
        assert!(code < 300, "{code} {body}");
    }
    let got = eventually(30, || async {
        let ok = rx.ok();
        (ok.iter().any(|r| r.body["type"] == "call.completed")
            && ok
                .iter()
                .filter(|r| r.body["type"] == "call.status_changed")
                .count()
                >= 4)
            .then_some(ok)
    })
    .await;
    assert!(got.iter().all(|r| r.valid));
    let changes: Vec<(Value, Value)> = got
        .iter()
        .filter(|r| r.body["type"] == "call.status_changed")
        .map(|r| {
            (
                r.body["data"]["previousStatus"].clone(),
                r.body["data"]["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (Value::Null, json!("QUEUED")),
            (json!("QUEUED"), json!("RINGING")),
            (json!("RINGING"), json!("IN_PROGRESS")),
            (json!("IN_PROGRESS"), json!("COMPLETED")),
        ]
    );
    let completed = got
        .iter()
        .position(|r| r.body["type"] == "call.completed")
        .unwrap();
    let last_change = got
        .iter()
        .rposition(|r| r.body["type"] == "call.status_changed")
        .unwrap();
    assert!(
        completed > last_change,
        "call.completed follows the transition"
    );
    let call = &got[completed].body["data"]["call"];
    assert_eq!(call["status"], "COMPLETED");
    assert!(call["durationSeconds"].as_f64().unwrap() > 70.0);
    assert!(call.get("transcript").is_none(), "transcripts are not sent");
    // The analysis that follows arrives too, after the call's own events.
    let analyzed = eventually(30, || async {
        rx.ok()
            .into_iter()
            .find(|r| r.body["type"] == "call.analyzed")
    })
    .await;
    assert_eq!(analyzed.body["data"]["analysis"]["callId"], call["id"]);
}
on_both!(
    call_events,
    call_events_follow_the_lifecycle,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1"),
    ]
);

/// One tenant's endpoint that never answers in time delays no other tenant's deliveries;
/// `Retry-After` is honoured; an endpoint failing for too long is disabled and another
/// endpoint hears of it.
async fn slow_and_failing_endpoints(app: TestApp) {
    let slow = Receiver::start().await;
    slow.delay(Duration::from_secs(5));
    let a = app.create_tenant("Slow", "IN").await;
    let (_, sa) = create_endpoint(&app, &a.key, &slow.url, &["customer.created"]).await;
    slow.secrets(&[&sa]);
    for i in 0..40 {
        app.create_customer(&a.key, &format!("+9198100{i:05}"), "Lead")
            .await;
    }

    let fast = Receiver::start().await;
    let b = app.create_tenant("Fast", "IN").await;
    let (_, sb) = create_endpoint(&app, &b.key, &fast.url, &["customer.created"]).await;
    fast.secrets(&[&sb]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    app.create_customer(&b.key, "+919876543210", "Other").await;
    eventually(10, || async { (!fast.ok().is_empty()).then_some(()) }).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(2500),
        "another tenant's delivery waited {waited:?} behind a slow endpoint"
    );

    // Retry-After longer than the schedule's wait is honoured.
    let busy = Receiver::start().await;
    busy.script(&[503]);
    busy.retry_after(Some("2"));
    let c = app.create_tenant("Busy", "IN").await;
    let (ep, sc) = create_endpoint(&app, &c.key, &busy.url, &["customer.created"]).await;
    busy.secrets(&[&sc]);
    app.create_customer(&c.key, "+919812300000", "Lead").await;
    let log = eventually(20, || async {
        let log = deliveries(&app, &c.key, &ep).await;
        (log.first().is_some_and(|d| d["status"] == "SUCCEEDED")).then_some(log)
    })
    .await;
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["attemptedAt"].as_str().unwrap()).unwrap()
    };
    let gap = (at(0) - at(1)).num_milliseconds();
    assert!(gap >= 1900, "Retry-After: 2 was not honoured ({gap} ms)");

    // Failing for longer than WEBHOOK_DISABLE_AFTER_SECONDS: disabled, and said so.
    let down = Receiver::start().await;
    down.answer(500);
    let watcher = Receiver::start().await;
    let d = app.create_tenant("Down", "IN").await;
    let (dead, sd) = create_endpoint(&app, &d.key, &down.url, &["customer.created"]).await;
    down.secrets(&[&sd]);
    let (_, sw) = create_endpoint(&app, &d.key, &watcher.url, &["webhook_endpoint.disabled"]).await;
    watcher.secrets(&[&sw]);
    app.create_customer(&d.key, "+919812311111", "Lead").await;
    let notice = eventually(30, || async {
        watcher
            .ok()
            .into_iter()
            .find(|r| r.body["type"] == "webhook_endpoint.disabled")
    })
    .await;
    assert_eq!(notice.body["data"]["endpoint"]["id"], dead.as_str());
    let state = endpoint_state(&app, &d.key, &dead).await;
    assert_eq!(state["enabled"], false);
    assert!(
        state["disabledReason"]
            .as_str()
            .unwrap()
            .contains("failed since")
    );
}
on_both!(
    slow_and_failing,
    slow_and_failing_endpoints,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1"),
        ("WEBHOOK_TIMEOUT_MS", "1000"),
        (
            "WEBHOOK_RETRY_SCHEDULE",
            "0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3"
        ),
        ("WEBHOOK_DISABLE_AFTER_SECONDS", "1"),
    ]
);

/// What hostile or careless callers send is refused with a clear code, and one tenant
/// never reaches another's endpoints or deliveries.
async fn endpoints_refuse_hostile_input(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    let other = app.create_tenant("Other", "IN").await;
    let create = |url: String, events: Value, description: Value| {
        let app = &app;
        let key = t.key.clone();
        async move {
            app.gql(
                Some(&key),
                "mutation($u: String!, $e: [String!], $d: String) { createWebhookEndpoint(input: {url: $u, events: $e, description: $d}) { secret } }",
                json!({ "u": url, "e": events, "d": description }),
            )
            .await
        }
    };
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://localhost/x",
        "file:///etc/passwd",
        "gopher://example.com/",
        "not a url",
        "",
    ] {
        let body = create(url.to_owned(), json!([]), Value::Null).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{url}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "url", "{body}");
    }
    let long = format!("https://example.com/{}", "a".repeat(2100));
    assert_eq!(
        code(&create(long, json!([]), Value::Null).await),
        "BAD_USER_INPUT"
    );
    let body = create(
        "https://example.com/h".into(),
        json!(["call.exploded"]),
        Value::Null,
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "events");
    let many: Vec<String> = (0..51).map(|_| "call.*".to_owned()).collect();
    assert_eq!(
        code(&create("https://example.com/h".into(), json!(many), Value::Null).await),
        "BAD_USER_INPUT"
    );
    let body = create(
        "https://example.com/h".into(),
        json!([]),
        json!("d".repeat(501)),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "description",
        "{body}"
    );

    // A name that does not resolve here is accepted (checked again when sending).
    let ok = create(
        "https://hooks.example.com/switchboard".into(),
        json!(["*"]),
        json!("ok"),
    )
    .await;
    assert!(
        ok["data"]["createWebhookEndpoint"]["secret"].is_string(),
        "{ok}"
    );
    let listed = app
        .ok(&t.key, "{ webhookEndpoints { id } }", json!({}))
        .await;
    let id = listed["webhookEndpoints"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 1..20 {
        let b = create("https://example.com/h".into(), json!([]), Value::Null).await;
        assert!(b.get("errors").is_none(), "{b}");
    }
    let body = create("https://example.com/h".into(), json!([]), Value::Null).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "the 21st endpoint: {body}");

    // Another tenant sees nothing of it and cannot touch it.
    for q in [
        "query($id: ID!) { webhookEndpoint(id: $id) { id } }",
        "query($id: ID!) { webhookDeliveries(endpointId: $id) { totalCount } }",
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
        "mutation($id: ID!) { disableWebhookEndpoint(id: $id) { id } }",
        "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {url: \"https://evil.example.com\"}) { id } }",
        "mutation($id: ID!) { sendTestWebhook(endpointId: $id) { id } }",
        "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }",
    ] {
        let body = app.gql(Some(&other.key), q, json!({ "id": id })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{q}: {body}");
    }
    let gone = app
        .ok(
            &other.key,
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(gone["deleteWebhookEndpoint"], false);
    let listed = app
        .ok(&other.key, "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(listed["webhookEndpoints"], json!([]));

    // Lower roles may not manage endpoints.
    let member = app
        .ok(
            &t.key,
            "mutation { createApiKey(input: {name: \"m\", role: MEMBER}) { apiKey } }",
            json!({}),
        )
        .await["createApiKey"]["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();
    for q in [
        "{ webhookEndpoints { id } }",
        "mutation { createWebhookEndpoint(input: {url: \"https://example.com/h\"}) { secret } }",
    ] {
        let body = app.gql(Some(&member), q, json!({})).await;
        assert_eq!(code(&body), "FORBIDDEN", "{q}: {body}");
    }
    let body = app
        .gql(None, "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");

    // Updates are validated like creation; deletion is for real.
    let body = app
        .gql(
            Some(&t.key),
            "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {url: \"http://192.168.1.1/\"}) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let d = app
        .ok(
            &t.key,
            "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: {events: [\"call.completed\", \"customer.*\"]}) { events } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        d["updateWebhookEndpoint"]["events"],
        json!(["call.completed", "customer.*"])
    );
    let d = app
        .ok(
            &t.key,
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(d["deleteWebhookEndpoint"], true);
    let body = app
        .gql(
            Some(&t.key),
            "query($id: ID!) { webhookEndpoint(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
}
on_both!(hostile_input, endpoints_refuse_hostile_input);

/// A deployment that allowlists no private host refuses a name that resolves to one when
/// sending, too (the guard checks every connection, not only the URL as typed).
async fn private_addresses_are_refused_when_sending(app: TestApp) {
    let rx = Receiver::start().await;
    let t = app.create_tenant("Acme", "IN").await;
    // Created with a public name; the URL then points at loopback (as after a deployment
    // narrowed its allowlist, or a name that moved).
    let d = app
        .ok(
            &t.key,
            CREATE,
            json!({ "u": "https://hooks.example.com/x", "e": ["customer.created"] }),
        )
        .await;
    let id = d["createWebhookEndpoint"]["endpoint"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    use sea_orm::ConnectionTrait;
    let url = rx.url.replace("127.0.0.1", "localhost");
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            app.db.get_database_backend(),
            match app.db.get_database_backend() {
                sea_orm::DatabaseBackend::Postgres => {
                    "UPDATE webhook_endpoints SET url = $1 WHERE id = $2"
                }
                _ => "UPDATE webhook_endpoints SET url = ? WHERE id = ?",
            },
            [url.into(), uuid::Uuid::parse_str(&id).unwrap().into()],
        ))
        .await
        .unwrap();
    app.create_customer(&t.key, "+919812345678", "Priya").await;
    let log = eventually(20, || async {
        let log = deliveries(&app, &t.key, &id).await;
        log.first()
            .is_some_and(|d| d["attemptCount"].as_i64() >= Some(1))
            .then_some(log)
    })
    .await;
    let err = log[0]["attempts"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(log[0]["attempts"][0]["statusCode"].is_null(), "{log:?}");
    assert!(
        err.contains("private") || err.contains("connect") || err.contains("refused"),
        "{err}"
    );
    assert!(rx.got().is_empty(), "nothing reached the private address");
}
on_both!(
    private_when_sending,
    private_addresses_are_refused_when_sending,
    [("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20"),]
);

/// Campaign and sync events come from their own writes.
async fn campaign_and_sync_events(app: TestApp) {
    let rx = Receiver::start().await;
    let t = app.create_tenant("Acme", "IN").await;
    let (_, secret) = create_endpoint(&app, &t.key, &rx.url, &["campaign.*", "sync_run.*"]).await;
    rx.secrets(&[&secret]);
    let agent = app.create_agent(&t.key, "Sim").await;
    let d = app
        .ok(
            &t.key,
            "mutation($a: ID!, $csv: String!) { createCampaign(input: {name: \"Spring\", agentId: $a, csv: $csv}) { campaign { id } } }",
            json!({ "a": agent, "csv": "phone,name\n+919812345601,A\n" }),
        )
        .await;
    let cid = d["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for m in [
        "startCampaign",
        "pauseCampaign",
        "resumeCampaign",
        "cancelCampaign",
    ] {
        let body = app
            .gql(
                Some(&t.key),
                &format!("mutation($id: ID!) {{ {m}(id: $id) {{ id }} }}"),
                json!({ "id": cid }),
            )
            .await;
        assert!(body.get("errors").is_none(), "{m}: {body}");
    }
    app.ok(
        &t.key,
        "mutation { triggerSync(input: {provider: SIMULATOR}) { id } }",
        json!({}),
    )
    .await;
    let got = eventually(30, || async {
        let ok = rx.ok();
        (ok.iter().any(|r| r.body["type"] == "sync_run.finished")
            && ok
                .iter()
                .filter(|r| {
                    r.body["type"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("campaign.")
                })
                .count()
                >= 4)
            .then_some(ok)
    })
    .await;
    let campaign: Vec<&str> = got
        .iter()
        .filter_map(|r| r.body["type"].as_str())
        .filter(|t| t.starts_with("campaign.") && *t != "campaign.item_finished")
        .collect();
    assert_eq!(
        campaign,
        vec![
            "campaign.started",
            "campaign.paused",
            "campaign.resumed",
            "campaign.canceled"
        ]
    );
    let sync = got
        .iter()
        .find(|r| r.body["type"] == "sync_run.finished")
        .unwrap();
    assert!(sync.body["data"]["syncRun"]["status"].is_string());
}
on_both!(
    campaign_and_sync,
    campaign_and_sync_events,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1"),
    ]
);

/// Finished deliveries, their attempts and events go after the retention period.
async fn old_deliveries_are_pruned(app: TestApp) {
    let rx = Receiver::start().await;
    let t = app.create_tenant("Acme", "IN").await;
    let (ep, secret) = create_endpoint(&app, &t.key, &rx.url, &["customer.created"]).await;
    rx.secrets(&[&secret]);
    app.create_customer(&t.key, "+919812345678", "Priya").await;
    eventually(20, || async { (!rx.ok().is_empty()).then_some(()) }).await;
    eventually(10, || async {
        let log = deliveries(&app, &t.key, &ep).await;
        (log.len() == 1 && log[0]["status"] == "SUCCEEDED").then_some(())
    })
    .await;
    assert_eq!(
        domain::outbound::log::prune(&app.db, 30).await.unwrap(),
        0,
        "nothing old yet"
    );
    use sea_orm::ConnectionTrait;
    for sql in [
        "UPDATE webhook_deliveries SET finished_at = '2020-01-01T00:00:00Z'",
        "UPDATE webhook_attempts SET attempted_at = '2020-01-01T00:00:00Z'",
        "UPDATE webhook_events SET created_at = '2020-01-01T00:00:00Z'",
    ] {
        app.db.execute_unprepared(sql).await.unwrap();
    }
    let n = domain::outbound::log::prune(&app.db, 30).await.unwrap();
    assert_eq!(n, 3, "one attempt, one delivery, one event");
    assert!(deliveries(&app, &t.key, &ep).await.is_empty());
}
on_both!(
    pruning,
    old_deliveries_are_pruned,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1"),
    ]
);

/// An endpoint answering with bytes a text column cannot hold (NUL) is still recorded.
async fn binary_answers_are_recorded(app: TestApp) {
    let rx = Receiver::start().await;
    rx.body(b"\0\x01\xffbinary");
    let t = app.create_tenant("Acme", "IN").await;
    let (ep, secret) = create_endpoint(&app, &t.key, &rx.url, &["customer.created"]).await;
    rx.secrets(&[&secret]);
    app.create_customer(&t.key, "+919812345678", "Priya").await;
    let log = eventually(20, || async {
        let log = deliveries(&app, &t.key, &ep).await;
        log.first()
            .is_some_and(|d| d["status"] == "SUCCEEDED")
            .then_some(log)
    })
    .await;
    let excerpt = log[0]["attempts"][0]["responseExcerpt"].as_str().unwrap();
    assert!(
        excerpt.contains("binary") && !excerpt.contains('\0'),
        "{excerpt:?}"
    );
    assert_eq!(rx.ok().len(), 1, "sent once");
}
on_both!(
    binary_answers,
    binary_answers_are_recorded,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1"),
    ]
);
