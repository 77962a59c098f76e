//! The two-way sync of customers with the tenant's CRM (Twenty).
//!
//! `connection` stores the tenant's CRM (ADMIN); `fields` are the values compared and the
//! tenant's mapping and overrides; `merge` settles each field between the two sides;
//! `twenty` speaks Twenty's REST API and checks its webhook signatures; `apply` writes
//! CRM people into customers (webhooks and pulls); `outbox` notes customers changed here;
//! `push` sends them; `runs` are the CRM's sync runs; `health` tracks an unreachable CRM;
//! `jobs` run it all on the worker.

mod apply;
mod connection;
mod fields;
mod health;
mod inbound;
pub mod jobs;
mod merge;
pub(crate) mod outbox;
mod pull;
mod push;
mod runs;
pub mod twenty;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use connection::{ConnectTwenty, CrmConnection, UpdateCrm, connect, disconnect, get, update};
pub use fields::{Field, FieldMapping, Overrides, Side, Values};
pub use inbound::{InboundError, Received, receive};
pub use runs::trigger;

use crate::error::{DomainError, DomainResult};
use crate::http::{Budget, HttpClient, RetryPolicy};
use crate::net::OutboundPolicy;
use crate::secrets::Cipher;
use crate::settings::{CrmSettings, Settings};

/// What the CRM sync needs at run time: the guarded HTTP client, request budgets per
/// workspace, the secrets key and the settings. Cheap to clone.
#[derive(Clone)]
pub struct Crm {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    policy: OutboundPolicy,
    cipher: Arc<Cipher>,
    settings: CrmSettings,
    /// Where webhook URLs point: `PUBLIC_URL`, else the bound address.
    public_url: String,
    budgets: Mutex<HashMap<[u8; 16], Arc<Budget>>>,
    redis: Option<redis::aio::ConnectionManager>,
}

impl Crm {
    pub fn new(settings: &Settings, cipher: Arc<Cipher>) -> DomainResult<Crm> {
        // CRM base URLs are the tenant's choice: the same guard and allowlist as providers'.
        let policy = OutboundPolicy::new(settings.providers.outbound_allowlist.clone());
        let http = HttpClient::new(
            Duration::from_millis(settings.crm.timeout_ms),
            RetryPolicy {
                cap: Duration::from_secs(20),
                max_tries: 4,
                ..RetryPolicy::default()
            },
            Some(policy.resolver()),
        )
        .map_err(|e| DomainError::Internal(format!("CRM HTTP client: {e}")))?;
        let redis = match &settings.redis_url {
            Some(url) => Some(
                redis::Client::open(url.expose())
                    .and_then(crate::events::redis_connection)
                    .map_err(|e| DomainError::Internal(format!("CRM request budgets: {e}")))?,
            ),
            None => None,
        };
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.bind_addr));
        Ok(Crm {
            inner: Arc::new(Inner {
                http,
                policy,
                cipher,
                settings: settings.crm.clone(),
                public_url,
                budgets: Mutex::default(),
                redis,
            }),
        })
    }

    pub fn settings(&self) -> &CrmSettings {
        &self.inner.settings
    }

    pub(crate) fn cipher(&self) -> &Cipher {
        &self.inner.cipher
    }

    pub(crate) fn policy(&self) -> &OutboundPolicy {
        &self.inner.policy
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    pub fn webhook_url(&self, token: &str) -> String {
        format!("{}/webhooks/twenty/{token}", self.inner.public_url)
    }

    /// The request budget of one workspace (by URL and key), shared across processes
    /// through Redis when there is one.
    pub(crate) fn budget(&self, base_url: &str, api_key: &str) -> Arc<Budget> {
        let mut digest = Sha256::new();
        digest.update(base_url.as_bytes());
        digest.update([0]);
        digest.update(api_key.as_bytes());
        let full: [u8; 32] = digest.finalize().into();
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        let limit = self.inner.settings.requests_per_minute;
        let mut budgets = self.inner.budgets.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded by the connections this process talks to; a key rotated away leaves one
        // small entry behind, dropped when the map grows past any real count.
        if budgets.len() > 10_000 {
            budgets.clear();
        }
        budgets
            .entry(id)
            .or_insert_with(|| {
                Arc::new(match &self.inner.redis {
                    Some(conn) => Budget::shared_per_minute(
                        limit,
                        conn.clone(),
                        format!("switchboard:crm-budget:{}", hex::encode(id)),
                    ),
                    None => Budget::per_minute(limit),
                })
            })
            .clone()
    }
}

/// Ids of rows in one multi-row statement.
const CHUNK: usize = 500;

pub(crate) fn uuid_list(ids: &[Uuid]) -> Vec<sea_orm::Value> {
    ids.iter().map(|id| sea_orm::Value::from(*id)).collect()
}
