//! The GraphQL and HTTP edge against hostile callers: the parse cache, metric labels,
//! failed-authentication limits, the metrics token, introspection through the depth limit,
//! the graphql-response+json media type, the webhook token's readers, and GraphiQL.

use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, TestApp, code};
use crate::on_both;

/// A 16 KiB document of aliased fields, too complex to run (distinct per `i`).
fn field_dense(i: usize) -> String {
    let mut q = format!("query Dense{i} {{ ");
    let mut j = 0;
    while q.len() < 16 * 1024 - 20 {
        q.push_str(&format!("a{j}:me{{id}} "));
        j += 1;
    }
    q.push('}');
    q
}

async fn post(
    app: &TestApp,
    key: Option<&str>,
    body: Value,
    accept: Option<&str>,
) -> (u16, String, Value) {
    let mut req = app.client.post(app.url("/graphql")).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, res.json().await.unwrap_or(Value::Null))
}

/// Hundreds of 16 KiB documents refused as too complex, anonymous or not, leave nothing
/// in the parse cache; what a tenant sends that validates is kept within the byte budget.
async fn the_parse_cache_keeps_only_validated_tenant_documents(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    for i in 0..300 {
        let key = if i % 3 == 0 {
            Some(t.key.as_str())
        } else {
            None
        };
        let (_, _, body) = post(&app, key, json!({ "query": field_dense(i) }), None).await;
        assert!(body["errors"].is_array(), "{i}");
    }
    assert_eq!(
        app.state.parse_cache.bytes(),
        0,
        "refused documents were cached"
    );
    // Anonymous documents that do validate are not kept either.
    for i in 0..50 {
        post(
            &app,
            None,
            json!({ "query": format!("{{ a{i}: __typename }}") }),
            None,
        )
        .await;
    }
    assert_eq!(app.state.parse_cache.len(), 0);
    // A tenant's valid documents are, up to the byte budget.
    for i in 0..2000 {
        let q = format!(
            "{{ a{i}: me {{ id name timezone defaultRegion concurrencyLimit createdAt }} }}"
        );
        app.ok(&t.key, &q, json!({})).await;
    }
    assert!(!app.state.parse_cache.is_empty());
    assert!(
        app.state.parse_cache.bytes() <= api::graphql::parse_cache::DEFAULT_BUDGET_BYTES,
        "{}",
        app.state.parse_cache.bytes()
    );
}
on_both!(
    the_parse_cache_keeps_only_validated_tenant_documents,
    the_parse_cache_keeps_only_validated_tenant_documents
);

/// Operation names and HTTP methods from callers never become unbounded label sets.
async fn metric_labels_are_bounded(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..300 {
        post(
            &app,
            None,
            json!({ "query": "query Q { __typename }", "operationName": format!("anon{tag}x{i}") }),
            None,
        )
        .await;
        let name = format!("t{tag}x{i}");
        post(
            &app,
            Some(&t.key),
            json!({ "query": format!("query {name} {{ me {{ id }} }}"), "operationName": name }),
            None,
        )
        .await;
    }
    for m in ["FOO", "PROPFIND"] {
        let _ = app
            .client
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                app.url("/graphql"),
            )
            .send()
            .await;
    }
    let page = app.get_text("/metrics").await;
    assert!(
        !page.contains(&format!("anon{tag}")),
        "anonymous names became labels"
    );
    let tenant_names = page
        .lines()
        .filter(|l| l.starts_with("graphql_operations_total") && l.contains(&format!("t{tag}x")))
        .count();
    assert!(
        tenant_names <= 200,
        "{tenant_names} tenant operation labels"
    );
    assert!(!page.contains("method=\"FOO\"") && !page.contains("PROPFIND"));
    assert!(
        page.contains("operation=\"unauthenticated\""),
        "anonymous operations were not counted"
    );
    assert!(
        tenant_names > 0 || page.contains("operation=\"other\""),
        "tenant operations were not counted"
    );
}
on_both!(metric_labels_are_bounded, metric_labels_are_bounded);

async fn metrics_can_require_a_token(app: TestApp) {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    let res = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}
on_both!(
    metrics_can_require_a_token,
    metrics_can_require_a_token,
    [("METRICS_TOKEN", "metrics-token-0123456789")]
);

