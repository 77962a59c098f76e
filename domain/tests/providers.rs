//! Provider clients against local fake servers speaking the documented wire formats.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::http::{HttpClient, RetryPolicy};
use domain::providers::bolna::Bolna;
use domain::providers::teli::Teli;
use domain::providers::{CallProvider, ListQuery, PlaceCall, ProviderError};
use domain::types::CallStatus;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn http(timeout_ms: u64) -> HttpClient {
    HttpClient::new(
        Duration::from_millis(timeout_ms),
        RetryPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(200),
            max_tries: 4,
        },
        None,
    )
    .unwrap()
}

fn execution(id: &str, status: &str) -> serde_json::Value {
    json!({ "id": id, "agent_id": "agent-1", "status": status,
            "created_at": "2025-09-02T05:00:03Z",
            "telephony_data": { "to_number": "+919812345678", "duration": "12" } })
}

/// Answers each request with the next response in the list, repeating the last.
struct Sequence(std::sync::Mutex<Vec<ResponseTemplate>>);

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut v = self.0.lock().unwrap();
        if v.len() > 1 {
            v.remove(0)
        } else {
            v[0].clone()
        }
    }
}

#[tokio::test]
async fn bolna_retries_429_honouring_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/executions/e1"))
        .and(header("authorization", "Bearer bn-key"))
        .respond_with(Sequence(std::sync::Mutex::new(vec![
            ResponseTemplate::new(429).insert_header("Retry-After", "1"),
            ResponseTemplate::new(503),
            ResponseTemplate::new(200).set_body_json(execution("e1", "completed")),
        ])))
        .expect(3)
        .mount(&server)
        .await;
    let bolna = Bolna::new(http(2000), &server.uri(), "bn-key");
    let started = Instant::now();
    let report = bolna.fetch_execution("e1").await.unwrap();
    assert_eq!(report.status, CallStatus::Completed);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was not honoured"
    );
}

#[tokio::test]
async fn bolna_401_and_403_are_credentials_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/executions/e1"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"detail": "Access denied"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"error": 401, "message": "bad key"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let bolna = Bolna::new(http(2000), &server.uri(), "wrong");
    let err = bolna.fetch_execution("e1").await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Credentials { status: 403, .. }),
        "{err:?}"
    );
    let err = bolna
        .place_call(PlaceCall {
            provider_agent_id: "a".into(),
            to_number: "+919812345678".into(),
            from_number: None,
            variables: json!({}),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad key"), "{err}");
}

#[tokio::test]
async fn a_timeout_is_reported_and_a_create_is_never_resent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"message": "done", "status": "queued", "execution_id": "x"}))
                .set_delay(Duration::from_millis(800)),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/executions/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let bolna = Bolna::new(http(200), &server.uri(), "k");
    let call = PlaceCall {
        provider_agent_id: "a".into(),
        to_number: "+919812345678".into(),
        from_number: None,
        variables: json!({"customer_name": "Priya"}),
    };
    let err = bolna.place_call(call).await.unwrap_err();
    assert!(matches!(err, ProviderError::Ambiguous(_)), "{err:?}");
    let err = bolna.fetch_execution("slow").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_create_is_retried_on_429_but_not_on_500() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(Sequence(std::sync::Mutex::new(vec![
            ResponseTemplate::new(429),
            ResponseTemplate::new(200).set_body_json(
                json!({"message": "done", "status": "queued", "execution_id": "exec-9"}),
            ),
        ])))
        .expect(2)
        .mount(&server)
        .await;
    let bolna = Bolna::new(http(2000), &server.uri(), "k");
    let call = PlaceCall {
        provider_agent_id: "a".into(),
        to_number: "+919812345678".into(),
        from_number: None,
        variables: json!({}),
    };
    assert_eq!(
        bolna.place_call(call.clone()).await.unwrap().execution_id,
        "exec-9"
    );

    let failing = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&failing)
        .await;
    let bolna = Bolna::new(http(2000), &failing.uri(), "k");
    assert!(matches!(
        bolna.place_call(call).await.unwrap_err(),
        ProviderError::Ambiguous(_)
    ));
    // Connection refused: nothing was sent, so retrying is safe (and then it gives up).
    let nowhere = Bolna::new(http(500), "http://127.0.0.1:1", "k");
    let err = nowhere.fetch_execution("e").await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn bolna_lists_pages_until_has_more_is_false() {
    let server = MockServer::start().await;
    for (page, more) in [(1, true), (2, false)] {
        let data: Vec<_> = (0..if more { 50 } else { 7 })
            .map(|i| execution(&format!("p{page}-{i}"), "completed"))
            .collect();
        Mock::given(method("GET"))
            .and(path("/v2/agent/agent-1/executions"))
            .and(query_param("page_number", page.to_string()))
            .and(query_param("page_size", "50"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "page_number": page, "page_size": 50, "total": 57, "has_more": more, "data": data })))
            .mount(&server)
            .await;
    }
    let bolna = Bolna::new(http(2000), &server.uri(), "k");
    let to = Utc.with_ymd_and_hms(2025, 9, 8, 0, 0, 0).unwrap();
    let mut cursor = None;
    let mut seen = 0;
    loop {
        let page = bolna
            .list_executions(ListQuery {
                provider_agent_id: Some("agent-1".into()),
                from: to - chrono::Duration::days(7),
                to,
                cursor,
            })
            .await
            .unwrap();
        seen += page.reports.len();
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, 57);
    // Windows over 7 days are refused before asking.
    let err = bolna
        .list_executions(ListQuery {
            provider_agent_id: Some("agent-1".into()),
            from: to - chrono::Duration::days(8),
            to,
            cursor: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unsupported(_)));
}

