//! Sending one chat-completions request: the request budget first, then a concurrency slot
//! around the exchange, a response body capped by bytes, and the answer's envelope read
//! leniently (servers differ in what they leave out). Nothing here logs or returns the
//! request body or the key.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

use super::errors::{LlmError, cap};
use super::limit::ConcurrencyLimit;
use crate::http::Budget;

/// Largest response body read: an analysis is a few KiB, so anything near this is wrong.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub struct ChatClient {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    budget: Arc<Budget>,
    slots: Arc<ConcurrencyLimit>,
}

/// What a request came back with.
pub enum Reply {
    Completion(Completion),
    /// A non-2xx response, for the caller to adjust to or classify.
    Failed {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
}

/// The parts of a chat completion the analysis reads (the first choice).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub finish_reason: Option<String>,
    /// The model that answered, as the server names it.
    pub model: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

impl ChatClient {
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        timeout: Duration,
        budget: Arc<Budget>,
        slots: Arc<ConcurrencyLimit>,
    ) -> Result<Self, LlmError> {
        if timeout.is_zero() {
            return Err(LlmError::Config(
                "the request timeout must be positive".into(),
            ));
        }
        // reqwest is built without a TLS provider of its own.
        crate::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(cap(&format!("building the HTTP client: {e}"))))?;
        Ok(ChatClient {
            http,
            url: endpoint(base_url)?,
            api_key,
            budget,
            slots,
        })
    }

    /// Sends `body`; waits for the budget, then for a slot held until the body is read.
    pub async fn send(&self, body: &Value) -> Result<Reply, LlmError> {
        self.budget.take().await;
        let slot = self.slots.acquire().await;
        let reply = self.exchange(body).await;
        slot.release().await;
        reply
    }

    async fn exchange(&self, body: &Value) -> Result<Reply, LlmError> {
        let mut request = self.http.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            // Marks the header sensitive, so it is never printed.
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_capped(response).await?;
        if !(200..300).contains(&status) {
            return Ok(Reply::Failed {
                status,
                headers,
                body,
            });
        }
        completion(&body).map(Reply::Completion)
    }
}

/// `{base}/v1/chat/completions`, without doubling a `/v1` the base already ends with, and
/// as given when the base is already the full endpoint.
pub fn endpoint(base_url: &str) -> Result<String, LlmError> {
    let base = base_url.trim().trim_end_matches('/');
    // The URL itself is not quoted back: it may carry credentials.
    let parsed = url::Url::parse(base)
        .map_err(|_| LlmError::Config("the LLM base URL is not a valid URL".into()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(LlmError::Config(
            "the LLM base URL must be an http or https URL".into(),
        ));
    }
    Ok(if base.ends_with("/chat/completions") {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    })
}

/// A reqwest failure: timeouts apart, the whole cause chain (hyper's "connection refused"
/// sits a few levels down), without the URL.
fn transport(error: reqwest::Error) -> LlmError {
    if error.is_timeout() {
        return LlmError::Timeout;
    }
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    LlmError::Transport(cap(&message))
}

async fn read_capped(mut response: reqwest::Response) -> Result<Bytes, LlmError> {
    let too_large = || {
        LlmError::Malformed(format!(
            "the response is larger than {MAX_BODY_BYTES} bytes"
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    choices: Option<Vec<WireChoice>>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<Value>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<Value>,
}

/// Reads a 2xx body. Only a body that is not a completion at all, or has no choice, is an
/// error; missing usage counts as zero tokens.
pub fn completion(body: &[u8]) -> Result<Completion, LlmError> {
    let wire: WireCompletion = serde_json::from_slice(body)
        .map_err(|_| LlmError::Malformed("the server's answer is not a chat completion".into()))?;
    let Some(choice) = wire.choices.and_then(|c| c.into_iter().next()) else {
        return Err(LlmError::Malformed(
            "the server's answer has no choices".into(),
        ));
    };
    let tokens = |name: &str| {
        wire.usage
            .as_ref()
            .and_then(|u| u.get(name))
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .unwrap_or(0)
            .max(0)
    };
    let (content, refusal) = match choice.message {
        Some(m) => (m.content.and_then(text), m.refusal.and_then(text)),
        None => (None, None),
    };
    Ok(Completion {
        content,
        refusal,
        finish_reason: choice.finish_reason.and_then(text),
        model: wire.model.and_then(text),
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
    })
}

/// A string, or the text parts of a content array (`[{"type":"text","text":...}]`);
/// empty is none.
fn text(value: Value) -> Option<String> {
    let s = match value {
        Value::String(s) => s,
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .concat(),
        _ => return None,
    };
    (!s.trim().is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = |b: &str| endpoint(b).unwrap();
        assert_eq!(
            e("http://127.0.0.1:11434"),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert_eq!(
            e("https://api.openai.com/"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            e("https://api.groq.com/openai/v1"),
            "https://api.groq.com/openai/v1/chat/completions"
        );
        assert_eq!(
            e("http://vllm:8000/v1/"),
            "http://vllm:8000/v1/chat/completions"
        );
        assert_eq!(
            e("http://vllm:8000/v1/chat/completions"),
            "http://vllm:8000/v1/chat/completions"
        );
        assert!(matches!(
            endpoint("localhost:11434"),
            Err(LlmError::Config(_))
        ));
        assert!(matches!(endpoint("ftp://x"), Err(LlmError::Config(_))));
        assert!(matches!(endpoint(""), Err(LlmError::Config(_))));
    }

    #[test]
    fn a_full_openai_completion() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18",
            "choices":[{"index":0,"finish_reason":"stop","logprobs":null,
              "message":{"role":"assistant","refusal":null,"content":"{\"a\":1}"}}],
            "usage":{"prompt_tokens":812,"completion_tokens":64,"total_tokens":876,
              "prompt_tokens_details":{"cached_tokens":0}}}"#;
        assert_eq!(
            completion(body).unwrap(),
            Completion {
                content: Some("{\"a\":1}".into()),
                refusal: None,
                finish_reason: Some("stop".into()),
                model: Some("gpt-4o-mini-2024-07-18".into()),
                prompt_tokens: 812,
                completion_tokens: 64,
            }
        );
    }

    #[test]
    fn sparse_and_odd_completions() {
        // No usage, no model, content as parts.
        let c = completion(
            br#"{"choices":[{"message":{"content":[{"type":"text","text":"{\"a\":"},{"type":"text","text":"1}"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(c.content.as_deref(), Some("{\"a\":1}"));
        assert_eq!((c.prompt_tokens, c.completion_tokens), (0, 0));
        assert_eq!(c.model, None);
        // A refusal.
        let c = completion(
            br#"{"choices":[{"finish_reason":"stop","message":{"content":null,"refusal":"I can't help with that."}}]}"#,
        )
        .unwrap();
        assert_eq!(c.refusal.as_deref(), Some("I can't help with that."));
        assert_eq!(c.content, None);
        // No choices, or not a completion at all.
        assert!(matches!(
            completion(br#"{"choices":[],"usage":{"prompt_tokens":5}}"#),
            Err(LlmError::Malformed(_))
        ));
        assert!(matches!(completion(b"<html>"), Err(LlmError::Malformed(_))));
    }
}
