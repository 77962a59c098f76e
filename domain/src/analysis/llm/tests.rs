//! The analyzer against a mock server on loopback: the ladder, the repair, the error
//! paths, usage summing and what reaches the wire.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{bearer_token, body_partial_json, body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::types::{CallOutcome, FieldType, Sentiment};

const KEY: &str = "sk-test-0123456789abcdef";
const TRANSCRIPT: &str = "assistant: Hi, this is Maya from Sunrise Homes.\n\
                          user: Saturday at eleven works for the site visit, my budget is 80 lakh.";
const GOOD: &str = r#"{"summary":"Site visit booked for Saturday at 11.","sentiment":"POSITIVE","sentiment_score":0.7,"outcome":"APPOINTMENT_BOOKED","extracted":{"budget":8000000}}"#;

fn fields() -> Vec<AnalysisField> {
    vec![AnalysisField {
        name: "budget".into(),
        description: "The customer's budget in rupees".into(),
        kind: FieldType::Number,
        values: vec![],
    }]
}

fn answer(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
        "model": "test-model-2026",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "refusal": null, "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}

fn ok(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(answer(content))
}

fn analyzer(server: &MockServer) -> LlmAnalyzer {
    let config = LlmConfig {
        base_url: server.uri(),
        api_key: Some(KEY.into()),
        model: "test-model".into(),
        concurrency: 2,
        requests_per_minute: 0,
        timeout: Duration::from_secs(5),
        max_tokens: 500,
    };
    let (budget, slots) = config.limits(None);
    LlmAnalyzer::new(config, budget, slots).unwrap()
}

fn on_endpoint() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(path("/v1/chat/completions"))
}

async fn requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect()
}

#[tokio::test]
async fn a_strict_schema_answer() {
    let server = MockServer::start().await;
    on_endpoint()
        .and(bearer_token(KEY))
        .and(body_partial_json(json!({
            "model": "test-model",
            "temperature": 0,
            "max_tokens": 500,
            "max_completion_tokens": 500,
            "response_format": {"type": "json_schema", "json_schema": {"name": "call_analysis", "strict": true}}
        })))
        .respond_with(ok(GOOD))
        .mount(&server)
        .await;
    let got = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap();
    assert_eq!(got.requests, 1);
    assert_eq!((got.prompt_tokens, got.completion_tokens), (100, 20));
    let a = got.analysis;
    assert_eq!(a.outcome, CallOutcome::AppointmentBooked);
    assert_eq!(a.sentiment, Sentiment::Positive);
    assert_eq!(a.extracted["budget"], json!(8_000_000));
    assert_eq!(a.model, "test-model-2026");
    let sent = requests(&server).await;
    let user = sent[0]["messages"][1]["content"].as_str().unwrap();
    assert!(user.starts_with("Transcript:\nassistant: Hi"));
}

