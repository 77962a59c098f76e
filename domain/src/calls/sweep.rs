//! Sweeps for calls no webhook or job is moving: stale ones (placed, not final, quiet
//! for longer than `STALE_CALL_SECONDS`) are refreshed from their provider; stuck ones
//! (queued with no placement job left, or whose placement was interrupted) are failed
//! with the reason.

use chrono::{Duration, Utc};
use entity::call;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use uuid::Uuid;

use super::follow::refresh;
use super::jobs::PlaceCall;
use super::place::end_unplaced;
use crate::db::{Binder, param};
use crate::error::DomainResult;
use crate::jobs::{Job, queue};
use crate::services::Services;
use crate::types::{CallStatus, EventSource};

/// After a refresh: a success is looked at again a stale period later; each failure in a
/// row doubles the wait (up to a day), so unrefreshable calls stop crowding the sweep.
async fn schedule_next_check(
    db: &sea_orm::DatabaseConnection,
    id: Uuid,
    failed: bool,
    stale_seconds: i64,
) -> DomainResult<()> {
    let backend = db.get_database_backend();
    let p = |n| param(backend, n);
    let failures: i64 = if failed {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!("SELECT check_failures FROM calls WHERE id = {}", p(1)),
                [id.into()],
            ))
            .await?;
        row.and_then(|r| r.try_get::<i32>("", "check_failures").ok())
            .unwrap_or(0) as i64
            + 1
    } else {
        0
    };
    let wait = stale_seconds
        .saturating_mul(1i64 << failures.clamp(0, 20))
        .min(MAX_CHECK_BACKOFF_SECONDS);
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE calls SET check_failures = {}, next_check_at = {} WHERE id = {}",
            p(1),
            p(2),
            p(3)
        ),
        [
            (failures as i32).into(),
            (Utc::now() + Duration::seconds(wait)).into(),
            id.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// What one stale-call sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StaleSweep {
    pub found: u64,
    pub refreshed: u64,
    pub ended: u64,
    pub failed: u64,
}

/// Calls of one tenant one sweep looks at, before any tenant gets more.
const SWEEP_PER_TENANT: u64 = 20;
/// Longest a failing call waits between refreshes.
const MAX_CHECK_BACKOFF_SECONDS: i64 = 86_400;

/// Re-fetches every call non-terminal for longer than `STALE_CALL_SECONDS`, so a lost
/// webhook cannot leave a call "in progress" forever. At most `limit` calls per pass,
/// shared across tenants (each tenant's oldest first, round-robin), skipping calls whose
/// last refresh failed until their back-off ends.
pub async fn sweep_stale(services: &Services, limit: u64) -> DomainResult<StaleSweep> {
    let db = services.db();
    let backend = db.get_database_backend();
    let stale_seconds = services.providers().settings().stale_call_seconds as i64;
    let now = Utc::now();
    let cutoff = now - Duration::seconds(stale_seconds);
    let p = |n| param(backend, n);
    let picked = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT id FROM (SELECT id, updated_at, \
                 ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY updated_at) AS rn FROM calls \
                 WHERE status_rank < {rank} AND updated_at < {} AND provider_execution_id IS NOT NULL \
                 AND (next_check_at IS NULL OR next_check_at <= {})) t \
                 WHERE rn <= {} ORDER BY rn, updated_at LIMIT {}",
                p(1),
                p(2),
                p(3),
                p(4),
                rank = CallStatus::TERMINAL_RANK,
            ),
            [
                cutoff.into(),
                now.into(),
                (SWEEP_PER_TENANT as i64).into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    let ids: Vec<Uuid> = picked
        .iter()
        .filter_map(|row| row.try_get::<Uuid>("", "id").ok())
        .collect();
    let mut stale = call::Entity::find()
        .filter(call::Column::Id.is_in(ids))
        .all(db)
        .await?;
    stale.sort_by_key(|c| c.updated_at);
    let mut sweep = StaleSweep {
        found: stale.len() as u64,
        ..Default::default()
    };
    for model in &stale {
        let failed = match refresh(services, model, EventSource::Poll).await {
            Ok(status) => {
                sweep.refreshed += 1;
                if status.is_terminal() {
                    sweep.ended += 1;
                }
                false
            }
            Err(e) => {
                sweep.failed += 1;
                tracing::warn!(call.id = %model.id, error = %e, "could not refresh a stale call");
                true
            }
        };
        schedule_next_check(db, model.id, failed, stale_seconds).await?;
    }
    metrics::counter!("stale_calls_found_total").increment(sweep.found);
    metrics::counter!("stale_calls_refreshed_total").increment(sweep.refreshed);
    metrics::counter!("stale_calls_failed_total").increment(sweep.failed);
    Ok(sweep)
}

