//! Tenant B can neither see nor touch tenant A's data, by id, by list or through nesting.

use serde_json::json;

use crate::common::{TestApp, code};
use crate::on_both;

async fn isolation(app: TestApp) {
    let a = app.create_tenant("A", "US").await;
    let b = app.create_tenant("B", "US").await;
    let a_agent = app.create_agent(&a.key, "A agent").await;
    let a_customer = app.create_customer(&a.key, "+16502530000", "Ann").await;
    let a_other = app.create_customer(&a.key, "+16502530001", "Other").await;
    let a_call = app
        .insert_call(&a.id, Some(&a_customer), Some(&a_agent))
        .await;
    let a_key_id =
        app.ok(&a.key, "{ apiKeys { id } }", json!({})).await["apiKeys"][0]["id"].clone();

    // Reads by id: null, exactly like an id that does not exist.
    let reads = app
        .ok(
            &b.key,
            "query($c: ID!, $g: ID!, $k: ID!) { customer(id: $c) { id } agent(id: $g) { id } call(id: $k) { id } customerByPhone(phone: \"+16502530000\") { id } }",
            json!({ "c": a_customer, "g": a_agent, "k": a_call }),
        )
        .await;
    assert_eq!(
        reads,
        json!({ "customer": null, "agent": null, "call": null, "customerByPhone": null })
    );

    // Lists show nothing of A.
    let lists = app
        .ok(
            &b.key,
            "{ customers { totalCount edges { node { id } } } calls { totalCount } agents { id } }",
            json!({}),
        )
        .await;
    assert_eq!(lists["customers"]["totalCount"], 0);
    assert_eq!(lists["calls"]["totalCount"], 0);
    assert_eq!(lists["agents"], json!([]));
    let filtered = app
        .ok(
            &b.key,
            "query($c: ID!) { calls(filter: {customerId: $c}) { totalCount } }",
            json!({ "c": a_customer }),
        )
        .await;
    assert_eq!(filtered["calls"]["totalCount"], 0);

    // Mutations on A's ids: NOT_FOUND, and A's data is untouched.
    let attempts = [
        (
            "mutation($id: ID!) { updateCustomer(id: $id, input: {name: \"pwned\"}) { id } }",
            json!({ "id": a_customer }),
        ),
        (
            "mutation($id: ID!) { deleteCustomer(id: $id) }",
            json!({ "id": a_customer }),
        ),
        (
            "mutation($id: ID!) { updateAgent(id: $id, input: {name: \"pwned\"}) { id } }",
            json!({ "id": a_agent }),
        ),
        (
            "mutation($id: ID!) { deleteAgent(id: $id) }",
            json!({ "id": a_agent }),
        ),
        (
            "mutation($id: ID!) { revokeApiKey(id: $id) }",
            json!({ "id": a_key_id }),
        ),
        (
            "mutation($p: ID!, $d: ID!) { mergeCustomers(primaryId: $p, duplicateId: $d) { id } }",
            json!({ "p": a_customer, "d": a_other }),
        ),
    ];
    for (m, vars) in attempts {
        let body = app.gql(Some(&b.key), m, vars).await;
        assert_eq!(code(&body), "NOT_FOUND", "{m}: {body}");
    }
    // B merging its own customer with A's: still NOT_FOUND, nothing moves.
    let b_customer = app.create_customer(&b.key, "+16502530000", "Bob").await;
    let body = app
        .gql(
            Some(&b.key),
            "mutation($p: ID!, $d: ID!) { mergeCustomers(primaryId: $p, duplicateId: $d) { id } }",
            json!({ "p": b_customer, "d": a_customer }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");

    let still = app
        .ok(
            &a.key,
            "query($c: ID!, $g: ID!) { customer(id: $c) { name calls { totalCount } } agent(id: $g) { name } me { id } }",
            json!({ "c": a_customer, "g": a_agent }),
        )
        .await;
    assert_eq!(still["customer"]["name"], "Ann");
    assert_eq!(still["customer"]["calls"]["totalCount"], 1);
    assert_eq!(still["agent"]["name"], "A agent");
    app.ok(&a.key, "{ me { id } }", json!({})).await;

    // Nested fields are scoped too: a B call that points at A's customer and agent
    // (as a forged or corrupt row would) resolves them to null.
    let forged = app
        .insert_call(&b.id, Some(&a_customer), Some(&a_agent))
        .await;
    let nested = app
        .ok(
            &b.key,
            "query($id: ID!) { call(id: $id) { customer { id } agent { id } events { status } } }",
            json!({ "id": forged }),
        )
        .await;
    assert_eq!(nested["call"]["customer"], json!(null));
    assert_eq!(nested["call"]["agent"], json!(null));
    assert_eq!(nested["call"]["events"].as_array().unwrap().len(), 1);
    // And A's customer never lists B's forged call.
    let a_calls = app
        .ok(
            &a.key,
            "query($c: ID!) { customer(id: $c) { calls { totalCount edges { node { id } } } } }",
            json!({ "c": a_customer }),
        )
        .await;
    assert_eq!(a_calls["customer"]["calls"]["totalCount"], 1);
    assert_eq!(
        a_calls["customer"]["calls"]["edges"][0]["node"]["id"],
        a_call.as_str()
    );
}
on_both!(tenant_isolation, isolation);
