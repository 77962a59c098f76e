//! Voice-AI providers behind one small trait: place a call, fetch one execution, list
//! executions in a time window page by page. One folder per provider:
//! `bolna/`, `teli/` and the network-free `simulator/`. Everything a provider reports is
//! turned into a [`CallReport`] and handed to `domain::ingest`.

pub mod bolna;
pub mod registry;
mod report;
pub mod simulator;
pub mod teli;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;

pub use registry::Registry;
pub use report::CallReport;

use crate::types::Provider;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 401/403: the tenant's key is wrong, revoked or lacks access.
    #[error("the provider refused the credentials (HTTP {status}): {message}")]
    Credentials { status: u16, message: String },
    #[error("the provider is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    /// Worth retrying: 5xx, timeouts, connection failures.
    #[error("the provider is unavailable: {0}")]
    Transient(String),
    /// Timed out or dropped after the request was sent: it may or may not have taken effect.
    #[error("no answer from the provider after sending: {0}")]
    Ambiguous(String),
    /// A 4xx other than auth and rate limits: the provider looked and said no.
    #[error("the provider rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("not found at the provider")]
    NotFound,
    #[error("unexpected response from the provider: {0}")]
    Decode(String),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("no credentials are configured for {0}")]
    NotConfigured(Provider),
}

impl ProviderError {
    /// Whether a read may be tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Transient(_)
                | ProviderError::Ambiguous(_)
        )
    }
}

/// The shared client's errors, in the provider's words (what users see in sync runs and
/// call errors).
impl From<crate::http::HttpError> for ProviderError {
    fn from(e: crate::http::HttpError) -> Self {
        use crate::http::HttpError as H;
        match e {
            H::Credentials { status, message } => ProviderError::Credentials { status, message },
            H::RateLimited { retry_after } => ProviderError::RateLimited { retry_after },
            H::Transient(m) => ProviderError::Transient(m),
            H::Ambiguous(m) => ProviderError::Ambiguous(m),
            H::Rejected { status, message } => ProviderError::Rejected { status, message },
            H::NotFound => ProviderError::NotFound,
            H::Decode(m) => ProviderError::Decode(m),
        }
    }
}

/// What `startCall` asks a provider to do.
#[derive(Debug, Clone)]
pub struct PlaceCall {
    pub provider_agent_id: String,
    /// E.164.
    pub to_number: String,
    pub from_number: Option<String>,
    pub variables: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlacedCall {
    pub execution_id: String,
}

/// One page of a listing. `cursor` is opaque to callers: pass it back for the next page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub provider_agent_id: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecutionPage {
    pub reports: Vec<CallReport>,
    pub next: Option<String>,
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// How a provider's executions are listed: per agent (these are every agent the account
/// has) or for the whole organisation at once.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentListing {
    PerAgent(Vec<String>),
    OrganizationWide,
}

/// A provider account (one tenant's credentials).
pub trait CallProvider: Send + Sync {
    fn kind(&self) -> Provider;
    /// Starts a call. Never sends the request twice unless the provider confirmed it
    /// created nothing (429, or the connection never opened).
    fn place_call(&self, call: PlaceCall) -> BoxFuture<'_, ProviderResult<PlacedCall>>;
    fn fetch_execution(&self, execution_id: &str) -> BoxFuture<'_, ProviderResult<CallReport>>;
    fn list_executions(&self, query: ListQuery) -> BoxFuture<'_, ProviderResult<ExecutionPage>>;
    /// The account's agents, for listing every execution the organisation has.
    fn list_agents(&self) -> BoxFuture<'_, ProviderResult<AgentListing>>;
}

pub type DynProvider = Arc<dyn CallProvider>;

/// Everything needed to reach one provider account.
#[derive(Clone)]
pub struct ProviderAccount {
    pub provider: Provider,
    pub api_key: crate::settings::Secret,
    pub base_url: String,
    /// The tenant chose `base_url` (rather than the deployment): requests go through the
    /// outbound guard.
    pub custom_base_url: bool,
    pub organization_id: Option<String>,
}

impl std::fmt::Debug for ProviderAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderAccount")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}
