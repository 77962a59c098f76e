//! Keys, roles and the operator token.

use serde_json::json;

use crate::common::{ADMIN_TOKEN, TestApp, code};
use crate::on_both;

async fn roles(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;

    // No key, a made-up key, a key-shaped garbage: all UNAUTHENTICATED.
    for key in [None, Some("sb_0000"), Some("not a key")] {
        let body = app.gql(key, "{ me { id } }", json!({})).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    // The operator token is not a tenant key.
    let body = app.gql(Some(ADMIN_TOKEN), "{ me { id } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");

    let issue =
        "mutation($r: Role!) { createApiKey(input: {name: \"k\", role: $r}) { id apiKey role } }";
    let viewer = app.ok(&t.key, issue, json!({ "r": "VIEWER" })).await["createApiKey"].clone();
    let member = app.ok(&t.key, issue, json!({ "r": "MEMBER" })).await["createApiKey"].clone();
    assert_eq!(viewer["role"], "VIEWER");
    let (vkey, mkey) = (
        viewer["apiKey"].as_str().unwrap(),
        member["apiKey"].as_str().unwrap(),
    );

    // VIEWER reads but cannot write anything.
    app.ok(
        vkey,
        "{ me { id } customers { totalCount } agents { id } }",
        json!({}),
    )
    .await;
    for mutation in [
        "mutation { createCustomer(input: {phoneNumber: \"+16502530000\"}) { id } }",
        "mutation { createAgent(input: {name: \"a\", provider: SIMULATOR}) { id } }",
        "mutation { createApiKey(input: {name: \"x\", role: ADMIN}) { id } }",
    ] {
        let body = app.gql(Some(vkey), mutation, json!({})).await;
        assert_eq!(code(&body), "FORBIDDEN", "{mutation}: {body}");
    }
    // MEMBER writes CRM data but not keys.
    app.create_customer(mkey, "+16502530000", "Ann").await;
    let body = app.gql(Some(mkey), issue, json!({ "r": "ADMIN" })).await;
    assert_eq!(code(&body), "FORBIDDEN");
    let body = app.gql(Some(mkey), "{ apiKeys { id } }", json!({})).await;
    assert_eq!(code(&body), "FORBIDDEN");

    // Revoking a key stops it at once; the secret is never stored or listed.
    let keys = app
        .ok(&t.key, "{ apiKeys { id prefix revokedAt } }", json!({}))
        .await;
    assert_eq!(keys["apiKeys"].as_array().unwrap().len(), 3);
    assert!(!keys.to_string().contains(vkey));
    app.ok(
        &t.key,
        "mutation($id: ID!) { revokeApiKey(id: $id) }",
        json!({ "id": viewer["id"] }),
    )
    .await;
    let body = app.gql(Some(vkey), "{ me { id } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    app.ok(mkey, "{ me { id } }", json!({})).await;
}
on_both!(roles_and_keys, roles);

async fn create_tenant_needs_the_operator(app: TestApp) {
    let t = app.create_tenant("Acme", "IN").await;
    let m = "mutation { createTenant(input: {name: \"Evil\"}) { apiKey } }";
    assert_eq!(code(&app.gql(None, m, json!({})).await), "UNAUTHENTICATED");
    assert_eq!(
        code(&app.gql(Some(&t.key), m, json!({})).await),
        "FORBIDDEN"
    );
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            "mutation { createTenant(input: {name: \"\"}) { apiKey } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "name");
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            "mutation { createTenant(input: {name: \"X\", defaultRegion: \"ZZ\"}) { apiKey } }",
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["field"], "defaultRegion");
    let me = app
        .ok(
            &t.key,
            "{ me { name defaultRegion timezone concurrencyLimit webhookToken } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["defaultRegion"], "IN");
    assert_eq!(me["me"]["timezone"], "UTC");
    assert_eq!(me["me"]["concurrencyLimit"], 10);
    assert_eq!(me["me"]["webhookToken"], t.webhook_token.as_str());
}
on_both!(operator_token, create_tenant_needs_the_operator);
