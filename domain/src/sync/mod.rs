//! Sync: pull every call a provider has for the tenant's organisation into the CRM,
//! through the same ingestion as webhooks, counting what happened (`SyncRun`).
//!
//! `service` creates and reads runs (one running per tenant and provider, enforced by a
//! partial unique index); `run` is the worker job that pages the provider and ingests.

mod audit;
mod run;
mod service;
mod walk;

pub use crate::types::{SyncStatus, SyncTrigger};
pub use audit::{Audit, RECONCILE_JOB, Reconciled, audit, reconcile, reconcile_one};
pub use run::{SCHEDULE_JOB, SYNC_JOB, run_sync, schedule_syncs};
pub use service::{AgentCount, TriggerSync, count, get, list, trigger};
