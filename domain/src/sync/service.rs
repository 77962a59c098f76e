//! Creating and reading sync runs.

use chrono::{DateTime, Duration, Utc};
use entity::{sync_cursor, sync_run};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::jobs::SyncRun;
use crate::error::{DomainError, DomainResult};
use crate::jobs::{self, Job};
use crate::pagination::{self, Page, PageRequest};
use crate::tenancy::TenantScope;
use crate::types::{Provider, Role, SyncStatus, SyncTrigger};

/// One agent's share of a run's synced calls; the name is the agent's business name here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCount {
    pub agent_id: Uuid,
    pub agent_name: String,
    pub count: i64,
}

#[derive(Debug, Clone)]
pub struct TriggerSync {
    pub provider: Provider,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub dry_run: bool,
}

/// How far back a first sync looks when no `since` is given.
const FIRST_SYNC_DAYS: i64 = 30;
/// Longest window one run may cover.
const MAX_RANGE_DAYS: i64 = 366;

/// Starts a sync (MEMBER or above): a RUNNING run and its job in one transaction. If one
/// is already running for this tenant and provider, that one is returned.
pub async fn trigger(
    db: &DatabaseConnection,
    scope: &TenantScope,
    input: TriggerSync,
    how: SyncTrigger,
) -> DomainResult<sync_run::Model> {
    scope.require(Role::Member)?;
    let now = Utc::now();
    if let Some(until) = input.until {
        crate::time::check_instant("until", until)?;
        // A window ending ahead of now would move the cursor into the future.
        if until > now + Duration::minutes(1) {
            return Err(DomainError::invalid("until", "must not be in the future"));
        }
    }
    if let Some(since) = input.since {
        crate::time::check_instant("since", since)?;
    }
    let until = input.until.unwrap_or(now).min(now);
    let since = match input.since {
        Some(s) => s,
        None => {
            sync_cursor::Entity::find_by_id((scope.tenant_id(), input.provider))
                .one(db)
                .await?
                // A cursor left at or ahead of `until` (an older build could leave one in
                // the future) must not block every run.
                .map(|c| {
                    if c.synced_until >= until {
                        until - Duration::minutes(30)
                    } else {
                        c.synced_until
                    }
                })
                .unwrap_or(until - Duration::days(FIRST_SYNC_DAYS))
        }
    };
    if since >= until {
        return Err(DomainError::invalid("until", "must be after since"));
    }
    if until - since > Duration::days(MAX_RANGE_DAYS) {
        return Err(DomainError::invalid(
            "since",
            format!("a run covers at most {MAX_RANGE_DAYS} days"),
        ));
    }
    if let Some(running) = running(db, scope.tenant_id(), input.provider).await? {
        return Ok(running);
    }
    let txn = crate::db::begin_write(db).await?;
    let inserted = new_run(
        scope.tenant_id(),
        input.provider.into(),
        None,
        how,
        input.dry_run,
        (since, until),
        now,
    )
    .insert(&txn)
    .await;
    let run = match inserted {
        Ok(r) => r,
        // Another trigger won the race: that run is the one.
        Err(e) if crate::db::is_unique_violation(&e) => {
            txn.rollback().await?;
            return running(db, scope.tenant_id(), input.provider)
                .await?
                .ok_or(DomainError::Database(e));
        }
        Err(e) => return Err(e.into()),
    };
    let job = SyncRun {
        sync_run_id: run.id,
        tenant_id: Some(run.tenant_id),
    };
    jobs::enqueue(&txn, &job, now).await?;
    txn.commit().await?;
    jobs::wake(SyncRun::LANE);
    Ok(run)
}

pub(crate) async fn running<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    provider: Provider,
) -> DomainResult<Option<sync_run::Model>> {
    Ok(sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(tenant_id))
        .filter(sync_run::Column::Provider.eq(entity::values::SyncSource::from(provider)))
        .filter(sync_run::Column::Status.eq(SyncStatus::Running))
        .one(db)
        .await?)
}

pub async fn list(
    db: &DatabaseConnection,
    scope: &TenantScope,
    page: PageRequest,
) -> DomainResult<Page<sync_run::Model>> {
    let query = sync_run::Entity::find().filter(sync_run::Column::TenantId.eq(scope.tenant_id()));
    pagination::fetch(db, query, sync_run::Column::Id, page).await
}

pub async fn count(db: &DatabaseConnection, scope: &TenantScope) -> DomainResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(scope.tenant_id()))
        .count(db)
        .await?)
}

pub async fn get(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<Option<sync_run::Model>> {
    Ok(sync_run::Entity::find_by_id(id)
        .filter(sync_run::Column::TenantId.eq(scope.tenant_id()))
        .one(db)
        .await?)
}

/// Saves a run's counts; with `status`, ends it and records `sync_run.finished` in the same
/// transaction. Subscribers to `syncRunUpdated` hear of it either way. Calls syncs and
/// CRM runs both save through here.
pub(crate) async fn store(
    services: &crate::services::Services,
    mut active: sync_run::ActiveModel,
    status: Option<SyncStatus>,
    now: DateTime<Utc>,
) -> DomainResult<sync_run::Model> {
    use sea_orm::TransactionTrait;
    let db = services.db();
    let saved = match status {
        Some(s) => {
            active.status = Set(s);
            active.finished_at = Set(Some(now));
            // The outcome and its event commit together.
            let txn = db.begin().await?;
            let saved = active.update(&txn).await?;
            crate::outbound::record_events(
                &txn,
                vec![crate::outbound::NewEvent::new(
                    saved.tenant_id,
                    crate::outbound::EventType::SyncRunFinished,
                    Some(saved.id),
                    json!({ "syncRun": crate::outbound::payloads::sync_run(&saved) }),
                )],
            )
            .await?;
            txn.commit().await?;
            crate::jobs::wake(crate::jobs::Lane::Webhooks);
            saved
        }
        None => active.update(db).await?,
    };
    let event = crate::events::Event::SyncRunUpdated {
        tenant_id: saved.tenant_id,
        sync_run_id: saved.id,
        at: now,
        run: Some(Box::new(saved.clone())),
    };
    if let Err(e) = services.events().publish(event).await {
        tracing::warn!(error = %e, "could not publish sync progress");
    }
    Ok(saved)
}

/// A RUNNING run with nothing counted yet (a calls sync has no direction; a CRM run does).
pub(crate) fn new_run(
    tenant_id: Uuid,
    provider: entity::values::SyncSource,
    direction: Option<entity::values::CrmDirection>,
    how: SyncTrigger,
    dry_run: bool,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> sync_run::ActiveModel {
    sync_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        provider: Set(provider),
        direction: Set(direction),
        trigger: Set(how),
        dry_run: Set(dry_run),
        since: Set(since),
        until: Set(until),
        status: Set(SyncStatus::Running),
        total_calls: Set(0),
        synced_calls: Set(0),
        new_customers: Set(0),
        updated_customers: Set(0),
        duplicate_calls: Set(0),
        skipped_unknown_agent: Set(0),
        skipped_no_phone: Set(0),
        created: Set(0),
        updated: Set(0),
        skipped: Set(0),
        conflicts: Set(0),
        errors: Set(json!([])),
        calls_by_agent: Set(json!([])),
        started_at: Set(now),
        finished_at: Set(None),
        updated_at: Set(now),
    }
}
