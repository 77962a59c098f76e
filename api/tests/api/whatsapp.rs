//! WhatsApp end to end against a fake Cloud API written from Meta's documented formats:
//! connecting (the token proved by listing templates, paged), the verification handshake,
//! signatures (right, wrong, missing), inbound messages from unknown numbers, statuses
//! duplicated and shuffled, a 131047 failure, template status changes, and free-form
//! replies inside and outside the 24-hour window.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{header, method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{TestApp, code};
use domain::testdb::Backend;

pub(crate) const PHONE_ID: &str = "109876543210";
pub(crate) const WABA: &str = "209876543210";
pub(crate) const TOKEN: &str = "EAAG-good-token";
pub(crate) const SECRET: &str = "app-secret-123";
pub(crate) const VERIFY: &str = "verify-me-please";

const CONNECT: &str = "mutation($i: ConnectWhatsAppInput!) { connectWhatsApp(input: $i) { phoneNumberId businessAccountId webhookUrl brokenReason templatesSyncedAt } }";
const SEND: &str = "mutation($c: ID!, $t: String!) { sendWhatsAppMessage(customerId: $c, text: $t) { id wamid direction kind text status at } }";

/// A fake Graph API: two pages of templates for the good token, 401 (code 190) otherwise,
/// and message sends answered with a new `wamid`.
async fn fake_meta() -> MockServer {
    let server = MockServer::start().await;
    let templates = format!("/{WABA}/message_templates");
    Mock::given(method("GET"))
        .and(path(templates.clone()))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                { "id": "111", "name": "callback_reminder", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
                  "components": [ { "type": "BODY", "text": "Hi {{1}}, we call you on {{2}}." } ] },
                { "id": "112", "name": "promo", "language": "en_US", "status": "PENDING", "category": "MARKETING",
                  "components": [ { "type": "BODY", "text": "Sale!" } ] }
            ],
            "paging": { "cursors": { "before": "a", "after": "page2" }, "next": format!("{}{templates}?after=page2", server.uri()) }
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(templates.clone()))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(wiremock::matchers::query_param("after", "page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [ { "id": "113", "name": "callback_reminder", "language": "hi", "status": "REJECTED",
                        "category": "UTILITY", "rejected_reason": "INVALID_FORMAT", "components": [] } ],
            "paging": { "cursors": { "before": "b", "after": "end" } }
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(templates))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": { "message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190, "fbtrace_id": "AbC" }
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{PHONE_ID}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(Accepted(std::sync::atomic::AtomicUsize::new(1)))
        .mount(&server)
        .await;
    server
}

/// Meta's answer to a send: a new `wamid.OUT<n>` each time.
struct Accepted(std::sync::atomic::AtomicUsize);

impl wiremock::Respond for Accepted {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [ { "input": "x", "wa_id": "x" } ],
            "messages": [ { "id": format!("wamid.OUT{n}"), "message_status": "accepted" } ]
        }))
    }
}

pub(crate) fn sign(body: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn post(app: &TestApp, path: &str, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(s) = signature {
        req = req.header("x-hub-signature-256", s);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) fn messages_event(value: Value) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [ { "id": WABA, "changes": [ { "field": "messages", "value": value } ] } ]
    })
    .to_string()
}

fn inbound(from: &str, wamid: &str, text: &str, at: i64) -> String {
    messages_event(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550001234", "phone_number_id": PHONE_ID },
        "contacts": [ { "profile": { "name": "Priya" }, "wa_id": from } ],
        "messages": [ { "from": from, "id": wamid, "timestamp": at.to_string(), "type": "text", "text": { "body": text } } ]
    }))
}

fn status(wamid: &str, status: &str, at: i64) -> Value {
    json!({ "id": wamid, "status": status, "timestamp": at.to_string(), "recipient_id": "919812345678" })
}

