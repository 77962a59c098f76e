//! WhatsApp template campaigns end to end, on the campaign engine, against a fake Cloud API
//! that records when each send arrived: 200 messages paced under the number's rate by two
//! worker processes, per-row parameters from CSV columns, the do-not-contact list, the
//! messaging window, pause and resume, a rate limit backed off without spending the
//! attempt, template and recipient errors failing their item with Meta's reason, an expired
//! token pausing the campaign, and delivery statuses (duplicated, shuffled, a late 131047
//! failure) converging on the message and its item.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entity::campaign_item;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::campaigns::{start, tenant_with_limit};
use crate::common::{TestApp, code, eventually};
use crate::whatsapp::{PHONE_ID, SECRET, TOKEN, VERIFY, WABA, messages_event, sign};
use domain::testdb::Backend;

const RATE: usize = 40;

const CREATE: &str = "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) {
    campaign { id status channel template { name language parameterColumns } }
    accepted rejected { line phoneNumber reason code } rejectedCount doNotCall } }";
const CAMPAIGN: &str = "query($id: ID!) { campaign(id: $id) { id status pausedReason
    stats { total pending dispatching inProgress completed failed skipped canceled } } }";

/// Every send the fake received: when, to whom, and the body.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, String, Value)>>>);

impl Log {
    fn to(&self, number: &str) -> Vec<Value> {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|(_, to, _)| to == number)
            .map(|(_, _, b)| b.clone())
            .collect()
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// The most sends within any one second.
    fn peak_per_second(&self) -> usize {
        let mut times: Vec<Instant> = self.0.lock().unwrap().iter().map(|e| e.0).collect();
        times.sort();
        let mut peak = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= Duration::from_secs(1) {
                start += 1;
            }
            peak = peak.max(end - start + 1);
        }
        peak
    }
}

/// Accepts a send, records it, and answers a new `wamid`.
struct Recorder(Log);

impl wiremock::Respond for Recorder {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let to = body["to"].as_str().unwrap_or("").to_owned();
        let mut log = self.0.0.lock().unwrap();
        log.push((Instant::now(), to.clone(), body));
        let n = log.len();
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [ { "input": to, "wa_id": to } ],
            "messages": [ { "id": format!("wamid.C{n}"), "message_status": "accepted" } ]
        }))
    }
}

fn meta_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": { "message": message, "type": "OAuthException", "code": code,
                   "error_data": { "messaging_product": "whatsapp", "details": message }, "fbtrace_id": "F1" }
    }))
}

/// Numbers the fake treats specially (as Meta's digits, no `+`).
const UNDELIVERABLE: &str = "12125559001";
const THROTTLED: &str = "12125559002";
const BAD_PARAMS: &str = "12125559003";
const EXPIRES: &str = "12125559004";
const TEMPLATE_PAUSED: &str = "12125559006";

