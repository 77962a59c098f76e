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
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement, Value};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::param;
use crate::error::{DomainError, DomainResult};
use crate::events::{Event, EventBus};
use crate::phone::{PhoneNumber, Region};
use crate::providers::CallReport;
use crate::queue;
use crate::types::{CallStatus, EventSource, LeadStatus};

/// Job kind of a report accepted by a webhook and not yet applied.
pub const INGEST_JOB: &str = "ingest_report";

const LOCK_STRIPES: usize = 256;

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

#[derive(Clone)]
pub struct Ingestor {
    db: DatabaseConnection,
    events: Arc<dyn EventBus>,
    /// Serialises reports for one call within this process so events leave in commit order.
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

impl Ingestor {
    pub fn new(db: DatabaseConnection, events: Arc<dyn EventBus>) -> Self {
        Ingestor {
            db,
            events,
            locks: Arc::new(
                (0..LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            ),
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn events(&self) -> &Arc<dyn EventBus> {
        &self.events
    }

    fn stripe(&self, tenant_id: Uuid, execution_id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        tenant_id.hash(&mut h);
        execution_id.hash(&mut h);
        &self.locks[(h.finish() as usize) % LOCK_STRIPES]
    }

    /// Applies one report in its own transaction and publishes what changed.
    pub async fn ingest(
        &self,
        tenant: &tenant::Model,
        report: &CallReport,
        source: EventSource,
    ) -> DomainResult<IngestOutcome> {
        let _guard = self.stripe(tenant.id, &report.execution_id).lock().await;
        let txn = crate::db::begin_write(&self.db).await?;
        let (outcome, model) = apply(&txn, tenant, report, source).await?;
        txn.commit().await?;
        self.publish(&outcome, model).await;
        Ok(outcome)
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
        let _guard = self
            .stripe(tenant.id, &queued.report.execution_id)
            .lock()
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
        let (outcome, model) = apply(&txn, tenant, &queued.report, source).await?;
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

fn opt_str(v: &Option<String>) -> Value {
    v.clone().into()
}

fn opt_time(v: Option<DateTime<Utc>>) -> Value {
    v.into()
}

/// The body of ingestion: runs inside the caller's transaction.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    tenant: &tenant::Model,
    report: &CallReport,
    source: EventSource,
) -> DomainResult<(IngestOutcome, call::Model)> {
    let backend = conn.get_database_backend();
    let p = |n| param(backend, n);
    let now = Utc::now();
    let provider = report.provider.as_str();

    // The agent and the call's current status, in one round trip.
    let found = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT (SELECT id FROM agents WHERE tenant_id = {} AND provider = {} AND provider_agent_id = {}) AS agent_id, \
                 (SELECT status FROM calls WHERE tenant_id = {} AND provider = {} AND provider_execution_id = {}) AS previous",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            ),
            [
                tenant.id.into(),
                provider.into(),
                report.provider_agent_id.clone().into(),
                tenant.id.into(),
                provider.into(),
                report.execution_id.clone().into(),
            ],
        ))
        .await?
        .ok_or_else(|| DomainError::Internal("lookup returned no row".into()))?;
    let agent_id: Option<Uuid> = found.try_get("", "agent_id")?;
    let previous = found
        .try_get::<Option<String>>("", "previous")?
        .and_then(|s| s.parse::<CallStatus>().ok());

    let region = Region::parse(&tenant.default_region)
        .map_err(|e| DomainError::Internal(format!("tenant region: {e}")))?;
    let phone = report
        .customer_number()
        .and_then(|raw| PhoneNumber::parse(raw, region).ok());
    let (customer_id, customer_created) = match &phone {
        None => (None, false),
        Some(phone) => {
            let contacted = report.occurred_at.or(report.started_at).unwrap_or(now);
            // The provider's extraction first, then what the caller passed for the call.
            let name = report
                .extracted_data
                .as_ref()
                .and_then(recipient_name)
                .or_else(|| report.recipient_data.as_ref().and_then(recipient_name));
            let (id, created) =
                upsert_customer(conn, tenant.id, phone, name, source, Some(contacted)).await?;
            (Some(id), created)
        }
    };

    let new_id = Uuid::now_v7();
    let rank = report.status.rank();
    // Higher or equal rank: the report's non-null fields win. Lower: it only fills gaps.
    let merge = |col: &str| {
        format!(
            "{col} = CASE WHEN excluded.status_rank >= calls.status_rank \
             THEN COALESCE(excluded.{col}, calls.{col}) ELSE COALESCE(calls.{col}, excluded.{col}) END"
        )
    };
    let merged: Vec<String> = [
        "provider_call_id",
        "from_number",
        "to_number",
        "started_at",
        "ended_at",
        "duration_seconds",
        "cost",
        "transcript",
        "summary",
        "recording_url",
        "extracted_data",
        "hangup_reason",
        "error_message",
        "raw_payload",
        "provider_agent_id",
    ]
    .iter()
    .map(|c| merge(c))
    .collect();
    let slots: Vec<String> = (1..=24).map(p).collect();
    let sql = format!(
        "INSERT INTO calls (id, tenant_id, agent_id, customer_id, provider, provider_execution_id, provider_call_id, \
         provider_agent_id, direction, status, status_rank, from_number, to_number, started_at, ended_at, duration_seconds, \
         cost, transcript, summary, recording_url, extracted_data, hangup_reason, error_message, raw_payload, created_at, updated_at) \
         VALUES ({}, {now_param}, {now_param2}) \
         ON CONFLICT (tenant_id, provider, provider_execution_id) DO UPDATE SET \
         status = CASE WHEN excluded.status_rank > calls.status_rank THEN excluded.status ELSE calls.status END, \
         status_rank = CASE WHEN excluded.status_rank > calls.status_rank THEN excluded.status_rank ELSE calls.status_rank END, \
         agent_id = COALESCE(calls.agent_id, excluded.agent_id), \
         customer_id = COALESCE(calls.customer_id, excluded.customer_id), \
         {}, updated_at = excluded.updated_at \
         RETURNING {}",
        slots.join(", "),
        merged.join(", "),
        RETURNED,
        now_param = p(25),
        now_param2 = p(26),
    );
    let json = |v: &Option<serde_json::Value>| -> Value { v.clone().into() };
    let values: Vec<Value> = vec![
        new_id.into(),
        tenant.id.into(),
        agent_id.into(),
        customer_id.into(),
        provider.into(),
        report.execution_id.clone().into(),
        opt_str(&report.provider_call_id),
        opt_str(&report.provider_agent_id),
        report.direction.as_str().into(),
        report.status.as_str().into(),
        rank.into(),
        opt_str(&report.from_number),
        opt_str(&report.to_number),
        opt_time(report.started_at),
        opt_time(report.ended_at),
        report.duration_seconds.into(),
        report.cost.into(),
        opt_str(&report.transcript),
        opt_str(&report.summary),
        opt_str(&report.recording_url),
        json(&report.extracted_data),
        opt_str(&report.hangup_reason),
        opt_str(&report.error_message),
        json(&report.raw),
        now.into(),
        now.into(),
    ];
    let model = call::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .one(conn)
        .await?
        .ok_or_else(|| DomainError::Internal("call upsert returned nothing".into()))?;
    let created = model.id == new_id;

    let recorded = record_event(
        conn,
        tenant.id,
        model.id,
        report.status,
        source,
        report.occurred_at.unwrap_or(now),
    )
    .await?;

    let status = model.status.parse::<CallStatus>().unwrap_or(report.status);
    let advanced = created || previous.is_none_or(|p| status.rank() > p.rank());
    if let Some(customer_id) = model.customer_id {
        update_lead(conn, tenant.id, customer_id, report, now).await?;
    }
    Ok((
        IngestOutcome {
            call_id: model.id,
            created,
            advanced,
            event_recorded: recorded,
            previous_status: previous,
            status,
            customer_id: model.customer_id,
            customer_created,
            agent_matched: model.agent_id.is_some(),
        },
        model,
    ))
}

/// Every column of `calls` but the provider's raw body, which nothing after the upsert
/// needs and which would otherwise be converted to text and sent back on every report.
const RETURNED: &str = "id, tenant_id, agent_id, customer_id, campaign_id, provider, provider_execution_id, \
    provider_call_id, direction, status, from_number, to_number, started_at, ended_at, duration_seconds, cost, \
    transcript, summary, recording_url, extracted_data, hangup_reason, NULL AS raw_payload, provider_agent_id, \
    status_rank, idempotency_key, error_message, variables, created_at, updated_at";

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

/// Where a lead stands in the funnel; a status moves forward only, unless the newest call
/// says otherwise (an interested lead who later says no is NOT_INTERESTED).
fn funnel_rank(status: LeadStatus) -> i32 {
    match status {
        LeadStatus::New => 0,
        LeadStatus::Contacted => 1,
        LeadStatus::NotInterested => 2,
        LeadStatus::Callback => 3,
        LeadStatus::Interested => 4,
        LeadStatus::Booked => 5,
        LeadStatus::DoNotCall => 6,
    }
}

/// The lead status a call's extracted intent or outcome implies.
pub fn intent_of(extracted: &serde_json::Value) -> Option<LeadStatus> {
    let obj = extracted.as_object()?;
    for key in [
        "intent",
        "outcome",
        "lead_status",
        "disposition",
        "call_outcome",
        "status",
    ] {
        let Some(text) = obj.get(key).and_then(|v| v.as_str()) else {
            continue;
        };
        let t = text.to_ascii_lowercase().replace(['_', '-'], " ");
        let status = if t.contains("do not call") || t.contains("dnc") || t.contains("stop calling")
        {
            LeadStatus::DoNotCall
        } else if t.contains("not interested") || t.contains("uninterested") {
            LeadStatus::NotInterested
        } else if t.contains("book") || t.contains("appointment") || t.contains("scheduled") {
            LeadStatus::Booked
        } else if t.contains("call back") || t.contains("callback") {
            LeadStatus::Callback
        } else if t.contains("interested") {
            LeadStatus::Interested
        } else {
            continue;
        };
        return Some(status);
    }
    match obj.get("interested").and_then(|v| v.as_bool()) {
        Some(true) => Some(LeadStatus::Interested),
        Some(false) => Some(LeadStatus::NotInterested),
        None => None,
    }
}

/// Moves the customer's lead status from this report: its extracted intent, or CONTACTED
/// once a call connected. A do-not-call intent also puts the number on the tenant's list.
async fn update_lead<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    customer_id: Uuid,
    report: &CallReport,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let intent = report.extracted_data.as_ref().and_then(intent_of);
    let connected = matches!(
        report.status,
        CallStatus::InProgress | CallStatus::CallDisconnected | CallStatus::Completed
    );
    let Some(target) = intent.or(connected.then_some(LeadStatus::Contacted)) else {
        return Ok(());
    };
    let backend = conn.get_database_backend();
    let p = |n| param(backend, n);
    let at = report.occurred_at.or(report.started_at).unwrap_or(now);
    let rank_sql = "CASE status WHEN 'NEW' THEN 0 WHEN 'CONTACTED' THEN 1 WHEN 'NOT_INTERESTED' THEN 2 \
                    WHEN 'CALLBACK' THEN 3 WHEN 'INTERESTED' THEN 4 WHEN 'BOOKED' THEN 5 ELSE 6 END";
    let sql = format!(
        "UPDATE customers SET status = {s}, updated_at = {now} WHERE id = {id} AND tenant_id = {t} \
         AND status <> {s2} AND status <> 'DO_NOT_CALL' \
         AND ({rank_sql} < {rank} OR ({newest} AND (last_contacted_at IS NULL OR last_contacted_at <= {at})))",
        s = p(1),
        now = p(2),
        id = p(3),
        t = p(4),
        s2 = p(5),
        rank = p(6),
        newest = p(7),
        at = p(8),
    );
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            target.as_str().into(),
            now.into(),
            customer_id.into(),
            tenant_id.into(),
            target.as_str().into(),
            funnel_rank(target).into(),
            intent.is_some().into(),
            at.into(),
        ],
    ))
    .await?;
    if target == LeadStatus::DoNotCall {
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO do_not_call (tenant_id, phone_number, reason, created_at) \
                 SELECT tenant_id, phone_number, {}, {} FROM customers WHERE id = {} \
                 ON CONFLICT (tenant_id, phone_number) DO NOTHING",
                p(1),
                p(2),
                p(3)
            ),
            [
                format!("asked during call {}", report.execution_id).into(),
                now.into(),
                customer_id.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// A name from what the caller passed for the call (`name`, `customer_name`, first + last).
pub(crate) fn recipient_name(data: &serde_json::Value) -> Option<String> {
    let s = |k: &str| {
        data.get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    s("name")
        .or_else(|| s("customer_name"))
        .or_else(|| match (s("first_name"), s("last_name")) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(f), None) => Some(f),
            (None, Some(l)) => Some(l),
            _ => None,
        })
        .map(|n| n.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intents_map_to_lead_statuses() {
        for (v, s) in [
            (json!({"intent": "Booked"}), Some(LeadStatus::Booked)),
            (
                json!({"outcome": "appointment_booked"}),
                Some(LeadStatus::Booked),
            ),
            (
                json!({"intent": "not-interested"}),
                Some(LeadStatus::NotInterested),
            ),
            (
                json!({"disposition": "Call back later"}),
                Some(LeadStatus::Callback),
            ),
            (
                json!({"intent": "interested"}),
                Some(LeadStatus::Interested),
            ),
            (
                json!({"outcome": "do_not_call"}),
                Some(LeadStatus::DoNotCall),
            ),
            (
                json!({"interested": false}),
                Some(LeadStatus::NotInterested),
            ),
            (json!({"budget": "40000"}), None),
            (json!("text"), None),
        ] {
            assert_eq!(intent_of(&v), s, "{v}");
        }
    }

    #[test]
    fn names_from_extraction_or_recipient_data() {
        assert_eq!(
            recipient_name(&json!({"first_name": "Ann", "last_name": "Lee"})).as_deref(),
            Some("Ann Lee")
        );
        assert_eq!(
            recipient_name(&json!({"customer_name": " Priya "})).as_deref(),
            Some("Priya")
        );
        assert_eq!(recipient_name(&json!({"name": ""})), None);
    }
}
