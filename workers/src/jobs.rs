//! Job handlers: each reads its payload and calls into `domain`.

use domain::calls::lifecycle;
use domain::ingest::QueuedReport;
use domain::services::Services;
use entity::{job, tenant};
use sea_orm::EntityTrait;

use crate::JobFuture;

/// A webhook report queued by a busy API process.
pub fn ingest_report(services: Services, job: job::Model) -> JobFuture {
    Box::pin(async move {
        let queued: QueuedReport =
            serde_json::from_value(job.payload.clone()).map_err(|e| e.to_string())?;
        let Some(tenant) = tenant::Entity::find_by_id(queued.tenant_id)
            .one(services.db())
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        services
            .ingestor()
            .ingest_queued(
                &tenant,
                &queued,
                job.id,
                job.locked_by.as_deref().unwrap_or_default(),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

pub fn place_call(services: Services, job: job::Model) -> JobFuture {
    Box::pin(async move { lifecycle::place_call(&services, job.payload).await })
}

pub fn follow_call(services: Services, job: job::Model) -> JobFuture {
    Box::pin(async move { lifecycle::follow_call(&services, job.payload).await })
}

pub fn simulator_report(services: Services, job: job::Model) -> JobFuture {
    Box::pin(async move { lifecycle::simulator_report(&services, job.payload).await })
}

pub fn stale_calls(services: Services, _job: job::Model) -> JobFuture {
    Box::pin(async move {
        let sweep = lifecycle::sweep_stale(&services, 200)
            .await
            .map_err(|e| e.to_string())?;
        if sweep.found > 0 {
            tracing::info!(?sweep, "refreshed stale calls");
        }
        Ok(())
    })
}

/// A sync run, start to end (see `domain::sync`).
pub fn sync_run(services: Services, job: job::Model) -> JobFuture {
    Box::pin(async move { domain::sync::run_sync(&services, job.payload).await })
}

/// The periodic sync of every tenant with provider credentials.
pub fn schedule_syncs(services: Services, _job: job::Model) -> JobFuture {
    Box::pin(async move {
        let started = domain::sync::schedule_syncs(&services)
            .await
            .map_err(|e| e.to_string())?;
        if started > 0 {
            tracing::info!(started, "scheduled syncs started");
        }
        Ok(())
    })
}

/// The reconciler: ingests executions missing from the store, re-fetches stale calls.
pub fn reconcile(services: Services, _job: job::Model) -> JobFuture {
    Box::pin(async move {
        let r = domain::sync::reconcile(&services)
            .await
            .map_err(|e| e.to_string())?;
        if r.missing + r.stale > 0 {
            tracing::info!(
                missing = r.missing,
                stale = r.stale,
                repaired = r.repaired,
                "reconciled"
            );
        }
        Ok(())
    })
}
