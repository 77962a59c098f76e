//! The one way a provider's word about a call enters the store: webhooks, polls, sync
//! and the simulator all call [`Ingestor::ingest`].
//!
//! - Upsert by (tenant, provider, execution id); the status only moves to a higher rank,
//!   decided inside the `UPDATE` so two reports racing on two processes cannot regress it.
//! - A repeated (call, status) is a no-op; a late lower status is recorded as an event but
//!   leaves the call alone.
//! - Fields merge "non-null wins": a later sparse report never wipes a transcript, and a
//!   late lower-ranked report only fills gaps.
//! - The customer is found or created by E.164 number in the same transaction.
//! - A report for an agent we do not know is stored unmatched, never dropped.
//! - Status changes go through `calls::transition` in the same transaction (events,
//!   follow-up jobs); dashboards hear of them after commit, in commit order per call
//!   within a process.
//!
//! Webhooks apply a report before answering, so a 2xx means it is stored. When a process
//! already has many reports in flight it queues the report instead ([`accept`]: one
//! insert into the job queue) and answers; a worker applies it, deleting the queued row in
//! the same transaction, so it is applied exactly once.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use entity::tenant;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod batch;
mod group;
pub mod jobs;
pub(crate) mod lead;
mod locks;

pub(crate) use batch::lookup;
pub use group::GroupCommit;
pub use lead::intent_of;
pub(crate) use lead::recipient_name;
use locks::CallLocks;

use crate::calls::transition::{self, AfterCommit, FollowUps, Transition};
use crate::db::param;
use crate::error::{DomainError, DomainResult};
use crate::events::EventBus;
use crate::phone::PhoneNumber;
use crate::providers::CallReport;
use crate::types::{CallStatus, EventSource, Provider};
use batch::Applied;

/// How long a transaction of several tenants' reports waits for one lock (a call this
/// process is writing, or a row) before it gives up and each tenant is written alone.
pub const TOGETHER_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What one report did.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestOutcome {
    pub call_id: Uuid,
    /// The call did not exist before.
    pub created: bool,
    /// The call's status moved forward (or the call was created).
    pub advanced: bool,
    /// A new (call, status) event was recorded. False for an exact repeat.
    pub event_recorded: bool,
    pub previous_status: Option<CallStatus>,
    pub status: CallStatus,
    pub customer_id: Option<Uuid>,
    pub customer_created: bool,
    /// Whether an agent here matched the report's provider agent id.
    pub agent_matched: bool,
}

/// What a webhook queues: enough to apply the report later, on any process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedReport {
    pub tenant_id: Uuid,
    pub source: String,
    pub report: CallReport,
}

/// What to do with a report whose call is already stored at the same or a later status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Merge it: it may fill gaps, and its status is recorded as an event (webhooks, polls).
    Merge,
    /// Leave it: nothing is written (sync, where such a report is a duplicate).
    Skip,
}

#[derive(Clone)]
pub struct Ingestor {
    db: DatabaseConnection,
    events: Arc<dyn EventBus>,
    follow_ups: FollowUps,
    /// Serialises reports for one call within this process so events leave in commit order.
    locks: Arc<CallLocks>,
}

impl Ingestor {
    pub fn new(db: DatabaseConnection, events: Arc<dyn EventBus>, follow_ups: FollowUps) -> Self {
        Ingestor {
            db,
            events,
            follow_ups,
            locks: Arc::new(CallLocks::default()),
        }
    }

