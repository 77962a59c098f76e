//! The durable job queue in the database.
//!
//! Jobs are enqueued inside the caller's transaction and claimed one at a time with a
//! lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers, so a plain
//! `UPDATE .. RETURNING` is atomic). Claims on a lane take tenants in turn: the next
//! tenant after the one served last that has a due job. Leases are kept alive by
//! heartbeats; a job whose lease ran out (its worker died, or it hung) counts the attempt
//! and goes back to the queue, or ends failed after its last one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::job;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, Statement,
    Value,
};
use uuid::Uuid;

use super::Lane;
use crate::db::{Binder, Dialect};
use crate::error::DomainResult;
use crate::types::JobStatus;

// Spelled out for the hand-written statements below.
pub const PENDING: &str = JobStatus::Pending.as_str();
pub const RUNNING: &str = JobStatus::Running.as_str();
pub const DONE: &str = JobStatus::Done.as_str();
pub const FAILED: &str = JobStatus::Failed.as_str();

/// Kept of a job's last error.
const MAX_ERROR_CHARS: usize = 2000;

/// Lease and sweep periods.
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

/// A job row to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub lane: Lane,
    pub tenant_key: String,
    pub subject: Option<String>,
    pub payload: serde_json::Value,
    pub run_at: DateTime<Utc>,
    pub max_attempts: i32,
}