#[tokio::test]
async fn the_ladder_steps_down_and_remembers() {
    let server = MockServer::start().await;
    on_endpoint()
        .and(body_partial_json(json!({"response_format": {"type": "json_schema"}})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
            "type": "invalid_request_error", "param": null, "code": null}})))
        .with_priority(1)
        .mount(&server)
        .await;
    on_endpoint()
        .and(body_partial_json(
            json!({"response_format": {"type": "json_object"}}),
        ))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "This model does not support response format `json_object`",
            "type": "invalid_request_error"}})))
        .with_priority(1)
        .mount(&server)
        .await;
    // Plain text: the answer comes fenced, with prose around it.
    on_endpoint()
        .and(body_string_contains("Reply with JSON only"))
        .respond_with(ok(&format!(
            "Here you go:\n```json\n{GOOD}\n```\nAnything else?"
        )))
        .with_priority(10)
        .mount(&server)
        .await;
    let analyzer = analyzer(&server);
    let got = analyzer.analyze(TRANSCRIPT, &fields()).await.unwrap();
    assert_eq!(got.requests, 3);
    // Refusals carry no usage; only the answer counts.
    assert_eq!(got.prompt_tokens, 100);
    assert_eq!(got.analysis.outcome, CallOutcome::AppointmentBooked);
    assert_eq!(analyzer.level(), Level::Text);
    let sent = requests(&server).await;
    assert!(
        sent[1]["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    assert!(sent[2].get("response_format").is_none());

    // The next analysis starts where the last one ended.
    let again = analyzer.analyze(TRANSCRIPT, &fields()).await.unwrap();
    assert_eq!(again.requests, 1);
    assert_eq!(requests(&server).await.len(), 4);
}

#[tokio::test]
async fn a_refused_parameter_is_left_out() {
    let server = MockServer::start().await;
    on_endpoint()
        .and(body_partial_json(json!({"temperature": 0})))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported.",
            "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}})))
        .with_priority(1)
        .mount(&server)
        .await;
    on_endpoint()
        .respond_with(ok(GOOD))
        .with_priority(10)
        .mount(&server)
        .await;
    let analyzer = analyzer(&server);
    let got = analyzer.analyze(TRANSCRIPT, &fields()).await.unwrap();
    assert_eq!(got.requests, 2);
    // Still on the strict schema.
    assert_eq!(analyzer.level(), Level::JsonSchema);
    let sent = requests(&server).await;
    assert!(sent[1].get("temperature").is_none());
    assert_eq!(sent[1]["response_format"]["type"], "json_schema");
}

#[tokio::test]
async fn one_repair_for_a_malformed_answer() {
    let server = MockServer::start().await;
    on_endpoint()
        .and(body_string_contains("cannot be used"))
        .respond_with(ok(GOOD))
        .with_priority(1)
        .mount(&server)
        .await;
    on_endpoint()
        .respond_with(ok(r#"{"summary": "cut"#))
        .with_priority(10)
        .mount(&server)
        .await;
    let got = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap();
    assert_eq!(got.requests, 2);
    assert_eq!((got.prompt_tokens, got.completion_tokens), (200, 40));
    let sent = requests(&server).await;
    let messages = sent[1]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["content"], r#"{"summary": "cut"#);
}

#[tokio::test]
async fn a_second_malformed_answer_fails() {
    let server = MockServer::start().await;
    let bad = GOOD.replace("APPOINTMENT_BOOKED", "SOLD");
    on_endpoint().respond_with(ok(&bad)).mount(&server).await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LlmError::Malformed("outcome is not one of the allowed values".into())
    );
    assert!(!err.is_retryable());
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn throttling_and_quota_are_returned_not_waited_out() {
    let server = MockServer::start().await;
    on_endpoint()
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "param": null, "code": "rate_limit_exceeded"}})),
        )
        .mount(&server)
        .await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(2))
        }
    );
    assert!(err.is_retryable());
    assert_eq!(requests(&server).await.len(), 1);

    let server = MockServer::start().await;
    on_endpoint()
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
            "message": "You exceeded your current quota", "type": "insufficient_quota",
            "param": null, "code": "insufficient_quota"}})))
        .mount(&server)
        .await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Quota { .. }));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn failures_without_repair() {
    let server = MockServer::start().await;
    let mut cut = answer("{\"summary\":");
    cut["choices"][0]["finish_reason"] = json!("length");
    on_endpoint()
        .respond_with(ResponseTemplate::new(200).set_body_json(cut))
        .mount(&server)
        .await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert_eq!(err, LlmError::Truncated);
    assert_eq!(requests(&server).await.len(), 1);

    let server = MockServer::start().await;
    let mut refused = answer("");
    refused["choices"][0]["message"] =
        json!({"content": null, "refusal": "I can't help with that."});
    on_endpoint()
        .respond_with(ResponseTemplate::new(200).set_body_json(refused))
        .mount(&server)
        .await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert_eq!(err, LlmError::Refused("I can't help with that.".into()));

    let server = MockServer::start().await;
    on_endpoint()
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(3 * 1024 * 1024)))
        .mount(&server)
        .await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn errors_never_carry_the_key_or_the_transcript() {
    let server = MockServer::start().await;
    on_endpoint()
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Incorrect API key provided: {KEY}."),
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})))
        .mount(&server)
        .await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Rejected { status: 401, .. }));
    assert!(!err.to_string().contains("0123456789"), "{err}");

    let server = MockServer::start().await;
    on_endpoint()
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"detail": [{
            "type": "string_too_long", "msg": "too long",
            "input": "Saturday at eleven works for the site visit"}]})))
        .mount(&server)
        .await;
    let err = analyzer(&server)
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("site visit"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_transport_error() {
    let config = LlmConfig {
        // Nothing listens on port 1.
        base_url: "http://127.0.0.1:1".into(),
        api_key: None,
        model: "m".into(),
        concurrency: 1,
        requests_per_minute: 60,
        timeout: Duration::from_secs(2),
        max_tokens: 100,
    };
    let (budget, slots) = config.limits(None);
    let err = LlmAnalyzer::new(config, budget, slots)
        .unwrap()
        .analyze(TRANSCRIPT, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[test]
fn the_config_never_prints_its_key() {
    let config = LlmConfig {
        base_url: "https://api.openai.com".into(),
        api_key: Some(KEY.into()),
        model: "gpt-4o-mini".into(),
        concurrency: 4,
        requests_per_minute: 500,
        timeout: Duration::from_secs(60),
        max_tokens: 800,
    };
    assert!(!format!("{config:?}").contains(KEY));
}

#[tokio::test]
async fn a_slow_server_times_out_and_may_be_retried() {
    let server = MockServer::start().await;
    on_endpoint()
        .respond_with(ok(GOOD).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let config = LlmConfig {
        base_url: server.uri(),
        api_key: Some(KEY.into()),
        model: "test-model".into(),
        concurrency: 1,
        requests_per_minute: 0,
        timeout: Duration::from_millis(300),
        max_tokens: 500,
    };
    let (budget, slots) = config.limits(None);
    let started = std::time::Instant::now();
    let err = LlmAnalyzer::new(config, budget, slots)
        .unwrap()
        .analyze(TRANSCRIPT, &fields())
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Timeout), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout held"
    );
}