    pub fn follow_ups(&self) -> &FollowUps {
        &self.follow_ups
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn events(&self) -> &Arc<dyn EventBus> {
        &self.events
    }

    /// Applies one report in its own transaction and publishes what changed.
    pub async fn ingest(
        &self,
        tenant: &tenant::Model,
        report: &CallReport,
        source: EventSource,
    ) -> DomainResult<IngestOutcome> {
        single(
            self.ingest_batch(
                tenant,
                std::slice::from_ref(report),
                None,
                source,
                Known::Merge,
            )
            .await?,
        )
    }

    /// Applies many reports of one tenant in as few transactions as possible (one per
    /// provider, more only when an execution id repeats) and publishes what changed.
    /// `phones`, when given, are the reports' customer numbers already parsed (in the
    /// tenant's region). The result is in input order; `None` is a report skipped as
    /// already known.
    pub async fn ingest_batch(
        &self,
        tenant: &tenant::Model,
        reports: &[CallReport],
        phones: Option<&[Option<PhoneNumber>]>,
        source: EventSource,
        known: Known,
    ) -> DomainResult<Vec<Option<IngestOutcome>>> {
        let mut out: Vec<Option<IngestOutcome>> = reports.iter().map(|_| None).collect();
        let groups = distinct_groups(reports);
        let whole = groups.len() == 1;
        for group in groups {
            // The usual case, one group, is applied without copying the reports.
            let copied: Vec<CallReport>;
            let part: &[CallReport] = if whole {
                reports
            } else {
                copied = group.iter().map(|i| reports[*i].clone()).collect();
                &copied
            };
            let part_phones: Option<Vec<Option<PhoneNumber>>> =
                phones.map(|p| group.iter().map(|i| p[*i].clone()).collect());
            let provider = part[0].provider;
            let keys = part
                .iter()
                .map(|r| locks::key(tenant.id, provider.as_str(), &r.execution_id))
                .collect();
            let _held = self.locks.lock(keys).await;
            let (outcomes, after) = self
                .retrying(|| async {
                    let txn = crate::db::begin_write(&self.db).await?;
                    let (applied, subs) = batch::apply_batch(
                        &txn,
                        tenant,
                        provider,
                        part,
                        part_phones.as_deref(),
                        source,
                        known,
                    )
                    .await?;
                    let done = self.transition(&txn, applied, &subs, source).await?;
                    txn.commit().await?;
                    Ok(done)
                })
                .await?;
            after.run(&*self.events).await;
            for (i, outcome) in group.into_iter().zip(outcomes) {
                if let Some(o) = &outcome {
                    count(o);
                }
                out[i] = outcome;
            }
        }
        Ok(out)
    }

    /// Applies several tenants' batches in one transaction, so each costs its statements
    /// and not a transaction (BEGIN, COMMIT and a WAL flush) of its own; many tenants each
    /// reporting a little is the usual load. Each part is one provider with distinct
    /// execution ids; parts are written in tenant order, so two such transactions lock
    /// rows in the same order. Waiting longer than [`TOGETHER_LOCK_TIMEOUT`] for a call
    /// this process is writing already, or (on PostgreSQL) for any one row lock, fails the
    /// whole, and the caller writes each tenant alone, so one tenant's held row does not
    /// hold up the others for long. A commit whose answer is lost makes the caller write
    /// the reports again, which the upserts absorb. Outcomes are in part order, each in
    /// its reports' order.
    pub async fn ingest_together(
        &self,
        parts: &[(&tenant::Model, &[CallReport], EventSource)],
    ) -> DomainResult<Vec<Vec<Option<IngestOutcome>>>> {
        debug_assert!(
            parts
                .iter()
                .all(|(_, reports, _)| distinct_groups(reports).len() == 1)
        );
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|i| parts[*i].0.id);
        let keys = parts
            .iter()
            .flat_map(|(tenant, reports, _)| {
                reports
                    .iter()
                    .map(|r| locks::key(tenant.id, r.provider.as_str(), &r.execution_id))
            })
            .collect();
        // A call of these being written in this process (say, behind a row held elsewhere)
        // is waited for no longer than a row lock would be.
        let Ok(_held) = tokio::time::timeout(TOGETHER_LOCK_TIMEOUT, self.locks.lock(keys)).await
        else {
            return Err(DomainError::Internal(
                "a call of these tenants is being written; writing each alone".into(),
            ));
        };
        let (mut written, afters) = self
            .retrying(|| async {
                let txn = crate::db::begin_write(&self.db).await?;
                if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
                    txn.execute_unprepared(&format!(
                        "SET LOCAL lock_timeout = {}",
                        TOGETHER_LOCK_TIMEOUT.as_millis()
                    ))
                    .await?;
                }
                let mut written = Vec::with_capacity(parts.len());
                let mut afters = Vec::with_capacity(parts.len());
                for i in &order {
                    let (tenant, reports, source) = parts[*i];
                    let (applied, subs) = batch::apply_batch(
                        &txn,
                        tenant,
                        reports[0].provider,
                        reports,
                        None,
                        source,
                        Known::Merge,
                    )
                    .await?;
                    let (done, after) = self.transition(&txn, applied, &subs, source).await?;
                    written.push((*i, done));
                    afters.push(after);
                }
                txn.commit().await?;
                Ok((written, afters))
            })
            .await?;
        for after in afters {
            after.run(&*self.events).await;
        }
        written.sort_by_key(|w| w.0);
        Ok(written
            .into_iter()
            .map(|(_, done)| {
                done.iter().flatten().for_each(count);
                done
            })
            .collect())
    }

    /// Runs a write again when PostgreSQL chose it as a deadlock victim (two batches
    /// touching the same customers in a different order).
    async fn retrying<T, F, Fut>(&self, mut f: F) -> DomainResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = DomainResult<T>>,
    {
        let mut attempt = 0;
        loop {
            match f().await {
                Err(DomainError::Database(e)) if attempt < 3 && crate::db::is_deadlock(&e) => {
                    attempt += 1;
                    tracing::debug!(attempt, "ingestion deadlocked; retrying");
                }
                other => return other,
            }
        }
    }

    /// Applies a queued report and deletes its job in one transaction. `None` when the
    /// job is gone or no longer held by `worker` (then someone else applied it).
    pub async fn ingest_queued(
        &self,
        tenant: &tenant::Model,
        queued: &QueuedReport,
        job_id: Uuid,
        worker: &str,
    ) -> DomainResult<Option<IngestOutcome>> {
        let source = queued.source.parse().unwrap_or(EventSource::Webhook);
        let report = &queued.report;
        let _held = self
            .locks
            .lock(vec![locks::key(
                tenant.id,
                report.provider.as_str(),
                &report.execution_id,
            )])
            .await;
        let txn = crate::db::begin_write(&self.db).await?;
        let backend = txn.get_database_backend();
        let deleted = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "DELETE FROM jobs WHERE id = {} AND locked_by = {}",
                    param(backend, 1),
                    param(backend, 2)
                ),
                [job_id.into(), worker.into()],
            ))
            .await?
            .rows_affected();
        if deleted == 0 {
            txn.rollback().await?;
            return Ok(None);
        }
        let (applied, subs) = batch::apply_batch(
            &txn,
            tenant,
            report.provider,
            std::slice::from_ref(report),
            None,
            source,
            Known::Merge,
        )
        .await?;
        let (outcomes, after) = self.transition(&txn, applied, &subs, source).await?;
        txn.commit().await?;
        after.run(&*self.events).await;
        let outcome = single(outcomes)?;
        count(&outcome);
        Ok(Some(outcome))
    }

    /// Hands a batch's writes to the transition point (events, follow-ups) inside `txn`;
    /// `subs` are the tenant's webhook subscriptions, read with the batch's lookup.
    async fn transition<C: ConnectionTrait>(
        &self,
        txn: &C,
        applied: Vec<Option<Applied>>,
        subs: &crate::outbound::Subscriptions,
        source: EventSource,
    ) -> DomainResult<(Vec<Option<IngestOutcome>>, AfterCommit)> {
        // Events the call upsert wrote already, when it wrote every one.
        let written: Option<HashSet<Uuid>> = applied
            .iter()
            .flatten()
            .map(|a| a.recorded.map(|new| new.then_some(a.outcome.call_id)))
            .collect::<Option<Vec<_>>>()
            .map(|ids| ids.into_iter().flatten().collect());
        let reported: Vec<transition::Reported> = match written {
            Some(_) => Vec::new(),
            None => applied
                .iter()
                .flatten()
                .map(|a| a.reported.clone())
                .collect(),
        };
        let events = match written {
            Some(ids) => transition::Events::Written(ids),
            None => transition::Events::Write(&reported),
        };
        let mut outcomes = Vec::with_capacity(applied.len());
        let mut changed = Vec::new();
        // Reports on calls that had already ended may change what they cost (a late
        // duration): their charge is looked at again.
        let mut ended_before = Vec::new();
        for a in applied {
            let Some(a) = a else {
                outcomes.push(None);
                continue;
            };
            if !a.outcome.advanced
                && a.model.status.is_terminal()
                && a.model.placing_since.is_some()
            {
                ended_before.push(a.model);
                outcomes.push(Some(a.outcome));
                continue;
            }
            if a.outcome.advanced {
                changed.push(Transition {
                    previous: a.outcome.previous_status,
                    status: a.outcome.status,
                    source,
                    call: a.model,
                    // The report upsert clears the back-off of a call it moves.
                    checks_cleared: true,
                });
            }
            outcomes.push(Some(a.outcome));
        }
        let late_alert = if ended_before.is_empty() {
            false
        } else {
            let refunds = source != EventSource::Webhook;
            let ended: Vec<crate::credits::Ended<'_>> =
                ended_before.iter().map(|c| (c, refunds)).collect();
            crate::credits::settle(txn, &ended).await?.events
        };
        let (recorded, mut after) =
            transition::record(txn, &self.follow_ups, events, changed, Some(subs)).await?;
        if late_alert {
            after.wake(crate::jobs::Lane::Webhooks);
        }
        for outcome in outcomes.iter_mut().flatten() {
            outcome.event_recorded = recorded.contains(&outcome.call_id);
        }
        Ok((outcomes, after))
    }
}

