//! A durable job queue in the database.
//!
//! Jobs are enqueued inside the caller's transaction, claimed atomically with a lease
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers, so a plain
//! `UPDATE .. RETURNING` is atomic), kept alive by heartbeats, and handed back to the
//! queue by a sweep only when the lease has expired, i.e. the holder stopped beating.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::job;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    EntityTrait, QueryFilter, Set, Statement, Value,
};
use uuid::Uuid;

use crate::db::param;
use crate::error::DomainResult;

pub const PENDING: &str = "pending";
pub const RUNNING: &str = "running";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// Lease and retry knobs (starting values from shared/reference/hardening.md).
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    pub lease: Duration,
    pub heartbeat: Duration,
    pub sweep: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(20),
            sweep: Duration::from_secs(30),
        }
    }
}

/// Adds a job; pass the caller's transaction so the job exists iff the domain write does.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    kind: &str,
    payload: serde_json::Value,
    run_at: DateTime<Utc>,
    max_attempts: i32,
) -> DomainResult<Uuid> {
    let now = Utc::now();
    let model = job::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(kind.to_owned()),
        payload: Set(payload),
        status: Set(PENDING.to_owned()),
        attempts: Set(0),
        max_attempts: Set(max_attempts.max(1)),
        run_at: Set(run_at),
        locked_by: Set(None),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    Ok(model.id)
}

/// Adds the job for `(kind, bucket)` unless it exists: several workers scheduling the
/// same periodic job create it once. Returns whether this call created it.
pub async fn enqueue_once<C: ConnectionTrait>(
    conn: &C,
    kind: &str,
    bucket: i64,
    payload: serde_json::Value,
    run_at: DateTime<Utc>,
) -> DomainResult<bool> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{kind}#{bucket}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let id = Uuid::from_bytes(bytes);
    let now = Utc::now();
    let res = job::Entity::insert(job::ActiveModel {
        id: Set(id),
        kind: Set(kind.to_owned()),
        payload: Set(payload),
        status: Set(PENDING.to_owned()),
        attempts: Set(0),
        max_attempts: Set(1),
        run_at: Set(run_at),
        locked_by: Set(None),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(job::Column::Id)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(res > 0)
}

/// Deletes finished jobs older than `age` (the queue is not an archive).
pub async fn purge_finished(db: &DatabaseConnection, age: Duration) -> DomainResult<u64> {
    let cutoff = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::days(1));
    let res = job::Entity::delete_many()
        .filter(job::Column::Status.eq(DONE))
        .filter(job::Column::UpdatedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Claims up to `limit` jobs due now for `worker`, each with a lease of `lease`.
pub async fn claim(
    db: &DatabaseConnection,
    worker: &str,
    limit: u64,
    lease: Duration,
) -> DomainResult<Vec<job::Model>> {
    claim_due_by(db, worker, limit, lease, Utc::now()).await
}

/// Claims up to `limit` jobs due at or before `due_by`.
pub async fn claim_due_by(
    db: &DatabaseConnection,
    worker: &str,
    limit: u64,
    lease: Duration,
    due_by: DateTime<Utc>,
) -> DomainResult<Vec<job::Model>> {
    let backend = db.get_database_backend();
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let p = |n| param(backend, n);
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE jobs SET status = '{RUNNING}', locked_by = {w}, locked_until = {u}, attempts = attempts + 1, updated_at = {n} \
         WHERE id IN (SELECT id FROM jobs WHERE status = '{PENDING}' AND run_at <= {n2} ORDER BY run_at LIMIT {l}{lock}) \
         RETURNING *",
        w = p(1),
        u = p(2),
        n = p(3),
        n2 = p(4),
        l = p(5),
    );
    let values: Vec<Value> = vec![
        worker.into(),
        until.into(),
        now.into(),
        due_by.min(now).into(),
        (limit as i64).into(),
    ];
    Ok(job::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?)
}

/// Extends the leases `worker` holds on `ids`.
pub async fn heartbeat(
    db: &DatabaseConnection,
    worker: &str,
    ids: &[Uuid],
    lease: Duration,
) -> DomainResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let until =
        Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    let res = job::Entity::update_many()
        .col_expr(job::Column::LockedUntil, Expr::value(until))
        .filter(job::Column::Id.is_in(ids.iter().copied()))
        .filter(job::Column::LockedBy.eq(worker))
        .filter(job::Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Marks a job done, if `worker` still holds it.
pub async fn complete(db: &DatabaseConnection, worker: &str, id: Uuid) -> DomainResult<bool> {
    let res = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(DONE))
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::LockedBy.eq(worker))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Exponential backoff with full jitter: base 1 s, cap 60 s.
pub fn backoff(attempt: i32) -> Duration {
    let cap = 60_000u64;
    let exp = 1_000u64
        .saturating_mul(1u64 << attempt.clamp(0, 16) as u32)
        .min(cap);
    let mut b = [0u8; 8];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) % (exp + 1),
        Err(_) => exp / 2,
    };
    Duration::from_millis(jitter)
}

/// Records a failure: back to pending after a backoff, or `failed` after the last attempt.
pub async fn fail(
    db: &DatabaseConnection,
    worker: &str,
    job: &job::Model,
    error: &str,
) -> DomainResult<bool> {
    let now = Utc::now();
    let give_up = job.attempts >= job.max_attempts;
    let delay =
        chrono::Duration::from_std(backoff(job.attempts)).unwrap_or(chrono::Duration::seconds(1));
    let message: String = error.chars().take(2000).collect();
    let res = job::Entity::update_many()
        .col_expr(
            job::Column::Status,
            Expr::value(if give_up { FAILED } else { PENDING }),
        )
        .col_expr(job::Column::RunAt, Expr::value(now + delay))
        .col_expr(job::Column::LastError, Expr::value(message))
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(job.id))
        .filter(job::Column::LockedBy.eq(worker))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Returns jobs whose lease expired (their worker died) to the queue.
pub async fn sweep_expired(db: &DatabaseConnection) -> DomainResult<u64> {
    let now = Utc::now();
    let res = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(PENDING))
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Status.eq(RUNNING))
        .filter(job::Column::LockedUntil.lt(now))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

pub async fn get(db: &DatabaseConnection, id: Uuid) -> DomainResult<Option<job::Model>> {
    Ok(job::Entity::find_by_id(id).one(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        for attempt in 0..40 {
            assert!(backoff(attempt) <= Duration::from_secs(60));
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(5)).collect();
        assert!(samples.len() > 1, "jitter should vary");
    }
}
