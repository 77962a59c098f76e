//! The LLM analyzer end to end: the app configured with `LLM_BASE_URL` against a local
//! fake OpenAI-compatible server. A good answer is stored with the server's model and the
//! tokens spent; a quota error fails at once; a server failing every time is tried three
//! times and never a fourth; a 429 with `Retry-After` is waited out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::common::{TestApp, eventually};
use crate::webhooks::{AGENT, bolna_report};

const TRANSCRIPT: &str = "assistant: Hi Priya, shall I book the site visit for Saturday 11 am?\nuser: Yes please, Saturday 11 am works for me.";

fn completion(content: &str, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fake-model-2026",
        "choices": [{ "index": 0, "finish_reason": finish,
                      "message": { "role": "assistant", "content": content, "refusal": null } }],
        "usage": { "prompt_tokens": 812, "completion_tokens": 64, "total_tokens": 876 }
    })
}

fn good() -> String {
    json!({
        "summary": "Booked a site visit for Saturday 11 am.",
        "sentiment": "POSITIVE", "sentiment_score": 0.8,
        "outcome": "APPOINTMENT_BOOKED",
        "extracted": {}
    })
    .to_string()
}

/// Answers each request with the next of `replies` (the last one repeats), counting them.
struct Script {
    replies: Vec<ResponseTemplate>,
    seen: Arc<AtomicUsize>,
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        self.replies[n.min(self.replies.len() - 1)].clone()
    }
}

async fn fake_llm(replies: Vec<ResponseTemplate>) -> (MockServer, Arc<AtomicUsize>) {
    let server = MockServer::start().await;
    let seen = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(Script {
            replies,
            seen: seen.clone(),
        })
        .mount(&server)
        .await;
    (server, seen)
}

const ANALYSIS: &str = "{ calls(first: 1) { edges { node { status customer { status }
    analysis { status outcome sentiment sentimentScore summary model error promptTokens completionTokens } } } } }";

/// Posts one completed call and waits for its analysis to be DONE or FAILED.
async fn analysed(app: &TestApp) -> Value {
    let t = app.create_tenant("Acme", "IN").await;
    app.create_agent_for(&t.key, "BOLNA", AGENT).await;
    let mut r = bolna_report("exec-llm", AGENT, "completed");
    r["transcript"] = json!(TRANSCRIPT);
    let (code, body) = app.webhook("bolna", &t.webhook_token, r.to_string()).await;
    assert_eq!(code, 200, "{body}");
    eventually(60, || async {
        let d = app.ok(&t.key, ANALYSIS, json!({})).await;
        let n = d["calls"]["edges"][0]["node"].clone();
        matches!(n["analysis"]["status"].as_str(), Some("DONE" | "FAILED")).then_some(n)
    })
    .await;
    // Read again: one answer's statements may straddle the analysis' commit.
    let d = app.ok(&t.key, ANALYSIS, json!({})).await;
    d["calls"]["edges"][0]["node"].clone()
}

async fn spawn(backend: domain::testdb::Backend, server: &MockServer) -> Option<TestApp> {
    TestApp::spawn_with(
        backend,
        &[
            ("RUN_WORKER", "true"),
            ("WORKER_POLL_MS", "20"),
            ("LLM_BASE_URL", &server.uri()),
            ("LLM_API_KEY", "sk-test-secret-key-0123456789"),
            ("LLM_MODEL", "fake-model"),
        ],
    )
    .await
}

async fn each_backend<F, Fut>(replies: fn() -> Vec<ResponseTemplate>, check: F)
where
    F: Fn(Value, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in [
        domain::testdb::Backend::Sqlite,
        domain::testdb::Backend::Postgres,
    ] {
        let (server, seen) = fake_llm(replies()).await;
        let Some(app) = spawn(backend, &server).await else {
            eprintln!("skipped {backend:?}: no database");
            continue;
        };
        let node = analysed(&app).await;
        // Let any retry that would wrongly follow come in before counting.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        check(node, seen.load(Ordering::SeqCst)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_answer_is_stored_with_its_model_and_tokens() {
    each_backend(
        || vec![ResponseTemplate::new(200).set_body_json(completion(&good(), "stop"))],
        |n, seen| async move {
            let a = &n["analysis"];
            assert_eq!(a["status"], "DONE", "{n}");
            assert_eq!(a["outcome"], "APPOINTMENT_BOOKED");
            assert_eq!(a["sentiment"], "POSITIVE");
            assert_eq!(a["model"], "fake-model-2026");
            assert_eq!(a["promptTokens"], 812);
            assert_eq!(a["completionTokens"], 64);
            assert_eq!(n["customer"]["status"], "BOOKED", "{n}");
            assert_eq!(seen, 1);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_error_fails_at_once() {
    each_backend(
        || {
            vec![ResponseTemplate::new(429).set_body_json(json!({"error": {
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}))]
        },
        |n, seen| async move {
            let a = &n["analysis"];
            assert_eq!(a["status"], "FAILED", "{n}");
            assert!(a["error"].as_str().unwrap().contains("quota"), "{n}");
            assert!(!a["error"].as_str().unwrap().contains("sk-test"), "{n}");
            assert_eq!(seen, 1, "a quota error is never retried");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_server_is_tried_three_times_and_never_a_fourth() {
    each_backend(
        || {
            vec![ResponseTemplate::new(500).set_body_json(
                json!({"error": {"message": "boom", "type": "server_error", "param": null, "code": null}}),
            )]
        },
        |n, seen| async move {
            assert_eq!(n["analysis"]["status"], "FAILED", "{n}");
            assert_eq!(seen, 3, "three tries");
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_waited_out() {
    each_backend(
        || {
            vec![
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .set_body_json(
                        json!({"error": {"message": "Rate limit reached", "type": "requests",
                        "param": null, "code": "rate_limit_exceeded"}}),
                    ),
                ResponseTemplate::new(200).set_body_json(completion(&good(), "stop")),
            ]
        },
        |n, seen| async move {
            assert_eq!(n["analysis"]["status"], "DONE", "{n}");
            assert_eq!(seen, 2);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_answer_is_a_failure() {
    each_backend(
        || {
            vec![
                ResponseTemplate::new(200)
                    .set_body_json(completion("{\"summary\": \"Booked a site vis", "length")),
            ]
        },
        |n, seen| async move {
            assert_eq!(n["analysis"]["status"], "FAILED", "{n}");
            assert_eq!(seen, 1);
        },
    )
    .await;
}
