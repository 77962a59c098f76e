//! Tenant credits end to end: the operator's top-ups (idempotent) and pricing, the
//! tenant's read of its balance and ledger, charges exact under concurrency and after a
//! late duration change, never below zero, the balance check of `startCall`, reserves
//! holding 20 concurrent calls to what the balance covers, a campaign pausing for want of
//! credit and resuming after a top-up, and the `balance.*` events.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{ADMIN_TOKEN, TestApp, code, eventually};
use crate::on_both;
use domain::providers::CallReport;
use domain::types::{CallStatus, EventSource, Provider};

const TOP_UP: &str = "mutation($i: TopUpCreditsInput!) { topUpCredits(input: $i) { id kind amount balanceAfter reference idempotencyKey actor } }";
const ADJUST: &str = "mutation($i: AdjustCreditsInput!) { adjustCredits(input: $i) { id kind amount balanceAfter reason } }";
const PRICING: &str = "mutation($i: SetPricingInput!) { setPricing(input: $i) { balance canDial pricing { unit unitPrice callFee reservePerCall neededToDial } } }";
const ACCOUNT: &str = "{ me { balance credits { balance reserved available liveCalls canDial lowBalanceThreshold } }
    creditLedger(first: 100) { totalCount edges { node { id kind amount balanceAfter callId callTotal billedSeconds providerCost reason actor } } } }";
const START: &str = "mutation($i: StartCallInput!) { startCall(input: $i) { id status } }";

async fn top_up(app: &TestApp, tenant: &str, amount: i64, key: Option<&str>) -> Value {
    app.gql(
        Some(ADMIN_TOKEN),
        TOP_UP,
        json!({ "i": { "tenantId": tenant, "amount": amount, "reference": "INV-1", "idempotencyKey": key } }),
    )
    .await
}