/// Counts a report by what it did.
fn count(outcome: &IngestOutcome) {
    metrics::counter!("ingest_reports_total", "result" => if outcome.advanced { "advanced" } else if outcome.event_recorded { "late" } else { "duplicate" }).increment(1);
    if !outcome.agent_matched && outcome.created {
        metrics::counter!("ingest_unmatched_calls_total").increment(1);
    }
}

/// Splits reports into groups of one provider with distinct execution ids (indices, in
/// input order): a batch statement cannot touch one row twice.
fn distinct_groups(reports: &[CallReport]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Provider, std::collections::HashSet<&str>, Vec<usize>)> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| g.0 == r.provider && !g.1.contains(r.execution_id.as_str()))
        {
            Some(g) => {
                g.1.insert(r.execution_id.as_str());
                g.2.push(i);
            }
            None => groups.push((
                r.provider,
                std::iter::once(r.execution_id.as_str()).collect(),
                vec![i],
            )),
        }
    }
    groups.into_iter().map(|g| g.2).collect()
}

/// Makes a report durable without applying it: one queued row, applied by a worker
/// through [`Ingestor::ingest_queued`]. The caller wakes the ingest lane after commit.
pub async fn accept<C: ConnectionTrait>(
    db: &C,
    tenant_id: Uuid,
    report: CallReport,
    source: EventSource,
) -> DomainResult<(Uuid, QueuedReport)> {
    let queued = QueuedReport {
        tenant_id,
        source: source.as_str().to_owned(),
        report,
    };
    let job = jobs::IngestReport(queued);
    let id = crate::jobs::enqueue(db, &job, Utc::now()).await?;
    Ok((id, job.0))
}

/// The result of a batch of one report applied with [`Known::Merge`], which skips nothing.
fn single<T>(mut applied: Vec<Option<T>>) -> DomainResult<T> {
    applied
        .pop()
        .flatten()
        .ok_or_else(|| DomainError::Internal("the report was not applied".into()))
}
