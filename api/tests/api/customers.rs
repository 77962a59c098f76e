//! Customer CRUD, filters, search, merge, and the DataLoader statement budget.

use serde_json::json;

use crate::common::{TestApp, code};
use crate::on_both;

async fn crud_filters_and_search(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let created = app
        .ok(
            &t.key,
            "mutation { createCustomer(input: {phoneNumber: \"650-253-0000\", name: \"Priya Sharma\", email: \"priya@example.com\", status: INTERESTED, tags: [\"VIP\", \" hot \", \"vip\"], notes: \"likes gold\", leadScore: 72.5}) { id phoneNumber name email status tags notes leadScore source createdAt } }",
            json!({}),
        )
        .await["createCustomer"]
        .clone();
    assert_eq!(created["phoneNumber"], "+16502530000");
    assert_eq!(created["tags"], json!(["vip", "hot"]));
    assert_eq!(created["status"], "INTERESTED");
    assert_eq!(created["source"], "API");
    let id = created["id"].as_str().unwrap().to_owned();
    app.create_customer(&t.key, "+16502530001", "Sam Lee").await;
    app.create_customer(&t.key, "+14155550123", "Priyanka")
        .await;

    let count = |filter: serde_json::Value| {
        let app = &app;
        let key = t.key.clone();
        async move {
            app.ok(&key, "query($f: CustomerFilter) { customers(filter: $f) { totalCount edges { node { name } } } }", json!({ "f": filter }))
                .await["customers"]["totalCount"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(count(json!({ "status": "INTERESTED" })).await, 1);
    assert_eq!(count(json!({ "status": "NEW" })).await, 2);
    assert_eq!(count(json!({ "tag": "VIP" })).await, 1);
    assert_eq!(count(json!({ "tag": "cold" })).await, 0);
    assert_eq!(count(json!({ "search": "priy" })).await, 2);
    assert_eq!(count(json!({ "search": "PRIYA SH" })).await, 1);
    assert_eq!(count(json!({ "search": "(650) 253-0001" })).await, 1);
    assert_eq!(count(json!({ "search": "253-000" })).await, 2);
    assert_eq!(count(json!({ "search": "100%" })).await, 0);
    assert_eq!(count(json!({ "search": "_" })).await, 0);

    // Partial update: omitted fields stay, null clears.
    let updated = app
        .ok(
            &t.key,
            "mutation($id: ID!) { updateCustomer(id: $id, input: {status: BOOKED, email: null, tags: [\"closed\"], segment: \"smb\"}) { name email status tags segment notes } }",
            json!({ "id": id }),
        )
        .await["updateCustomer"]
        .clone();
    assert_eq!(
        updated,
        json!({ "name": "Priya Sharma", "email": null, "status": "BOOKED", "tags": ["closed"], "segment": "smb", "notes": "likes gold" })
    );
    assert_eq!(count(json!({ "tag": "vip" })).await, 0);
    assert_eq!(count(json!({ "tag": "closed" })).await, 1);

    // Bad input names the field and stores nothing.
    for (input, field) in [
        (json!({ "email": "not-an-email" }), "email"),
        (json!({ "leadScore": 101.0 }), "leadScore"),
        (json!({ "name": "x".repeat(201) }), "name"),
    ] {
        let body = app
            .gql(Some(&t.key), "mutation($id: ID!, $i: UpdateCustomerInput!) { updateCustomer(id: $id, input: $i) { id } }", json!({ "id": id, "i": input }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field);
    }
    let body = app
        .gql(
            Some(&t.key),
            "mutation { updateCustomer(id: \"nope\", input: {}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "id");

    app.ok(
        &t.key,
        "mutation($id: ID!) { deleteCustomer(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    let gone = app
        .ok(
            &t.key,
            "query($id: ID!) { customer(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(gone["customer"], json!(null));
    let body = app
        .gql(
            Some(&t.key),
            "mutation($id: ID!) { deleteCustomer(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
}
on_both!(customer_crud, crud_filters_and_search);

async fn merge(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let agent = app.create_agent(&t.key, "Agent").await;
    let primary = app
        .ok(&t.key, "mutation { createCustomer(input: {phoneNumber: \"+16502530000\", tags: [\"a\"]}) { id } }", json!({}))
        .await["createCustomer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dup = app
        .ok(
            &t.key,
            "mutation { createCustomer(input: {phoneNumber: \"+16502530009\", name: \"Dee\", email: \"d@x.io\", tags: [\"b\", \"a\"], status: CALLBACK}) { id } }",
            json!({}),
        )
        .await["createCustomer"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.insert_call(&t.id, Some(&primary), Some(&agent)).await;
    let c1 = app.insert_call(&t.id, Some(&dup), Some(&agent)).await;
    let c2 = app.insert_call(&t.id, Some(&dup), None).await;

    let body = app
        .gql(
            Some(&t.key),
            "mutation($p: ID!) { mergeCustomers(primaryId: $p, duplicateId: $p) { id } }",
            json!({ "p": primary }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");

    let merged = app
        .ok(
            &t.key,
            "mutation($p: ID!, $d: ID!) { mergeCustomers(primaryId: $p, duplicateId: $d) { id phoneNumber name email status tags calls { totalCount } interactions { callId } } }",
            json!({ "p": primary, "d": dup }),
        )
        .await["mergeCustomers"]
        .clone();
    assert_eq!(merged["id"], primary.as_str());
    assert_eq!(merged["phoneNumber"], "+16502530000");
    assert_eq!(merged["name"], "Dee");
    assert_eq!(merged["email"], "d@x.io");
    assert_eq!(merged["status"], "CALLBACK");
    assert_eq!(merged["tags"], json!(["a", "b"]));
    assert_eq!(merged["calls"]["totalCount"], 3);
    let interaction_ids: Vec<&str> = merged["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["callId"].as_str().unwrap())
        .collect();
    assert_eq!(interaction_ids.len(), 3);
    assert!(interaction_ids.contains(&c1.as_str()) && interaction_ids.contains(&c2.as_str()));

    let after = app
        .ok(&t.key, "query($d: ID!) { customer(id: $d) { id } customers { totalCount } customerByPhone(phone: \"+16502530009\") { id } }", json!({ "d": dup }))
        .await;
    assert_eq!(after["customer"], json!(null));
    assert_eq!(after["customers"]["totalCount"], 1);
    assert_eq!(after["customerByPhone"], json!(null));
    let calls = app
        .ok(
            &t.key,
            "query($c: ID!) { calls(filter: {customerId: $c}) { totalCount } }",
            json!({ "c": primary }),
        )
        .await;
    assert_eq!(calls["calls"]["totalCount"], 3);
    // The duplicate's number is free again.
    app.create_customer(&t.key, "+16502530009", "New").await;
}
on_both!(merge_customers, merge);

/// A page of customers with their calls costs the same number of statements whatever its size.
async fn statement_budget(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let agent = app.create_agent(&t.key, "Agent").await;
    for i in 0..50 {
        let c = app
            .create_customer(
                &t.key,
                &format!("+1650253{:04}", 1000 + i),
                &format!("C{i}"),
            )
            .await;
        for _ in 0..3 {
            app.insert_call(&t.id, Some(&c), Some(&agent)).await;
        }
    }
    let query = "query($n: Int!) { customers(first: $n) { totalCount edges { node { id phoneNumber calls(first: 5) { totalCount edges { node { id status agent { id name } customer { id } events { status } } } } } } } }";
    let mut costs = Vec::new();
    for n in [1, 10, 25] {
        let before = app.statements();
        let data = app.ok(&t.key, query, json!({ "n": n })).await;
        costs.push(app.statements() - before);
        let edges = data["customers"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), n as usize);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["calls"]["edges"].as_array().unwrap().len() == 3)
        );
        assert!(edges.iter().all(|e| e["node"]["calls"]["totalCount"] == 3));
    }
    assert!(
        costs.iter().all(|c| *c == costs[0]),
        "statements per request vary with page size: {costs:?}"
    );
    // auth + page + count + calls + call counts + agents + customers + events
    assert!(costs[0] <= 8, "too many statements: {costs:?}");

    // Nested pages hold each parent's newest calls, in order, with the right hasNextPage.
    let nested = app
        .ok(&t.key, "{ customers(first: 3) { edges { node { id calls(first: 2) { pageInfo { hasNextPage } edges { node { id } } } } } } }", json!({}))
        .await;
    for edge in nested["customers"]["edges"].as_array().unwrap() {
        let node = &edge["node"];
        let direct = app
            .ok(&t.key, "query($c: ID!) { calls(first: 2, filter: {customerId: $c}) { edges { node { id } } } }", json!({ "c": node["id"] }))
            .await;
        assert_eq!(node["calls"]["edges"], direct["calls"]["edges"]);
        assert_eq!(node["calls"]["pageInfo"]["hasNextPage"], true);
    }

    let before = app.statements();
    app.ok(&t.key, "{ calls(first: 100) { edges { node { id agent { name } customer { phoneNumber } events { at } } } } }", json!({})).await;
    assert_eq!(
        app.statements() - before,
        5,
        "auth + page + agents + customers + events"
    );
    let before = app.statements();
    app.ok(
        &t.key,
        "{ agents { id calls(first: 3) { totalCount edges { node { id customer { id } } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        app.statements() - before,
        5,
        "auth + agents + calls + counts + customers"
    );
}
// Key lookups are not cached here, so every request costs the same auth statement.
on_both!(
    dataloader_statement_budget,
    statement_budget,
    [("AUTH_CACHE_SECONDS", "0")]
);

/// A search longer than any name or number is refused, not sent to the database.
async fn oversized_searches_are_refused(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let long = "a".repeat(50_000);
    for q in [
        "query($s: String) { customers(filter: {search: $s}) { totalCount } }",
        "query($s: String) { customers(filter: {search: $s}) { edges { node { id } } } }",
        "query($s: String) { customers(filter: {tag: $s}) { totalCount } }",
    ] {
        let body = app.gql(Some(&t.key), q, json!({ "s": long })).await;
        assert_eq!(
            code(&body),
            "BAD_USER_INPUT",
            "{}",
            &body.to_string()[..200]
        );
    }
    let ok = app
        .ok(
            &t.key,
            "query($s: String) { customers(filter: {search: $s}) { totalCount } }",
            json!({ "s": "a".repeat(200) }),
        )
        .await;
    assert_eq!(ok["customers"]["totalCount"], 0);
}
on_both!(
    oversized_searches_are_refused,
    oversized_searches_are_refused
);

/// A customer's nested calls read only the columns their selection needs (a summary,
/// everything but the long texts, or everything): whichever is read, every field answers
/// as the call itself does.
async fn nested_calls_answer_every_field(app: TestApp) {
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    use serde_json::Value;
    let t = app.create_tenant("Acme", "US").await;
    let agent = app.create_agent(&t.key, "Agent").await;
    let c = app.create_customer(&t.key, "+16502530001", "Ann").await;
    let call_id = app.insert_call(&t.id, Some(&c), Some(&agent)).await;
    let stored = entity::call::Entity::find_by_id(uuid::Uuid::parse_str(&call_id).unwrap())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let mut call = stored.into_active_model();
    call.provider_agent_id = Set(Some("agent-at-provider".into()));
    call.provider_call_id = Set(Some("CA123".into()));
    call.error_message = Set(Some("carrier said no".into()));
    call.recording_url = Set(Some("https://example.com/r.mp3".into()));
    call.hangup_reason = Set(Some("user hung up".into()));
    call.update(&app.db).await.unwrap();

    let fields = [
        "id",
        "provider",
        "providerExecutionId",
        "providerAgentId",
        "errorMessage",
        "providerCallId",
        "direction",
        "status",
        "fromNumber",
        "toNumber",
        "startedAt",
        "endedAt",
        "durationSeconds",
        "cost",
        "transcript",
        "summary",
        "recordingUrl",
        "extractedData",
        "hangupReason",
        "agent { id name }",
        "customer { id phoneNumber }",
        "campaign { id }",
        "analysis { outcome }",
        "events { status }",
        "createdAt",
        "updatedAt",
    ];
    let direct = |selection: &str| format!("query($id: ID!) {{ call(id: $id) {{ {selection} }} }}");
    let nested = |selection: &str| {
        format!(
            "{{ customers(first: 5) {{ edges {{ node {{ calls(first: 5) {{ edges {{ node {{ {selection} }} }} }} }} }} }} }}"
        )
    };
    let check = |expected: &Value, got: &Value, selection: &str| {
        let node = &got["customers"]["edges"][0]["node"]["calls"]["edges"][0]["node"];
        assert_eq!(
            node, &expected["call"],
            "nested calls selecting {selection}"
        );
    };
    let everything = fields.join(" ");
    // One field at a time (the summary fields alone read the summary columns), all of
    // them, and the summary fields through a fragment next to one field outside them.
    let mut selections: Vec<String> = fields.iter().map(|f| format!("id {f}")).collect();
    selections.push(everything);
    selections.push("...S fromNumber".into());
    for selection in &selections {
        let fragment = if selection.contains("...S") {
            " fragment S on Call { status createdAt agent { id } }"
        } else {
            ""
        };
        let expected = app
            .ok(
                &t.key,
                &format!("{}{fragment}", direct(selection)),
                json!({ "id": call_id }),
            )
            .await;
        let got = app
            .ok(
                &t.key,
                &format!("{}{fragment}", nested(selection)),
                json!({}),
            )
            .await;
        check(&expected, &got, selection);
    }
}
on_both!(nested_calls_every_field, nested_calls_answer_every_field);
