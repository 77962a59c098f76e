//! The one place a call's status changes.
//!
//! Every write that moves a call (a new call, a provider's report, a call ended before it
//! was placed, the sweep failing a stuck call) ends here, inside its transaction. This
//! module writes the `CallEvent` of each reported status, runs the in-transaction
//! follow-ups of each change (bookkeeping, and the jobs that hooks ask for, written in the
//! same transaction so a crash after commit loses none), and returns what to do once the
//! transaction has committed: publish to dashboards and wake the lanes of the new jobs.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::call;
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::db::{Binder, Dialect};
use crate::error::DomainResult;
use crate::events::{Event, EventBus};
use crate::jobs::{self, Lane, queue::NewJob};
use crate::types::{CallStatus, EventSource};

/// A call whose status moved in this transaction.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The call as written (its status is the new one).
    pub call: call::Model,
    /// `None` for a call created by this transaction.
    pub previous: Option<CallStatus>,
    pub status: CallStatus,
    pub source: EventSource,
    /// The write that moved the call also started the stale-call sweep's back-off over
    /// (the report upsert does), so the transition point need not.
    pub checks_cleared: bool,
}

/// A status a report (or our own write) said a call reached, to be kept as its event
/// whether or not the call moved (a late lower status is history too).
#[derive(Debug, Clone)]
pub struct Reported {
    pub tenant_id: Uuid,
    pub call_id: Uuid,
    pub status: CallStatus,
    pub source: EventSource,
    pub at: DateTime<Utc>,
}

/// Something that must happen because a call moved: returns jobs to enqueue in the same
/// transaction. Campaigns, analysis and outbound webhooks add theirs here.
pub trait FollowUp: Send + Sync {
    fn jobs(&self, transition: &Transition) -> DomainResult<Vec<NewJob>>;

    /// The jobs of every change of one transaction (a hook may batch them).
    fn jobs_for(&self, changed: &[Transition]) -> DomainResult<Vec<NewJob>> {
        let mut out = Vec::new();
        for t in changed {
            out.extend(self.jobs(t)?);
        }
        Ok(out)
    }
}

/// The follow-ups every transition runs.
#[derive(Clone, Default)]
pub struct FollowUps(Arc<Vec<Arc<dyn FollowUp>>>);

impl FollowUps {
    pub fn with(mut self, hook: Arc<dyn FollowUp>) -> Self {
        Arc::make_mut(&mut self.0).push(hook);
        self
    }
}

/// Jobs due this soon after the commit get a timed wake; later ones are found by the
/// workers' poll.
const SOON: chrono::Duration = chrono::Duration::seconds(1);

/// What to do after the transaction commits.
#[derive(Debug, Default)]
#[must_use = "publish and wake after the commit"]
pub struct AfterCommit {
    changed: Vec<Transition>,
    lanes: BTreeSet<Lane>,
    /// Lanes with jobs due a moment after the commit, and when the first comes due.
    soon: BTreeMap<Lane, DateTime<Utc>>,
}

impl AfterCommit {
    pub fn changed(&self) -> &[Transition] {
        &self.changed
    }

    /// Wakes `lane` after the commit (for jobs the caller enqueued in the transaction).
    pub fn wake(&mut self, lane: Lane) {
        self.lanes.insert(lane);
    }

    pub fn absorb(&mut self, other: AfterCommit) {
        self.changed.extend(other.changed);
        self.lanes.extend(other.lanes);
        for (lane, at) in other.soon {
            self.wake_at(lane, at);
        }
    }

    /// Wakes `lane` when a job due at `at` comes due (a moment after the commit).
    fn wake_at(&mut self, lane: Lane, at: DateTime<Utc>) {
        let first = self.soon.entry(lane).or_insert(at);
        *first = (*first).min(at);
    }

    /// Wakes this process's workers for the new jobs and publishes every change, in
    /// order. A failed publish is logged: the write is committed, only other processes'
    /// subscribers miss it.
    pub async fn run(self, events: &dyn EventBus) {
        for lane in self.lanes {
            jobs::wake(lane);
        }
        for (lane, at) in self.soon {
            jobs::wake_at(lane, at);
        }
        for t in self.changed {
            let event = Event::call_updated(t.call, t.previous);
            if let Err(e) = events.publish(event).await {
                tracing::warn!(error = %e, "could not publish a call update");
            }
        }
    }
}

