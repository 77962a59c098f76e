//! startCall end to end: the simulator, a fake Bolna, provider credentials, the
//! do-not-call list, idempotency and the stale-call sweep.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{SECRETS_KEY, TestApp, code, eventually};
use crate::on_both;
use crate::webhooks::bolna_report;

const START: &str = "mutation($i: StartCallInput!) { startCall(input: $i) { id status providerExecutionId customer { phoneNumber } } }";
const CALL: &str = "query($id: ID!) { call(id: $id) { id status errorMessage providerExecutionId transcript summary events { status source } } }";

/// Credentials for a fake Bolna at `base_url` and one registered agent; the agent's id.
async fn bolna_account(
    app: &TestApp,
    key: &str,
    api_key: &str,
    base_url: &str,
    agent: &str,
) -> String {
    app.ok(
        key,
        SET_CREDS,
        json!({ "i": { "provider": "BOLNA", "apiKey": api_key, "baseUrl": base_url } }),
    )
    .await;
    app.create_agent_for(key, "BOLNA", agent).await
}

async fn call(app: &TestApp, key: &str, id: &str) -> Value {
    app.ok(key, CALL, json!({ "id": id })).await["call"].clone()
}

async fn simulated_calls_play_their_script(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let agent = app.create_agent(&t.key, "Sim").await;
    let mut ids = Vec::new();
    for n in 0..6 {
        let data = app
            .ok(
                &t.key,
                START,
                json!({ "i": { "agentId": agent, "phoneNumber": format!("(212) 555-01{n:02}"),
                                             "variables": { "customer_name": "Sam" } } }),
            )
            .await;
        assert_eq!(data["startCall"]["status"], "QUEUED");
        assert_eq!(
            data["startCall"]["customer"]["phoneNumber"],
            format!("+1212555010{n}")
        );
        ids.push(data["startCall"]["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let done = eventually(20, || async {
            let c = call(&app, &t.key, id).await;
            let terminal = matches!(
                c["status"].as_str(),
                Some("COMPLETED" | "BUSY" | "NO_ANSWER" | "FAILED")
            );
            // The script's steps are separate jobs that may run in any order: a completed
            // call can be stored before its call-disconnected step lands.
            let whole =
                c["status"] != "COMPLETED" || c["events"].as_array().map(Vec::len) == Some(6);
            (terminal && whole).then_some(c)
        })
        .await;
        assert!(
            done["providerExecutionId"]
                .as_str()
                .unwrap()
                .starts_with("sim.")
        );
        let events = done["events"].as_array().unwrap();
        assert_eq!(events[0], json!({"status": "QUEUED", "source": "API"}));
        assert!(
            events[1..].iter().all(|e| e["source"] == "SIMULATOR"),
            "{events:?}"
        );
        if done["status"] == "COMPLETED" {
            assert!(done["transcript"].is_string() && done["summary"].is_string());
            assert_eq!(events.len(), 6);
        }
    }
}
on_both!(
    simulated_calls_play_their_script,
    simulated_calls_play_their_script,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("SIMULATOR_SPEED", "2000")
    ]
);

