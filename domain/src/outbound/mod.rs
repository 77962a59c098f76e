//! Outbound webhooks: what happens here, sent to the endpoints integrators register.
//!
//! - `types`: the event names and the filters endpoints subscribe with;
//! - `record`: events written in the transaction of the change they describe, with one
//!   delivery per subscribed endpoint (so a crash after the commit loses none);
//! - `payloads`: the JSON each event carries;
//! - `endpoints`: registering, rotating and disabling endpoints (ADMIN);
//! - `deliver`: the webhooks lane's pump: claims due deliveries, signs and sends them,
//!   retries on a schedule, keeps each subject's deliveries in order;
//! - `log`: the delivery log, redelivery and test messages;
//! - `signing`: Standard Webhooks secrets and signatures;
//! - `jobs`: the lane's jobs (the pump, the pruning of old deliveries).

pub mod deliver;
pub mod endpoints;
pub mod jobs;
pub mod log;
pub mod payloads;
pub mod record;
pub mod signing;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use crate::error::{DomainError, DomainResult};
use crate::http::{HttpClient, RetryPolicy};
use crate::net::OutboundPolicy;
use crate::secrets::Cipher;
use crate::settings::WebhookSettings;

pub use record::{NewEvent, Subscriptions, record, record_events};
pub use types::EventType;

/// Wakes this process's webhooks lane after a commit that recorded deliveries.
pub fn wake_if(recorded: bool) {
    if recorded {
        crate::jobs::wake(crate::jobs::Lane::Webhooks);
    }
}

/// What delivering needs at run time: the guarded HTTP client, the address policy, the
/// secrets cipher and the settings. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    client: HttpClient,
    policy: OutboundPolicy,
    cipher: Arc<Cipher>,
    settings: Arc<WebhookSettings>,
}

impl Outbound {
    pub fn new(settings: &WebhookSettings, cipher: Arc<Cipher>) -> DomainResult<Self> {
        let policy = OutboundPolicy::new(settings.allowlist.clone());
        let client = HttpClient::new(
            Duration::from_millis(settings.timeout_ms),
            RetryPolicy::default(),
            Some(policy.resolver()),
        )
        .map_err(|e| DomainError::Internal(format!("webhook HTTP client: {e}")))?;
        Ok(Outbound {
            client,
            policy,
            cipher,
            settings: Arc::new(settings.clone()),
        })
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    pub(crate) fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    pub(crate) fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    pub(crate) fn client(&self) -> &HttpClient {
        &self.client
    }
}