/// Records `reported` statuses as events and runs the follow-ups of `changed`, inside the
/// caller's transaction. Returns the calls whose event was new, and what to do after the
/// commit. `subs`, when the caller already read them, are the webhook subscriptions of
/// every tenant in `changed`.
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    follow_ups: &FollowUps,
    events: Events<'_>,
    changed: Vec<Transition>,
    subs: Option<&crate::outbound::Subscriptions>,
) -> DomainResult<(HashSet<Uuid>, AfterCommit)> {
    let recorded = match events {
        Events::Write(reported) => write_events(conn, reported).await?,
        Events::Written(recorded) => recorded,
    };
    let mut new_jobs = Vec::new();
    for hook in follow_ups.0.iter() {
        new_jobs.extend(hook.jobs_for(&changed)?);
    }
    bookkeep_checks(conn, &changed).await?;
    let now = Utc::now();
    let mut after = AfterCommit::default();
    for job in &new_jobs {
        if job.run_at <= now {
            after.lanes.insert(job.lane);
        } else if job.run_at <= now + SOON {
            after.wake_at(job.lane, job.run_at);
        }
    }
    let ended: Vec<crate::credits::Ended<'_>> = changed
        .iter()
        .filter(|t| t.status.is_terminal())
        .map(|t| (&t.call, t.source != EventSource::Webhook))
        .collect();
    let alerted = crate::credits::settle(conn, &ended).await?.events;
    let webhooks = match subs {
        // Payloads carry the whole call: not built when no endpoint would get them.
        Some(subs) if subs.is_empty() => false,
        Some(subs) => {
            let events = crate::outbound::payloads::call_transitions(&changed);
            crate::outbound::record(conn, subs, events).await?
        }
        None => {
            let events = crate::outbound::payloads::call_transitions(&changed);
            crate::outbound::record_events(conn, events).await?
        }
    };
    if webhooks || alerted {
        after.lanes.insert(Lane::Webhooks);
    }
    jobs::queue::insert_many(conn, new_jobs).await?;
    after.changed = changed;
    Ok((recorded, after))
}

/// The events of a transaction's reported statuses.
pub(crate) enum Events<'a> {
    /// To be written by [`record`].
    Write(&'a [Reported]),
    /// Written already, with the statement that wrote their calls ([`with_events`]): the
    /// calls that got a new one.
    Written(HashSet<Uuid>),
}

/// The status a report said a call reached, before the call's id is known.
pub(crate) struct PendingEvent<'a> {
    pub execution_id: &'a str,
    pub status: CallStatus,
    pub source: EventSource,
    pub at: DateTime<Utc>,
}

/// PostgreSQL only: `upsert` (an `INSERT INTO calls ... RETURNING` of the columns in
/// `returning`) wrapped so that the same statement writes one event per pending status,
/// joined to its call by execution id, with the same rule as [`record`]: a repeated (call,
/// status) is a no-op. Rows are the upsert's, plus `event_recorded` (a batch has one
/// report per call, so at most one new event per row). Saves the events' round trip for
/// every batch of reports.
pub(crate) fn with_events(
    b: &mut Binder,
    upsert: &str,
    returning: &str,
    pending: &[PendingEvent<'_>],
) -> String {
    let rows: Vec<String> = pending
        .iter()
        .map(|e| {
            b.row([
                Uuid::now_v7().into(),
                e.execution_id.into(),
                e.status.as_str().into(),
                e.source.as_str().into(),
                e.at.into(),
            ])
        })
        .collect();
    format!(
        "WITH up AS ({upsert} RETURNING {returning}), \
         ev AS (INSERT INTO call_events (id, tenant_id, call_id, status, source, at) \
         SELECT e.id, up.tenant_id, up.id, e.status, e.source, e.at \
         FROM (VALUES {}) AS e (id, execution, status, source, at) \
         JOIN up ON up.provider_execution_id = e.execution \
         ON CONFLICT (call_id, status) DO NOTHING RETURNING call_id) \
         SELECT up.*, ev.call_id IS NOT NULL AS event_recorded \
         FROM up LEFT JOIN ev ON ev.call_id = up.id",
        rows.join(", ")
    )
}

/// One event per (call, status); a repeat is a no-op. Returns the calls that got one.
async fn write_events<C: ConnectionTrait>(
    conn: &C,
    reported: &[Reported],
) -> DomainResult<HashSet<Uuid>> {
    if reported.is_empty() {
        return Ok(HashSet::new());
    }
    let mut b = Binder::new(conn.get_database_backend());
    let rows: Vec<String> = reported
        .iter()
        .map(|r| {
            b.row([
                Uuid::now_v7().into(),
                r.tenant_id.into(),
                r.call_id.into(),
                r.status.as_str().into(),
                r.source.as_str().into(),
                r.at.into(),
            ])
        })
        .collect();
    let sql = format!(
        "INSERT INTO call_events (id, tenant_id, call_id, status, source, at) VALUES {} \
         ON CONFLICT (call_id, status) DO NOTHING RETURNING call_id",
        rows.join(", ")
    );
    let mut set = HashSet::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        set.insert(row.try_get("", "call_id")?);
    }
    Ok(set)
}

