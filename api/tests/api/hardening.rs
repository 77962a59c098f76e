//! The GraphQL edge: depth, complexity/aliases, directives, batches, body size, GET, content type.

use serde_json::{Value, json};

use crate::common::{TestApp, code};
use crate::on_both;

async fn post_raw(app: &TestApp, key: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn limits(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;

    // Depth: nesting beyond 10 levels.
    let deep = "{ calls { edges { node { customer { calls { edges { node { agent { calls { edges { node { id } } } } } } } } } } } }";
    let body = app.gql(Some(&t.key), deep, json!({})).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    assert!(body["data"].is_null());

    // Aliases: many copies of a cheap field add up to the complexity limit.
    let aliases: String = (0..3000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let body = app
        .gql(Some(&t.key), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(
        code(&body),
        "QUERY_TOO_COMPLEX",
        "{}",
        &body.to_string()[..200.min(body.to_string().len())]
    );

    // Complexity through page sizes: 100 customers x 100 calls each.
    let wide = "{ customers(first: 100) { edges { node { calls(first: 100) { edges { node { id status } } } } } } }";
    assert_eq!(
        code(&app.gql(Some(&t.key), wide, json!({})).await),
        "QUERY_TOO_COMPLEX"
    );
    // ... while the dashboard's page of 50 customers with 5 calls each is allowed.
    app.ok(&t.key, "{ customers(first: 50) { edges { node { id phoneNumber calls(first: 5) { edges { node { id status } } } } } } }", json!({})).await;

    // Directives: more than 5 on one field.
    let directives = "{ me { id @include(if: true) @include(if: true) @include(if: true) @include(if: true) @include(if: true) @include(if: true) } }";
    let body = app.gql(Some(&t.key), directives, json!({})).await;
    assert!(body["errors"].is_array(), "{body}");
    assert!(body["errors"][0]["extensions"]["code"].is_string());

    // Batches: up to 10 operations, refused beyond.
    let one = json!({ "query": "{ me { id } }" });
    let ten: Vec<Value> = (0..10).map(|_| one.clone()).collect();
    let (status, body) = post_raw(
        &app,
        &t.key,
        "application/json",
        serde_json::to_vec(&ten).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 10);
    let eleven: Vec<Value> = (0..11).map(|_| one.clone()).collect();
    let (status, body) = post_raw(
        &app,
        &t.key,
        "application/json",
        serde_json::to_vec(&eleven).unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "BAD_USER_INPUT");

    // Body over 1 MiB: 413 with a JSON error, and nothing is executed.
    let big = json!({ "query": "mutation($n: String) { createCustomer(input: {phoneNumber: \"+16502530000\", notes: $n}) { id } }", "variables": { "n": "x".repeat(1024 * 1024 + 10) } });
    let (status, body) = post_raw(
        &app,
        &t.key,
        "application/json",
        serde_json::to_vec(&big).unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert!(body["errors"].is_array(), "{body}");
    let count = app
        .ok(&t.key, "{ customers { totalCount } }", json!({}))
        .await;
    assert_eq!(count["customers"]["totalCount"], 0);

    // Not JSON (form posts, multipart): refused.
    let (status, _) = post_raw(
        &app,
        &t.key,
        "application/x-www-form-urlencoded",
        b"query={me{id}}".to_vec(),
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = post_raw(
        &app,
        &t.key,
        "multipart/form-data; boundary=x",
        b"--x--".to_vec(),
    )
    .await;
    assert_eq!(status, 415);
    let (status, body) = post_raw(&app, &t.key, "application/json", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "BAD_USER_INPUT");

    // GET: queries run, mutations are refused, no query serves GraphiQL.
    let get = |q: &str| {
        app.client
            .get(app.url("/graphql"))
            .query(&[("query", q)])
            .bearer_auth(&t.key)
            .send()
    };
    let res = get("{ me { name } }").await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["me"]["name"],
        "Acme"
    );
    let res = get("mutation { createCustomer(input: {phoneNumber: \"+16502530000\"}) { id } }")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    let res = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("graphiql"));
    let count = app
        .ok(&t.key, "{ customers { totalCount } }", json!({}))
        .await;
    assert_eq!(count["customers"]["totalCount"], 0);
}
on_both!(edge_limits, limits);

async fn error_codes(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    for (query, expected) in [
        ("{ me { id ", "BAD_USER_INPUT"),
        ("{ me { nope } }", "BAD_USER_INPUT"),
        (
            "{ customers(filter: {status: SOMETIMES}) { totalCount } }",
            "BAD_USER_INPUT",
        ),
        (
            "query($id: ID!) { customer(id: $id) { id } }",
            "BAD_USER_INPUT",
        ),
        ("{ customer(id: \"123\") { id } }", "BAD_USER_INPUT"),
        (
            "mutation { updateAgent(id: \"018f0000-0000-7000-8000-000000000000\", input: {}) { id } }",
            "NOT_FOUND",
        ),
    ] {
        let body = app.gql(Some(&t.key), query, json!({})).await;
        assert_eq!(code(&body), expected, "{query}: {body}");
    }
    // Every error of every response carries a code.
    let body = app
        .gql(
            Some(&t.key),
            "{ a: customer(id: \"x\") { id } b: me { nope } }",
            json!({}),
        )
        .await;
    for e in body["errors"].as_array().unwrap() {
        assert!(e["extensions"]["code"].is_string(), "{e}");
    }
}
on_both!(graphql_error_codes, error_codes);