async fn price(app: &TestApp, tenant: &str, unit_price: i64, call_fee: i64) -> Value {
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            PRICING,
            json!({ "i": { "tenantId": tenant, "unitPrice": unit_price, "callFee": call_fee } }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["setPricing"].clone()
}

async fn account(app: &TestApp, key: &str) -> Value {
    app.ok(key, ACCOUNT, json!({})).await
}

/// The ledger adds up to the balance, and no entry left it below zero.
fn assert_ledger_adds_up(a: &Value) {
    let edges = a["creditLedger"]["edges"].as_array().unwrap();
    let sum: i64 = edges
        .iter()
        .map(|e| e["node"]["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, a["me"]["balance"].as_i64().unwrap(), "{a}");
    assert!(
        edges
            .iter()
            .all(|e| e["node"]["balanceAfter"].as_i64().unwrap() >= 0)
    );
    if let Some(newest) = edges.first() {
        assert_eq!(newest["node"]["balanceAfter"], a["me"]["balance"], "{a}");
    }
}

async fn ledger_and_roles(app: TestApp) {
    let t = app.create_tenant("Billed", "US").await;
    let other = app.create_tenant("Other", "US").await;
    let a = account(&app, &t.key).await;
    assert_eq!(a["me"]["balance"], 0);
    assert_eq!(
        a["me"]["credits"]["canDial"], true,
        "an unpriced tenant is not billed"
    );

    // Only the operator tops up.
    let body = app
        .gql(
            Some(&t.key),
            TOP_UP,
            json!({ "i": { "tenantId": t.id, "amount": 100 } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            None,
            TOP_UP,
            json!({ "i": { "tenantId": t.id, "amount": 100 } }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = top_up(&app, &Uuid::now_v7().to_string(), 100, None).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    for bad in [0, -5, i64::MAX] {
        let body = top_up(&app, &t.id, bad, None).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "amount");
    }
    let body = top_up(&app, &t.id, 100, Some(&"k".repeat(201))).await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "idempotencyKey");

    // Idempotent by key; the same key with another amount is a conflict.
    let first = top_up(&app, &t.id, 1500, Some("pay-1")).await;
    let entry = &first["data"]["topUpCredits"];
    assert_eq!(entry["kind"], "TOP_UP", "{first}");
    assert_eq!(entry["amount"], 1500);
    assert_eq!(entry["balanceAfter"], 1500);
    assert_eq!(entry["idempotencyKey"], "pay-1");
    assert_eq!(entry["reference"], "INV-1");
    assert_eq!(entry["actor"], "operator");
    let again = top_up(&app, &t.id, 1500, Some("pay-1")).await;
    assert_eq!(again["data"]["topUpCredits"]["id"], entry["id"]);
    let clash = top_up(&app, &t.id, 99, Some("pay-1")).await;
    assert_eq!(code(&clash), "CONFLICT", "{clash}");
    // Keys are per tenant.
    let theirs = top_up(&app, &other.id, 7, Some("pay-1")).await;
    assert_eq!(
        theirs["data"]["topUpCredits"]["balanceAfter"], 7,
        "{theirs}"
    );

    // Adjustments go either way, never below zero, and say why.
    let down = app
        .gql(
            Some(ADMIN_TOKEN),
            ADJUST,
            json!({ "i": { "tenantId": t.id, "amount": -2000, "reason": "goodwill reversed" } }),
        )
        .await;
    assert_eq!(code(&down), "BAD_USER_INPUT", "{down}");
    let down = app
        .gql(
            Some(ADMIN_TOKEN),
            ADJUST,
            json!({ "i": { "tenantId": t.id, "amount": -500, "reason": "  " } }),
        )
        .await;
    assert_eq!(down["errors"][0]["extensions"]["field"], "reason", "{down}");
    let down = app
        .gql(
            Some(ADMIN_TOKEN),
            ADJUST,
            json!({ "i": { "tenantId": t.id, "amount": -500, "reason": "duplicate payment" } }),
        )
        .await;
    assert_eq!(
        down["data"]["adjustCredits"]["balanceAfter"], 1000,
        "{down}"
    );

    let a = account(&app, &t.key).await;
    assert_eq!(a["me"]["balance"], 1000);
    assert_eq!(a["creditLedger"]["totalCount"], 2);
    assert_ledger_adds_up(&a);

    // A tenant sees its own account only; the operator names any.
    let body = app
        .gql(
            Some(&t.key),
            "query($t: ID) { creditLedger(tenantId: $t) { totalCount } }",
            json!({ "t": other.id }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            "query($t: ID) { creditAccount(tenantId: $t) { balance } creditLedger(tenantId: $t) { totalCount } }",
            json!({ "t": t.id }),
        )
        .await;
    assert_eq!(body["data"]["creditAccount"]["balance"], 1000, "{body}");
    assert_eq!(body["data"]["creditLedger"]["totalCount"], 2);

    // Pricing is the operator's; the alert threshold the tenant ADMIN's.
    let body = app
        .gql(
            Some(&t.key),
            PRICING,
            json!({ "i": { "tenantId": t.id, "unitPrice": 1 } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            PRICING,
            json!({ "i": { "tenantId": t.id, "unitPrice": -1 } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "unitPrice",
        "{body}"
    );
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            PRICING,
            json!({ "i": { "tenantId": t.id, "unitPrice": 1_000_000_000_000_000i64, "reserveMinutes": 240 } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    for ambiguous in [
        json!({ "tenantId": t.id }),
        json!({ "tenantId": t.id, "unitPrice": 1, "pricePerSecond": 1 }),
    ] {
        let body = app
            .gql(Some(ADMIN_TOKEN), PRICING, json!({ "i": ambiguous }))
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "unitPrice",
            "{body}"
        );
    }
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            PRICING,
            json!({ "i": { "tenantId": t.id, "pricePerSecond": 2 } }),
        )
        .await;
    let p = &body["data"]["setPricing"]["pricing"];
    assert_eq!(p["unit"], "SECOND", "{body}");
    assert_eq!(p["reservePerCall"], 600);
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
            "mutation { setLowBalanceThreshold(threshold: 10) { lowBalanceThreshold } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .ok(
            &t.key,
            "mutation { setLowBalanceThreshold(threshold: 10) { lowBalanceThreshold } }",
            json!({}),
        )
        .await;
    assert_eq!(body["setLowBalanceThreshold"]["lowBalanceThreshold"], 10);
    // Members and viewers read the balance.
    let m = app.ok(&member, "{ me { balance } }", json!({})).await;
    assert_eq!(m["me"]["balance"], 1000);
}
on_both!(ledger_and_roles, ledger_and_roles);

async fn start_call_checks_the_balance(app: TestApp) {
    let t = app.create_tenant("Caller", "US").await;
    let agent = app.create_agent(&t.key, "Sim").await;
    let start =
        |n: &str| json!({ "i": { "agentId": agent, "phoneNumber": format!("+1212555{n}") } });
    // Not billed yet: calls go out whatever the balance.
    app.ok(&t.key, START, start("0101")).await;

    let p = price(&app, &t.id, 100, 10).await;
    assert_eq!(p["pricing"]["unit"], "MINUTE");
    assert_eq!(p["pricing"]["reservePerCall"], 510);
    assert_eq!(p["pricing"]["neededToDial"], 510);
    assert_eq!(p["canDial"], false);
    let body = app.gql(Some(&t.key), START, start("0102")).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "balance");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("510"),
        "{body}"
    );
    top_up(&app, &t.id, 509, None).await;
    let body = app.gql(Some(&t.key), START, start("0102")).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    top_up(&app, &t.id, 1, None).await;
    app.ok(&t.key, START, start("0102")).await;
    // A minimum balance adds to what a call needs.
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            PRICING,
            json!({ "i": { "tenantId": t.id, "unitPrice": 100, "callFee": 10, "minimumBalance": 1 } }),
        )
        .await;
    assert_eq!(body["data"]["setPricing"]["canDial"], false, "{body}");
    let body = app.gql(Some(&t.key), START, start("0103")).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // Billing lifted: calls go out again.
    app.ok(
        ADMIN_TOKEN,
        PRICING,
        json!({ "i": { "tenantId": t.id, "unitPrice": 100, "metered": false } }),
    )
    .await;
    app.ok(&t.key, START, start("0103")).await;
}
on_both!(start_call_checks_the_balance, start_call_checks_the_balance);

/// A call we dialled, live with its provider.
async fn placed_call(app: &TestApp, tenant: Uuid, execution_id: &str, number: &str) -> Uuid {
    let now = chrono::Utc::now();
    let id = Uuid::now_v7();
    entity::call::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant),
        agent_id: Set(None),
        customer_id: Set(None),
        campaign_id: Set(None),
        campaign_item_id: Set(None),
        provider: Set(Provider::Simulator),
        provider_execution_id: Set(Some(execution_id.to_owned())),
        placing_since: Set(Some(now)),
        provider_call_id: Set(None),
        direction: Set(domain::types::CallDirection::Outbound),
        status: Set(CallStatus::InProgress),
        from_number: Set(None),
        to_number: Set(Some(number.to_owned())),
        started_at: Set(Some(now)),
        ended_at: Set(None),
        duration_seconds: Set(None),
        cost: Set(None),
        transcript: Set(None),
        summary: Set(None),
        recording_url: Set(None),
        extracted_data: Set(None),
        hangup_reason: Set(None),
        raw_payload: Set(None),
        provider_agent_id: Set(None),
        status_rank: Set(CallStatus::InProgress.rank()),
        idempotency_key: Set(None),
        error_message: Set(None),
        variables: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&app.db)
    .await
    .unwrap();
    id
}

fn ended(execution_id: &str, status: CallStatus, seconds: Option<f64>) -> CallReport {
    let mut r = CallReport::new(Provider::Simulator, execution_id, status);
    r.duration_seconds = seconds;
    r.cost = seconds.map(|s| s / 100.0);
    r
}

fn cost(seconds: i64) -> i64 {
    (seconds + 59) / 60 * 100 + 10
}

async fn charges_are_exact_once_and_follow_late_durations(app: TestApp) {
    let t = app.create_tenant("Charged", "US").await;
    let tenant = app.tenant_model(&t.id).await;
    price(&app, &t.id, 100, 10).await;
    top_up(&app, &t.id, 1_000_000, None).await;

    // 30 calls end at once, on as many tasks: the balance is exact to the unit.
    let mut calls = Vec::new();
    for i in 0..30 {
        let exec = format!("exec-{i}");
        placed_call(&app, tenant.id, &exec, &format!("+1212555{i:04}")).await;
        calls.push((exec, i64::from(i) * 37 + 1));
    }
    let tasks: Vec<_> = calls
        .iter()
        .map(|(exec, secs)| {
            let ingestor = app.services.ingestor().clone();
            let tenant = tenant.clone();
            let report = ended(exec, CallStatus::Completed, Some(*secs as f64));
            tokio::spawn(async move {
                ingestor
                    .ingest(&tenant, &report, EventSource::Webhook)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let expected: i64 = calls.iter().map(|(_, s)| cost(*s)).sum();
    let a = account(&app, &t.key).await;
    assert_eq!(a["me"]["balance"], 1_000_000 - expected, "{a}");
    assert_eq!(a["creditLedger"]["totalCount"], 31);
    assert_eq!(a["me"]["credits"]["reserved"], 0);
    assert_ledger_adds_up(&a);
    let charge = a["creditLedger"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["billedSeconds"] == 38)
        .unwrap()
        .clone();
    assert_eq!(charge["kind"], "CALL_CHARGE");
    assert_eq!(charge["amount"], -110);
    assert_eq!(charge["callTotal"], 110);
    assert_eq!(charge["providerCost"], 0.38);
    assert_eq!(charge["actor"], "system");

    // The same report again charges nothing; a later, longer duration charges the
    // difference; a shorter one gives it back.
    let ingest_from = |r: CallReport, source: EventSource| {
        let ingestor = app.services.ingestor().clone();
        let tenant = tenant.clone();
        async move { ingestor.ingest(&tenant, &r, source).await.unwrap() }
    };
    let ingest = |r: CallReport| ingest_from(r, EventSource::Webhook);
    ingest(ended("exec-1", CallStatus::Completed, Some(38.0))).await;
    let before = account(&app, &t.key).await["me"]["balance"]
        .as_i64()
        .unwrap();
    assert_eq!(before, 1_000_000 - expected);
    ingest(ended("exec-1", CallStatus::Completed, Some(125.0))).await;
    let a = account(&app, &t.key).await;
    assert_eq!(a["me"]["balance"], before - (cost(125) - cost(38)), "{a}");
    let newest = &a["creditLedger"]["edges"][0]["node"];
    assert_eq!(newest["kind"], "CALL_CHARGE");
    assert_eq!(newest["callTotal"], cost(125));
    ingest(ended("exec-1", CallStatus::Completed, Some(125.0))).await;
    // A new price applies to calls charged from now on, not to re-sent reports of old ones.
    price(&app, &t.id, 300, 50).await;
    ingest(ended("exec-1", CallStatus::Completed, Some(125.0))).await;
    // A webhook (unsigned) may not lower a price; the provider's API, polled, may.
    ingest(ended("exec-1", CallStatus::Completed, Some(20.0))).await;
    let a = account(&app, &t.key).await;
    assert_eq!(a["me"]["balance"], before - (cost(125) - cost(38)), "{a}");
    assert_eq!(a["creditLedger"]["totalCount"], 32);
    ingest_from(
        ended("exec-1", CallStatus::Completed, Some(20.0)),
        EventSource::Poll,
    )
    .await;
    let a = account(&app, &t.key).await;
    assert_eq!(a["me"]["balance"], before - (cost(20) - cost(38)), "{a}");
    let refund = &a["creditLedger"]["edges"][0]["node"];
    assert_eq!(refund["kind"], "REFUND");
    assert_eq!(
        refund["amount"],
        cost(125) - cost(20),
        "at the first charge's rate"
    );
    assert_eq!(a["creditLedger"]["totalCount"], 33);
    assert_ledger_adds_up(&a);
    price(&app, &t.id, 100, 10).await;

    // Usage for margins: every call once, net of the re-pricing, beside the provider's cost.
    let u = app
        .ok(
            &t.key,
            "{ creditUsage { calls charged providerCost } }",
            json!({}),
        )
        .await;
    let net = expected - cost(38) + cost(20);
    assert_eq!(u["creditUsage"]["calls"], 30, "{u}");
    assert_eq!(u["creditUsage"]["charged"], net);
    let provider: f64 = calls.iter().map(|(_, s)| *s as f64 / 100.0).sum::<f64>() - 0.38 + 0.2;
    assert!(
        (u["creditUsage"]["providerCost"].as_f64().unwrap() - provider).abs() < 1e-6,
        "{u}"
    );

    // Unanswered calls cost nothing; calls not dialled here (a provider's report of a
    // call placed elsewhere) are not charged.
    placed_call(&app, tenant.id, "busy-1", "+12125559001").await;
    ingest(ended("busy-1", CallStatus::Busy, None)).await;
    ingest(ended("elsewhere-1", CallStatus::Completed, Some(300.0))).await;
    let a = account(&app, &t.key).await;
    assert_eq!(a["creditLedger"]["totalCount"], 33, "{a}");
}
on_both!(
    charges_are_exact,
    charges_are_exact_once_and_follow_late_durations
);

async fn never_below_zero_and_the_balance_events(app: TestApp) {
    let t = app.create_tenant("Thin", "US").await;
    let tenant = app.tenant_model(&t.id).await;
    app.ok(
        &t.key,
        "mutation { createWebhookEndpoint(input: {url: \"http://127.0.0.1:9/hook\", events: [\"balance.*\"]}) { secret } }",
        json!({}),
    )
    .await;
    price(&app, &t.id, 100, 10).await;
    app.ok(
        &t.key,
        "mutation { setLowBalanceThreshold(threshold: 300) { lowBalanceThreshold } }",
        json!({}),
    )
    .await;
    top_up(&app, &t.id, 700, None).await;
    for (exec, secs) in [("a", 30.0), ("b", 900.0)] {
        placed_call(&app, tenant.id, exec, "+12125550100").await;
        app.services
            .ingestor()
            .ingest(
                &tenant,
                &ended(exec, CallStatus::Completed, Some(secs)),
                EventSource::Webhook,
            )
            .await
            .unwrap();
    }
    let a = account(&app, &t.key).await;
    assert_eq!(a["me"]["balance"], 0, "{a}");
    assert_ledger_adds_up(&a);
    // The long call cost 1,510 and found 590: it took that and records the rest as due.
    let last = &a["creditLedger"]["edges"][0]["node"];
    assert_eq!(last["amount"], -590, "{a}");
    assert_eq!(last["callTotal"], 1510);
    assert_eq!(a["me"]["credits"]["canDial"], false);

    let events = eventually(10, || async {
        let rows = entity::webhook_delivery::Entity::find()
            .filter(entity::webhook_delivery::Column::TenantId.eq(tenant.id))
            .all(&app.db)
            .await
            .unwrap();
        let kinds: Vec<String> = rows.into_iter().map(|d| d.event_type).collect();
        (kinds.len() >= 2).then_some(kinds)
    })
    .await;
    assert!(events.iter().any(|k| k == "balance.low"), "{events:?}");
    assert!(events.iter().any(|k| k == "balance.depleted"), "{events:?}");
    assert_eq!(events.len(), 2, "each crossing once: {events:?}");

    // A new price the balance cannot pay for depletes it too.
    top_up(&app, &t.id, 2_000, None).await;
    price(&app, &t.id, 1_000, 10).await;
    let depleted = eventually(10, || async {
        let n = entity::webhook_delivery::Entity::find()
            .filter(entity::webhook_delivery::Column::TenantId.eq(tenant.id))
            .filter(entity::webhook_delivery::Column::EventType.eq("balance.depleted"))
            .count(&app.db)
            .await
            .unwrap();
        (n == 2).then_some(n)
    })
    .await;
    assert_eq!(depleted, 2);
}
on_both!(
    never_below_zero,
    never_below_zero_and_the_balance_events,
    [("WEBHOOK_URL_ALLOWLIST", "127.0.0.1")]
);

async fn reserves_hold_twenty_calls_to_the_balance(app: TestApp) {
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            "mutation { createTenant(input: {name: \"Busy\", concurrencyLimit: 50}) { apiKey tenant { id } } }",
            json!({}),
        )
        .await;
    let key = body["data"]["createTenant"]["apiKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let tenant_id = body["data"]["createTenant"]["tenant"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = app.create_agent(&key, "Sim").await;
    // A reserve is 5 minutes at 100: 500. The balance covers ten, not eleven.
    price(&app, &tenant_id, 100, 0).await;
    top_up(&app, &tenant_id, 5_499, None).await;
    let starts: Vec<_> = (0..20)
        .map(|i| {
            let app_url = app.url("/graphql");
            let client = app.client.clone();
            let key = key.clone();
            let agent = agent.clone();
            tokio::spawn(async move {
                let body: Value = client
                    .post(app_url)
                    .bearer_auth(key)
                    .json(&json!({ "query": START, "variables": { "i": { "agentId": agent, "phoneNumber": format!("+1212555{:04}", 7000 + i) } } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body
            })
        })
        .collect();
    for s in starts {
        let body = s.await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
    }
    let tenant = Uuid::parse_str(&tenant_id).unwrap();
    let (placed, low) = eventually(30, || async {
        let calls = entity::call::Entity::find()
            .filter(entity::call::Column::TenantId.eq(tenant))
            .all(&app.db)
            .await
            .unwrap();
        let queued = calls.iter().any(|c| c.status == CallStatus::Queued);
        let low = calls
            .iter()
            .filter(|c| c.status == CallStatus::BalanceLow)
            .count();
        let placed = calls
            .iter()
            .filter(|c| c.provider_execution_id.is_some())
            .count();
        (!queued && placed + low == 20).then_some((placed, low))
    })
    .await;
    assert_eq!((placed, low), (10, 10));
    let a = account(&app, &key).await;
    assert_eq!(a["me"]["credits"]["reserved"], 5_000, "{a}");
    assert_eq!(a["me"]["credits"]["available"], 499);
    assert_eq!(a["me"]["credits"]["liveCalls"], 10);
    let holds = entity::credit_hold::Entity::find()
        .filter(entity::credit_hold::Column::TenantId.eq(tenant))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(holds, 10);
    let refused = entity::call::Entity::find()
        .filter(entity::call::Column::Status.eq(CallStatus::BalanceLow))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        refused
            .error_message
            .unwrap()
            .contains(domain::credits::BALANCE_REASON)
    );
}
on_both!(
    reserves_hold,
    reserves_hold_twenty_calls_to_the_balance,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("SYSTEM_CONCURRENT_CALLS_LIMIT", "100"),
        ("SIMULATOR_SPEED", "1")
    ]
);

async fn campaign_pauses_for_balance_and_resumes_after_top_up(app: TestApp) {
    let (tenant_id, key) = crate::campaigns::tenant_with_limit(&app, 5).await;
    let agent = app.create_agent(&key, "Sim").await;
    price(&app, &tenant_id, 100, 10).await;
    let made = crate::campaigns::create(
        &app,
        &key,
        json!({ "name": "Spend", "agentId": agent, "csv": crate::campaigns::numbers(20, "+1212555"), "concurrencyLimit": 3 }),
    )
    .await;
    let id = made["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &key,
        "mutation($id: ID!) { startCampaign(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
    // Nothing to spend: it pauses, says why, and dials no one.
    let c = eventually(20, || async {
        let c = crate::campaigns::campaign(&app, &key, &id).await;
        (c["status"] == "PAUSED").then_some(c)
    })
    .await;
    assert_eq!(c["pausedReason"], "balance", "{c}");
    assert_eq!(c["stats"]["pending"], 20, "{c}");
    assert!(
        c["items"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["attempts"] == 0),
        "{c}"
    );

    // A top-up worth two calls' reserves runs it again until the credit is spent, then
    // it pauses again; the balance never goes below zero, and items whose call found no
    // credit went back to the queue without spending an attempt.
    top_up(&app, &tenant_id, 1_200, None).await;
    let c = crate::campaigns::campaign(&app, &key, &id).await;
    assert_eq!(c["status"], "RUNNING", "{c}");
    let c = eventually(60, || async {
        let c = crate::campaigns::campaign(&app, &key, &id).await;
        (c["status"] == "PAUSED").then_some(c)
    })
    .await;
    assert_eq!(c["pausedReason"], "balance", "{c}");
    assert!(c["stats"]["pending"].as_i64().unwrap() > 0, "{c}");
    assert!(
        c["items"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["attempts"].as_i64().unwrap() <= 1),
        "{c}"
    );
    let a = account(&app, &key).await;
    assert_ledger_adds_up(&a);
    assert!(a["me"]["balance"].as_i64().unwrap() < 510, "{a}");
    assert_eq!(a["me"]["credits"]["reserved"], 0, "{a}");

    // A user's pause outlasts a top-up; resuming is theirs.
    let paused = app
        .ok(
            &key,
            "mutation($id: ID!) { pauseCampaign(id: $id) { status pausedReason } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(paused["pauseCampaign"]["pausedReason"], "paused by request");
    top_up(&app, &tenant_id, 1_000_000, None).await;
    let c = crate::campaigns::campaign(&app, &key, &id).await;
    assert_eq!(c["status"], "PAUSED", "{c}");

    // The user's resume runs it to the end.
    app.ok(
        &key,
        "mutation($id: ID!) { resumeCampaign(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
    let c = crate::campaigns::campaign(&app, &key, &id).await;
    assert_eq!(c["status"], "RUNNING", "{c}");
    let c = eventually(60, || async {
        let c = crate::campaigns::campaign(&app, &key, &id).await;
        (c["status"] == "COMPLETED").then_some(c)
    })
    .await;
    crate::campaigns::assert_stats_match_items(&c);
    let a = account(&app, &key).await;
    assert_ledger_adds_up(&a);
    assert_eq!(a["me"]["credits"]["reserved"], 0, "{a}");
    // Every call that connected was charged once, at its price.
    let calls = entity::call::Entity::find()
        .filter(entity::call::Column::TenantId.eq(Uuid::parse_str(&tenant_id).unwrap()))
        .all(&app.db)
        .await
        .unwrap();
    let expected: i64 = calls
        .iter()
        .filter_map(|c| c.duration_seconds.filter(|d| *d > 0.0))
        .map(|d| cost(d.ceil() as i64))
        .sum();
    assert_eq!(a["me"]["balance"], 1_001_200 - expected, "{a}");
    assert!(
        c["items"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["attempts"] == 1),
        "every item dialled once: {c}"
    );
}
on_both!(
    campaign_pauses_for_balance,
    campaign_pauses_for_balance_and_resumes_after_top_up,
    [
        ("RUN_WORKER", "true"),
        ("WORKER_POLL_MS", "20"),
        ("SIMULATOR_SPEED", "400")
    ]
);
