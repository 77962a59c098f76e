//! `callUpdated` over graphql-transport-ws: tenancy, filters, the protocol's edges, two
//! API processes sharing Redis, and Redis going away and coming back.

use std::time::Duration;

use serde_json::json;

use domain::testproc::free_port;

use crate::common::{TestApp, eventually};
use crate::on_both;
use crate::webhooks::{AGENT, bolna_report};
use crate::wsclient::{CALL_UPDATED, Next, Ws, describe};

async fn post(app: &TestApp, token: &str, id: &str, status: &str) {
    let (code, body) = app
        .webhook("bolna", token, bolna_report(id, AGENT, status).to_string())
        .await;
    assert_eq!(code, 200, "{body}");
}

async fn subscribers_see_their_tenant_only_in_order(app: TestApp) {
    let a = app.create_tenant("A", "IN").await;
    let b = app.create_tenant("B", "IN").await;
    app.create_agent_for(&a.key, "BOLNA", AGENT).await;
    app.create_agent_for(&b.key, "BOLNA", AGENT).await;
    let mut on_a = Ws::connect(app.addr, &a.key).await;
    let mut on_b = Ws::connect(app.addr, &b.key).await;
    on_a.subscribe("1", CALL_UPDATED, json!({})).await;
    on_b.subscribe("1", CALL_UPDATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for status in [
        "initiated",
        "ringing",
        "in-progress",
        "call-disconnected",
        "completed",
    ] {
        post(&app, &a.webhook_token, "exec-a", status).await;
    }
    let mut seen = Vec::new();
    let mut previous = serde_json::Value::Null;
    for _ in 0..5 {
        let data = on_a.data(10).await;
        let update = &data["callUpdated"];
        assert_eq!(update["previousStatus"], previous);
        previous = update["status"].clone();
        assert_eq!(update["call"]["providerExecutionId"], "exec-a");
        assert_eq!(update["call"]["customer"]["phoneNumber"], "+919812345678");
        seen.push(update["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen,
        [
            "INITIATED",
            "RINGING",
            "IN_PROGRESS",
            "CALL_DISCONNECTED",
            "COMPLETED"
        ]
    );
    // A duplicate changes nothing and publishes nothing; tenant B saw nothing at all.
    post(&app, &a.webhook_token, "exec-a", "completed").await;
    assert!(matches!(on_a.next(1).await, Next::Timeout));
    assert!(
        matches!(on_b.next(1).await, Next::Timeout),
        "tenant B saw tenant A's call"
    );

    // Filtered to one call.
    on_b.subscribe(
        "2",
        CALL_UPDATED,
        json!({ "c": uuid::Uuid::nil().to_string() }),
    )
    .await;
    post(&app, &b.webhook_token, "exec-b", "ringing").await;
    let got = on_b.data(10).await;
    assert_eq!(got["callUpdated"]["status"], "RINGING");
    // Only subscription 1 (unfiltered) got it.
    assert!(matches!(on_b.next(1).await, Next::Timeout));
}
on_both!(
    subscribers_see_their_tenant_only_in_order,
    subscribers_see_their_tenant_only_in_order
);

async fn the_protocol_edges_are_closed(app: TestApp) {
    let t = app.create_tenant("A", "IN").await;
    // Subscribing before connection_init: 4401.
    let mut ws = Ws::open(app.addr).await;
    ws.subscribe("1", CALL_UPDATED, json!({})).await;
    assert_eq!(ws.close_code(5).await, Some(4401));
    // A bad key: 4403.
    let mut ws = Ws::open(app.addr).await;
    ws.send(json!({"type": "connection_init", "payload": {"authorization": "Bearer sb_nope"}}))
        .await;
    assert_eq!(ws.close_code(5).await, Some(4403));
    // A second connection_init: 4429.
    let mut ws = Ws::connect(app.addr, &t.key).await;
    ws.send(json!({"type": "connection_init", "payload": {}}))
        .await;
    assert_eq!(ws.close_code(5).await, Some(4429));
    // Not the protocol: 4400.
    let mut ws = Ws::connect(app.addr, &t.key).await;
    ws.send(json!({"type": "gibberish"})).await;
    assert_eq!(ws.close_code(5).await, Some(4400));
    // The same id twice: 4409.
    let mut ws = Ws::connect(app.addr, &t.key).await;
    ws.subscribe("same", CALL_UPDATED, json!({})).await;
    ws.subscribe("same", CALL_UPDATED, json!({})).await;
    assert_eq!(ws.close_code(5).await, Some(4409));
    // At most 20 subscriptions per socket; the 21st gets an error, the socket stays.
    let mut ws = Ws::connect(app.addr, &t.key).await;
    for i in 0..21 {
        ws.subscribe(&i.to_string(), CALL_UPDATED, json!({})).await;
    }
    match ws.next(5).await {
        Next::Msg(m) => {
            assert_eq!(m["type"], "error");
            assert_eq!(m["id"], "20");
            assert_eq!(m["payload"][0]["extensions"]["code"], "RATE_LIMITED");
        }
        other => panic!("{}", describe(&other)),
    }
    // Completing one frees a slot.
    ws.send(json!({"type": "complete", "id": "3"})).await;
    ws.send(json!({"type": "ping"})).await;
    match ws.next(5).await {
        Next::Msg(m) => assert_eq!(m["type"], "pong"),
        other => panic!("{}", describe(&other)),
    }
    ws.subscribe("21", CALL_UPDATED, json!({})).await;
    assert!(matches!(ws.next(1).await, Next::Timeout));
    for id in ["4", "5"] {
        ws.send(json!({"type": "complete", "id": id})).await;
    }
    // Validation errors come back as `error` for that id.
    ws.subscribe("bad", "subscription { nope }", json!({}))
        .await;
    match ws.next(5).await {
        Next::Msg(m) => assert_eq!(
            (m["type"].as_str(), m["id"].as_str()),
            (Some("error"), Some("bad")),
            "{m}"
        ),
        other => panic!("{}", describe(&other)),
    }
    // Queries and mutations are refused over the socket (they go over POST, with every
    // HTTP limit); the socket stays open.
    for (id, doc) in [
        ("q", "{ me { name } }"),
        (
            "m",
            "mutation { createApiKey(input: {name: \"x\", role: ADMIN}) { apiKey } }",
        ),
    ] {
        ws.subscribe(id, doc, json!({})).await;
        match ws.next(5).await {
            Next::Msg(m) => {
                assert_eq!(
                    (m["type"].as_str(), m["id"].as_str()),
                    (Some("error"), Some(id)),
                    "{m}"
                );
                assert_eq!(m["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
            }
            other => panic!("{}", describe(&other)),
        }
    }
    ws.send(json!({"type": "ping"})).await;
    match ws.next(5).await {
        Next::Msg(m) => assert_eq!(m["type"], "pong"),
        other => panic!("{}", describe(&other)),
    }
}

/// A socket opened with a key that is then revoked: its live subscription is closed with
/// 4403 within the auth cache's time, and a new subscribe on another socket is refused.
async fn a_revoked_key_loses_its_sockets(app: TestApp) {
    let t = app.create_tenant("A", "IN").await;
    let issued = app
        .ok(
            &t.key,
            "mutation { createApiKey(input: {name: \"dash\", role: ADMIN}) { id apiKey } }",
            json!({}),
        )
        .await;
    let (id, key) = (
        issued["createApiKey"]["id"].as_str().unwrap().to_owned(),
        issued["createApiKey"]["apiKey"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let mut live = Ws::connect(app.addr, &key).await;
    live.subscribe("1", CALL_UPDATED, json!({})).await;
    let mut idle = Ws::connect(app.addr, &key).await;
    // Revoked on another replica: this one only learns through its cache expiring.
    let other = app.sibling(&[]).await;
    other
        .ok(
            &t.key,
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    let started = std::time::Instant::now();
    assert_eq!(live.close_code(10).await, Some(4403));
    // AUTH_CACHE_SECONDS is 1 here: closed within the cache's time plus a re-check.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    idle.subscribe("2", CALL_UPDATED, json!({})).await;
    assert_eq!(idle.close_code(5).await, Some(4403));
    // A new socket with the revoked key is refused at once.
    let mut ws = Ws::open(app.addr).await;
    ws.send(
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {key}")}}),
    )
    .await;
    assert_eq!(ws.close_code(5).await, Some(4403));
}
on_both!(
    a_revoked_key_loses_its_sockets,
    a_revoked_key_loses_its_sockets,
    [("AUTH_CACHE_SECONDS", "1")]
);
on_both!(the_protocol_edges_are_closed, the_protocol_edges_are_closed);

async fn a_silent_socket_is_closed_after_the_init_timeout(app: TestApp) {
    let mut ws = Ws::open(app.addr).await;
    let started = std::time::Instant::now();
    assert_eq!(ws.close_code(5).await, Some(4408));
    assert!(started.elapsed() >= Duration::from_millis(250));
}
on_both!(
    a_silent_socket_is_closed_after_the_init_timeout,
    a_silent_socket_is_closed_after_the_init_timeout,
    [("GRAPHQL_WS_INIT_TIMEOUT_MS", "300")]
);

/// Two API processes sharing Redis: a subscriber on one sees a webhook posted to the other.
async fn a_webhook_on_one_replica_reaches_a_subscriber_on_another(app: TestApp) {
    if !app.env.contains_key("REDIS_URL") {
        eprintln!("skipped: TEST_REDIS_URL is not set");
        return;
    }
    let other = app.sibling(&[]).await;
    for replica in [&app, &other] {
        eventually(10, || async {
            replica.services.events().is_connected().then_some(())
        })
        .await;
    }
    let t = app.create_tenant("A", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let mut ws = Ws::connect(other.addr, &t.key).await;
    ws.subscribe("1", CALL_UPDATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    post(&app, &t.webhook_token, "exec-r", "ringing").await;
    post(&app, &t.webhook_token, "exec-r", "in-progress").await;
    assert_eq!(ws.data(10).await["callUpdated"]["status"], "RINGING");
    assert_eq!(ws.data(10).await["callUpdated"]["status"], "IN_PROGRESS");
}
on_both!(
    a_webhook_on_one_replica_reaches_a_subscriber_on_another,
    a_webhook_on_one_replica_reaches_a_subscriber_on_another
);

/// A Redis of the test's own, stopped and started again.
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start(port: u16) -> Option<OwnRedis> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        Some(OwnRedis {
            port,
            child: Some(child),
        })
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn redis_down_then_back(app: TestApp) {
    let port = free_port();
    let Some(mut redis) = OwnRedis::start(port) else {
        eprintln!("skipped: redis-server is not installed");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let first = app.sibling(&[("REDIS_URL", &url)]).await;
    let second = app.sibling(&[("REDIS_URL", &url)]).await;
    let both_connected = || async {
        (first.services.events().is_connected() && second.services.events().is_connected())
            .then_some(())
    };
    eventually(10, both_connected).await;
    let t = first.create_tenant("A", "IN").await;
    first.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let mut ws = Ws::connect(second.addr, &t.key).await;
    ws.subscribe("1", CALL_UPDATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    post(&first, &t.webhook_token, "exec-d", "initiated").await;
    assert_eq!(ws.data(10).await["callUpdated"]["status"], "INITIATED");

    redis.stop();
    let ready = first.client.get(first.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["redis"],
        false
    );
    // Writes still succeed while Redis is down.
    post(&first, &t.webhook_token, "exec-d", "ringing").await;
    eventually(10, || async {
        let d = first
            .ok(&t.key, "{ calls { edges { node { status } } } }", json!({}))
            .await;
        (d["calls"]["edges"][0]["node"]["status"] == "RINGING").then_some(())
    })
    .await;

    let _redis = OwnRedis::start(redis.port).expect("restart redis");
    eventually(20, both_connected).await;
    post(&first, &t.webhook_token, "exec-d", "in-progress").await;
    // The same subscription carries on (the RINGING published while Redis was down is lost
    // to other replicas; the call itself has it).
    let status = loop {
        let data = ws.data(10).await;
        let s = data["callUpdated"]["status"].as_str().unwrap().to_owned();
        if s != "RINGING" {
            break s;
        }
    };
    assert_eq!(status, "IN_PROGRESS");
}
on_both!(redis_down_then_back, redis_down_then_back);

/// A client that stops reading is cut off (4429) instead of being buffered without limit,
/// and the process keeps serving others.
async fn a_client_that_stops_reading_is_dropped(app: TestApp) {
    use domain::providers::bolna;
    use domain::types::EventSource;
    let t = app.create_tenant("A", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let tenant = app.tenant_model(&t.id).await;
    let mut slow = Ws::connect(app.addr, &t.key).await;
    slow.subscribe(
        "1",
        "subscription { callUpdated { call { transcript } } }",
        json!({}),
    )
    .await;
    let mut healthy = Ws::connect(app.addr, &t.key).await;
    healthy
        .subscribe("1", "subscription { callUpdated { status } }", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ~20 MB of updates the slow client never reads: far beyond socket buffers and the
    // 64-message queue.
    let transcript = "assistant: hello there\n".repeat(1500);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Next::Msg(_) = healthy.next(10).await {
            n += 1;
            if n == 600 {
                break;
            }
        }
        n
    });
    for i in 0..600 {
        let mut body = bolna_report(&format!("slow-{i}"), AGENT, "call-disconnected");
        body["transcript"] = json!(transcript);
        let report = bolna::parse_execution(body).unwrap();
        app.services
            .ingestor()
            .ingest(&tenant, &report, EventSource::Webhook)
            .await
            .unwrap();
    }
    assert_eq!(
        reader.await.unwrap(),
        600,
        "the healthy subscriber missed updates"
    );
    // The close frame (4429) sits behind everything the client did not read, so the client
    // may see the connection end without it: what matters is that it ends.
    let code = slow.close_code(30).await;
    assert!(matches!(code, None | Some(4429)), "{code:?}");
    let metrics = app.get_text("/metrics").await;
    let dropped: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ws_slow_clients_dropped_total"))
        .filter_map(|l| l.rsplit(" ").next()?.parse::<f64>().ok())
        .sum();
    assert!(dropped >= 1.0, "{metrics}");
}
on_both!(
    a_client_that_stops_reading_is_dropped,
    a_client_that_stops_reading_is_dropped
);

/// A call with a long transcript travels through the event bus without it; a subscriber
/// that selects the transcript still gets all of it (read from the store).
async fn long_transcripts_stay_out_of_events(app: TestApp) {
    let t = app.create_tenant("A", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let mut ws = Ws::connect(app.addr, &t.key).await;
    ws.subscribe(
        "1",
        "subscription { callUpdated { status call { transcript summary } } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let transcript = format!("assistant: {}", "words ".repeat(100_000));
    let mut report = bolna_report("exec-long", AGENT, "completed");
    report["transcript"] = json!(transcript);
    let (status, _) = app
        .webhook("bolna", &t.webhook_token, report.to_string())
        .await;
    assert_eq!(status, 200);
    let data = ws.data(10).await;
    assert_eq!(data["callUpdated"]["status"], "COMPLETED");
    assert_eq!(
        data["callUpdated"]["call"]["transcript"],
        transcript.as_str()
    );
    assert_eq!(
        data["callUpdated"]["call"]["summary"],
        "Wants a callback next week."
    );
    // The event itself is small.
    let model = entity::call::Model::clone(
        &eventually(10, || async {
            use sea_orm::EntityTrait;
            entity::call::Entity::find().one(&app.db).await.unwrap()
        })
        .await,
    );
    match domain::events::Event::call_updated(model, None) {
        domain::events::Event::CallUpdated {
            call: Some(c),
            detail_omitted,
            ..
        } => {
            assert!(detail_omitted && c.transcript.is_none());
            assert!(serde_json::to_vec(&c).unwrap().len() < 16 * 1024);
        }
        other => panic!("{other:?}"),
    }
}
on_both!(
    long_transcripts_stay_out_of_events,
    long_transcripts_stay_out_of_events
);
