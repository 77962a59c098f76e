//! The CRM's sync runs: the same `sync_runs` rows as provider syncs (provider `TWENTY`,
//! with a direction), one running per tenant, progress over `syncRunUpdated` and
//! `sync_run.finished` when one ends.

use chrono::Utc;
use entity::sync_run;
use entity::values::{CrmDirection, SyncSource, SyncStatus, SyncTrigger};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::jobs::CrmSync;
use crate::error::{DomainError, DomainResult};
use crate::jobs::{self, Job};
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::Role;

/// Errors one run keeps (the rest are counted).
const MAX_ERRORS: usize = 50;

/// What a run did so far.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub seen: i32,
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub conflicts: i32,
    pub new_customers: i32,
    pub updated_customers: i32,
    pub skipped_no_phone: i32,
    pub errors: Vec<String>,
    pub errors_dropped: usize,
}

impl Counts {
    pub fn error(&mut self, e: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e.into());
        } else {
            self.errors_dropped += 1;
        }
    }

    pub fn absorb(&mut self, o: Counts) {
        self.seen += o.seen;
        self.created += o.created;
        self.updated += o.updated;
        self.skipped += o.skipped;
        self.conflicts += o.conflicts;
        self.new_customers += o.new_customers;
        self.updated_customers += o.updated_customers;
        self.skipped_no_phone += o.skipped_no_phone;
        for e in o.errors {
            self.error(e);
        }
        self.errors_dropped += o.errors_dropped;
    }

    fn stored_errors(&self) -> Vec<String> {
        let mut out = self.errors.clone();
        if self.errors_dropped > 0 {
            out.push(format!("... and {} more errors", self.errors_dropped));
        }
        out
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.errors_dropped > 0
    }
}

/// Starts a CRM sync now (MEMBER or above). If one is running it is returned instead.
pub async fn trigger(
    db: &DatabaseConnection,
    scope: &TenantScope,
    direction: CrmDirection,
) -> DomainResult<sync_run::Model> {
    scope.require(Role::Member)?;
    let connected = entity::crm_connection::Entity::find_by_id(scope.tenant_id())
        .one(db)
        .await?
        .is_some();
    if !connected {
        return Err(DomainError::invalid(
            "direction",
            "no CRM is connected: connectTwenty first",
        ));
    }
    start(db, scope.tenant_id(), direction, SyncTrigger::Manual).await
}

/// A RUNNING run and its job in one transaction, or the run already running.
pub(crate) async fn start(
    db: &DatabaseConnection,
    tenant: Uuid,
    direction: CrmDirection,
    how: SyncTrigger,
) -> DomainResult<sync_run::Model> {
    if let Some(r) = running(db, tenant).await? {
        return Ok(r);
    }
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let inserted = crate::sync::new_run(
        tenant,
        SyncSource::Twenty,
        Some(direction),
        how,
        false,
        (now, now),
        now,
    )
    .insert(&txn)
    .await;
    let run = match inserted {
        Ok(r) => r,
        Err(e) if crate::db::is_unique_violation(&e) => {
            txn.rollback().await?;
            return running(db, tenant).await?.ok_or(DomainError::Database(e));
        }
        Err(e) => return Err(e.into()),
    };
    let job = CrmSync {
        sync_run_id: run.id,
        tenant_id: tenant,
    };
    jobs::enqueue(&txn, &job, now).await?;
    txn.commit().await?;
    jobs::wake(CrmSync::LANE);
    Ok(run)
}

pub(crate) async fn running<C: ConnectionTrait>(
    db: &C,
    tenant: Uuid,
) -> DomainResult<Option<sync_run::Model>> {
    Ok(sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant))
        .filter(sync_run::Column::Provider.eq(SyncSource::Twenty))
        .filter(sync_run::Column::Status.eq(SyncStatus::Running))
        .one(db)
        .await?)
}

/// Saves the counts (and the end, with `status`), then tells subscribers.
pub(crate) async fn save(
    services: &Services,
    run: &sync_run::Model,
    counts: &Counts,
    status: Option<SyncStatus>,
) -> DomainResult<sync_run::Model> {
    let now = Utc::now();
    let mut a = run.clone().into_active_model();
    a.total_calls = Set(0);
    a.created = Set(counts.created);
    a.updated = Set(counts.updated);
    a.skipped = Set(counts.skipped);
    a.conflicts = Set(counts.conflicts);
    a.new_customers = Set(counts.new_customers);
    a.updated_customers = Set(counts.updated_customers);
    a.skipped_no_phone = Set(counts.skipped_no_phone);
    a.errors = Set(json!(counts.stored_errors()));
    a.until = Set(now);
    a.updated_at = Set(now);
    if let Some(s) = status {
        metrics::counter!("crm_sync_runs_total", "status" => s.as_str()).increment(1);
    }
    crate::sync::store(services, a, status, now).await
}

/// Saves a running run's counts now and then (subscribers watch them move).
pub(crate) struct Progress<'a> {
    services: &'a Services,
    run: &'a sync_run::Model,
    last: std::time::Instant,
}

/// Progress is saved at most this often.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl<'a> Progress<'a> {
    pub fn new(services: &'a Services, run: &'a sync_run::Model) -> Self {
        Progress {
            services,
            run,
            last: std::time::Instant::now(),
        }
    }

    pub async fn tick(&mut self, c: &Counts) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.last = std::time::Instant::now();
            if let Err(e) = save(self.services, self.run, c, None).await {
                tracing::warn!(error = %e, "could not save CRM sync progress");
            }
        }
    }
}