/// Guessing keys or the operator token from one address is cut off; keys already in use
/// keep working, a burst of valid first requests is not refused, webhooks are not affected.
async fn failed_authentications_are_limited_per_address(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let other = app.create_tenant("Other", "US").await;
    app.ok(&t.key, "{ me { id } }", json!({})).await;
    // 40 valid keys used for the first time, all at once (a service starting its pool).
    let mut fresh = Vec::new();
    for i in 0..40 {
        let q = format!(
            "mutation {{ createApiKey(input: {{name: \"k{i}\", role: VIEWER}}) {{ apiKey }} }}"
        );
        fresh.push(
            app.ok(&t.key, &q, json!({})).await["createApiKey"]["apiKey"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let burst = fresh.iter().map(|k| {
        let app = &app;
        async move {
            post(app, Some(k), json!({ "query": "{ me { id } }" }), None)
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(burst).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Five bad keys or operator tokens, then the address is cut off.
    for i in 0..5 {
        let token = if i % 2 == 0 {
            format!("sb_guess{i}")
        } else {
            format!("operator-guess-{i:08}")
        };
        let (status, _, _) = post(
            &app,
            Some(&token),
            json!({ "query": "{ me { id } }" }),
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _, body) = post(
        &app,
        Some("sb_guess99"),
        json!({ "query": "{ me { id } }" }),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (429, "RATE_LIMITED"), "{body}");
    // A key already resolved here keeps working; one never seen is not looked up now.
    app.ok(&t.key, "{ me { id } }", json!({})).await;
    let (status, _, _) = post(
        &app,
        Some(&other.key),
        json!({ "query": "{ me { id } }" }),
        None,
    )
    .await;
    assert_eq!(status, 429);
    // Webhook tokens are not counted (Bolna posts every tenant's reports from one address).
    let (status, _) = app
        .webhook(
            "bolna",
            &t.webhook_token,
            crate::webhooks::bolna_report("e1", "a", "ringing").to_string(),
        )
        .await;
    assert_eq!(status, 200);
    // Requests without credentials are unaffected.
    let (status, _, body) = post(&app, None, json!({ "query": "{ __typename }" }), None).await;
    assert_eq!(
        (status, body["data"]["__typename"].as_str()),
        (200, Some("Query"))
    );
}
on_both!(
    failed_authentications_are_limited_per_address,
    failed_authentications_are_limited_per_address,
    [("AUTH_FAILURES_PER_MINUTE", "5")]
);

const INTROSPECTION: &str = include_str!("fixtures/introspection.graphql");
const GRAPHIQL_INTROSPECTION: &str = include_str!("fixtures/graphiql-introspection.json");

/// The query graphql-js 16 builds (GraphiQL, Apollo, codegen, Postman) and GraphiQL's own
/// request pass the depth limit, with or without a key; data fields stay limited.
async fn standard_introspection_passes(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let graphiql: Value = serde_json::from_str(GRAPHIQL_INTROSPECTION).unwrap();
    for key in [None, Some(t.key.as_str())] {
        for body in [
            json!({ "query": INTROSPECTION, "operationName": "IntrospectionQuery" }),
            graphiql.clone(),
        ] {
            let (status, _, body) = post(&app, key, body, None).await;
            assert_eq!(status, 200);
            assert!(
                body.get("errors").is_none(),
                "{}",
                &body.to_string()[..300.min(body.to_string().len())]
            );
            let types = body["data"]["__schema"]["types"].as_array().unwrap();
            assert!(types.iter().any(|ty| ty["name"] == "Customer"));
        }
    }
    // Introspection may not carry data fields past the depth limit...
    let mixed = "{ __schema { queryType { name } } calls { edges { node { customer { calls { edges { node { agent { calls { edges { node { id } } } } } } } } } } } }";
    let (_, _, body) = post(&app, Some(&t.key), json!({ "query": mixed }), None).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // ... nor ask for the whole schema over and over.
    let repeated = "{ a: __schema { types { name } } b: __schema { types { name } } c: __schema { types { name } } }";
    let (_, _, body) = post(&app, None, json!({ "query": repeated }), None).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    let through_fragments = "query { ...A ...B } fragment A on Query { a: __type(name: \"Call\") { name } b: __type(name: \"Agent\") { name } } fragment B on Query { c: __type(name: \"Tenant\") { name } }";
    let (_, _, body) = post(&app, None, json!({ "query": through_fragments }), None).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    // Deeper than the standard query is still too deep.
    let mut deep = String::from("{ __schema { types { fields { type { ");
    for _ in 0..14 {
        deep.push_str("ofType { ");
    }
    deep.push_str("name");
    deep.push_str(&" }".repeat(14 + 5));
    let (_, _, body) = post(&app, None, json!({ "query": deep }), None).await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
}
on_both!(standard_introspection_passes, standard_introspection_passes);

async fn introspection_can_be_switched_off(app: TestApp) {
    let (_, _, body) = post(&app, None, json!({ "query": INTROSPECTION }), None).await;
    assert!(body["data"]["__schema"].is_null(), "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}
on_both!(
    introspection_can_be_switched_off,
    introspection_can_be_switched_off,
    [("GRAPHQL_INTROSPECTION", "false")]
);

/// `Accept: application/graphql-response+json`: that media type, 400 without `data` for
/// documents that do not parse or validate and for variables that do not coerce;
/// `application/json` clients keep 200.
async fn graphql_response_json_is_spoken(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    const GRJ: &str = "application/graphql-response+json";
    let (status, ct, body) =
        post(&app, None, json!({ "query": "{ __typename }" }), Some(GRJ)).await;
    assert_eq!(
        (status, body["data"]["__typename"].as_str()),
        (200, Some("Query"))
    );
    assert!(ct.starts_with(GRJ), "{ct}");
    for bad in [
        json!({ "query": "{" }),
        json!({ "query": "{ nope }" }),
        json!({ "query": "query($id: ID!) { call(id: $id) { id } }", "variables": { "id": null } }),
    ] {
        let (status, ct, body) = post(&app, Some(&t.key), bad.clone(), Some(GRJ)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(ct.starts_with(GRJ));
        assert!(body.get("data").is_none(), "{body}");
        assert!(body["errors"][0]["message"].is_string());
        let (status, ct, body) =
            post(&app, Some(&t.key), bad.clone(), Some("application/json")).await;
        assert_eq!(status, 200, "{bad}");
        assert!(ct.starts_with("application/json"));
        assert!(body["errors"].is_array());
    }
    // An execution error (a missing key) is a 200 with data, in either media type.
    let (status, _, body) = post(&app, None, json!({ "query": "{ me { id } }" }), Some(GRJ)).await;
    assert_eq!((status, code(&body)), (200, "UNAUTHENTICATED"), "{body}");
    assert!(body.get("data").is_some());
}
on_both!(
    graphql_response_json_is_spoken,
    graphql_response_json_is_spoken
);

/// The webhook token is a write credential: only ADMIN (and the operator creating the
/// tenant) reads it, and rotating it stops the old one at once.
async fn the_webhook_token_is_for_admins(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let key = |role: &'static str| {
        let app = &app;
        let admin = t.key.clone();
        async move {
            app.ok(
                &admin,
                &format!(
                    "mutation {{ createApiKey(input: {{name: \"k\", role: {role}}}) {{ apiKey }} }}"
                ),
                json!({}),
            )
            .await["createApiKey"]["apiKey"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let viewer = key("VIEWER").await;
    let member = key("MEMBER").await;
    for k in [&viewer, &member] {
        let body = app
            .gql(Some(k), "{ me { name webhookToken } }", json!({}))
            .await;
        assert_eq!(body["data"]["me"]["name"], "Acme", "{body}");
        assert!(body["data"]["me"]["webhookToken"].is_null());
        assert_eq!(code(&body), "FORBIDDEN");
        let body = app
            .gql(Some(k), "mutation { rotateWebhookToken }", json!({}))
            .await;
        assert_eq!(code(&body), "FORBIDDEN");
    }
    let shown = app.ok(&t.key, "{ me { webhookToken } }", json!({})).await;
    assert_eq!(shown["me"]["webhookToken"], t.webhook_token.as_str());
    let (status, _) = app
        .webhook(
            "bolna",
            &t.webhook_token,
            crate::webhooks::bolna_report("e1", "a", "ringing").to_string(),
        )
        .await;
    assert_eq!(status, 200);
    let rotated = app
        .ok(&t.key, "mutation { rotateWebhookToken }", json!({}))
        .await["rotateWebhookToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated, t.webhook_token);
    let (status, _) = app
        .webhook(
            "bolna",
            &t.webhook_token,
            crate::webhooks::bolna_report("e2", "a", "ringing").to_string(),
        )
        .await;
    assert_eq!(status, 404, "the old token still works");
    let (status, _) = app
        .webhook(
            "bolna",
            &rotated,
            crate::webhooks::bolna_report("e3", "a", "ringing").to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.ok(&t.key, "{ me { webhookToken } }", json!({})).await["me"]["webhookToken"],
        rotated.as_str()
    );
    // The operator cannot rotate a tenant's token (it has no tenant).
    let body = app
        .gql(
            Some(ADMIN_TOKEN),
            "mutation { rotateWebhookToken }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}
on_both!(
    the_webhook_token_is_for_admins,
    the_webhook_token_is_for_admins
);

/// GraphiQL's page and assets come from the binary under a strict policy.
async fn graphiql_is_served_from_the_binary(app: TestApp) {
    let res = app.client.get(app.url("/graphql")).send().await.unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let page = res.text().await.unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page links outside"
    );
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "init.js",
    ] {
        let res = app
            .client
            .get(app.url(&format!("/graphiql/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{asset}");
        assert!(
            page.contains(&format!("/graphiql/{asset}")),
            "{asset} not on the page"
        );
    }
    let res = app
        .client
        .get(app.url("/graphiql/..%2Fsrc%2Fmain.rs"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
}
on_both!(
    graphiql_is_served_from_the_binary,
    graphiql_is_served_from_the_binary
);

/// U+0000 in any GraphQL input is refused at the edge (PostgreSQL cannot store it), in
/// variables and in the document's own string literals, over POST and GET.
async fn nul_characters_are_refused_at_the_edge(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    for body in [
        json!({ "query": "mutation($n: String) { createCustomer(input: {phoneNumber: \"+16502530000\", name: $n}) { id } }", "variables": { "n": "a\u{0}b" } }),
        json!({ "query": "mutation { createCustomer(input: {phoneNumber: \"+16502530000\", name: \"a\\u0000b\"}) { id } }" }),
        json!({ "query": "query($s: String) { customers(filter: {search: $s}) { totalCount } }", "variables": { "s": "\u{0}" } }),
    ] {
        let (status, _, body) = post(&app, Some(&t.key), body, None).await;
        assert_eq!((status, code(&body)), (400, "BAD_USER_INPUT"), "{body}");
    }
    let res = app
        .client
        .get(app.url("/graphql?query=%7B%20customers(filter%3A%7Bsearch%3A%22%5Cu0000%22%7D)%20%7B%20totalCount%20%7D%20%7D"))
        .bearer_auth(&t.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let all = app
        .ok(&t.key, "{ customers { totalCount } }", json!({}))
        .await;
    assert_eq!(all["customers"]["totalCount"], 0);
}
on_both!(
    nul_characters_are_refused_at_the_edge,
    nul_characters_are_refused_at_the_edge
);

/// Behind the deployment's own proxy, clients are told apart by `X-Forwarded-For`: one
/// client guessing does not cut off the others.
async fn clients_behind_a_trusted_proxy_are_counted_apart(app: TestApp) {
    let t = app.create_tenant("Acme", "US").await;
    let send = |token: String, client: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/graphql"))
                .bearer_auth(token)
                .header("x-forwarded-for", format!("198.51.100.77, {client}"))
                .json(&json!({ "query": "{ me { id } }" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for i in 0..2 {
        assert_eq!(send(format!("sb_guess{i}"), "203.0.113.5").await, 200);
    }
    assert_eq!(send("sb_guess9".into(), "203.0.113.5").await, 429);
    // Another client behind the same proxy, and a spoofed first hop, are not blocked.
    assert_eq!(send(t.key.clone(), "203.0.113.6").await, 200);
    assert_eq!(send("sb_guess3".into(), "203.0.113.7").await, 200);
}
on_both!(
    clients_behind_a_trusted_proxy_are_counted_apart,
    clients_behind_a_trusted_proxy_are_counted_apart,
    [
        ("AUTH_FAILURES_PER_MINUTE", "2"),
        ("TRUSTED_PROXIES", "127.0.0.1")
    ]
);
