//! The client itself: timeouts, retries with full jitter for reads, `Retry-After`, a
//! request budget, capped bodies, and at-most-once for requests that create things.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use super::budget::Budget;
use super::{HttpError, HttpResult};

/// Retry knobs: full-jitter exponential backoff from 1 s, capped at 60 s, six tries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_tries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_tries: 6,
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a random wait in `[0, min(cap, base * 2^attempt)]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let mut b = [0u8; 8];
        let r = match getrandom::fill(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => u64::MAX / 2,
        };
        let millis = ceiling.as_millis() as u64;
        Duration::from_millis(if millis == 0 { 0 } else { r % (millis + 1) })
    }
}

/// Authentication a provider expects on each request.
#[derive(Clone)]
pub enum Auth {
    Bearer(String),
    Header(&'static str, String),
}

/// Cheap to clone; share one per process so connections are pooled.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    retry: RetryPolicy,
    /// The account's request budget: every attempt, retries included, waits for it.
    budget: Option<Arc<Budget>>,
}

impl HttpClient {
    /// `resolver`: the outbound guard's, for hosts a tenant chose.
    pub fn new(
        timeout: Duration,
        retry: RetryPolicy,
        resolver: Option<Arc<crate::net::GuardedResolver>>,
    ) -> Result<Self, HttpError> {
        // reqwest is built without a TLS provider of its own: use ring (one provider, no ambiguity).
        crate::install_tls_provider();
        let mut builder = reqwest::Client::builder();
        if let Some(resolver) = resolver {
            // A proxy from the environment would reach what the resolver refuses.
            builder = builder.dns_resolver(resolver).no_proxy();
        }
        let client = builder
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Transient(format!("building the HTTP client: {e}")))?;
        Ok(HttpClient {
            client,
            retry,
            budget: None,
        })
    }

    /// The same client, sending within `budget`.
    pub fn with_budget(&self, budget: Option<Arc<Budget>>) -> Self {
        HttpClient {
            budget,
            ..self.clone()
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    fn request(&self, method: Method, url: &str, auth: &Auth) -> RequestBuilder {
        let req = self.client.request(method, url);
        match auth {
            Auth::Bearer(token) => req.bearer_auth(token),
            Auth::Header(name, value) => req.header(*name, value),
        }
    }

    /// GET with retries on 429 (honouring `Retry-After`), 5xx and transport failures.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, String)],
        auth: &Auth,
    ) -> HttpResult<T> {
        let body = self.idempotent(Method::GET, url, query, auth).await?;
        decode(&body)
    }

    /// DELETE with the retries of a read (deleting twice deletes once).
    pub async fn delete(&self, url: &str, auth: &Auth) -> HttpResult<()> {
        self.idempotent(Method::DELETE, url, &[], auth)
            .await
            .map(|_| ())
    }

    async fn idempotent(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        auth: &Auth,
    ) -> HttpResult<bytes::Bytes> {
        let mut attempt = 0;
        loop {
            let result = self
                .send(self.request(method.clone(), url, auth).query(query))
                .await;
            match result {
                Ok(body) => return Ok(body),
                Err(err) if err.is_retryable() && attempt + 1 < self.retry.max_tries => {
                    let wait = match &err {
                        HttpError::RateLimited {
                            retry_after: Some(d),
                        } => (*d).min(MAX_RETRY_AFTER),
                        _ => self.retry.delay(attempt),
                    };
                    tracing::debug!(%url, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying a read");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// POST that creates something. Sent again only when the provider confirmed it did
    /// nothing: a 429, or a connection that never opened. A timeout after sending is
    /// reported as [`HttpError::Ambiguous`] and never retried.
    pub async fn post_json_once<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &serde_json::Value,
        auth: &Auth,
    ) -> HttpResult<T> {
        let mut attempt = 0;
        loop {
            let result = self
                .send(self.request(Method::POST, url, auth).json(body))
                .await;
            let confirmed_not_created = matches!(&result, Err(HttpError::RateLimited { .. }))
                || matches!(&result, Err(HttpError::Transient(m)) if m.starts_with(NOT_SENT));
            match result {
                Ok(body) => return decode(&body),
                Err(err) if confirmed_not_created && attempt + 1 < self.retry.max_tries => {
                    let wait = match &err {
                        HttpError::RateLimited {
                            retry_after: Some(d),
                        } => (*d).min(MAX_RETRY_AFTER),
                        _ => self.retry.delay(attempt),
                    };
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                // A 5xx on a create may have created it: do not resend.
                Err(HttpError::Transient(m)) if !m.starts_with(NOT_SENT) => {
                    return Err(HttpError::Ambiguous(m));
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn send(&self, req: RequestBuilder) -> HttpResult<bytes::Bytes> {
        if let Some(budget) = &self.budget {
            budget.take().await;
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Err(HttpError::Transient(format!("{NOT_SENT}: {e}")));
            }
            Err(e) if e.is_timeout() => {
                return Err(HttpError::Ambiguous(format!("timed out: {e}")));
            }
            Err(e) => return Err(HttpError::Transient(e.to_string())),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = read_capped(response).await?;
        if status.is_success() {
            return Ok(body);
        }
        let message = error_message(&body);
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => HttpError::Credentials {
                status: status.as_u16(),
                message,
            },
            StatusCode::TOO_MANY_REQUESTS => HttpError::RateLimited { retry_after },
            StatusCode::NOT_FOUND => HttpError::NotFound,
            StatusCode::REQUEST_TIMEOUT => HttpError::Transient(message),
            s if s.is_server_error() => {
                HttpError::Transient(format!("HTTP {}: {message}", s.as_u16()))
            }
            s => HttpError::Rejected {
                status: s.as_u16(),
                message,
            },
        })
    }
}

/// What an endpoint answered to a one-shot POST: its status, `Retry-After`, and the start
/// of its body (at most the bytes asked for; the rest is never read).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub excerpt: String,
}

impl HttpClient {
    /// POSTs `body` once with `headers` (no retries: the caller keeps its own schedule).
    /// `Err` is a transport failure (refused address, timeout, connection), as text.
    pub async fn post_once(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: String,
        excerpt_bytes: usize,
    ) -> Result<Answer, String> {
        let mut req = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let mut response = req.body(body).send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let mut excerpt = Vec::with_capacity(excerpt_bytes.min(4096));
        while excerpt.len() < excerpt_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = excerpt_bytes - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                // The status decided the outcome; a body cut short only shortens the excerpt.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Answer {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        })
    }
}

/// A transport error as one line, with its cause (reqwest's own text omits it).
fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// Largest response body read from a provider (a page of executions with transcripts is a
/// few MiB); a larger one is refused rather than buffered.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

async fn read_capped(mut response: reqwest::Response) -> HttpResult<bytes::Bytes> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(HttpError::Decode(format!(
            "the response is larger than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let mut body = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::Decode(format!(
                        "the response is larger than {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) if e.is_timeout() => {
                return Err(HttpError::Ambiguous(format!("timed out reading: {e}")));
            }
            Err(e) => return Err(HttpError::Transient(e.to_string())),
        }
    }
}

/// Ids go into URL paths: refuse anything that could change the path.
pub fn path_segment(id: &str) -> HttpResult<&str> {
    if !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && id != "."
        && id != ".."
    {
        Ok(id)
    } else {
        Err(HttpError::Decode(format!("invalid id {id:?}")))
    }
}

/// A provider asking for a longer pause than this is treated as asking for this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

const NOT_SENT: &str = "could not connect";

fn decode<T: DeserializeOwned>(body: &[u8]) -> HttpResult<T> {
    serde_json::from_slice(body).map_err(|e| HttpError::Decode(e.to_string()))
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and is ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_millis((s * 1000.0) as u64))
}

/// Providers answer errors as `{"message"}`, `{"error"}`, `{"detail"}` or plain text.
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["message", "detail", "error"]
                .iter()
                .find_map(|k| match &v[*k] {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                })
        });
    let msg = from_json.unwrap_or_else(|| text.into_owned());
    // A short, printable excerpt: provider bodies reach users through sync run errors.
    let mut excerpt: String = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if msg.chars().count() > 200 {
        excerpt.push('…');
    }
    excerpt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_cap() {
        let p = RetryPolicy::default();
        for a in 0..30 {
            assert!(p.delay(a) <= p.cap);
        }
    }

    #[test]
    fn error_bodies_in_every_shape() {
        assert_eq!(
            error_message(br#"{"error":401,"message":"bad key"}"#),
            "bad key"
        );
        assert_eq!(error_message(br#"{"detail":"nope"}"#), "nope");
        assert_eq!(error_message(b"plain"), "plain");
    }

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
