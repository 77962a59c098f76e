//! Switchboard's business logic, shared by the `api` and `workers` binaries.
//!
//! Every function that touches tenant data takes a [`tenancy::TenantScope`]; the
//! repositories filter on it, so tenancy is enforced here and nowhere else.

pub mod agents;
pub mod calls;
pub mod customers;
pub mod db;
pub mod error;
pub mod events;
pub mod health;
pub mod pagination;
pub mod phone;
pub mod queue;
pub mod seed;
pub mod settings;
pub mod tenancy;
#[cfg(feature = "testing")]
pub mod testdb;
pub mod types;

pub use error::{DomainError, DomainResult};

/// Redis for unit tests (`TEST_REDIS_URL`); tests that need it return early without it.
#[cfg(test)]
pub(crate) fn testing_redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
}
