//! Switchboard's business logic, shared by the `api` and `workers` binaries.
//!
//! Every function that touches tenant data takes a [`tenancy::TenantScope`]; the
//! repositories filter on it, so tenancy is enforced here and nowhere else.

pub mod agents;
pub mod analysis;
pub mod analytics;
pub mod calls;
pub mod campaigns;
pub mod credentials;
pub mod credits;
pub mod crm;
pub mod customers;
pub mod db;
pub mod dnc;
pub mod error;
pub mod events;
pub mod health;
pub mod http;
mod inflight;
pub mod ingest;
pub mod jobs;
pub mod net;
pub mod outbound;
pub mod pagination;
pub mod phone;
pub mod providers;
/// The job queue's store, where tools and tests know it.
pub use jobs::queue;
pub mod secrets;
pub mod seed;
pub mod services;
pub mod settings;
pub mod sync;
pub mod tasks;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testdb;
#[cfg(feature = "testing")]
pub mod testproc;
pub mod time;
pub mod types;
pub mod whatsapp;

pub use error::{DomainError, DomainResult};

/// Makes ring the process's TLS provider (reqwest is built without one, so provider
/// clients use this; it also keeps a second provider from ever being ambiguous).
/// Call first thing in `main`; later calls are harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A Redis connection for unit tests that fails fast (no retries, short timeouts).
#[cfg(test)]
pub(crate) fn testing_redis_manager(url: &str) -> redis::aio::ConnectionManager {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_millis(300)))
        .set_response_timeout(Some(std::time::Duration::from_millis(300)))
        .set_number_of_retries(0);
    redis::aio::ConnectionManager::new_lazy_with_config(
        redis::Client::open(url).expect("a Redis URL"),
        config,
    )
    .expect("a lazy Redis connection")
}

/// Redis for unit tests (`TEST_REDIS_URL`); tests that need it return early without it.
#[cfg(test)]
pub(crate) fn testing_redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
}
