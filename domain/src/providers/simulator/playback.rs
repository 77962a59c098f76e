//! Playing a simulated call's script: one job per stage, due when the stage happens,
//! whose report is ingested like a webhook's.

use anyhow::Context;
use entity::tenant;
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::SimCall;
use crate::jobs::{Job, JobRun, Lane, Outcome};
use crate::services::Services;
use crate::types::EventSource;

/// Stage `stage` of the simulated call `execution_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimulatorReport {
    pub tenant_id: Uuid,
    pub execution_id: String,
    pub stage: usize,
}

impl Job for SimulatorReport {
    type Context = Services;
    const KIND: &'static str = "simulator_report";
    const LANE: Lane = Lane::Ingest;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let Some(tenant) = tenant::Entity::find_by_id(self.tenant_id)
            .one(services.db())
            .await
            .context("loading the tenant")?
        else {
            return Ok(Outcome::Fail("the tenant no longer exists".into()));
        };
        let Some(sim_call) = SimCall::parse(&self.execution_id) else {
            return Ok(Outcome::Fail("not a simulator execution id".into()));
        };
        let Some(report) = services
            .providers()
            .simulator()
            .report_at(&sim_call, self.stage)
        else {
            return Ok(Outcome::Done);
        };
        services
            .ingestor()
            .ingest(&tenant, &report, EventSource::Simulator)
            .await
            .context("ingesting the simulated report")?;
        Ok(Outcome::Done)
    }
}
