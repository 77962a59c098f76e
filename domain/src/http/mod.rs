//! The outbound HTTP client every integration shares (providers today; LLM, CRM and
//! webhook delivery next): timeouts, retries with full jitter, `Retry-After`, a shared
//! request budget, response bodies capped by bytes, no redirects, and the outbound
//! address guard (`crate::net`) for hosts a tenant chose.

pub mod budget;
mod client;

use std::time::Duration;

pub use budget::Budget;
pub use client::{Answer, Auth, HttpClient, MAX_RESPONSE_BYTES, RetryPolicy, path_segment};

/// What went wrong with a request, in terms callers map to their own errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    /// 401/403: the key is wrong, revoked or lacks access.
    #[error("the remote service refused the credentials (HTTP {status}): {message}")]
    Credentials { status: u16, message: String },
    #[error("the remote service is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    /// Worth retrying: 5xx, timeouts, connection failures.
    #[error("the remote service is unavailable: {0}")]
    Transient(String),
    /// Timed out or dropped after the request was sent: it may or may not have taken effect.
    #[error("no answer after sending: {0}")]
    Ambiguous(String),
    /// A 4xx other than auth and rate limits: the service looked and said no.
    #[error("the remote service rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("not found")]
    NotFound,
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl HttpError {
    /// Whether a read may be tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            HttpError::RateLimited { .. } | HttpError::Transient(_) | HttpError::Ambiguous(_)
        )
    }
}

pub type HttpResult<T> = Result<T, HttpError>;
