//! Background jobs: the typed [`Job`] each kind implements beside its area
//! (`calls/jobs.rs`, `sync/jobs.rs`, ...), the durable [`queue`] in the database, the
//! [`Registry`] that lists every kind once ([`kinds::product`]), and in-process waking.
//!
//! A job is enqueued inside the transaction of the write that needs it, so it exists iff
//! that write does; the runner (`workers`) claims it on its lane, runs it, and records the
//! [`Outcome`].

mod job;
pub mod kinds;
pub mod queue;
mod registry;
mod wake;

pub use job::{Gather, Job, JobRun, Lane, Outcome, backoff};
pub use queue::LeaseConfig;
pub use registry::{Kind, Merged, Registry, Schedule};
pub use wake::{waiter, wake, wake_at};

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};

/// Adds `job`, due at `run_at`, inside the caller's connection or transaction. After the
/// transaction commits, [`wake`] its lane so an idle worker here starts it at once (on
/// PostgreSQL, workers elsewhere hear of it from the database).
pub async fn enqueue<J: Job, C: ConnectionTrait>(
    conn: &C,
    job: &J,
    run_at: DateTime<Utc>,
) -> DomainResult<Uuid> {
    queue::insert(conn, new_job(job, run_at)?).await
}

/// The row `job` becomes, for callers that insert many at once.
pub fn new_job<J: Job>(job: &J, run_at: DateTime<Utc>) -> DomainResult<queue::NewJob> {
    Ok(queue::NewJob {
        kind: J::KIND,
        lane: J::LANE,
        tenant_key: job.tenant().map(|t| t.to_string()).unwrap_or_default(),
        subject: job.subject().map(|s| s.to_string()),
        payload: serde_json::to_value(job).map_err(|e| DomainError::Internal(e.to_string()))?,
        run_at,
        max_attempts: J::MAX_ATTEMPTS,
    })
}