#[tokio::test]
async fn teli_fetches_with_its_api_key_header_and_pages_back_in_time() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/voice/calls/call_1"))
        .and(header("x-api-key", "teli-key"))
        .and(query_param("organization_id", "org-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "powered_by": "Teli",
            "call": { "call_id": "call_1", "agent_id": "ag", "call_status": "ended",
                      "from_number": "+15125550143", "to_number": "+15125550199",
                      "start_timestamp": 1756800003000u64, "duration_ms": 88000,
                      "transcript": "Agent: Hi", "call_analysis": { "call_summary": "ok" } } })))
        .mount(&server)
        .await;
    let base = 1_756_800_000_000u64;
    let calls: Vec<_> = (0..100)
        .map(|i| json!({"call_id": format!("call_{i}"), "call_status": "ended",
                        "start_timestamp": base - i * 60_000, "call_analyzed_at": "2025-09-02T05:00:03"}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/v1/voice/calls"))
        .and(query_param("is_admin", "true"))
        .and(query_param("limit", "100"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": true, "count": 100, "calls": calls})),
        )
        .mount(&server)
        .await;
    let teli = Teli::new(http(2000), &server.uri(), "teli-key", Some("org-1".into()));
    let r = teli.fetch_execution("call_1").await.unwrap();
    assert_eq!(
        (r.status, r.to_number.as_deref()),
        (CallStatus::Completed, Some("+15125550199"))
    );
    let to = Utc.timestamp_millis_opt(base as i64 + 1000).unwrap();
    let page = teli
        .list_executions(ListQuery {
            provider_agent_id: None,
            from: to - chrono::Duration::days(1),
            to,
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(page.reports.len(), 100);
    // The next page ends at the oldest call seen.
    assert_eq!(page.next, Some((base - 99 * 60_000).to_string()));
    assert!(matches!(
        teli.place_call(PlaceCall {
            provider_agent_id: "a".into(),
            to_number: "+1".into(),
            from_number: None,
            variables: json!({})
        })
        .await,
        Err(ProviderError::Unsupported(_))
    ));
}
