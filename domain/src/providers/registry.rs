//! Builds the provider client for a tenant: the simulator, or a real provider from the
//! tenant's stored credentials, all sharing one HTTP client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use sha2::{Digest, Sha256};

use super::bolna::Bolna;
use super::simulator::Simulator;
use super::teli::Teli;
use super::{DynProvider, ProviderError};
use crate::credentials;
use crate::error::{DomainError, DomainResult};
use crate::http::Budget;
use crate::http::{HttpClient, RetryPolicy};
use crate::secrets::Cipher;
use crate::settings::ProviderSettings;
use crate::types::Provider;

#[derive(Clone)]
pub struct Registry {
    db: DatabaseConnection,
    http: HttpClient,
    cipher: Arc<Cipher>,
    /// For base URLs tenants chose: resolves through the outbound guard.
    guarded_http: HttpClient,
    outbound: crate::net::OutboundPolicy,
    settings: ProviderSettings,
    simulator: Arc<Simulator>,
    /// Request budgets by account (a digest of provider, endpoint and key), shared by its clients.
    budgets: Arc<std::sync::Mutex<HashMap<[u8; 32], Arc<Budget>>>>,
    /// Where budgets are counted across processes, when Redis is configured.
    shared_budgets: Option<redis::aio::ConnectionManager>,
}

impl Registry {
    pub fn new(
        db: DatabaseConnection,
        cipher: Arc<Cipher>,
        settings: ProviderSettings,
    ) -> DomainResult<Self> {
        Self::with_retry(db, cipher, settings, RetryPolicy::default())
    }

    pub fn with_retry(
        db: DatabaseConnection,
        cipher: Arc<Cipher>,
        settings: ProviderSettings,
        retry: RetryPolicy,
    ) -> DomainResult<Self> {
        let timeout = Duration::from_millis(settings.request_timeout_ms);
        let http = HttpClient::new(timeout, retry, None)
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let outbound = crate::net::OutboundPolicy::new(settings.outbound_allowlist.clone());
        let guarded_http = HttpClient::new(timeout, retry, Some(outbound.resolver()))
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let simulator = Arc::new(Simulator::new(0x005b_0a2d, settings.simulator_speed));
        Ok(Registry {
            db,
            http,
            guarded_http,
            outbound,
            cipher,
            settings,
            simulator,
            budgets: Arc::default(),
            shared_budgets: None,
        })
    }

    /// Counts request budgets in Redis, so every process sending for an account shares its
    /// limit. Does not wait for Redis.
    pub fn with_shared_budgets(mut self, redis_url: &str) -> DomainResult<Self> {
        let conn = redis::Client::open(redis_url)
            .and_then(crate::events::redis_connection)
            .map_err(|e| DomainError::Internal(format!("request budgets: {e}")))?;
        self.shared_budgets = Some(conn);
        Ok(self)
    }

    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// The tenant's client for `provider`. `NotConfigured` when no credentials are stored.
    pub async fn for_tenant(
        &self,
        tenant_id: Uuid,
        provider: Provider,
    ) -> Result<DynProvider, ProviderLookupError> {
        if provider == Provider::Simulator {
            return Ok(self.simulator.clone());
        }
        let account =
            credentials::account(&self.db, &self.cipher, &self.settings, tenant_id, provider)
                .await?
                .ok_or(ProviderError::NotConfigured(provider))?;
        let key = account.api_key.expose();
        // A base URL the tenant chose goes through the outbound guard (checked here for IP
        // literals, at connect time for names).
        let base_http = if account.custom_base_url {
            self.outbound
                .check_literal(&account.base_url)
                .map_err(|e| ProviderError::Rejected {
                    status: 0,
                    message: format!("baseUrl: {e}"),
                })?;
            &self.guarded_http
        } else {
            &self.http
        };
        Ok(match provider {
            Provider::Bolna => {
                let http = base_http.with_budget(self.budget(provider, &account.base_url, key));
                Arc::new(Bolna::new(http, &account.base_url, key))
            }
            Provider::Teli => Arc::new(Teli::new(
                base_http.clone(),
                &account.base_url,
                key,
                account.organization_id.clone(),
            )),
            Provider::Simulator => self.simulator.clone(),
        })
    }
}

impl Registry {
    /// The account's request budget, when its provider publishes a limit.
    fn budget(&self, provider: Provider, base_url: &str, key: &str) -> Option<Arc<Budget>> {
        let limit = match provider {
            Provider::Bolna => self.settings.bolna_requests_per_minute,
            _ => 0,
        };
        if limit == 0 {
            return None;
        }
        let mut digest = Sha256::new();
        digest.update(provider.as_str().as_bytes());
        digest.update([0]);
        digest.update(base_url.as_bytes());
        digest.update([0]);
        digest.update(key.as_bytes());
        let id: [u8; 32] = digest.finalize().into();
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            budgets
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(match &self.shared_budgets {
                        // The digest names the account without revealing its key.
                        Some(conn) => Budget::shared_per_minute(
                            limit,
                            conn.clone(),
                            format!("switchboard:budget:{}", hex::encode(&id[..16])),
                        ),
                        None => Budget::per_minute(limit),
                    })
                })
                .clone(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderLookupError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}