async fn whatsapp_end_to_end(app: TestApp, meta: MockServer) {
    let t = app.create_tenant("Chat", "IN").await;
    let input = |token: &str| {
        json!({ "i": { "phoneNumberId": PHONE_ID, "businessAccountId": WABA, "accessToken": token,
                       "appSecret": SECRET, "verifyToken": VERIFY } })
    };
    // A refused token is the caller's mistake, said on the field.
    let bad = app.gql(Some(&t.key), CONNECT, input("expired")).await;
    assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "accessToken");
    let bad = app
        .gql(
            Some(&t.key),
            CONNECT,
            json!({ "i": { "phoneNumberId": "../x", "businessAccountId": WABA, "accessToken": TOKEN, "appSecret": SECRET, "verifyToken": VERIFY } }),
        )
        .await;
    assert_eq!(
        bad["errors"][0]["extensions"]["field"], "phoneNumberId",
        "{bad}"
    );
    let connected = app.ok(&t.key, CONNECT, input(TOKEN)).await;
    let url = connected["connectWhatsApp"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let route = &url[url.find("/webhooks/whatsapp/").unwrap()..];
    // Templates from both pages; only the secrets stay out of reach.
    let templates = app
        .ok(
            &t.key,
            "{ whatsappTemplates { name language status category parameterCount rejectedReason } whatsappConnection { phoneNumberId } }",
            json!({}),
        )
        .await;
    let list = templates["whatsappTemplates"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{templates}");
    let approved = list
        .iter()
        .find(|t| t["language"] == "en_US" && t["name"] == "callback_reminder")
        .unwrap();
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(approved["parameterCount"], 2);
    assert!(list.iter().any(|t| t["rejectedReason"] == "INVALID_FORMAT"));

    // The handshake: the right verify token gets the challenge back as plain text.
    let shake = |token: &str| {
        app.client.get(app.url(&format!(
            "{route}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        )))
    };
    let ok = shake(VERIFY).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(shake("wrong").send().await.unwrap().status().as_u16(), 403);
    let unknown =
        app.client
            .get(app.url(
                "/webhooks/whatsapp/nope?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1",
            ))
            .send()
            .await
            .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // Signatures: checked over the raw body before anything is read.
    let now = chrono::Utc::now().timestamp();
    let body = inbound("919812345678", "wamid.IN1", "Yes, call me tomorrow", now);
    for sig in [
        None,
        Some(sign(&body, "not-the-secret")),
        Some("sha256=00".into()),
    ] {
        let (status, _) = post(&app, route, &body, sig).await;
        assert_eq!(status, 401);
    }
    let customers = "{ customers(first: 10) { totalCount edges { node { id phoneNumber name whatsappWindowEndsAt } } } }";
    let history_of = "query($id: ID!) { customer(id: $id) {
        interactions { channel callId at summary message { wamid direction text status } } } }";
    assert_eq!(
        app.ok(&t.key, customers, json!({})).await["customers"]["totalCount"],
        0
    );
    // Dashboards hear of it.
    let mut ws = crate::wsclient::Ws::connect(app.addr, &t.key).await;
    ws.subscribe(
        "m",
        "subscription { whatsappMessages { wamid direction text status customerId } }",
        json!({}),
    )
    .await;
    // The protocol does not acknowledge a subscription: give the server a moment to start
    // it before the message it should hear of (as the other subscription tests do).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // An unknown number becomes a customer, with the message in its history; a repeat is
    // stored once.
    for _ in 0..2 {
        let (status, r) = post(&app, route, &body, Some(sign(&body, SECRET))).await;
        assert_eq!(status, 200, "{r}");
    }
    let pushed = ws.data(10).await;
    assert_eq!(pushed["whatsappMessages"]["wamid"], "wamid.IN1", "{pushed}");
    assert_eq!(pushed["whatsappMessages"]["text"], "Yes, call me tomorrow");
    assert!(pushed["whatsappMessages"]["customerId"].is_string());
    let c = app.ok(&t.key, customers, json!({})).await;
    assert_eq!(c["customers"]["totalCount"], 1, "{c}");
    let customer = &c["customers"]["edges"][0]["node"];
    assert_eq!(customer["phoneNumber"], "+919812345678");
    assert_eq!(customer["name"], "Priya");
    let customer_id = customer["id"].as_str().unwrap().to_owned();
    let h = app
        .ok(&t.key, history_of, json!({ "id": customer_id }))
        .await;
    let history = h["customer"]["interactions"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{h}");
    assert_eq!(history[0]["channel"], "WHATSAPP");
    assert!(history[0]["callId"].is_null());
    assert_eq!(history[0]["message"]["text"], "Yes, call me tomorrow");
    assert_eq!(history[0]["message"]["direction"], "INBOUND");
    assert!(customer["whatsappWindowEndsAt"].is_string());

    // Inside the window a free-form reply goes out, as Meta's wire format says.
    let sent = app
        .ok(
            &t.key,
            SEND,
            json!({ "c": customer_id, "t": "Sure, tomorrow at 10?" }),
        )
        .await;
    let message = &sent["sendWhatsAppMessage"];
    assert_eq!(message["wamid"], "wamid.OUT1");
    assert_eq!(message["status"], "ACCEPTED");
    let requests = meta.received_requests().await.unwrap();
    let out = requests
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    let out: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(out["messaging_product"], "whatsapp");
    assert_eq!(out["to"], "919812345678");
    assert_eq!(out["type"], "text");
    assert_eq!(out["text"]["body"], "Sure, tomorrow at 10?");

    // Statuses duplicated and shuffled converge on the highest: never back from read.
    let shuffled = [
        status("wamid.OUT1", "delivered", now + 2),
        status("wamid.OUT1", "read", now + 3),
        status("wamid.OUT1", "sent", now + 1),
        status("wamid.OUT1", "delivered", now + 2),
        status("wamid.UNKNOWN", "read", now + 3),
    ];
    for s in shuffled {
        let body = messages_event(json!({
            "messaging_product": "whatsapp",
            "metadata": { "phone_number_id": PHONE_ID },
            "statuses": [ s ]
        }));
        let (status, r) = post(&app, route, &body, Some(sign(&body, SECRET))).await;
        assert_eq!(status, 200, "{r}");
    }
    let q = "query($id: ID!) { customer(id: $id) { whatsappMessages { wamid direction status errorCode errorTitle } } }";
    let m = app.ok(&t.key, q, json!({ "id": customer_id })).await;
    let out = m["customer"]["whatsappMessages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["wamid"] == "wamid.OUT1")
        .unwrap()
        .clone();
    assert_eq!(out["status"], "READ", "{m}");

    // A send Meta later fails outside the window (131047) is recorded with its reason.
    let failed = messages_event(json!({
        "messaging_product": "whatsapp",
        "metadata": { "phone_number_id": PHONE_ID },
        "statuses": [ { "id": "wamid.OUT1", "status": "failed", "timestamp": (now + 4).to_string(), "recipient_id": "919812345678",
            "errors": [ { "code": 131047, "title": "Re-engagement message",
                "error_data": { "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." } } ] } ]
    }));
    post(&app, route, &failed, Some(sign(&failed, SECRET))).await;
    let m = app.ok(&t.key, q, json!({ "id": customer_id })).await;
    let out = &m["customer"]["whatsappMessages"][0];
    assert_eq!(out["status"], "FAILED", "{m}");
    assert_eq!(out["errorCode"], 131047);
    assert!(out["errorTitle"].as_str().unwrap().contains("24 hours"));

    // Another number's change on the same account is not this tenant's.
    let other = messages_event(json!({
        "messaging_product": "whatsapp",
        "metadata": { "phone_number_id": "999" },
        "contacts": [ { "profile": { "name": "X" }, "wa_id": "14155550100" } ],
        "messages": [ { "from": "14155550100", "id": "wamid.OTHER", "timestamp": now.to_string(), "type": "text", "text": { "body": "hi" } } ]
    }));
    post(&app, route, &other, Some(sign(&other, SECRET))).await;
    let c = app.ok(&t.key, customers, json!({})).await;
    assert_eq!(c["customers"]["totalCount"], 1);

    // Outside the window: refused with when it closed; never written: refused too.
    let old = now - 30 * 3600;
    let late = inbound("14155550123", "wamid.IN2", "hello?", old);
    post(&app, route, &late, Some(sign(&late, SECRET))).await;
    let stale = app
        .ok(
            &t.key,
            "{ customerByPhone(phone: \"+14155550123\") { id } }",
            json!({}),
        )
        .await["customerByPhone"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app
        .gql(Some(&t.key), SEND, json!({ "c": stale, "t": "Hi again" }))
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("window closed at"),
        "{refused}"
    );
    // Outside the window an approved template goes, with exactly its parameters.
    let template = "mutation($c: ID!, $n: String!, $l: String!, $p: [String!]!) {
        sendWhatsAppTemplate(customerId: $c, name: $n, language: $l, parameters: $p) { wamid kind status } }";
    let vars =
        |name: &str, params: Vec<&str>| json!({ "c": stale, "n": name, "l": "en_US", "p": params });
    let wrong = app
        .gql(
            Some(&t.key),
            template,
            vars("callback_reminder", vec!["Ana"]),
        )
        .await;
    assert_eq!(
        wrong["errors"][0]["extensions"]["field"], "parameters",
        "{wrong}"
    );
    let pending = app.gql(Some(&t.key), template, vars("promo", vec![])).await;
    assert_eq!(
        pending["errors"][0]["extensions"]["field"], "name",
        "{pending}"
    );
    let unknown = app.gql(Some(&t.key), template, vars("nope", vec![])).await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["field"], "name",
        "{unknown}"
    );
    let sent = app
        .ok(
            &t.key,
            template,
            vars("callback_reminder", vec!["Ana", "Tuesday 10:00"]),
        )
        .await;
    assert_eq!(sent["sendWhatsAppTemplate"]["kind"], "template");
    let requests = meta.received_requests().await.unwrap();
    let last: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
    assert_eq!(last["type"], "template", "{last}");
    assert_eq!(last["to"], "14155550123");
    assert_eq!(last["template"]["name"], "callback_reminder");
    assert_eq!(last["template"]["language"]["code"], "en_US");
    assert_eq!(
        last["template"]["components"][0]["parameters"][1]["text"],
        "Tuesday 10:00"
    );
    let silent = app.create_customer(&t.key, "+919800000001", "Quiet").await;
    let refused = app
        .gql(Some(&t.key), SEND, json!({ "c": silent, "t": "Hi" }))
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    // Another tenant's customer does not exist for this one.
    let other_tenant = app.create_tenant("Other", "US").await;
    let refused = app
        .gql(
            Some(&other_tenant.key),
            SEND,
            json!({ "c": customer_id, "t": "Hi" }),
        )
        .await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");

    // A template's status change arrives by webhook.
    let change = json!({
        "object": "whatsapp_business_account",
        "entry": [ { "id": WABA, "changes": [ { "field": "message_template_status_update", "value": {
            "event": "PAUSED", "message_template_id": 112, "message_template_name": "promo",
            "message_template_language": "en_US", "reason": "LOW_QUALITY" } } ] } ]
    })
    .to_string();
    let (status, _) = post(&app, route, &change, Some(sign(&change, SECRET))).await;
    assert_eq!(status, 200);
    let templates = app
        .ok(&t.key, "{ whatsappTemplates { name status } }", json!({}))
        .await;
    assert!(
        templates["whatsappTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "promo" && t["status"] == "PAUSED"),
        "{templates}"
    );
    // Meta refusing the token marks the connection broken: sends stop until it reconnects.
    Mock::given(method("POST"))
        .and(path(format!("/{PHONE_ID}/messages")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": { "message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190 }
        })))
        .with_priority(1)
        .mount(&meta)
        .await;
    let refused = app
        .gql(
            Some(&t.key),
            SEND,
            json!({ "c": customer_id, "t": "Still there?" }),
        )
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["field"], "whatsapp",
        "{refused}"
    );
    let conn = app
        .ok(
            &t.key,
            "{ whatsappConnection { brokenReason brokenAt } }",
            json!({}),
        )
        .await;
    assert!(
        conn["whatsappConnection"]["brokenReason"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{conn}"
    );
    let again = app
        .gql(
            Some(&t.key),
            SEND,
            json!({ "c": customer_id, "t": "Hello?" }),
        )
        .await;
    assert!(
        again["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{again}"
    );

    // Hostile sizes: a text over Meta's limit, more changes than one event may carry, a
    // body over 3 MiB.
    let long = app
        .gql(
            Some(&t.key),
            SEND,
            json!({ "c": customer_id, "t": "x".repeat(5000) }),
        )
        .await;
    assert_eq!(long["errors"][0]["extensions"]["field"], "text", "{long}");
    let many = json!({
        "object": "whatsapp_business_account",
        "entry": [ { "id": WABA, "changes": vec![json!({ "field": "messages", "value": {} }); 101] } ]
    })
    .to_string();
    let (status, _) = post(&app, route, &many, Some(sign(&many, SECRET))).await;
    assert_eq!(status, 400);
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(3 * 1024 * 1024 + 10));
    let (status, _) = post(&app, route, &huge, Some(sign(&huge, SECRET))).await;
    assert_eq!(status, 413);

    // Malformed but signed: a 400 with a JSON error.
    let (status, r) = post(&app, route, "{nope", Some(sign("{nope", SECRET))).await;
    assert_eq!(status, 400);
    assert!(r["error"].is_string());
}
/// The fake Graph API is started first: its address is the deployment's `WHATSAPP_BASE_URL`.
async fn run(backend: Backend) {
    let meta = fake_meta().await;
    let uri = meta.uri();
    match TestApp::spawn_with(backend, &[("WHATSAPP_BASE_URL", uri.as_str())]).await {
        Some(app) => whatsapp_end_to_end(app, meta).await,
        None => eprintln!("skipped: no test database"),
    }
}

mod end_to_end {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::run(domain::testdb::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::run(domain::testdb::Backend::Postgres).await;
    }
}