async fn start_call_validates_and_is_idempotent(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let agent = app.create_agent(&t.key, "Sim").await;
    let input =
        json!({ "agentId": agent, "phoneNumber": "212-555-0100", "idempotencyKey": "order-17" });
    let a = app.ok(&t.key, START, json!({ "i": input })).await["startCall"]["id"].clone();
    let b = app.ok(&t.key, START, json!({ "i": input })).await["startCall"]["id"].clone();
    assert_eq!(a, b, "the same idempotency key must return the same call");
    let calls = app.ok(&t.key, "{ calls { totalCount } }", json!({})).await;
    assert_eq!(calls["calls"]["totalCount"], 1);

    // The do-not-call list, in any format.
    assert_eq!(
        app.ok(
            &t.key,
            "mutation { addDoNotCall(phoneNumber: \"+1 212 555 0111\", reason: \"asked\") }",
            json!({})
        )
        .await["addDoNotCall"],
        true
    );
    let body = app
        .gql(
            Some(&t.key),
            START,
            json!({ "i": { "agentId": agent, "phoneNumber": "(212) 555-0111" } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "phoneNumber");
    assert_eq!(
        app.ok(
            &t.key,
            "mutation { removeDoNotCall(phoneNumber: \"2125550111\") }",
            json!({})
        )
        .await["removeDoNotCall"],
        true
    );
    app.ok(
        &t.key,
        START,
        json!({ "i": { "agentId": agent, "phoneNumber": "(212) 555-0111" } }),
    )
    .await;

    for (input, field) in [
        (json!({ "agentId": agent }), "phoneNumber"),
        (
            json!({ "agentId": agent, "phoneNumber": "12" }),
            "phoneNumber",
        ),
        (
            json!({ "agentId": uuid::Uuid::new_v4().to_string(), "phoneNumber": "2125550100" }),
            "agentId",
        ),
        (
            json!({ "agentId": agent, "phoneNumber": "2125550100", "variables": [1] }),
            "variables",
        ),
    ] {
        let body = app.gql(Some(&t.key), START, json!({ "i": input })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    // Another tenant's agent is not found either.
    let other = app.create_tenant("Other", "US").await;
    let body = app
        .gql(
            Some(&other.key),
            START,
            json!({ "i": { "agentId": agent, "phoneNumber": "2125550100" } }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "agentId");
}
on_both!(
    start_call_validates_and_is_idempotent,
    start_call_validates_and_is_idempotent
);

const SET_CREDS: &str =
    "mutation($i: ProviderCredentialsInput!) { setProviderCredentials(input: $i) }";

async fn bolna_calls_are_placed_followed_and_refusals_recorded(app: TestApp) {
    let bolna = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .and(header("authorization", "Bearer bn-secret-123"))
        .and(body_partial_json(
            json!({ "agent_id": "agent-ok", "recipient_phone_number": "+919812345678",
                                       "user_data": { "customer_name": "Priya" } }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"message": "done", "status": "queued", "execution_id": "exec-placed"}),
        ))
        .expect(1)
        .mount(&bolna)
        .await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .and(body_partial_json(json!({ "agent_id": "agent-refused" })))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_json(json!({"error": 422, "message": "agent is not active"})),
        )
        .expect(1)
        .mount(&bolna)
        .await;
    let t = app.create_tenant("Acme", "IN").await;
    let ok = app
        .ok(&t.key, SET_CREDS, json!({ "i": { "provider": "BOLNA", "apiKey": "bn-secret-123", "baseUrl": bolna.uri() } }))
        .await;
    assert_eq!(ok["setProviderCredentials"], true);
    // The key is stored encrypted.
    let stored = entity::provider_credential::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].ciphertext.contains("bn-secret")
            && !format!("{:?}", stored[0]).contains("bn-secret")
    );

    let agent_ok = app.create_agent_for(&t.key, "BOLNA", "agent-ok").await;
    let agent_refused = app.create_agent_for(&t.key, "BOLNA", "agent-refused").await;
    let placed = app
        .ok(&t.key, START, json!({ "i": { "agentId": agent_ok, "phoneNumber": "09812345678", "variables": { "customer_name": "Priya" } } }))
        .await["startCall"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = app
        .ok(
            &t.key,
            START,
            json!({ "i": { "agentId": agent_refused, "phoneNumber": "9812345679" } }),
        )
        .await["startCall"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = eventually(15, || async {
        let c = call(&app, &t.key, &placed).await;
        (c["providerExecutionId"] == "exec-placed").then_some(c)
    })
    .await;
    assert_eq!(c["status"], "QUEUED");
    let r = eventually(15, || async {
        let c = call(&app, &t.key, &refused).await;
        (c["status"] == "FAILED").then_some(c)
    })
    .await;
    assert!(
        r["errorMessage"]
            .as_str()
            .unwrap()
            .contains("agent is not active"),
        "{r}"
    );

    // Bolna's webhooks then move the same call (not a new one).
    for status in ["ringing", "completed"] {
        let mut body = bolna_report("exec-placed", "agent-ok", status);
        body["telephony_data"]["to_number"] = json!("+919812345678");
        assert_eq!(
            app.webhook("bolna", &t.webhook_token, body.to_string())
                .await
                .0,
            200
        );
    }
    let c = eventually(15, || async {
        let c = call(&app, &t.key, &placed).await;
        (c["status"] == "COMPLETED").then_some(c)
    })
    .await;
    assert_eq!(c["events"].as_array().unwrap().len(), 3);
    let calls = app.ok(&t.key, "{ calls { totalCount } }", json!({})).await;
    assert_eq!(calls["calls"]["totalCount"], 2);
}
on_both!(
    bolna_calls_are_placed_followed_and_refusals_recorded,
    bolna_calls_are_placed_followed_and_refusals_recorded,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("ALLOW_PROVIDER_BASE_URL", "true")
    ]
);

async fn credentials_are_guarded(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    // Custom endpoints are off by default: a key could otherwise be sent anywhere.
    let body = app
        .gql(
            Some(&t.key),
            SET_CREDS,
            json!({ "i": { "provider": "BOLNA", "apiKey": "k", "baseUrl": "http://127.0.0.1:9" } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "baseUrl");
    let body = app
        .gql(
            Some(&t.key),
            SET_CREDS,
            json!({ "i": { "provider": "TELI", "apiKey": "k" } }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "organizationId");
    let body = app
        .gql(
            Some(&t.key),
            SET_CREDS,
            json!({ "i": { "provider": "BOLNA", "apiKey": "  " } }),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "apiKey");
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
    let body = app
        .gql(
            Some(&member),
            SET_CREDS,
            json!({ "i": { "provider": "BOLNA", "apiKey": "k" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    assert_eq!(
        app.ok(
            &t.key,
            SET_CREDS,
            json!({ "i": { "provider": "BOLNA", "apiKey": "bn-1" } })
        )
        .await["setProviderCredentials"],
        true
    );
    // Replacing works; the schema has no way to read a key back.
    assert_eq!(
        app.ok(
            &t.key,
            SET_CREDS,
            json!({ "i": { "provider": "BOLNA", "apiKey": "bn-2" } })
        )
        .await["setProviderCredentials"],
        true
    );
    let sdl = api::graphql::sdl();
    assert!(
        !sdl.contains("apiKey: String\n  baseUrl") || !sdl.contains("type ProviderCredentials")
    );
    let tenant = uuid::Uuid::parse_str(&t.id).unwrap();
    let account = domain::credentials::account(
        &app.db,
        app.services.providers().cipher(),
        app.services.providers().settings(),
        tenant,
        domain::types::Provider::Bolna,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(account.api_key.expose(), "bn-2");
    assert_eq!(SECRETS_KEY.len(), 64);
}
on_both!(credentials_are_guarded, credentials_are_guarded);

/// A call whose webhooks stopped is re-fetched from the provider and finished.
async fn stale_calls_are_refreshed_from_the_provider(app: TestApp) {
    let bolna = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/executions/exec-stale"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bolna_report(
            "exec-stale",
            "agent-1",
            "completed",
        )))
        .mount(&bolna)
        .await;
    let t = app.create_tenant("Acme", "IN").await;
    bolna_account(&app, &t.key, "bn", &bolna.uri(), "agent-1").await;
    assert_eq!(
        app.webhook(
            "bolna",
            &t.webhook_token,
            bolna_report("exec-stale", "agent-1", "in-progress").to_string()
        )
        .await
        .0,
        200
    );
    let id = eventually(10, || async {
        let d = app
            .ok(
                &t.key,
                "{ calls { edges { node { id status } } } }",
                json!({}),
            )
            .await;
        let node = d["calls"]["edges"][0]["node"].clone();
        (node["status"] == "IN_PROGRESS").then(|| node["id"].as_str().unwrap().to_owned())
    })
    .await;
    // Not stale yet: nothing to do.
    let sweep = domain::calls::sweep_stale(&app.services, 100)
        .await
        .unwrap();
    assert_eq!(sweep.found, 0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let sweep = domain::calls::sweep_stale(&app.services, 100)
        .await
        .unwrap();
    assert_eq!((sweep.found, sweep.refreshed, sweep.ended), (1, 1, 1));
    let c = call(&app, &t.key, &id).await;
    assert_eq!(c["status"], "COMPLETED");
    assert_eq!(
        c["events"].as_array().unwrap().last().unwrap()["source"],
        "POLL"
    );
}
on_both!(
    stale_calls_are_refreshed_from_the_provider,
    stale_calls_are_refreshed_from_the_provider,
    [
        ("STALE_CALL_SECONDS", "1"),
        ("ALLOW_PROVIDER_BASE_URL", "true")
    ]
);

use sea_orm::EntityTrait;

/// A number put on the do-not-call list, or a customer marked DO_NOT_CALL, between
/// `startCall` and the dial is not dialled: the call ends CANCELED with the reason and the
/// provider never hears of it.
async fn do_not_call_is_checked_at_dial_time(app: TestApp) {
    let bolna = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "queued", "execution_id": "x"})),
        )
        .expect(0)
        .mount(&bolna)
        .await;
    let t = app.create_tenant("Acme", "IN").await;
    let agent = bolna_account(&app, &t.key, "bn", &bolna.uri(), "agent-1").await;
    let listed = app
        .ok(
            &t.key,
            START,
            json!({ "i": { "agentId": agent, "phoneNumber": "9812345678" } }),
        )
        .await["startCall"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let customer = app.create_customer(&t.key, "9812345679", "Ravi").await;
    let marked = app
        .ok(
            &t.key,
            START,
            json!({ "i": { "agentId": agent, "customerId": customer } }),
        )
        .await["startCall"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &t.key,
        "mutation { addDoNotCall(phoneNumber: \"+91 98123 45678\") }",
        json!({}),
    )
    .await;
    app.ok(
        &t.key,
        "mutation($id: ID!) { updateCustomer(id: $id, input: {status: DO_NOT_CALL}) { id } }",
        json!({ "id": customer }),
    )
    .await;
    let settings = domain::settings::Settings::from_lookup(|k| app.env.get(k).cloned()).unwrap();
    workers::runner(app.services.clone(), &settings)
        .run_pending_jobs()
        .await
        .unwrap();
    for (id, reason) in [(&listed, "do-not-call list"), (&marked, "DO_NOT_CALL")] {
        let c = call(&app, &t.key, id).await;
        assert_eq!(c["status"], "CANCELED", "{c}");
        assert!(c["errorMessage"].as_str().unwrap().contains(reason), "{c}");
        assert!(c["providerExecutionId"].is_null());
    }
    bolna.verify().await;
}
on_both!(
    do_not_call_is_checked_at_dial_time,
    do_not_call_is_checked_at_dial_time,
    [("ALLOW_PROVIDER_BASE_URL", "true")]
);

/// Even where custom base URLs are allowed, a tenant cannot point the server at
/// loopback, private or metadata addresses (after resolving names), unless the
/// deployment's allowlist names the host.
async fn custom_base_urls_never_reach_private_addresses(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:8080",
        "http://10.0.0.7",
        "http://[::1]:9000",
        "http://0.0.0.0:80",
        "http://[::ffff:127.0.0.2]",
        "http://127.0.0.2:8080",
    ] {
        let body = app
            .gql(
                Some(&t.key),
                SET_CREDS,
                json!({ "i": { "provider": "BOLNA", "apiKey": "k", "baseUrl": url } }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{url}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "baseUrl");
    }
    // 127.0.0.1 is on this deployment's allowlist (the fakes of the tests listen there).
    let body = app
        .gql(
            Some(&t.key),
            SET_CREDS,
            json!({ "i": { "provider": "BOLNA", "apiKey": "k", "baseUrl": "http://127.0.0.1:9" } }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}
on_both!(
    custom_base_urls_never_reach_private_addresses,
    custom_base_urls_never_reach_private_addresses,
    [("ALLOW_PROVIDER_BASE_URL", "true")]
);

/// 200 unrefreshable stale calls of one tenant no longer starve another tenant's stuck
/// call, and a call whose refresh failed waits before it is tried again.
async fn the_stale_sweep_is_fair_across_tenants(app: TestApp) {
    let broken = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_string("gone"))
        .mount(&broken)
        .await;
    let working = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/executions/exec-b"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bolna_report(
            "exec-b",
            "agent-b",
            "completed",
        )))
        .mount(&working)
        .await;
    let a = app.create_tenant("A", "IN").await;
    bolna_account(&app, &a.key, "bn", &broken.uri(), "agent-a").await;
    for i in 0..200 {
        let mut r = bolna_report(&format!("exec-a{i}"), "agent-a", "ringing");
        r["telephony_data"]["to_number"] = json!(format!("+9198123{:05}", i));
        assert_eq!(
            app.webhook("bolna", &a.webhook_token, r.to_string())
                .await
                .0,
            200
        );
    }
    let b = app.create_tenant("B", "IN").await;
    bolna_account(&app, &b.key, "bn", &working.uri(), "agent-b").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.webhook(
            "bolna",
            &b.webhook_token,
            bolna_report("exec-b", "agent-b", "ringing").to_string()
        )
        .await
        .0,
        200
    );
    eventually(15, || async {
        let n = app.ok(&a.key, "{ calls { totalCount } }", json!({})).await["calls"]["totalCount"]
            .clone();
        (n == 200).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // B's one call is newer than all of A's, yet the first pass of 50 reaches it.
    let sweep = domain::calls::sweep_stale(&app.services, 50).await.unwrap();
    assert_eq!(sweep.found, 21, "20 of A's, then B's");
    let done = app
        .ok(&b.key, "{ calls { edges { node { status } } } }", json!({}))
        .await;
    assert_eq!(done["calls"]["edges"][0]["node"]["status"], "COMPLETED");
    // A's failed calls back off: the next pass takes other ones.
    let again = domain::calls::sweep_stale(&app.services, 50).await.unwrap();
    assert_eq!((again.found, again.failed), (20, 20));
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT COUNT(*) AS n, MAX(check_failures) AS most FROM calls WHERE check_failures > 0",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    let most: i32 = row.try_get("", "most").unwrap();
    assert_eq!((n, most), (40, 1), "the second pass retried the same calls");
}
on_both!(
    the_stale_sweep_is_fair_across_tenants,
    the_stale_sweep_is_fair_across_tenants,
    [
        ("STALE_CALL_SECONDS", "1"),
        ("ALLOW_PROVIDER_BASE_URL", "true")
    ]
);

/// Calls nothing will move are failed with a reason by the stuck-call sweep: a queued
/// call whose placement job ended without placing it (before, it stayed QUEUED forever),
/// and one whose placement was interrupted mid-request. A queued call whose job is still
/// waiting is left alone, and not looked at again on the next pass.
async fn stuck_calls_are_failed_with_a_reason(app: TestApp) {
    use sea_orm::ConnectionTrait;
    let t = app.create_tenant("Acme", "IN").await;
    let agent = app.create_agent(&t.key, "Sim").await;
    let mut ids = Vec::new();
    for n in ["9812345601", "9812345602", "9812345603"] {
        let id = app
            .ok(
                &t.key,
                START,
                json!({ "i": { "agentId": agent, "phoneNumber": n } }),
            )
            .await["startCall"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ids.push(id);
    }
    let (orphan, interrupted, waiting) = (&ids[0], &ids[1], &ids[2]);
    let now = chrono::Utc::now();
    let exec = |sql: String, values: Vec<sea_orm::Value>| {
        let db = app.db.clone();
        async move {
            let backend = db.get_database_backend();
            // Plain `?` is positional on SQLite; PostgreSQL numbers them.
            let sql = match backend {
                sea_orm::DatabaseBackend::Postgres => (1..=values.len()).fold(sql, |s, n| {
                    s.replacen("?", &domain::db::param(backend, n), 1)
                }),
                _ => sql,
            };
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await
            .unwrap();
        }
    };
    // The orphan's job ended failed without its own clean-up (its worker died on the
    // last attempt); the interrupted call's worker claimed the placement 11 minutes ago.
    exec(
        "UPDATE jobs SET status = 'failed' WHERE subject = ?".into(),
        vec![orphan.clone().into()],
    )
    .await;
    exec(
        "UPDATE calls SET placing_since = ? WHERE id = ?".into(),
        vec![
            (now - chrono::Duration::minutes(11)).into(),
            uuid::Uuid::parse_str(interrupted).unwrap().into(),
        ],
    )
    .await;
    exec(
        "UPDATE jobs SET run_at = ? WHERE subject = ?".into(),
        vec![
            (now + chrono::Duration::hours(1)).into(),
            waiting.clone().into(),
        ],
    )
    .await;
    exec(
        "UPDATE calls SET created_at = ?".into(),
        vec![(now - chrono::Duration::minutes(2)).into()],
    )
    .await;
    let sweep = domain::calls::sweep_stuck(&app.services, 100)
        .await
        .unwrap();
    assert_eq!((sweep.unplaced, sweep.interrupted), (1, 1));
    for (id, status, reason) in [
        (orphan, "FAILED", Some("placement job ended")),
        (interrupted, "FAILED", Some("interrupted")),
        (waiting, "QUEUED", None),
    ] {
        let c = call(&app, &t.key, id).await;
        assert_eq!(c["status"], status, "{c}");
        if let Some(reason) = reason {
            assert!(c["errorMessage"].as_str().unwrap().contains(reason), "{c}");
        }
    }
    let again = domain::calls::sweep_stuck(&app.services, 100)
        .await
        .unwrap();
    assert_eq!((again.unplaced, again.interrupted), (0, 0));
}
on_both!(
    stuck_calls_are_failed_with_a_reason,
    stuck_calls_are_failed_with_a_reason
);
