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
//! - Events go out after commit, in commit order per call within a process.
//!
//! Webhooks apply a report before answering, so a 2xx means it is stored. When a process
//! already has many reports in flight it queues the report instead ([`accept`]: one
//! insert into the job queue) and answers; a worker applies it, deleting the queued row in
//! the same transaction, so it is applied exactly once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{call, tenant};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod batch;
mod lead;
mod locks;

pub(crate) use batch::lookup;
pub use lead::intent_of;
pub(crate) use lead::recipient_name;
use locks::CallLocks;

use crate::db::param;
use crate::error::{DomainError, DomainResult};
use crate::events::{Event, EventBus};
use crate::phone::PhoneNumber;
use crate::providers::CallReport;
use crate::queue;
use crate::types::{CallStatus, EventSource, Provider};

/// Job kind of a report accepted by a webhook and not yet applied.
pub const INGEST_JOB: &str = "ingest_report";

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
    /// Serialises reports for one call within this process so events leave in commit order.
    locks: Arc<CallLocks>,
}

impl Ingestor {
    pub fn new(db: DatabaseConnection, events: Arc<dyn EventBus>) -> Self {
        Ingestor {
            db,
            events,
            locks: Arc::new(CallLocks::default()),
        }
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
            let applied = self
                .retrying(|| async {
                    let txn = crate::db::begin_write(&self.db).await?;
                    let applied = batch::apply_batch(
                        &txn,
                        tenant,
                        provider,
                        part,
                        part_phones.as_deref(),
                        source,
                        known,
                    )
                    .await?;
                    txn.commit().await?;
                    Ok(applied)
                })
                .await?;
            for (i, applied) in group.into_iter().zip(applied) {
                if let Some(applied) = applied {
                    self.publish(&applied.outcome, applied.model).await;
                    out[i] = Some(applied.outcome);
                }
            }
        }
        Ok(out)
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
                Err(DomainError::Database(e))
                    if attempt < 3 && e.to_string().contains("deadlock") =>
                {
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
        let (outcome, model) = apply(&txn, tenant, report, source).await?;
        txn.commit().await?;
        self.publish(&outcome, model).await;
        Ok(Some(outcome))
    }

    async fn publish(&self, outcome: &IngestOutcome, model: call::Model) {
        metrics::counter!("ingest_reports_total", "result" => if outcome.advanced { "advanced" } else if outcome.event_recorded { "late" } else { "duplicate" }).increment(1);
        if !outcome.agent_matched && outcome.created {
            metrics::counter!("ingest_unmatched_calls_total").increment(1);
        }
        if !outcome.advanced {
            return;
        }
        let previous = outcome.previous_status.map(CallStatus::as_str);
        let event = Event::call_updated(model, previous);
        if let Err(e) = self.events.publish(event).await {
            // The write is committed; only other processes' subscribers miss this one.
            tracing::warn!(error = %e, "could not publish a call update");
        }
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
/// through [`Ingestor::ingest_queued`].
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
    let payload =
        serde_json::to_value(&queued).map_err(|e| DomainError::Internal(e.to_string()))?;
    let id = queue::enqueue(db, INGEST_JOB, payload, Utc::now(), 10).await?;
    Ok((id, queued))
}

/// The body of ingestion for one report: runs inside the caller's transaction.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    tenant: &tenant::Model,
    report: &CallReport,
    source: EventSource,
) -> DomainResult<(IngestOutcome, call::Model)> {
    let applied = single(
        batch::apply_batch(
            conn,
            tenant,
            report.provider,
            std::slice::from_ref(report),
            None,
            source,
            Known::Merge,
        )
        .await?,
    )?;
    Ok((applied.outcome, applied.model))
}

/// The result of a batch of one report applied with [`Known::Merge`], which skips nothing.
fn single<T>(mut applied: Vec<Option<T>>) -> DomainResult<T> {
    applied
        .pop()
        .flatten()
        .ok_or_else(|| DomainError::Internal("the report was not applied".into()))
}

/// Appends a (call, status) event; `false` when that status is already recorded.
pub(crate) async fn record_event<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    call_id: Uuid,
    status: CallStatus,
    source: EventSource,
    at: DateTime<Utc>,
) -> DomainResult<bool> {
    let backend = conn.get_database_backend();
    let p = |n| param(backend, n);
    let sql = format!(
        "INSERT INTO call_events (id, tenant_id, call_id, status, source, at, payload) \
         VALUES ({}, {}, {}, {}, {}, {}, NULL) ON CONFLICT (call_id, status) DO NOTHING",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6)
    );
    let values = [
        Uuid::now_v7().into(),
        tenant_id.into(),
        call_id.into(),
        status.as_str().into(),
        source.as_str().into(),
        at.into(),
    ];
    Ok(conn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .rows_affected()
        > 0)
}

/// Finds or creates the tenant's customer for `phone`, moving `last_contacted_at` forward
/// and filling a missing name. The row is rewritten only when one of those changes (a
/// repeated report costs a read, not a new row version). Returns (id, created).
pub(crate) async fn upsert_customer<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    phone: &PhoneNumber,
    name: Option<String>,
    source: EventSource,
    contacted: Option<DateTime<Utc>>,
) -> DomainResult<(Uuid, bool)> {
    let backend = conn.get_database_backend();
    let p = |n| param(backend, n);
    let now = Utc::now();
    let new_id = Uuid::now_v7();
    let sql = format!(
        "INSERT INTO customers (id, tenant_id, phone_number, name, status, tags, source, last_contacted_at, created_at, updated_at) \
         VALUES ({}, {}, {}, {}, 'NEW', '[]', {}, {}, {}, {}) \
         ON CONFLICT (tenant_id, phone_number) DO UPDATE SET \
         last_contacted_at = CASE WHEN customers.last_contacted_at IS NULL OR customers.last_contacted_at < excluded.last_contacted_at \
           THEN excluded.last_contacted_at ELSE customers.last_contacted_at END, \
         name = COALESCE(customers.name, excluded.name) \
         RETURNING id",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8)
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                new_id.into(),
                tenant_id.into(),
                phone.as_str().into(),
                name.into(),
                source.as_str().into(),
                contacted.into(),
                now.into(),
                now.into(),
            ],
        ))
        .await?;
    if let Some(row) = row {
        let id: Uuid = row.try_get("", "id")?;
        return Ok((id, id == new_id));
    }
    // The customer exists and nothing about it changes.
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT id FROM customers WHERE tenant_id = {} AND phone_number = {}",
                p(1),
                p(2)
            ),
            [tenant_id.into(), phone.as_str().into()],
        ))
        .await?
        .ok_or_else(|| DomainError::Internal("customer vanished during upsert".into()))?;
    Ok((row.try_get("", "id")?, false))
}
