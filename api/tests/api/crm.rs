//! The two-way Twenty sync against a fake Twenty (`twenty_fake`): connecting, people
//! pulled into customers in every phone format, customers pushed as people, updates both
//! ways by webhook and by pull, conflicts under each override, deletes, the ping-pong
//! case, 429s, an outage firing `crm.sync_failing`, and hostile webhooks.

use serde_json::{Value, json};

use crate::common::{TestApp, code, eventually};
use crate::on_both;
use crate::outbound::Receiver;
use crate::twenty_fake::{FakeTwenty, KEY, event, sign};

const SECRET: &str = "twenty-webhook-secret";

const CONNECT: &str = "mutation($u: String!, $k: String!, $s: String!, $m: CrmFieldMappingInput, $o: [CrmFieldOverrideInput!]) { connectTwenty(input: {baseUrl: $u, apiKey: $k, webhookSecret: $s, fieldMapping: $m, overrides: $o}) { provider baseUrl webhookUrl fieldMapping { leadStatus leadScore segment lastCallSummary } overrides { field winner } } }";

const RUN: &str = "query($id: ID!) { syncRun(id: $id) { id provider crm direction status created updated skipped conflicts newCustomers updatedCustomers skippedNoPhone errors } }";

const CUSTOMER: &str = "query($p: String!) { customerByPhone(phone: $p) { id name email phoneNumber status leadScore segment updatedAt } }";

fn mapping() -> Value {
    json!({"leadStatus": "leadStatus", "leadScore": "leadScore", "segment": "leadSegment", "lastCallSummary": "lastCallSummary"})
}

/// Connects and waits for the first sync to end; returns the webhook URL.
async fn connect(app: &TestApp, key: &str, fake: &FakeTwenty, overrides: Value) -> String {
    let d = app
        .ok(
            key,
            CONNECT,
            json!({"u": fake.url, "k": KEY, "s": SECRET, "m": mapping(), "o": overrides}),
        )
        .await;
    let url = d["connectTwenty"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains("/webhooks/twenty/"), "{url}");
    wait_idle(app, key).await;
    url
}