/// A queued call is stuck when no placement job is left for it this long after it was
/// created (the job is written with the call, so only a job that ended failed leaves it).
const QUEUED_GRACE_SECONDS: i64 = 60;
/// A placement in flight this long was interrupted: no provider request takes as long.
pub const PLACING_TIMEOUT_SECONDS: i64 = 600;
/// How long a queued call found with a live placement job is left before it is looked
/// at again (a job snoozed for a free slot may wait for hours).
const QUEUED_RECHECK_SECONDS: i64 = 600;

/// What one stuck-call sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StuckSweep {
    /// Queued calls with no placement job left, failed.
    pub unplaced: u64,
    /// Calls whose placement was interrupted, failed.
    pub interrupted: u64,
}

/// Fails calls that nothing will move: queued with no placement job pending or running,
/// or placing for longer than [`PLACING_TIMEOUT_SECONDS`] (their worker died while the
/// request was out; they are not sent again, to avoid calling twice). At most `limit`.
pub async fn sweep_stuck(services: &Services, limit: u64) -> DomainResult<StuckSweep> {
    let db = services.db();
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "SELECT * FROM calls WHERE status_rank < {rank} AND provider_execution_id IS NULL AND (\
         (placing_since IS NOT NULL AND placing_since < {placing}) OR \
         (placing_since IS NULL AND status = 'QUEUED' AND created_at < {queued} \
          AND (next_check_at IS NULL OR next_check_at <= {now}))) \
         ORDER BY created_at LIMIT {limit}",
        rank = CallStatus::TERMINAL_RANK,
        placing = b.bind(now - Duration::seconds(PLACING_TIMEOUT_SECONDS)),
        queued = b.bind(now - Duration::seconds(QUEUED_GRACE_SECONDS)),
        now = b.bind(now),
        limit = b.bind(limit as i64),
    );
    let candidates = call::Entity::find()
        .from_raw_sql(b.statement(sql))
        .all(db)
        .await?;
    let mut sweep = StuckSweep::default();
    for c in candidates {
        if c.placing_since.is_some() {
            end_unplaced(
                services,
                c.id,
                CallStatus::Failed,
                "the placement was interrupted (the worker stopped while sending it); not sent again to avoid calling twice",
            )
            .await?;
            sweep.interrupted += 1;
        } else if queue::has_live(db, PlaceCall::KIND, c.id).await? {
            let mut b = Binder::new(db.get_database_backend());
            let sql = format!(
                "UPDATE calls SET next_check_at = {} WHERE id = {}",
                b.bind(now + Duration::seconds(QUEUED_RECHECK_SECONDS)),
                b.bind(c.id)
            );
            db.execute_raw(b.statement(sql)).await?;
        } else {
            end_unplaced(
                services,
                c.id,
                CallStatus::Failed,
                "the call could not be placed: its placement job ended without placing it",
            )
            .await?;
            sweep.unplaced += 1;
        }
    }
    // Credit reserves of calls that ended or wait unclaimed (a process died between two
    // steps) go back too.
    let holds = crate::credits::sweep_holds(db).await?;
    if holds > 0 {
        tracing::warn!(holds, "released credit reserves left behind");
    }
    metrics::counter!("stuck_calls_failed_total", "reason" => "unplaced").increment(sweep.unplaced);
    metrics::counter!("stuck_calls_failed_total", "reason" => "interrupted")
        .increment(sweep.interrupted);
    Ok(sweep)
}