fn active(id: Uuid, new: NewJob) -> job::ActiveModel {
    let now = Utc::now();
    job::ActiveModel {
        id: Set(id),
        kind: Set(new.kind.to_owned()),
        lane: Set(new.lane.as_str().to_owned()),
        tenant_key: Set(new.tenant_key),
        subject: Set(new.subject),
        payload: Set(new.payload),
        status: Set(JobStatus::Pending),
        attempts: Set(0),
        max_attempts: Set(new.max_attempts.max(1)),
        run_at: Set(new.run_at),
        locked_by: Set(None),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Adds a job; pass the caller's transaction so the job exists iff the domain write does.
pub async fn insert<C: ConnectionTrait>(conn: &C, new: NewJob) -> DomainResult<Uuid> {
    let id = Uuid::now_v7();
    job::Entity::insert(active(id, new))
        .exec_without_returning(conn)
        .await?;
    Ok(id)
}

/// Adds jobs in one statement.
pub async fn insert_many<C: ConnectionTrait>(conn: &C, new: Vec<NewJob>) -> DomainResult<()> {
    if new.is_empty() {
        return Ok(());
    }
    job::Entity::insert_many(new.into_iter().map(|n| active(Uuid::now_v7(), n)))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Adds an untyped job on the maintenance lane (tests, and jobs of kinds this build does
/// not register, which the runner fails).
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    kind: &'static str,
    payload: serde_json::Value,
    run_at: DateTime<Utc>,
    max_attempts: i32,
) -> DomainResult<Uuid> {
    insert(
        conn,
        NewJob {
            kind,
            lane: Lane::Maintenance,
            tenant_key: String::new(),
            subject: None,
            payload,
            run_at,
            max_attempts,
        },
    )
    .await
}

/// Adds the job for `(kind, bucket)` unless it exists: several workers scheduling the
/// same periodic job create it once. Returns whether this call created it.
pub async fn enqueue_once<C: ConnectionTrait>(
    conn: &C,
    kind: &'static str,
    lane: Lane,
    bucket: i64,
    payload: serde_json::Value,
    run_at: DateTime<Utc>,
) -> DomainResult<bool> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{kind}#{bucket}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let new = NewJob {
        kind,
        lane,
        tenant_key: String::new(),
        subject: None,
        payload,
        run_at,
        max_attempts: 1,
    };
    let res = job::Entity::insert(active(Uuid::from_bytes(bytes), new))
        .on_conflict(OnConflict::column(job::Column::Id).do_nothing().to_owned())
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

fn lease_until(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

/// The `SET` of a claim: running under `worker`'s lease, one more attempt.
fn claimed_by(b: &mut Binder, worker: &str, lease: Duration, now: DateTime<Utc>) -> String {
    format!(
        "status = '{RUNNING}', locked_by = {}, locked_until = {}, attempts = attempts + 1, updated_at = {}",
        b.bind(worker),
        b.bind(lease_until(lease)),
        b.bind(now)
    )
}

/// Claims the next due job of `lane` for `worker`: the oldest of the first tenant after
/// `after` (in key order) that has one, wrapping around to the first tenant.
pub async fn claim_next(
    db: &DatabaseConnection,
    lane: Lane,
    worker: &str,
    lease: Duration,
    after: Option<&str>,
    due_by: DateTime<Utc>,
) -> DomainResult<Option<job::Model>> {
    match after {
        // One statement takes both turns: most claims find nothing (a lane is woken by
        // every commit that enqueues), and each turn was a round trip of its own.
        Some(after) if Dialect::of(db) == Dialect::Postgres => {
            claim_one(
                db,
                Some(lane),
                worker,
                lease,
                Turn::AfterThenAny(after),
                due_by,
            )
            .await
        }
        Some(after) => {
            let first = Turn::After(after);
            if let Some(job) = claim_one(db, Some(lane), worker, lease, first, due_by).await? {
                return Ok(Some(job));
            }
            claim_one(db, Some(lane), worker, lease, Turn::Any, due_by).await
        }
        None => claim_one(db, Some(lane), worker, lease, Turn::Any, due_by).await,
    }
}

/// Which tenants a claim looks at.
#[derive(Clone, Copy)]
enum Turn<'a> {
    Any,
    /// Tenants after this key only.
    After(&'a str),
    /// Tenants after this key first, then any (PostgreSQL: the second pass runs only when
    /// the first found nothing, so it locks nothing otherwise).
    AfterThenAny(&'a str),
}

async fn claim_one(
    db: &DatabaseConnection,
    lane: Option<Lane>,
    worker: &str,
    lease: Duration,
    turn: Turn<'_>,
    due_by: DateTime<Utc>,
) -> DomainResult<Option<job::Model>> {
    let dialect = Dialect::of(db);
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    // Placeholders in text order (SQLite binds by position).
    let set = claimed_by(&mut b, worker, lease, now);
    let mut pick = |after: Option<&str>| {
        let mut wheres = Vec::new();
        if let Some(lane) = lane {
            wheres.push(format!("lane = {}", b.bind(lane.as_str())));
        }
        wheres.push(format!("status = '{PENDING}'"));
        if let Some(after) = after {
            wheres.push(format!("tenant_key > {}", b.bind(after)));
        }
        wheres.push(format!("run_at <= {}", b.bind(due_by.min(now))));
        format!(
            "SELECT id FROM jobs WHERE {} ORDER BY tenant_key, run_at LIMIT 1{}",
            wheres.join(" AND "),
            dialect.skip_locked()
        )
    };
    let chosen = match turn {
        Turn::Any => pick(None),
        Turn::After(after) => pick(Some(after)),
        Turn::AfterThenAny(after) => {
            let first = pick(Some(after));
            let then = pick(None);
            format!(
                "SELECT id FROM (SELECT id FROM ({first}) a UNION ALL SELECT id FROM ({then}) b) c LIMIT 1"
            )
        }
    };
    let sql = format!("UPDATE jobs SET {set} WHERE id = ({chosen}) RETURNING *");
    Ok(job::Entity::find()
        .from_raw_sql(b.statement(sql))
        .one(db)
        .await?)
}

/// Claims for `worker` up to `limit` more due jobs of `first`'s lane, kind and tenant that
/// have never run, oldest first, to run together with it (a gathering kind's run; see
/// `Gather`).
pub async fn claim_gathered(
    db: &DatabaseConnection,
    first: &job::Model,
    worker: &str,
    lease: Duration,
    limit: usize,
    due_by: DateTime<Utc>,
) -> DomainResult<Vec<job::Model>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let dialect = Dialect::of(db);
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    // Placeholders in text order (SQLite binds by position).
    let sql = format!(
        "UPDATE jobs SET {} \
         WHERE id IN (SELECT id FROM jobs WHERE lane = {} AND status = '{PENDING}' AND tenant_key = {} \
         AND attempts = 0 AND run_at <= {} AND kind = {} ORDER BY run_at LIMIT {}{}) RETURNING *",
        claimed_by(&mut b, worker, lease, now),
        b.bind(first.lane.as_str()),
        b.bind(first.tenant_key.as_str()),
        b.bind(due_by.min(now)),
        b.bind(first.kind.as_str()),
        b.bind(limit.min(i64::MAX as usize) as i64),
        dialect.skip_locked()
    );
    let mut more = job::Entity::find()
        .from_raw_sql(b.statement(sql))
        .all(db)
        .await?;
    // RETURNING keeps no order.
    more.sort_by_key(|j| (j.run_at, j.id));
    Ok(more)
}

/// Claims up to `limit` jobs due now on any lane (tests and tools; runners claim by lane).
pub async fn claim(
    db: &DatabaseConnection,
    worker: &str,
    limit: u64,
    lease: Duration,
) -> DomainResult<Vec<job::Model>> {
    let mut out = Vec::new();
    while (out.len() as u64) < limit {
        match claim_one(db, None, worker, lease, Turn::Any, Utc::now()).await? {
            Some(job) => out.push(job),
            None => break,
        }
    }
    Ok(out)
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
    let res = job::Entity::update_many()
        .col_expr(job::Column::LockedUntil, Expr::value(lease_until(lease)))
        .filter(job::Column::Id.is_in(ids.iter().copied()))
        .filter(job::Column::LockedBy.eq(worker))
        .filter(job::Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// How a run ends, as the queue records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    Done,
    /// Back to pending at `at`; `spent: false` gives the claimed attempt back.
    Again {
        at: DateTime<Utc>,
        spent: bool,
        error: Option<String>,
    },
    Failed(String),
}

/// Records how `worker`'s run of job `id` ended; `false` when the worker no longer held
/// it (its lease expired and the sweep took it back), so nothing was written.
pub async fn finish(
    db: &DatabaseConnection,
    worker: &str,
    id: Uuid,
    ending: Ending,
) -> DomainResult<bool> {
    Ok(finish_many(db, worker, &[id], ending).await? == 1)
}

/// Records one ending for jobs run together; returns how many `worker` still held (the
/// others were taken back by the sweep and are left alone).
pub async fn finish_many(
    db: &DatabaseConnection,
    worker: &str,
    ids: &[Uuid],
    ending: Ending,
) -> DomainResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let mut update = job::Entity::update_many()
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(
            job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now));
    let clip = |e: String| -> String { e.chars().take(MAX_ERROR_CHARS).collect() };
    update = match ending {
        Ending::Done => update.col_expr(job::Column::Status, Expr::value(DONE)),
        Ending::Again { at, spent, error } => {
            let mut u = update
                .col_expr(job::Column::Status, Expr::value(PENDING))
                .col_expr(job::Column::RunAt, Expr::value(at));
            if !spent {
                u = u.col_expr(job::Column::Attempts, Expr::cust("attempts - 1"));
            }
            if let Some(e) = error {
                u = u.col_expr(job::Column::LastError, Expr::value(clip(e)));
            }
            u
        }
        Ending::Failed(e) => update
            .col_expr(job::Column::Status, Expr::value(FAILED))
            .col_expr(job::Column::LastError, Expr::value(clip(e))),
    };
    let update = match ids {
        [id] => update.filter(job::Column::Id.eq(*id)),
        _ => update.filter(job::Column::Id.is_in(ids.iter().copied())),
    };
    let res = update
        .filter(job::Column::LockedBy.eq(worker))
        .filter(job::Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Marks a job done, if `worker` still holds it.
pub async fn complete(db: &DatabaseConnection, worker: &str, id: Uuid) -> DomainResult<bool> {
    finish(db, worker, id, Ending::Done).await
}

/// What a lease sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Returned to the queue.
    pub requeued: u64,
    /// Out of attempts: failed for good.
    pub failed: u64,
}

/// Takes back jobs whose lease expired: the attempt counts, so a job that kills its
/// worker (or hangs past its lease) ends failed after its last attempt instead of
/// coming back forever.
pub async fn sweep_expired(db: &DatabaseConnection) -> DomainResult<Swept> {
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    let error = "the lease expired: the worker stopped, or the run outlived its lease";
    let sql = format!(
        "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN '{FAILED}' ELSE '{PENDING}' END, \
         last_error = {}, locked_by = NULL, locked_until = NULL, updated_at = {}, run_at = {} \
         WHERE status = '{RUNNING}' AND locked_until < {} RETURNING status",
        b.bind(error),
        b.bind(now),
        b.bind(now),
        b.bind(now),
    );
    let mut swept = Swept::default();
    for row in db.query_all_raw(b.statement(sql)).await? {
        if row.try_get::<String>("", "status")? == FAILED {
            swept.failed += 1;
        } else {
            swept.requeued += 1;
        }
    }
    Ok(swept)
}

/// A lane's backlog: jobs due now and how long the oldest has waited.
#[derive(Debug, Clone, PartialEq)]
pub struct Depth {
    pub lane: String,
    pub due: i64,
    pub oldest_due: Option<DateTime<Utc>>,
}

pub async fn depth(db: &DatabaseConnection) -> DomainResult<Vec<Depth>> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT lane, COUNT(*) AS due, MIN(run_at) AS oldest FROM jobs \
         WHERE status = '{PENDING}' AND run_at <= {} GROUP BY lane",
        crate::db::param(backend, 1)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(Utc::now())],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(Depth {
            lane: row.try_get("", "lane")?,
            due: row.try_get("", "due")?,
            // An aggregate's type is not declared on SQLite: a reading that fails is unknown.
            oldest_due: row.try_get("", "oldest").ok().flatten(),
        });
    }
    Ok(out)
}

/// Whether a pending or running job of `kind` acts on `subject`.
pub async fn has_live<C: ConnectionTrait>(
    conn: &C,
    kind: &str,
    subject: Uuid,
) -> DomainResult<bool> {
    Ok(job::Entity::find()
        .filter(job::Column::Subject.eq(subject.to_string()))
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::Status.is_in([PENDING, RUNNING]))
        .one(conn)
        .await?
        .is_some())
}

pub async fn get(db: &DatabaseConnection, id: Uuid) -> DomainResult<Option<job::Model>> {
    Ok(job::Entity::find_by_id(id).one(db).await?)
}
