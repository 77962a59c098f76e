//! The CRM's worker jobs: one run (pull, push or both), the periodic sync of every
//! connection, and the quick push of changes made here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use entity::values::{CrmDirection, SyncStatus, SyncTrigger};
use entity::{crm_connection, sync_run};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::apply::Context;
use super::connection::account;
use super::pull::{PullError, pull};
use super::push::{PushError, push};
use super::runs::{Counts, Progress, save};
use super::{health, outbox, runs};
use crate::jobs::{Job, JobRun, Lane, Outcome};
use crate::services::Services;

/// Runs the CRM sync run `sync_run_id` to its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrmSync {
    #[serde(rename = "syncRunId")]
    pub sync_run_id: Uuid,
    #[serde(rename = "tenantId")]
    pub tenant_id: Uuid,
}

impl Job for CrmSync {
    type Context = Services;
    const KIND: &'static str = "crm_sync";
    const LANE: Lane = Lane::Sync;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(6 * 3600);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn subject(&self) -> Option<Uuid> {
        Some(self.sync_run_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        execute(services, self.sync_run_id)
            .await
            .context("running a CRM sync")?;
        Ok(Outcome::Done)
    }

    /// A run whose job failed for good ends FAILED (a run left RUNNING would stand in for
    /// every later one).
    async fn gave_up(self, services: &Services, error: &str) -> anyhow::Result<()> {
        if let Some(run) = sync_run::Entity::find_by_id(self.sync_run_id)
            .one(services.db())
            .await?
            && run.status == SyncStatus::Running
        {
            let mut counts = Counts::default();
            counts.error(format!("the run stopped: {error}"));
            save(services, &run, &counts, Some(SyncStatus::Failed)).await?;
        }
        Ok(())
    }
}

async fn execute(services: &Services, id: Uuid) -> anyhow::Result<()> {
    let db = services.db();
    let Some(run) = sync_run::Entity::find_by_id(id).one(db).await? else {
        return Ok(());
    };
    if run.status != SyncStatus::Running {
        return Ok(());
    }
    let crm = services.crm();
    let mut counts = Counts::default();
    let Some(conn) = crm_connection::Entity::find_by_id(run.tenant_id)
        .one(db)
        .await?
    else {
        counts.error("the CRM was disconnected");
        save(services, &run, &counts, Some(SyncStatus::Failed)).await?;
        return Ok(());
    };
    let direction = run.direction.unwrap_or(CrmDirection::Both);
    let ctx = Context::load(db, &conn).await?;
    let account = Arc::new(account(crm, &conn)?);
    let mut outage: Option<String> = None;
    let mut worked = false;
    let started = Utc::now();
    let mut progress = Progress::new(services, &run);
    if matches!(direction, CrmDirection::Pull | CrmDirection::Both) {
        match pull(
            db,
            &ctx,
            account.clone(),
            conn.pull_cursor,
            &mut counts,
            &mut progress,
        )
        .await
        {
            Ok(()) => worked = true,
            Err(PullError::Crm(e)) => {
                counts.error(format!("pull: {e}"));
                if health::is_outage(&e) {
                    outage = Some(e.to_string());
                }
            }
            Err(PullError::Store(e)) => counts.error(format!("pull: {e}")),
        }
    }
    if matches!(direction, CrmDirection::Push | CrmDirection::Both) && outage.is_none() {
        match push(db, &ctx, &account, &mut counts, &mut progress).await {
            Ok(()) => worked = true,
            Err(PushError::Crm(e)) => {
                counts.error(format!("push: {e}"));
                if health::is_outage(&e) {
                    outage = Some(e.to_string());
                }
            }
            Err(PushError::Store(e)) => counts.error(format!("push: {e}")),
        }
    }
    metrics::counter!("crm_records_total", "result" => "created")
        .increment(counts.created.max(0) as u64);
    metrics::counter!("crm_records_total", "result" => "updated")
        .increment(counts.updated.max(0) as u64);
    metrics::counter!("crm_records_total", "result" => "error")
        .increment(counts.errors.len() as u64 + counts.errors_dropped as u64);
    match &outage {
        Some(e) => {
            health::failed(db, run.tenant_id, e, crm.settings().failing_after_seconds).await?
        }
        None => health::ok(db, run.tenant_id).await?,
    }
    if let Some(c) = crm_connection::Entity::find_by_id(run.tenant_id)
        .one(db)
        .await?
    {
        let mut a = c.into_active_model();
        if matches!(direction, CrmDirection::Pull | CrmDirection::Both) {
            a.last_pull_at = Set(Some(started));
        }
        if matches!(direction, CrmDirection::Push | CrmDirection::Both) {
            a.last_push_at = Set(Some(started));
        }
        if outage.is_none() {
            a.last_error = Set(counts.errors.first().cloned());
        }
        a.update(db).await?;
    }
    let status = if !worked {
        SyncStatus::Failed
    } else if counts.has_errors() {
        SyncStatus::Partial
    } else {
        SyncStatus::Succeeded
    };
    save(services, &run, &counts, Some(status)).await?;
    Ok(())
}

/// Starts a pull-and-push of every connection (`CRM_SYNC_INTERVAL_SECONDS`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScheduleCrmSyncs {}

impl Job for ScheduleCrmSyncs {
    type Context = Services;
    const KIND: &'static str = "crm_schedule";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 1;

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let db = services.db();
        for c in crm_connection::Entity::find().all(db).await? {
            if let Err(e) =
                runs::start(db, c.tenant_id, CrmDirection::Both, SyncTrigger::Scheduled).await
            {
                tracing::warn!(tenant.id = %c.tenant_id, error = %e, "could not start a scheduled CRM sync");
            }
        }
        Ok(Outcome::Done)
    }
}

/// Pushes what changed here a moment ago (a burst settles into one batch first).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushCrmChanges {}

/// How long a change waits before it is pushed.
const SETTLE: chrono::Duration = chrono::Duration::seconds(1);
/// A CRM that is failing is tried again at most this often between scheduled syncs.
const FAILING_RETRY: chrono::Duration = chrono::Duration::seconds(60);

impl Job for PushCrmChanges {
    type Context = Services;
    const KIND: &'static str = "crm_push_changes";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 1;

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let db = services.db();
        let now = Utc::now();
        for tenant in outbox::waiting(db, now - SETTLE, 200).await? {
            let Some(c) = crm_connection::Entity::find_by_id(tenant).one(db).await? else {
                continue;
            };
            // A failing CRM is not asked again every few seconds.
            if c.failing_since.is_some()
                && c.last_push_at.is_some_and(|at| now - at < FAILING_RETRY)
            {
                continue;
            }
            // A pull that is due goes with it (pushes alone must not crowd pulls out).
            let interval =
                chrono::Duration::seconds(services.crm().settings().sync_interval_seconds as i64);
            let direction = if c.last_pull_at.is_none_or(|at| now - at >= interval) {
                CrmDirection::Both
            } else {
                CrmDirection::Push
            };
            if let Err(e) = runs::start(db, tenant, direction, SyncTrigger::Scheduled).await {
                tracing::warn!(tenant.id = %tenant, error = %e, "could not start a CRM push");
            }
        }
        Ok(Outcome::Done)
    }
}