/// Waits until no CRM run is running and nothing waits to be pushed.
async fn wait_idle(app: &TestApp, key: &str) -> Vec<Value> {
    eventually(30, || async {
        let d = app
            .ok(
                key,
                "{ syncRuns(first: 50) { edges { node { id crm direction status created updated skipped conflicts errors newCustomers skippedNoPhone } } } crmConnection { pendingPushes } }",
                json!({}),
            )
            .await;
        let runs: Vec<Value> = d["syncRuns"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .filter(|n| n["crm"] == "TWENTY")
            .collect();
        let busy = runs.iter().any(|r| r["status"] == "RUNNING")
            || d["crmConnection"]["pendingPushes"].as_u64().unwrap_or(0) > 0;
        (!busy && !runs.is_empty()).then_some(runs)
    })
    .await
}

async fn trigger(app: &TestApp, key: &str, direction: &str) -> Value {
    let d = app
        .ok(
            key,
            "mutation($d: CrmSyncDirection!) { triggerCrmSync(direction: $d) { id status direction provider crm } }",
            json!({"d": direction}),
        )
        .await;
    let id = d["triggerCrmSync"]["id"].as_str().unwrap().to_owned();
    eventually(30, || async {
        let r = app.ok(key, RUN, json!({"id": id})).await["syncRun"].clone();
        (r["status"] != "RUNNING").then_some(r)
    })
    .await
}

async fn customer(app: &TestApp, key: &str, phone: &str) -> Value {
    app.ok(key, CUSTOMER, json!({"p": phone})).await["customerByPhone"].clone()
}

async fn send_webhook(app: &TestApp, url: &str, body: &Value, secret: &str) -> (u16, Value) {
    let body = body.to_string();
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let path = url.split_once("/webhooks/").unwrap().1;
    let res = app
        .client
        .post(app.url(&format!("/webhooks/{path}")))
        .header("content-type", "application/json")
        .header("X-Twenty-Webhook-Timestamp", &ts)
        .header("X-Twenty-Webhook-Signature", sign(secret, &ts, &body))
        .header("X-Twenty-Webhook-Nonce", "00112233445566778899aabbccddeeff")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn person(first: &str, last: &str, phone: Value) -> Value {
    json!({"name": {"firstName": first, "lastName": last}, "emails": {"primaryEmail": format!("{}@example.com", first.to_lowercase()), "additionalEmails": []}, "phones": phone})
}

/// People in every phone shape become customers; one without a phone is skipped.
async fn first_pull_reads_every_phone_format(app: TestApp) {
    let fake = FakeTwenty::start().await;
    fake.add(person("Priya", "Sharma", json!({"primaryPhoneNumber": "9812345678", "primaryPhoneCallingCode": "+91", "primaryPhoneCountryCode": "IN"})));
    fake.add(person(
        "Ravi",
        "Kumar",
        json!({"primaryPhoneNumber": "+919812345679"}),
    ));
    fake.add(person(
        "Anil",
        "Rao",
        json!({"primaryPhoneNumber": "09812345670", "primaryPhoneCountryCode": "IN"}),
    ));
    fake.add(person("Nobody", "", json!({"primaryPhoneNumber": ""})));
    let t = app.create_tenant("Acme", "US").await;
    let viewer = app
        .ok(
            &t.key,
            "mutation { createApiKey(input: {name: \"m\", role: MEMBER}) { apiKey } }",
            json!({}),
        )
        .await["createApiKey"]["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();
    // Only ADMIN connects or reads the connection (its webhook URL is a credential).
    let refused = app
        .gql(
            Some(&viewer),
            CONNECT,
            json!({"u": fake.url, "k": KEY, "s": SECRET}),
        )
        .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let runs = {
        connect(&app, &t.key, &fake, json!([])).await;
        wait_idle(&app, &t.key).await
    };
    let first = runs.last().unwrap();
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    assert_eq!(first["direction"], "BOTH");
    assert_eq!(first["newCustomers"], 3, "{first}");
    assert_eq!(first["skippedNoPhone"], 1, "{first}");
    let priya = customer(&app, &t.key, "+919812345678").await;
    assert_eq!(priya["name"], "Priya Sharma");
    assert_eq!(priya["email"], "priya@example.com");
    assert!(customer(&app, &t.key, "+919812345679").await.is_object());
    assert!(customer(&app, &t.key, "+919812345670").await.is_object());
    let read = app
        .gql(Some(&viewer), "{ crmConnection { webhookUrl } }", json!({}))
        .await;
    assert_eq!(code(&read), "FORBIDDEN");
    // Nothing pulled is pushed back (no ping-pong), apart from the computed fields.
    let pushed: Vec<Value> = fake
        .batches()
        .into_iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .collect();
    assert!(
        pushed
            .iter()
            .all(|r| r.get("name").is_none() && r.get("emails").is_none()),
        "{pushed:?}"
    );
    // A wrong key is refused when connecting.
    let bad = app
        .gql(
            Some(&t.key),
            CONNECT,
            json!({"u": fake.url, "k": "wrong", "s": SECRET}),
        )
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
}
on_both!(
    first_pull,
    first_pull_reads_every_phone_format,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);

/// Created here → a person there, in Twenty's phone shape with the mapped fields; changed
/// here → updated there; changed there (webhook) → changed here; and our own change coming
/// back through the webhook is not applied again.
async fn changes_flow_both_ways_without_ping_pong(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let t = app.create_tenant("Acme", "IN").await;
    let hook = connect(&app, &t.key, &fake, json!([])).await;
    let id = app
        .create_customer(&t.key, "+91 98123 45678", "Priya Sharma")
        .await;
    let made = eventually(30, || async { fake.by_phone("9812345678") }).await;
    assert_eq!(made["phones"]["primaryPhoneCallingCode"], "+91");
    assert_eq!(made["phones"]["primaryPhoneCountryCode"], "IN");
    assert_eq!(made["name"]["firstName"], "Priya");
    assert_eq!(made["name"]["lastName"], "Sharma");
    assert_eq!(made["leadStatus"], "NEW");
    let remote_id = made["id"].as_str().unwrap().to_owned();
    wait_idle(&app, &t.key).await;

    app.ok(
        &t.key,
        "mutation($id: ID!) { updateCustomer(id: $id, input: {email: \"priya@new.example\", status: INTERESTED}) { id } }",
        json!({"id": id}),
    )
    .await;
    eventually(30, || async {
        let p = fake.person(&remote_id)?;
        (p["emails"]["primaryEmail"] == "priya@new.example" && p["leadStatus"] == "INTERESTED")
            .then_some(())
    })
    .await;
    wait_idle(&app, &t.key).await;

    // Our own push, echoed back by Twenty's webhook: nothing changes here.
    let before = customer(&app, &t.key, "+919812345678").await;
    let batches = fake.batches().len();
    let echo = fake.person(&remote_id).unwrap();
    let (status, _) = send_webhook(&app, &hook, &event("person.updated", &echo), SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(
        customer(&app, &t.key, "+919812345678").await["updatedAt"],
        before["updatedAt"]
    );
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert_eq!(fake.batches().len(), batches, "nothing was pushed back");

    // Changed in Twenty and told by webhook (batched `items` form).
    let changed = fake.edit(
        &remote_id,
        json!({"name": {"firstName": "Priya", "lastName": "Verma"}}),
    );
    let mut ev = event("person.updated", &changed);
    ev["items"] = json!([{"record": changed}]);
    ev.as_object_mut().unwrap().remove("record");
    let (status, body) = send_webhook(&app, &hook, &ev, SECRET).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        customer(&app, &t.key, "+919812345678").await["name"],
        "Priya Verma"
    );
    // An older copy arriving late changes nothing.
    let (status, _) = send_webhook(&app, &hook, &event("person.updated", &echo), SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(
        customer(&app, &t.key, "+919812345678").await["name"],
        "Priya Verma"
    );
    // Created in Twenty, told by webhook.
    let newcomer = fake.add(person("Asha", "Iyer", json!({"primaryPhoneNumber": "9812345600", "primaryPhoneCallingCode": "+91", "primaryPhoneCountryCode": "IN"})));
    let (status, _) = send_webhook(&app, &hook, &event("person.created", &newcomer), SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(
        customer(&app, &t.key, "+919812345600").await["name"],
        "Asha Iyer"
    );
}
on_both!(
    both_ways,
    changes_flow_both_ways_without_ping_pong,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);

/// A change made in Twenty whose webhook never came is caught by the next pull, and
/// 429s on the way are waited out.
async fn a_missed_webhook_is_caught_by_the_pull(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let p = fake.add(person(
        "Lena",
        "Fischer",
        json!({"primaryPhoneNumber": "+4915112345678"}),
    ));
    let t = app.create_tenant("Acme", "DE").await;
    connect(&app, &t.key, &fake, json!([])).await;
    assert_eq!(
        customer(&app, &t.key, "+4915112345678").await["name"],
        "Lena Fischer"
    );
    fake.edit(
        p["id"].as_str().unwrap(),
        json!({"emails": {"primaryEmail": "lena@neu.example"}}),
    );
    fake.throttle(2);
    let run = trigger(&app, &t.key, "PULL").await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["direction"], "PULL");
    assert_eq!(run["updatedCustomers"], 1, "{run}");
    assert!(
        fake.requests().len() >= 3,
        "the 429s were waited out and retried"
    );
    assert_eq!(
        customer(&app, &t.key, "+4915112345678").await["email"],
        "lena@neu.example"
    );
    // 60 more people: paged.
    for i in 0..65 {
        fake.add(person(
            &format!("P{i}"),
            "X",
            json!({"primaryPhoneNumber": format!("+49151{:08}", 20_000_000 + i)}),
        ));
    }
    let run = trigger(&app, &t.key, "PULL").await;
    assert_eq!(run["newCustomers"], 65, "{run}");
}
on_both!(
    missed_webhook,
    a_missed_webhook_is_caught_by_the_pull,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);

/// Both sides change the same field while the CRM refuses writes: the later change wins,
/// unless an override names a side.
async fn conflicts_follow_the_clock_and_the_overrides(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let t = app.create_tenant("Acme", "IN").await;
    let hook = connect(&app, &t.key, &fake, json!([])).await;
    let mut ids = Vec::new();
    for (i, name) in ["Clock Case", "Twenty Case", "Ours Case"]
        .iter()
        .enumerate()
    {
        let phone = format!("+9198123456{i:02}");
        let id = app.create_customer(&t.key, &phone, name).await;
        let national = &phone[3..];
        let made = eventually(30, || async { fake.by_phone(national) }).await;
        ids.push((id, made["id"].as_str().unwrap().to_owned(), phone));
    }
    wait_idle(&app, &t.key).await;
    app.ok(
        &t.key,
        "mutation($o: [CrmFieldOverrideInput!]) { updateCrmConnection(input: {overrides: $o}) { overrides { field winner } } }",
        json!({"o": [{"field": "EMAIL", "winner": "TWENTY"}]}),
    )
    .await;
    let rename = "mutation($id: ID!, $n: String!, $e: String!) { updateCustomer(id: $id, input: {name: $n, email: $e}) { id } }";
    fake.writes_down(true);
    // 1: changed here, then (later) there: Twenty's is later and wins the name; its email
    // wins by override.
    let (id, remote, phone) = &ids[0];
    app.ok(
        &t.key,
        rename,
        json!({"id": id, "n": "Here Name", "e": "here@x.example"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let there = fake.edit(remote, json!({"name": {"firstName": "There", "lastName": "Name"}, "emails": {"primaryEmail": "there@x.example"}}));
    send_webhook(&app, &hook, &event("person.updated", &there), SECRET).await;
    let c = customer(&app, &t.key, phone).await;
    assert_eq!(c["name"], "There Name");
    assert_eq!(c["email"], "there@x.example");
    // 2: changed there first, then here: ours is later and wins the name, but the email
    // override still gives the email to Twenty.
    let (id, remote, phone) = &ids[1];
    let there = fake.edit(remote, json!({"name": {"firstName": "Twenty", "lastName": "First"}, "emails": {"primaryEmail": "t@x.example"}}));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    app.ok(
        &t.key,
        rename,
        json!({"id": id, "n": "Ours Later", "e": "o@x.example"}),
    )
    .await;
    send_webhook(&app, &hook, &event("person.updated", &there), SECRET).await;
    let c = customer(&app, &t.key, phone).await;
    assert_eq!(c["name"], "Ours Later");
    assert_eq!(c["email"], "t@x.example");
    // 3: "Switchboard wins" on names, though Twenty's change is later.
    app.ok(
        &t.key,
        "mutation($o: [CrmFieldOverrideInput!]) { updateCrmConnection(input: {overrides: $o}) { overrides { field winner } } }",
        json!({"o": [{"field": "NAME", "winner": "SWITCHBOARD"}, {"field": "EMAIL", "winner": "TWENTY"}]}),
    )
    .await;
    let (id, remote, phone) = &ids[2];
    app.ok(
        &t.key,
        rename,
        json!({"id": id, "n": "Ours Pinned", "e": "p@x.example"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let there = fake.edit(
        remote,
        json!({"name": {"firstName": "Twenty", "lastName": "Later"}}),
    );
    send_webhook(&app, &hook, &event("person.updated", &there), SECRET).await;
    assert_eq!(customer(&app, &t.key, phone).await["name"], "Ours Pinned");
    // Twenty answers again: the winners here reach Twenty.
    fake.writes_down(false);
    let run = trigger(&app, &t.key, "PUSH").await;
    assert_ne!(run["status"], "FAILED", "{run}");
    wait_idle(&app, &t.key).await;
    let p = fake.person(&ids[1].1).unwrap();
    assert_eq!(p["name"]["firstName"], "Ours");
    assert_eq!(p["emails"]["primaryEmail"], "t@x.example");
    let p = fake.person(&ids[2].1).unwrap();
    assert_eq!(p["name"]["lastName"], "Pinned");
    // An override on a field only pushed is refused.
    let bad = app
        .gql(
            Some(&t.key),
            "mutation { updateCrmConnection(input: {overrides: [{field: LEAD_SCORE, winner: TWENTY}]}) { baseUrl } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
}
on_both!(
    conflicts,
    conflicts_follow_the_clock_and_the_overrides,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);

/// Deleted in Twenty: the customer stays (with its calls) and is not re-created there.
/// Deleted here: deleted there.
async fn deletes_on_each_side(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let a = fake.add(person(
        "Gone",
        "There",
        json!({"primaryPhoneNumber": "+14155550101"}),
    ));
    fake.add(person(
        "Gone",
        "Here",
        json!({"primaryPhoneNumber": "+14155550102"}),
    ));
    let t = app.create_tenant("Acme", "US").await;
    let hook = connect(&app, &t.key, &fake, json!([])).await;
    let removed = fake.remove(a["id"].as_str().unwrap());
    let (status, _) = send_webhook(&app, &hook, &event("person.deleted", &removed), SECRET).await;
    assert_eq!(status, 200);
    let kept = customer(&app, &t.key, "+14155550101").await;
    assert_eq!(kept["name"], "Gone There");
    app.ok(
        &t.key,
        "mutation($id: ID!) { updateCustomer(id: $id, input: {notes: \"still here\", status: BOOKED}) { id } }",
        json!({"id": kept["id"]}),
    )
    .await;
    wait_idle(&app, &t.key).await;
    assert_eq!(
        fake.people()
            .iter()
            .filter(|p| p["phones"]["primaryPhoneNumber"] == "+14155550101"
                || p["phones"]["primaryPhoneNumber"] == "4155550101")
            .count(),
        1,
        "not re-created in Twenty"
    );
    let here = customer(&app, &t.key, "+14155550102").await;
    app.ok(
        &t.key,
        "mutation($id: ID!) { deleteCustomer(id: $id) }",
        json!({"id": here["id"]}),
    )
    .await;
    eventually(30, || async {
        fake.people()
            .iter()
            .any(|p| p["name"]["lastName"] == "Here" && !p["deletedAt"].is_null())
            .then_some(())
    })
    .await;
}
on_both!(
    deletes,
    deletes_on_each_side,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);

/// Webhooks from anyone but Twenty are refused before anything is read.
async fn hostile_webhooks_are_refused(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let t = app.create_tenant("Acme", "US").await;
    let hook = connect(&app, &t.key, &fake, json!([])).await;
    let rec = json!({"id": "p-1", "name": {"firstName": "Eve", "lastName": ""}, "phones": {"primaryPhoneNumber": "+14155550199"}, "updatedAt": chrono::Utc::now().to_rfc3339()});
    let body = event("person.created", &rec);
    let (status, b) = send_webhook(&app, &hook, &body, "wrong-secret").await;
    assert_eq!(status, 401, "{b}");
    assert!(b["error"].is_string());
    // Unsigned, and signed long ago.
    let path = hook.split_once("/webhooks/").unwrap().1.to_owned();
    let res = app
        .client
        .post(app.url(&format!("/webhooks/{path}")))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let old = (chrono::Utc::now().timestamp_millis() - 10 * 60 * 1000).to_string();
    let res = app
        .client
        .post(app.url(&format!("/webhooks/{path}")))
        .header("X-Twenty-Webhook-Timestamp", &old)
        .header(
            "X-Twenty-Webhook-Signature",
            sign(SECRET, &old, &body.to_string()),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // Signed but not JSON; another object; an unknown token.
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    let res = app
        .client
        .post(app.url(&format!("/webhooks/{path}")))
        .header("X-Twenty-Webhook-Timestamp", &ts)
        .header("X-Twenty-Webhook-Signature", sign(SECRET, &ts, "{nope"))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // More records than one event may carry.
    let mut flood = event("person.updated", &rec);
    flood["items"] = json!(vec![json!({"record": rec}); 1001]);
    let (status, b) = send_webhook(&app, &hook, &flood, SECRET).await;
    assert_eq!(status, 400, "{b}");
    let (status, b) = send_webhook(
        &app,
        &hook,
        &event("company.created", &json!({"id": "c1"})),
        SECRET,
    )
    .await;
    assert_eq!((status, b["status"].as_str()), (200, Some("ignored")));
    let (status, _) =
        send_webhook(&app, "http://x/webhooks/twenty/not-a-token", &body, SECRET).await;
    assert_eq!(status, 404);
    assert!(customer(&app, &t.key, "+14155550199").await.is_null());
    // Disconnecting revokes the URL at once.
    app.ok(&t.key, "mutation { disconnectCrm }", json!({}))
        .await;
    let (status, _) = send_webhook(&app, &hook, &body, SECRET).await;
    assert_eq!(status, 404);
    let none = app
        .gql(
            Some(&t.key),
            "mutation { triggerCrmSync(direction: PULL) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&none), "BAD_USER_INPUT");
    // A private address is refused unless allowlisted (here it is: the fake is local), and
    // garbage URLs are refused.
    let bad = app
        .gql(
            Some(&t.key),
            CONNECT,
            json!({"u": "ftp://x", "k": KEY, "s": SECRET}),
        )
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
}
on_both!(
    hostile,
    hostile_webhooks_are_refused,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);

/// Twenty unreachable past the threshold: runs fail with the reason, and
/// `crm.sync_failing` goes out once.
async fn an_unreachable_crm_fires_sync_failing(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let rx = Receiver::start().await;
    let t = app.create_tenant("Acme", "US").await;
    let d = app
        .ok(
            &t.key,
            "mutation($u: String!) { createWebhookEndpoint(input: {url: $u, events: [\"crm.*\"]}) { secret } }",
            json!({"u": rx.url}),
        )
        .await;
    rx.secrets(&[d["createWebhookEndpoint"]["secret"].as_str().unwrap()]);
    connect(&app, &t.key, &fake, json!([])).await;
    fake.down(true);
    let run = trigger(&app, &t.key, "PULL").await;
    assert_eq!(run["status"], "FAILED", "{run}");
    assert!(run["errors"][0].as_str().unwrap().contains("pull"), "{run}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    trigger(&app, &t.key, "BOTH").await;
    let got = eventually(30, || async {
        let ok = rx.ok();
        ok.iter()
            .any(|r| r.body["type"] == "crm.sync_failing")
            .then_some(ok)
    })
    .await;
    let ev = got
        .iter()
        .find(|r| r.body["type"] == "crm.sync_failing")
        .unwrap();
    assert!(ev.valid);
    assert_eq!(ev.body["data"]["crm"], "TWENTY");
    let c = app
        .ok(
            &t.key,
            "{ crmConnection { failingSince lastError } }",
            json!({}),
        )
        .await;
    assert!(c["crmConnection"]["failingSince"].is_string());
    fake.down(false);
    let run = trigger(&app, &t.key, "PULL").await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    let c = app
        .ok(&t.key, "{ crmConnection { failingSince } }", json!({}))
        .await;
    assert!(c["crmConnection"]["failingSince"].is_null());
}
on_both!(
    failing,
    an_unreachable_crm_fires_sync_failing,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
        ("CRM_FAILING_AFTER_SECONDS", "1"),
        ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1"),
    ]
);

/// Customers here before connecting are pushed (matched by phone, not duplicated); two
/// people sharing a number do not fail the page; merging deletes the duplicate's person.
async fn existing_customers_duplicates_and_merges(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let t = app.create_tenant("Acme", "US").await;
    let matched = app
        .create_customer(&t.key, "+1 415 555 0111", "Here First")
        .await;
    app.create_customer(&t.key, "+1 415 555 0133", "Only Here")
        .await;
    fake.add(person("There", "Too", json!({"primaryPhoneNumber": "4155550111", "primaryPhoneCallingCode": "+1", "primaryPhoneCountryCode": "US"})));
    fake.add(person(
        "Twin",
        "One",
        json!({"primaryPhoneNumber": "+14155550122"}),
    ));
    fake.add(person(
        "Twin",
        "Two",
        json!({"primaryPhoneNumber": "+14155550122"}),
    ));
    let runs = {
        connect(&app, &t.key, &fake, json!([])).await;
        wait_idle(&app, &t.key).await
    };
    let first = runs.last().unwrap();
    assert_eq!(first["status"], "PARTIAL", "{first}");
    assert!(
        first["errors"].to_string().contains("another person"),
        "{first}"
    );
    assert!(customer(&app, &t.key, "+14155550122").await.is_object());
    // Matched by phone, not created a second time; the one only here is created there.
    let count = |national: &'static str| {
        fake.people()
            .iter()
            .filter(|p| {
                let n = p["phones"]["primaryPhoneNumber"].as_str().unwrap_or("");
                n == national || n.ends_with(national)
            })
            .count()
    };
    assert_eq!(count("4155550111"), 1);
    assert_eq!(count("4155550133"), 1);
    // Both sides had a name when first matched: Twenty's changed later and wins.
    assert_eq!(
        customer(&app, &t.key, "+14155550111").await["name"],
        "There Too"
    );
    // Merging: the duplicate's person is deleted in Twenty.
    let dup = customer(&app, &t.key, "+14155550133").await;
    app.ok(
        &t.key,
        "mutation($a: ID!, $b: ID!) { mergeCustomers(primaryId: $a, duplicateId: $b) { id } }",
        json!({"a": matched, "b": dup["id"]}),
    )
    .await;
    eventually(30, || async {
        fake.people()
            .iter()
            .any(|p| p["name"]["firstName"] == "Only" && !p["deletedAt"].is_null())
            .then_some(())
    })
    .await;
}
on_both!(
    existing,
    existing_customers_duplicates_and_merges,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);

/// Our push echoed back by Twenty's webhook before the push is recorded, while the
/// customer changed again here: the newer value here stands, and reaches Twenty.
async fn an_early_echo_does_not_undo_a_newer_change(app: TestApp) {
    let fake = FakeTwenty::start().await;
    let t = app.create_tenant("Acme", "US").await;
    let hook = connect(&app, &t.key, &fake, json!([])).await;
    let id = app
        .create_customer(&t.key, "+1 415 555 0177", "Echo Case")
        .await;
    let made = eventually(30, || async { fake.by_phone("4155550177") }).await;
    let remote = made["id"].as_str().unwrap().to_owned();
    wait_idle(&app, &t.key).await;
    let set_email =
        "mutation($id: ID!, $e: String!) { updateCustomer(id: $id, input: {email: $e}) { id } }";
    fake.write_delay(std::time::Duration::from_secs(3));
    let before = fake.writes_started();
    app.ok(&t.key, set_email, json!({"id": id, "e": "one@x.example"}))
        .await;
    // The push of "one@" is in Twenty's hands; meanwhile the customer changes again here.
    eventually(30, || async {
        (fake.writes_started() > before).then_some(())
    })
    .await;
    app.ok(&t.key, set_email, json!({"id": id, "e": "two@x.example"}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut echo = fake.person(&remote).unwrap();
    echo["emails"]["primaryEmail"] = json!("one@x.example");
    echo["updatedAt"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let (status, _) = send_webhook(&app, &hook, &event("person.updated", &echo), SECRET).await;
    assert_eq!(status, 200);
    assert_eq!(
        customer(&app, &t.key, "+14155550177").await["email"],
        "two@x.example"
    );
    fake.write_delay(std::time::Duration::ZERO);
    eventually(30, || async {
        (fake.person(&remote)?["emails"]["primaryEmail"] == "two@x.example").then_some(())
    })
    .await;
}
on_both!(
    early_echo,
    an_early_echo_does_not_undo_a_newer_change,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("CRM_SYNC_INTERVAL_SECONDS", "3600"),
    ]
);
