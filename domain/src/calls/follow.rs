//! Following a placed call until it ends: the simulator's scripted reports, or polls of
//! a real provider (webhooks usually get there first).

use chrono::{Duration, Utc};
use entity::{call, tenant};
use sea_orm::{ConnectionTrait, EntityTrait};

use super::jobs::FollowCall;
use super::transition::AfterCommit;
use crate::error::{DomainError, DomainResult};
use crate::jobs::{self, Job};
use crate::providers::ProviderError;
use crate::providers::registry::ProviderLookupError;
use crate::providers::simulator::SimCall;
use crate::providers::simulator::playback::SimulatorReport;
use crate::services::Services;
use crate::types::{CallStatus, EventSource, Provider};

/// Polls of one call at most (about two hours); the stale-call sweep takes over after.
const MAX_POLLS: u32 = 16;

/// Enqueues, inside the caller's transaction, what follows a call just placed.
pub(crate) async fn enqueue_following<C: ConnectionTrait>(
    conn: &C,
    services: &Services,
    model: &call::Model,
    provider: Provider,
    execution_id: &str,
) -> DomainResult<AfterCommit> {
    let mut after = AfterCommit::default();
    let rows = following_jobs(services, model, provider, execution_id, &mut after)?;
    jobs::queue::insert_many(conn, rows).await?;
    Ok(after)
}

/// The jobs that follow a call just placed: the simulator's scripted reports, or the
/// first poll of a real provider (the wake-ups go into `after`).
pub(crate) fn following_jobs(
    services: &Services,
    model: &call::Model,
    provider: Provider,
    execution_id: &str,
    after: &mut AfterCommit,
) -> DomainResult<Vec<jobs::queue::NewJob>> {
    if provider == Provider::Simulator {
        let sim = services.providers().simulator();
        let Some(sim_call) = SimCall::parse(execution_id) else {
            return Ok(Vec::new());
        };
        let script = sim.script(&sim_call);
        let mut rows = Vec::with_capacity(script.stages.len());
        for (stage, step) in script.stages.iter().enumerate() {
            let job = SimulatorReport {
                tenant_id: model.tenant_id,
                execution_id: execution_id.to_owned(),
                stage,
            };
            rows.push(jobs::new_job(&job, sim.stage_time(&sim_call, step))?);
        }
        after.wake(SimulatorReport::LANE);
        return Ok(rows);
    }
    let job = FollowCall {
        tenant_id: model.tenant_id,
        call_id: model.id,
        attempt: 0,
    };
    Ok(vec![jobs::new_job(&job, Utc::now() + follow_delay(0))?])
}

/// 15 s, 30 s, 60 s, ... capped at 10 minutes.
pub(crate) fn follow_delay(attempt: u32) -> Duration {
    Duration::seconds((15i64 << attempt.min(6)).min(600))
}

/// One poll of a placed call; the next poll is enqueued while it has not ended.
pub(crate) async fn poll(services: &Services, job: FollowCall) -> anyhow::Result<()> {
    use anyhow::Context;
    let db = services.db();
    let Some(model) = super::place::load(db, job.tenant_id, job.call_id)
        .await
        .context("loading the call")?
    else {
        return Ok(());
    };
    if model.status_rank >= CallStatus::TERMINAL_RANK {
        return Ok(());
    }
    refresh(services, &model, EventSource::Poll)
        .await
        .context("refreshing the call from its provider")?;
    let fresh = call::Entity::find_by_id(model.id)
        .one(db)
        .await
        .context("reloading the call")?;
    if fresh.is_some_and(|c| c.status_rank < CallStatus::TERMINAL_RANK) && job.attempt < MAX_POLLS {
        let next = FollowCall {
            attempt: job.attempt + 1,
            ..job
        };
        jobs::enqueue(db, &next, Utc::now() + follow_delay(next.attempt))
            .await
            .context("enqueueing the next poll")?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Asks the provider where a call stands and ingests the answer.
pub async fn refresh(
    services: &Services,
    model: &call::Model,
    source: EventSource,
) -> Result<CallStatus, RefreshError> {
    let Some(execution_id) = model.provider_execution_id.as_deref() else {
        return Err(ProviderError::NotFound.into());
    };
    let provider = model.provider;
    let client = match services
        .providers()
        .for_tenant(model.tenant_id, provider)
        .await
    {
        Ok(c) => c,
        Err(ProviderLookupError::Provider(e)) => return Err(e.into()),
        Err(ProviderLookupError::Domain(e)) => return Err(e.into()),
    };
    let report = client.fetch_execution(execution_id).await?;
    let tenant = tenant::Entity::find_by_id(model.tenant_id)
        .one(services.db())
        .await
        .map_err(DomainError::from)?
        .ok_or_else(|| {
            DomainError::Internal(format!("tenant {} no longer exists", model.tenant_id))
        })?;
    let outcome = services.ingestor().ingest(&tenant, &report, source).await?;
    Ok(outcome.status)
}