/// The stale-call sweep's bookkeeping: a call that moved is not failing to refresh, so
/// its back-off starts over. Rows already clear are not rewritten.
async fn bookkeep_checks<C: ConnectionTrait>(conn: &C, changed: &[Transition]) -> DomainResult<()> {
    let ids: Vec<Uuid> = changed
        .iter()
        .filter(|t| t.previous.is_some() && !t.checks_cleared)
        .map(|t| t.call.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut b = Binder::new(conn.get_database_backend());
    let list = b.list(ids.into_iter().map(Into::into));
    let sql = format!(
        "UPDATE calls SET check_failures = 0, next_check_at = NULL \
         WHERE id IN ({list}) AND (check_failures <> 0 OR next_check_at IS NOT NULL)"
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// A call this transaction created (at `call.status`).
pub(crate) async fn created<C: ConnectionTrait>(
    conn: &C,
    follow_ups: &FollowUps,
    call: &call::Model,
    source: EventSource,
) -> DomainResult<AfterCommit> {
    created_many(conn, follow_ups, std::slice::from_ref(call), source).await
}

/// [`created`] for many calls at once (one statement per table, whatever their number).
pub(crate) async fn created_many<C: ConnectionTrait>(
    conn: &C,
    follow_ups: &FollowUps,
    calls: &[call::Model],
    source: EventSource,
) -> DomainResult<AfterCommit> {
    let reported: Vec<Reported> = calls
        .iter()
        .map(|call| Reported {
            tenant_id: call.tenant_id,
            call_id: call.id,
            status: call.status,
            source,
            at: call.created_at,
        })
        .collect();
    let changed = calls
        .iter()
        .map(|call| Transition {
            call: call.clone(),
            previous: None,
            status: call.status,
            source,
            checks_cleared: false,
        })
        .collect();
    Ok(
        record(conn, follow_ups, Events::Write(&reported), changed, None)
            .await?
            .1,
    )
}

/// Ends a call that was never sent to its provider (or whose placement was lost) with
/// `status` and `reason`, unless it already reached a final status. `None` when it had.
pub(crate) async fn end_unplaced<C: ConnectionTrait>(
    conn: &C,
    follow_ups: &FollowUps,
    call_id: Uuid,
    status: CallStatus,
    reason: &str,
) -> DomainResult<Option<AfterCommit>> {
    let dialect = Dialect::of(conn);
    let mut b = Binder::new(conn.get_database_backend());
    // Not a key-share conflict: a credit reserve being taken for this call (its foreign
    // key) must not deadlock with ending it.
    let sql = format!(
        "SELECT * FROM calls WHERE id = {}{}",
        b.bind(call_id),
        dialect.for_no_key_update()
    );
    let Some(before) = call::Entity::find()
        .from_raw_sql(b.statement(sql))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if before.status_rank >= CallStatus::TERMINAL_RANK {
        return Ok(None);
    }
    let now = Utc::now();
    let reason: String = reason.chars().take(1000).collect();
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE calls SET status = {}, status_rank = {}, error_message = {}, updated_at = {} WHERE id = {}",
        b.bind(status.as_str()),
        b.bind(status.rank()),
        b.bind(reason.clone()),
        b.bind(now),
        b.bind(call_id),
    );
    conn.execute_raw(b.statement(sql)).await?;
    let mut after = before.clone();
    after.status = status;
    after.status_rank = status.rank();
    after.error_message = Some(reason);
    after.updated_at = now;
    let reported = [Reported {
        tenant_id: before.tenant_id,
        call_id,
        status,
        source: EventSource::Api,
        at: now,
    }];
    let changed = vec![Transition {
        previous: Some(before.status),
        call: after,
        status,
        source: EventSource::Api,
        checks_cleared: false,
    }];
    Ok(Some(
        record(conn, follow_ups, Events::Write(&reported), changed, None)
            .await?
            .1,
    ))
}
