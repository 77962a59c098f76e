//! Sync: pull every call a provider has for the tenant's organisation into the CRM,
//! through the same ingestion as webhooks, counting what happened (`SyncRun`).
//!
//! `service` creates and reads runs (one running per tenant and provider, enforced by a
//! partial unique index); `run` pages the provider and ingests; `jobs` are the worker
//! jobs (a run, the periodic schedule, the reconciler); `audit` compares the provider
//! with the store.

mod audit;
pub mod jobs;
mod run;
mod service;
mod walk;

pub use crate::types::{SyncStatus, SyncTrigger};
pub use audit::{Audit, Reconciled, audit, reconcile, reconcile_one};
pub use run::schedule_syncs;
pub use service::{AgentCount, TriggerSync, count, get, list, trigger};
pub(crate) use service::{new_run, store};
