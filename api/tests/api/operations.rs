//! Health, readiness (database and Redis) and metrics.

use serde_json::{Value, json};

use crate::common::TestApp;
use crate::on_both;

async fn health_and_metrics(app: TestApp) {
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);

    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let ready: Value = res.json().await.unwrap();
    assert_eq!(ready["database"], true);
    // With TEST_REDIS_URL set the app is configured with Redis and must reach it.
    let expect_redis = if domain::testdb::redis_url().is_some() {
        json!(true)
    } else {
        json!(null)
    };
    assert_eq!(ready["redis"], expect_redis);

    let t = app.create_tenant("Acme", "US").await;
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&t.key)
        .json(&json!({ "query": "query Dashboard { me { id } }", "operationName": "Dashboard" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = app.get_text("/metrics").await;
    assert!(
        text.contains("graphql_operations_total{operation=\"Dashboard\",outcome=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains("graphql_operation_duration_seconds_bucket{operation=\"Dashboard\""),
        "{text}"
    );
    assert!(
        text.contains("http_requests_total{method=\"POST\",route=\"/graphql\",status=\"200\"}")
    );
}
on_both!(health_readiness_metrics, health_and_metrics);

/// Redis configured but unreachable: not ready, yet the API keeps answering.
async fn redis_down(app: TestApp) {
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let ready: Value = res.json().await.unwrap();
    assert_eq!(ready["database"], true);
    assert_eq!(ready["redis"], false);
    let t = app.create_tenant("Acme", "US").await;
    app.ok(&t.key, "{ me { id } }", json!({})).await;
}
on_both!(
    readiness_reports_redis_down,
    redis_down,
    [("REDIS_URL", "redis://127.0.0.1:1")]
);
