//! The ingest lane's job: a webhook report a busy API process queued instead of applying.

use anyhow::Context;
use entity::tenant;
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::QueuedReport;
use crate::jobs::{Job, JobRun, Lane, Outcome};
use crate::services::Services;

/// Applies a queued report; the job row is deleted in the transaction that applies it, so
/// the report is applied exactly once however often the job runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IngestReport(pub QueuedReport);

impl Job for IngestReport {
    type Context = Services;
    const KIND: &'static str = "ingest_report";
    const LANE: Lane = Lane::Ingest;
    const MAX_ATTEMPTS: i32 = 10;
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.0.tenant_id)
    }

    async fn run(self, services: &Services, run: &JobRun) -> anyhow::Result<Outcome> {
        let Some(tenant) = tenant::Entity::find_by_id(self.0.tenant_id)
            .one(services.db())
            .await
            .context("loading the report's tenant")?
        else {
            return Ok(Outcome::Fail("the tenant no longer exists".into()));
        };
        services
            .ingestor()
            .ingest_queued(&tenant, &self.0, run.id, &run.worker)
            .await
            .context("applying a queued report")?;
        Ok(Outcome::Done)
    }
}
