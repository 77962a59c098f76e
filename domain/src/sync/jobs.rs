//! The sync lane's job (one run, start to end) and the periodic sync jobs.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::jobs::{Job, JobRun, Lane, Outcome};
use crate::services::Services;

/// Runs the sync run `sync_run_id` to its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRun {
    #[serde(rename = "syncRunId")]
    pub sync_run_id: Uuid,
    /// Absent on runs queued before lanes existed.
    #[serde(default, rename = "tenantId", skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
}

impl Job for SyncRun {
    type Context = Services;
    const KIND: &'static str = "sync_run";
    const LANE: Lane = Lane::Sync;
    const MAX_ATTEMPTS: i32 = 5;
    /// A first sync of a large account takes minutes; a run stuck for hours is stopped.
    const TIMEOUT: Duration = Duration::from_secs(6 * 3600);

    fn tenant(&self) -> Option<Uuid> {
        self.tenant_id
    }

    fn subject(&self) -> Option<Uuid> {
        Some(self.sync_run_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        super::run::run_sync(services, self.sync_run_id).await?;
        Ok(Outcome::Done)
    }
}

/// Starts the periodic sync of every tenant with provider credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScheduleSyncs {}

impl Job for ScheduleSyncs {
    type Context = Services;
    const KIND: &'static str = "sync_schedule";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 1;

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let started = super::schedule_syncs(services)
            .await
            .context("scheduling syncs")?;
        if started > 0 {
            tracing::info!(started, "scheduled syncs started");
        }
        Ok(Outcome::Done)
    }
}

/// Ingests executions missing from the store and re-fetches stale calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reconcile {}

impl Job for Reconcile {
    type Context = Services;
    const KIND: &'static str = "sync_reconcile";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 1;
    const TIMEOUT: Duration = Duration::from_secs(1800);

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let r = super::reconcile(services).await.context("reconciling")?;
        if r.missing + r.stale > 0 {
            tracing::info!(
                missing = r.missing,
                stale = r.stale,
                repaired = r.repaired,
                "reconciled"
            );
        }
        Ok(Outcome::Done)
    }
}
