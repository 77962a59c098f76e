//! Agent CRUD.

use serde_json::json;

use crate::common::{TestApp, code};
use crate::on_both;

async fn agents(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let create = "mutation($i: CreateAgentInput!) { createAgent(input: $i) { id name provider providerAgentId businessName } }";
    let bolna = app
        .ok(&t.key, create, json!({ "i": { "name": "Sales", "provider": "BOLNA", "providerAgentId": "6f1c2d7e-3b4a-4c59-9e21-0d8a7b6c5e41", "businessName": "Acme" } }))
        .await["createAgent"]
        .clone();
    assert_eq!(bolna["provider"], "BOLNA");
    let id = bolna["id"].as_str().unwrap().to_owned();

    let body = app
        .gql(
            Some(&t.key),
            create,
            json!({ "i": { "name": "No id", "provider": "TELI" } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "providerAgentId");
    let body = app
        .gql(Some(&t.key), create, json!({ "i": { "name": "Dup", "provider": "BOLNA", "providerAgentId": "6f1c2d7e-3b4a-4c59-9e21-0d8a7b6c5e41" } }))
        .await;
    assert_eq!(code(&body), "CONFLICT");
    let body = app
        .gql(
            Some(&t.key),
            create,
            json!({ "i": { "name": "Bad", "provider": "VAPI" } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "unknown enum value: {body}");

    let sim = app
        .ok(
            &t.key,
            create,
            json!({ "i": { "name": "Sim", "provider": "SIMULATOR" } }),
        )
        .await;
    assert!(
        sim["createAgent"]["providerAgentId"]
            .as_str()
            .unwrap()
            .starts_with("sim-")
    );

    let updated = app
        .ok(&t.key, "mutation($id: ID!) { updateAgent(id: $id, input: {name: \"Renamed\", businessName: null}) { name businessName providerAgentId } }", json!({ "id": id }))
        .await;
    assert_eq!(
        updated["updateAgent"],
        json!({ "name": "Renamed", "businessName": null, "providerAgentId": "6f1c2d7e-3b4a-4c59-9e21-0d8a7b6c5e41" })
    );

    // Deleting an agent keeps its calls, without the agent.
    let customer = app.create_customer(&t.key, "+16502530000", "Ann").await;
    let call = app.insert_call(&t.id, Some(&customer), Some(&id)).await;
    let with_calls = app
        .ok(
            &t.key,
            "query($id: ID!) { agent(id: $id) { calls { totalCount edges { node { id } } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(with_calls["agent"]["calls"]["totalCount"], 1);
    app.ok(
        &t.key,
        "mutation($id: ID!) { deleteAgent(id: $id) }",
        json!({ "id": id }),
    )
    .await;
    let after = app
        .ok(
            &t.key,
            "query($id: ID!) { call(id: $id) { id agent { id } customer { id } } agents { name } }",
            json!({ "id": call }),
        )
        .await;
    assert_eq!(after["call"]["agent"], json!(null));
    assert_eq!(after["call"]["customer"]["id"], customer.as_str());
    assert_eq!(after["agents"], json!([{ "name": "Sim" }]));
}
on_both!(agent_crud, agents);