async fn fake_meta(log: Log) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{WABA}/message_templates")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                { "id": "1", "name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
                  "components": [ { "type": "BODY", "text": "Hi {{1}}, your order {{2}} ships today." } ] },
                { "id": "2", "name": "promo", "language": "en_US", "status": "PENDING", "category": "MARKETING",
                  "components": [ { "type": "BODY", "text": "Sale!" } ] }
            ]
        })))
        .mount(&server)
        .await;
    let sends = format!("/{PHONE_ID}/messages");
    let only = |to: &str| body_partial_json(json!({ "to": to }));
    Mock::given(method("POST"))
        .and(path(sends.clone()))
        .and(only(UNDELIVERABLE))
        .respond_with(meta_error(400, 131026, "Message undeliverable"))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(sends.clone()))
        .and(only(BAD_PARAMS))
        .respond_with(meta_error(400, 131009, "Parameter value is not valid"))
        .with_priority(1)
        .mount(&server)
        .await;
    // The first send to this number meets the number's throughput limit; the next is taken.
    Mock::given(method("POST"))
        .and(path(sends.clone()))
        .and(only(THROTTLED))
        .respond_with(meta_error(400, 130429, "Rate limit hit"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // Once, the token expires mid-campaign.
    Mock::given(method("POST"))
        .and(path(sends.clone()))
        .and(only(EXPIRES))
        .respond_with(meta_error(
            401,
            190,
            "Error validating access token: Session has expired",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // Once, Meta has paused the template (every send would meet it).
    Mock::given(method("POST"))
        .and(path(sends.clone()))
        .and(only(TEMPLATE_PAUSED))
        .respond_with(meta_error(
            400,
            132015,
            "Template is paused due to low quality",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(sends))
        .respond_with(Recorder(log))
        .with_priority(5)
        .mount(&server)
        .await;
    server
}

async fn items(app: &TestApp, campaign: &str) -> Vec<campaign_item::Model> {
    let id = uuid::Uuid::parse_str(campaign).unwrap();
    campaign_item::Entity::find()
        .filter(campaign_item::Column::CampaignId.eq(id))
        .all(&app.db)
        .await
        .unwrap()
}

fn item<'a>(items: &'a [campaign_item::Model], phone: &str) -> &'a campaign_item::Model {
    items
        .iter()
        .find(|i| i.phone_number == format!("+{phone}"))
        .unwrap_or_else(|| panic!("no item for {phone}"))
}

async fn wait_status(app: &TestApp, key: &str, id: &str, status: &str, secs: u64) -> Value {
    eventually(secs, || async {
        let c = app.ok(key, CAMPAIGN, json!({ "id": id })).await["campaign"].clone();
        (c["status"] == status).then_some(c)
    })
    .await
}

async fn template_campaigns(app: TestApp, log: Log) {
    let worker = app
        .sibling(&[("RUN_WORKER", "true"), ("WORKER_POLL_MS", "20")])
        .await;
    let (_, key) = tenant_with_limit(&app, 5).await;
    let connect =
        "mutation($i: ConnectWhatsAppInput!) { connectWhatsApp(input: $i) { messagesPerSecond } }";
    let connected = app
        .ok(
            &key,
            connect,
            json!({ "i": { "phoneNumberId": PHONE_ID, "businessAccountId": WABA, "accessToken": TOKEN,
                           "appSecret": SECRET, "verifyToken": VERIFY, "messagesPerSecond": RATE } }),
        )
        .await;
    assert_eq!(connected["connectWhatsApp"]["messagesPerSecond"], RATE);
    let rate = app
        .gql(
            Some(&key),
            "mutation { setWhatsAppMessagingRate(messagesPerSecond: 0) { messagesPerSecond } }",
            json!({}),
        )
        .await;
    assert_eq!(
        rate["errors"][0]["extensions"]["field"],
        "messagesPerSecond"
    );

    // The file: 200 good rows, the special numbers, a row without a parameter, and a
    // number on the do-not-contact list.
    app.ok(
        &key,
        "mutation { addDoNotCall(phoneNumber: \"+12125559999\", reason: \"asked\") }",
        json!({}),
    )
    .await;
    let mut csv = String::from("Phone,First Name,Order\n");
    for i in 0..200 {
        csv.push_str(&format!("+1212555{i:04},Lead{i},A-{i}\n"));
    }
    for n in [UNDELIVERABLE, THROTTLED, BAD_PARAMS] {
        csv.push_str(&format!("+{n},Special,S-{n}\n"));
    }
    csv.push_str("+12125559005,,A-x\n");
    csv.push_str("+12125559999,Dee,A-y\n");
    let input = |extra: Value| {
        let mut i = json!({ "name": "Order updates", "channel": "WHATSAPP", "csv": csv,
            "template": { "name": "order_update", "language": "en_US", "parameterColumns": ["first_name", "order"] } });
        for (k, v) in extra.as_object().unwrap() {
            i[k] = v.clone();
        }
        json!({ "i": i })
    };
    // Refusals: a missing template, one not approved, the wrong number of columns, a
    // column the file lacks, an agent on a WhatsApp campaign, a template on a call one.
    for (extra, field) in [
        (json!({ "template": null }), "template"),
        (
            json!({ "template": { "name": "promo", "language": "en_US" } }),
            "template",
        ),
        (
            json!({ "template": { "name": "order_update", "parameterColumns": ["first_name"] } }),
            "template",
        ),
        (
            json!({ "template": { "name": "order_update", "parameterColumns": ["first_name", "coupon"] } }),
            "csv",
        ),
        (
            json!({ "agentId": "0190e5a0-0000-7000-8000-000000000000" }),
            "agentId",
        ),
        (json!({ "channel": "CALL", "agentId": null }), "agentId"),
    ] {
        let bad = app.gql(Some(&key), CREATE, input(extra.clone())).await;
        assert_eq!(code(&bad), "BAD_USER_INPUT", "{extra}: {bad}");
        assert_eq!(
            bad["errors"][0]["extensions"]["field"], field,
            "{extra}: {bad}"
        );
    }
    let dry =
        app.ok(&key, CREATE, input(json!({ "dryRun": true }))).await["createCampaign"].clone();
    assert_eq!(dry["accepted"], 203, "{dry}");
    assert_eq!(dry["rejectedCount"], 2);
    assert_eq!(dry["rejected"][0]["code"], "MISSING_PARAMETER");
    assert_eq!(dry["rejected"][0]["line"], 205);
    assert_eq!(dry["rejected"][1]["code"], "DO_NOT_CALL_LIST");
    assert_eq!(dry["doNotCall"], 1);

    // The upload route takes the same, as query parameters.
    let upload = |query: &str| {
        app.client
            .post(app.url(&format!("/campaigns/import?{query}")))
            .header("content-type", "text/csv")
            .bearer_auth(&key)
            .body(csv.clone())
            .send()
    };
    let res = upload("name=Up&channel=WHATSAPP&template.name=order_update&template.parameterColumns=first_name,order&dryRun=true")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let dry: Value = res.json().await.unwrap();
    assert_eq!(dry["accepted"], 203, "{dry}");
    let res = upload("name=Up&channel=SMS&dryRun=true").await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let refused: Value = res.json().await.unwrap();
    assert_eq!(refused["errors"][0]["extensions"]["field"], "channel");

    let made = app.ok(&key, CREATE, input(json!({}))).await["createCampaign"].clone();
    assert_eq!(made["campaign"]["channel"], "WHATSAPP");
    assert_eq!(
        made["campaign"]["template"]["parameterColumns"],
        json!(["first_name", "order"])
    );
    let id = made["campaign"]["id"].as_str().unwrap().to_owned();
    // A customer who asks not to be contacted after the import is skipped at send time.
    let found = app
        .ok(
            &key,
            "{ customers(first: 1, filter: {search: \"+12125550007\"}) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let late = found["customers"]["edges"][0]["node"]["id"].clone();
    app.ok(
        &key,
        "mutation($id: ID!) { updateCustomer(id: $id, input: {status: DO_NOT_CALL}) { id } }",
        json!({ "id": late }),
    )
    .await;

    let began = Instant::now();
    let started = start(&app, &key, "start", &id).await;
    assert_eq!(
        started["data"]["startCampaign"]["status"], "RUNNING",
        "{started}"
    );
    // Paused part-way: no new sends while paused (a round already paced may finish).
    eventually(30, || async { (log.len() >= 40).then_some(()) }).await;
    let paused = start(&app, &key, "pause", &id).await;
    assert_eq!(paused["data"]["pauseCampaign"]["status"], "PAUSED");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at_pause = log.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(log.len(), at_pause, "sends went on while paused");
    start(&app, &key, "resume", &id).await;
    let done = wait_status(&app, &key, &id, "COMPLETED", 120).await;
    let elapsed = began.elapsed();

    let stats = &done["stats"];
    let all = items(&app, &id).await;
    // 199 ordinary rows reached Meta (one customer opted out), and the throttled number
    // once it was let through; the undeliverable and bad-parameter numbers failed.
    assert_eq!(stats["total"], 203, "{done}");
    assert_eq!(stats["completed"], 200, "{done}");
    assert_eq!(stats["failed"], 2, "{done}");
    assert_eq!(stats["skipped"], 1, "{done}");
    assert_eq!(log.len(), 200, "each message sent once");
    let peak = log.peak_per_second();
    eprintln!(
        "200 template messages at {RATE}/s by two workers: {:.1} s, peak {peak} in one second",
        elapsed.as_secs_f64()
    );
    assert!(peak <= RATE + RATE / 10, "peak {peak} over the rate {RATE}");
    // Per-row parameters, in the template's order.
    let sent = log.to("12125550003");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "template");
    assert_eq!(sent[0]["template"]["name"], "order_update");
    assert_eq!(sent[0]["template"]["language"]["code"], "en_US");
    assert_eq!(
        sent[0]["template"]["components"][0]["parameters"],
        json!([{ "type": "text", "text": "Lead3" }, { "type": "text", "text": "A-3" }])
    );
    let ok = item(&all, "12125550003");
    assert!(ok.wamid.as_deref().unwrap().starts_with("wamid.C"));
    assert_eq!(ok.attempts, 1);
    let throttled = item(&all, THROTTLED);
    assert_eq!(throttled.status.as_str(), "COMPLETED");
    assert_eq!(throttled.attempts, 1, "a rate limit spends no attempt");
    let undeliverable = item(&all, UNDELIVERABLE);
    assert_eq!(undeliverable.status.as_str(), "FAILED");
    assert!(
        undeliverable
            .last_error
            .as_deref()
            .unwrap()
            .contains("131026"),
        "{undeliverable:?}"
    );
    let bad = item(&all, BAD_PARAMS);
    assert!(bad.last_error.as_deref().unwrap().contains("131009"));
    let skipped = item(&all, "12125550007");
    assert_eq!(skipped.status.as_str(), "SKIPPED");
    assert!(log.to("12125550007").is_empty());

    // Statuses for campaign messages: duplicated and shuffled, and a late failure outside
    // the 24-hour window, which fails the item with Meta's reason.
    let wamid = |phone: &str| item(&all, phone).wamid.clone().unwrap();
    let (a, b) = (wamid("12125550010"), wamid("12125550011"));
    let now = chrono::Utc::now().timestamp();
    let st = |w: &str, s: &str| json!({ "id": w, "status": s, "timestamp": now.to_string(), "recipient_id": "12125550010" });
    let failed = json!({ "id": b, "status": "failed", "timestamp": now.to_string(), "recipient_id": "12125550011",
        "errors": [ { "code": 131047, "title": "Re-engagement message",
                      "error_data": { "details": "Message failed to send because more than 24 hours have passed" } } ] });
    let body = messages_event(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550001234", "phone_number_id": PHONE_ID },
        "statuses": [ st(&a, "read"), st(&a, "sent"), st(&b, "sent"), failed, st(&a, "delivered"), st(&a, "read"), st(&b, "delivered") ]
    }));
    let route = webhook_route(&app, &key).await;
    let res = app
        .client
        .post(app.url(&route))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(&body, SECRET))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let all = items(&app, &id).await;
    let late_failure = item(&all, "12125550011");
    assert_eq!(late_failure.status.as_str(), "FAILED");
    assert!(
        late_failure
            .last_error
            .as_deref()
            .unwrap()
            .contains("131047")
    );
    let history = "query($p: String!) { customers(first: 1, filter: {search: $p}) { edges { node {
        whatsappMessages { wamid status errorCode } } } } }";
    let messages = app.ok(&key, history, json!({ "p": "+12125550010" })).await;
    let m = &messages["customers"]["edges"][0]["node"]["whatsappMessages"][0];
    assert_eq!(m["wamid"], a.as_str(), "{messages}");
    assert_eq!(m["status"], "READ", "{messages}");
    let c = app.ok(&key, CAMPAIGN, json!({ "id": id })).await["campaign"].clone();
    assert_eq!(c["stats"]["failed"], 3, "{c}");

    // The messaging window: outside it nothing is sent, and items wait for it to open.
    let day = chrono::Utc::now().with_timezone(&chrono_tz::America::New_York);
    let closed_day = (day + chrono::Duration::days(3))
        .format("%a")
        .to_string()
        .to_uppercase();
    let windowed = app
        .ok(
            &key,
            CREATE,
            json!({ "i": { "name": "Weekend", "channel": "WHATSAPP", "csv": "phone,first_name,order\n+12125558001,Wen,W-1\n",
                "template": { "name": "order_update", "parameterColumns": ["first_name", "order"] },
                "callingWindow": { "start": "09:00", "end": "17:00", "days": [closed_day] } } }),
        )
        .await;
    let windowed = windowed["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    start(&app, &key, "start", &windowed).await;
    let waiting = eventually(20, || async {
        let all = items(&app, &windowed).await;
        (all[0].next_attempt_at > chrono::Utc::now() + chrono::Duration::hours(1)).then_some(all)
    })
    .await;
    assert_eq!(waiting[0].status.as_str(), "PENDING");
    assert!(log.to("12125558001").is_empty());
    start(&app, &key, "cancel", &windowed).await;

    // An expired token: the campaign pauses saying so, the item waits without spending its
    // attempt, the connection is marked broken; reconnecting and resuming finishes it.
    let expiring = app
        .ok(
            &key,
            CREATE,
            json!({ "i": { "name": "Expiry", "channel": "WHATSAPP",
                "csv": format!("phone,first_name,order\n+{EXPIRES},Exp,E-1\n"),
                "template": { "name": "order_update", "parameterColumns": ["first_name", "order"] } } }),
        )
        .await;
    let expiring = expiring["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    start(&app, &key, "start", &expiring).await;
    let paused = wait_status(&app, &key, &expiring, "PAUSED", 30).await;
    assert!(
        paused["pausedReason"].as_str().unwrap().contains("190"),
        "{paused}"
    );
    let waiting = items(&app, &expiring).await;
    assert_eq!(waiting[0].status.as_str(), "PENDING");
    assert_eq!(waiting[0].attempts, 0);
    let conn = app
        .ok(&key, "{ whatsappConnection { brokenReason } }", json!({}))
        .await;
    assert!(
        conn["whatsappConnection"]["brokenReason"].is_string(),
        "{conn}"
    );
    app.ok(
        &key,
        connect,
        json!({ "i": { "phoneNumberId": PHONE_ID, "businessAccountId": WABA, "accessToken": TOKEN,
                       "appSecret": SECRET, "verifyToken": VERIFY } }),
    )
    .await;
    start(&app, &key, "resume", &expiring).await;
    wait_status(&app, &key, &expiring, "COMPLETED", 30).await;
    assert_eq!(log.to(EXPIRES).len(), 1);

    // A template Meta paused: the campaign pauses saying so, the item keeps its attempt.
    let paused_tpl = app
        .ok(
            &key,
            CREATE,
            json!({ "i": { "name": "Paused template", "channel": "WHATSAPP",
                "csv": format!("phone,first_name,order\n+{TEMPLATE_PAUSED},Pat,P-1\n"),
                "template": { "name": "order_update", "parameterColumns": ["first_name", "order"] } } }),
        )
        .await;
    let paused_tpl = paused_tpl["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    start(&app, &key, "start", &paused_tpl).await;
    let paused = wait_status(&app, &key, &paused_tpl, "PAUSED", 30).await;
    assert!(
        paused["pausedReason"].as_str().unwrap().contains("132015"),
        "{paused}"
    );
    let waiting = items(&app, &paused_tpl).await;
    assert_eq!(
        (waiting[0].status.as_str(), waiting[0].attempts),
        ("PENDING", 0)
    );
    start(&app, &key, "resume", &paused_tpl).await;
    wait_status(&app, &key, &paused_tpl, "COMPLETED", 30).await;
    assert_eq!(log.to(TEMPLATE_PAUSED).len(), 1);
    drop(worker);
}

async fn webhook_route(app: &TestApp, key: &str) -> String {
    let c = app
        .ok(key, "{ whatsappConnection { webhookUrl } }", json!({}))
        .await;
    let url = c["whatsappConnection"]["webhookUrl"].as_str().unwrap();
    url[url.find("/webhooks/whatsapp/").unwrap()..].to_owned()
}

/// The fake Graph API is started first: its address is the deployment's `WHATSAPP_BASE_URL`.
async fn run(backend: Backend) {
    let log = Log::default();
    let meta = fake_meta(log.clone()).await;
    let uri = meta.uri();
    let env = [
        ("WHATSAPP_BASE_URL", uri.as_str()),
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
    ];
    match TestApp::spawn_with(backend, &env).await {
        Some(app) => template_campaigns(app, log).await,
        None => eprintln!("skipped: no test database"),
    }
    drop(meta);
}

mod template_campaigns {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::run(domain::testdb::Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::run(domain::testdb::Backend::Postgres).await;
    }
}
