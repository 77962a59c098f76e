//! Applying reports in one transaction with a handful of set-based statements, whatever
//! their number: one lookup, one customer insert, one customer update, one call upsert,
//! one event insert. A webhook's single report and a sync page take the same path.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use entity::{call, tenant};
use sea_orm::{ConnectionTrait, IdenStatic, Value};
use uuid::Uuid;

use super::lead::{LeadPlan, name_of};
use super::{IngestOutcome, Known};
use crate::calls::transition::{self, PendingEvent, Reported};
use crate::customers::bulk::{CustomerPlan, Standing, Stored, customers_by_phone, write_customers};
use crate::db::{Binder, Dialect, KeyIndex, probe};
use crate::error::{DomainError, DomainResult};
use crate::outbound::Subscriptions;
use crate::phone::{PhoneNumber, Region};
use crate::providers::CallReport;
use crate::types::{CallStatus, EventSource, Provider};

/// One report applied: what it did and the call as stored.
pub(crate) struct Applied {
    pub outcome: IngestOutcome,
    pub model: call::Model,
    /// The status the report said the call reached (its event).
    pub reported: Reported,
    /// Whether that event was new, when the call's statement wrote it (PostgreSQL);
    /// `None` leaves it to the transition point.
    pub recorded: Option<bool>,
}

/// What the store already holds for a batch's agents, calls and customers.
#[derive(Debug, Default)]
pub(crate) struct Lookup {
    /// Our agent id by provider agent id.
    pub agents: HashMap<String, Uuid>,
    /// The stored status by execution id.
    pub calls: HashMap<String, CallStatus>,
    /// Customer ids by phone number (E.164).
    pub customers: HashMap<String, Uuid>,
    /// What the lookup saw of those customers, by phone number.
    pub standing: HashMap<String, Standing>,
    /// The tenant's enabled webhook endpoints (id, stored event filter), when asked for.
    pub endpoints: Vec<(Uuid, serde_json::Value)>,
}

/// Agents and calls of one provider by their provider ids, customers by number and, with
/// `endpoints`, the tenant's enabled webhook endpoints, in one statement.
pub(crate) async fn lookup<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    provider: Provider,
    agent_ids: &[&str],
    execution_ids: &[&str],
    phones: &[&str],
    endpoints: bool,
) -> DomainResult<Lookup> {
    let mut b = Binder::new(conn.get_database_backend());
    let filters = [("provider", Value::from(provider))];
    // Only customers have these; typed, since PostgreSQL resolves `UNION ALL` pairwise and
    // two untyped NULLs would become text.
    let dialect = Dialect::from(b.backend());
    let no_at = dialect.cast_timestamp("NULL");
    let no_named = match dialect {
        Dialect::Postgres => "CAST(NULL AS boolean)",
        Dialect::Sqlite => "NULL",
    };
    let mut parts = Vec::new();
    if !agent_ids.is_empty() {
        let agents = probe(
            &mut b,
            "agents",
            KeyIndex::TenantFirst,
            tenant_id,
            &filters,
            "provider_agent_id",
            agent_ids,
            "id",
        );
        parts.push(format!(
            "SELECT 0 AS kind, p.k, p.id, NULL AS status, {no_at} AS at, {no_named} AS named FROM {agents}"
        ));
    }
    if !execution_ids.is_empty() {
        let calls = probe(
            &mut b,
            "calls",
            KeyIndex::KeyFirst,
            tenant_id,
            &filters,
            "provider_execution_id",
            execution_ids,
            "id, status",
        );
        parts.push(format!(
            "SELECT 1 AS kind, p.k, p.id, p.status, {no_at} AS at, {no_named} AS named FROM {calls}"
        ));
    }
    if !phones.is_empty() {
        let customers = probe(
            &mut b,
            "customers",
            KeyIndex::KeyFirst,
            tenant_id,
            &[],
            "phone_number",
            phones,
            "id, status, last_contacted_at, name IS NOT NULL AS named",
        );
        parts.push(format!(
            "SELECT 2 AS kind, p.k, p.id, p.status, p.last_contacted_at AS at, p.named FROM {customers}"
        ));
    }
    if endpoints {
        // The stored filter travels as text in the key column.
        parts.push(format!(
            "SELECT 3 AS kind, CAST(e.events AS TEXT) AS k, e.id, NULL AS status, {no_at} AS at, \
             {no_named} AS named FROM webhook_endpoints e WHERE e.tenant_id = {} AND e.enabled = {}",
            b.bind(tenant_id),
            b.bind(true)
        ));
    }
    let mut out = Lookup::default();
    if parts.is_empty() {
        return Ok(out);
    }
    for row in conn
        .query_all_raw(b.statement(parts.join(" UNION ALL ")))
        .await?
    {
        let kind: i32 = row.try_get("", "kind")?;
        let key: String = row.try_get("", "k")?;
        if kind == 0 {
            out.agents.insert(key, row.try_get("", "id")?);
        } else if kind == 3 {
            // An unreadable filter is an error, never "every event" (what an empty one means).
            let events = serde_json::from_str(&key).map_err(|e| {
                DomainError::Internal(format!("a webhook endpoint's stored filter: {e}"))
            })?;
            out.endpoints.push((row.try_get("", "id")?, events));
        } else if kind == 2 {
            let standing = Standing {
                last_contacted_at: row.try_get("", "at")?,
                named: row.try_get("", "named")?,
                status: row.try_get("", "status")?,
            };
            out.standing.insert(key.clone(), standing);
            out.customers.insert(key, row.try_get("", "id")?);
        } else if let Some(status) = row.try_get::<Option<CallStatus>>("", "status")? {
            out.calls.insert(key, status);
        }
    }
    Ok(out)
}

/// Applies `reports` (one provider, distinct execution ids) inside the caller's
/// transaction. `None` for a report skipped because the store already has its call at the
/// same or a later status (only with [`Known::Skip`]). Also returns the tenant's webhook
/// subscriptions, read with the lookup, for the transition's events.
pub(crate) async fn apply_batch<C: ConnectionTrait>(
    conn: &C,
    tenant: &tenant::Model,
    provider: Provider,
    reports: &[CallReport],
    phones: Option<&[Option<PhoneNumber>]>,
    source: EventSource,
    known: Known,
) -> DomainResult<(Vec<Option<Applied>>, Subscriptions)> {
    let backend = conn.get_database_backend();
    let now = Utc::now();
    let agent_ids: Vec<&str> = reports
        .iter()
        .filter_map(|r| r.provider_agent_id.as_deref())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let execution_ids: Vec<&str> = reports.iter().map(|r| r.execution_id.as_str()).collect();
    let region = Region::parse(&tenant.default_region)
        .map_err(|e| DomainError::Internal(format!("tenant region: {e}")))?;
    // Parsing is costly (regular expressions): callers that parsed already pass them.
    let number = |i: usize| match phones {
        Some(parsed) => parsed[i].clone(),
        None => reports[i]
            .customer_number()
            .and_then(|raw| PhoneNumber::parse(raw, region).ok()),
    };
    // Merging writes every report, so its customers are looked up with its calls; skipping
    // parses and looks up only the numbers of the reports it keeps.
    let early: Vec<Option<PhoneNumber>> = match known {
        Known::Merge => (0..reports.len()).map(number).collect(),
        Known::Skip => Vec::new(),
    };
    let numbers: Vec<&str> = early
        .iter()
        .flatten()
        .map(PhoneNumber::as_str)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut found = lookup(
        conn,
        tenant.id,
        provider,
        &agent_ids,
        &execution_ids,
        &numbers,
        true,
    )
    .await?;
    let subs = Subscriptions::of_tenant(tenant.id, std::mem::take(&mut found.endpoints));

    // The reports to write, and what they say about each customer.
    let mut todo: Vec<(usize, Option<PhoneNumber>)> = Vec::new();
    let mut customers: BTreeMap<String, CustomerPlan> = BTreeMap::new();
    for (i, report) in reports.iter().enumerate() {
        let previous = found.calls.get(&report.execution_id);
        if known == Known::Skip && previous.is_some_and(|p| p.rank() >= report.status.rank()) {
            continue;
        }
        let phone = match known {
            Known::Merge => early[i].clone(),
            Known::Skip => number(i),
        };
        if let Some(phone) = &phone {
            let at = report.occurred_at.or(report.started_at).unwrap_or(now);
            let plan = customers
                .entry(phone.as_str().to_owned())
                .or_insert_with(|| CustomerPlan {
                    name: None,
                    contacted: at,
                    lead: LeadPlan::default(),
                    do_not_call_from: None,
                });
            plan.contacted = plan.contacted.max(at);
            if plan.name.is_none() {
                plan.name = name_of(report);
            }
            let before = plan.lead.change().do_not_call;
            plan.lead.add(report, at);
            if !before && plan.lead.change().do_not_call {
                plan.do_not_call_from = Some(report.execution_id.clone());
            }
        }
        todo.push((i, phone));
    }
    let mut out: Vec<Option<Applied>> = reports.iter().map(|_| None).collect();
    if todo.is_empty() {
        return Ok((out, subs));
    }

    let existing = match known {
        Known::Merge => found.customers,
        Known::Skip => {
            let wanted: Vec<&str> = customers.keys().map(String::as_str).collect();
            customers_by_phone(conn, tenant.id, &wanted).await?
        }
    };
    let customer_ids = write_customers(
        conn,
        &subs,
        tenant.id,
        &customers,
        Stored {
            ids: &existing,
            standing: &found.standing,
        },
        source,
        now,
    )
    .await?;

    // Calls, in execution id order so concurrent batches lock rows in the same order.
    todo.sort_by(|a, b| reports[a.0].execution_id.cmp(&reports[b.0].execution_id));
    let mut b = Binder::new(backend);
    let mut rows = Vec::with_capacity(todo.len());
    let mut new_ids: HashMap<&str, Uuid> = HashMap::with_capacity(todo.len());
    for (i, phone) in &todo {
        let r = &reports[*i];
        let id = Uuid::now_v7();
        new_ids.insert(r.execution_id.as_str(), id);
        let customer_id = phone
            .as_ref()
            .and_then(|p| customer_ids.get(p.as_str()))
            .map(|c| c.0);
        let agent_id = r
            .provider_agent_id
            .as_ref()
            .and_then(|a| found.agents.get(a))
            .copied();
        rows.push(b.row(call_values(
            tenant.id,
            r,
            region,
            id,
            agent_id,
            customer_id,
            now,
        )));
    }
    let upsert = format!(
        "INSERT INTO calls ({}) VALUES {} \
         ON CONFLICT (tenant_id, provider, provider_execution_id) DO UPDATE SET {}",
        *CALL_COLUMNS,
        rows.join(", "),
        *CALL_MERGE,
    );
    let returning = crate::calls::repo::WITHOUT_RAW_BODY.as_str();
    // On PostgreSQL the reported statuses' events are written by the same statement.
    let (models, recorded) = if Dialect::of(conn) == Dialect::Postgres {
        let pending: Vec<PendingEvent<'_>> = todo
            .iter()
            .map(|(i, _)| PendingEvent {
                execution_id: reports[*i].execution_id.as_str(),
                status: reports[*i].status,
                source,
                at: reports[*i].occurred_at.unwrap_or(now),
            })
            .collect();
        let sql = transition::with_events(&mut b, &upsert, returning, &pending);
        let rows = conn.query_all_raw(b.statement(sql)).await?;
        let mut models = Vec::with_capacity(rows.len());
        let mut recorded = HashSet::with_capacity(rows.len());
        for row in rows {
            let model = crate::calls::decode_every(&row)?;
            if row.try_get::<bool>("", "event_recorded")? {
                recorded.insert(model.id);
            }
            models.push(model);
        }
        (models, Some(recorded))
    } else {
        let sql = format!("{upsert} RETURNING {returning}");
        let models = conn
            .query_all_raw(b.statement(sql))
            .await?
            .iter()
            .map(crate::calls::decode_every)
            .collect::<Result<Vec<_>, _>>()?;
        (models, None)
    };
    let mut by_execution: HashMap<String, call::Model> = models
        .into_iter()
        .filter_map(|m| Some((m.provider_execution_id.clone()?, m)))
        .collect();

    // Which report created its customer: the first one (in input order) for that number.
    let mut first_for_customer: HashSet<&str> = HashSet::new();
    todo.sort_by_key(|t| t.0);
    for (i, phone) in todo {
        let r = &reports[i];
        let model = by_execution
            .remove(&r.execution_id)
            .ok_or_else(|| DomainError::Internal("call upsert returned no row".into()))?;
        let created = new_ids.get(r.execution_id.as_str()) == Some(&model.id);
        let customer_created = phone
            .as_ref()
            .and_then(|p| customer_ids.get_key_value(p.as_str()))
            .is_some_and(|(k, c)| c.1 && first_for_customer.insert(k.as_str()));
        let previous = found.calls.get(&r.execution_id).copied();
        let status = model.status;
        let reported = Reported {
            tenant_id: tenant.id,
            call_id: model.id,
            status: r.status,
            source,
            at: r.occurred_at.unwrap_or(now),
        };
        out[i] = Some(Applied {
            recorded: recorded.as_ref().map(|set| set.contains(&model.id)),
            reported,
            outcome: IngestOutcome {
                call_id: model.id,
                created,
                advanced: created || previous.is_none_or(|p| status.rank() > p.rank()),
                // Set once the transition point has written the events.
                event_recorded: false,
                previous_status: previous,
                status,
                customer_id: model.customer_id,
                customer_created,
                agent_matched: model.agent_id.is_some(),
            },
            model,
        });
    }
    Ok((out, subs))
}

/// The columns a report writes, in [`call_values`] order. Named through the entity, so a
/// renamed or dropped column fails to compile here rather than at run time.
const INSERTED: [call::Column; 26] = [
    call::Column::Id,
    call::Column::TenantId,
    call::Column::AgentId,
    call::Column::CustomerId,
    call::Column::Provider,
    call::Column::ProviderExecutionId,
    call::Column::ProviderCallId,
    call::Column::ProviderAgentId,
    call::Column::Direction,
    call::Column::Status,
    call::Column::StatusRank,
    call::Column::FromNumber,
    call::Column::ToNumber,
    call::Column::StartedAt,
    call::Column::EndedAt,
    call::Column::DurationSeconds,
    call::Column::Cost,
    call::Column::Transcript,
    call::Column::Summary,
    call::Column::RecordingUrl,
    call::Column::ExtractedData,
    call::Column::HangupReason,
    call::Column::ErrorMessage,
    call::Column::RawPayload,
    call::Column::CreatedAt,
    call::Column::UpdatedAt,
];

/// Report fields that a later report may fill or overwrite (see [`call_merge`]).
const MERGED: [call::Column; 15] = [
    call::Column::ProviderCallId,
    call::Column::FromNumber,
    call::Column::ToNumber,
    call::Column::StartedAt,
    call::Column::EndedAt,
    call::Column::DurationSeconds,
    call::Column::Cost,
    call::Column::Transcript,
    call::Column::Summary,
    call::Column::RecordingUrl,
    call::Column::ExtractedData,
    call::Column::HangupReason,
    call::Column::ErrorMessage,
    call::Column::RawPayload,
    call::Column::ProviderAgentId,
];

static CALL_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    INSERTED
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
});

/// The `DO UPDATE` of the call upsert, built once.
static CALL_MERGE: LazyLock<String> = LazyLock::new(call_merge);

/// A report's row, in [`INSERTED`] order.
fn call_values(
    tenant_id: Uuid,
    r: &CallReport,
    region: Region,
    id: Uuid,
    agent_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Vec<Value> {
    let json = |v: &Option<serde_json::Value>| -> Value { v.clone().into() };
    vec![
        id.into(),
        tenant_id.into(),
        agent_id.into(),
        customer_id.into(),
        r.provider.into(),
        r.execution_id.clone().into(),
        r.provider_call_id.clone().into(),
        r.provider_agent_id.clone().into(),
        r.direction.into(),
        r.status.into(),
        r.status.rank().into(),
        stored_number(r.from_number.as_deref(), region).into(),
        stored_number(r.to_number.as_deref(), region).into(),
        r.started_at.into(),
        r.ended_at.into(),
        r.duration_seconds.into(),
        r.cost.into(),
        r.transcript.clone().into(),
        r.summary.clone().into(),
        r.recording_url.clone().into(),
        json(&r.extracted_data),
        r.hangup_reason.clone().into(),
        r.error_message.clone().into(),
        json(&r.raw),
        now.into(),
        now.into(),
    ]
}

/// A reported number as stored on the call: E.164, or null when it is not a phone number
/// (the raw body keeps what the provider sent). Numbers already in E.164 form, as
/// providers send them, skip the costly parse.
fn stored_number(raw: Option<&str>, region: Region) -> Option<String> {
    let raw = raw?;
    let e164 = raw.len() >= 8
        && raw.len() <= 16
        && raw.starts_with('+')
        && raw[1..].bytes().all(|b| b.is_ascii_digit())
        && !raw[1..].starts_with('0');
    if e164 {
        return Some(raw.to_owned());
    }
    PhoneNumber::parse(raw, region)
        .ok()
        .map(PhoneNumber::into_string)
}

/// The `DO UPDATE` of the call upsert: the status only moves to a higher rank; fields of
/// a report of higher or equal rank win when not null, a lower one only fills gaps. A call
/// that moves starts the stale-call sweep's back-off over in the same statement.
fn call_merge() -> String {
    let merged: Vec<String> = MERGED
    .iter()
    .map(|c| c.as_str())
    .map(|col| {
        format!(
            "{col} = CASE WHEN excluded.status_rank >= calls.status_rank \
             THEN COALESCE(excluded.{col}, calls.{col}) ELSE COALESCE(calls.{col}, excluded.{col}) END"
        )
    })
    .collect();
    format!(
        "status = CASE WHEN excluded.status_rank > calls.status_rank THEN excluded.status ELSE calls.status END, \
         status_rank = CASE WHEN excluded.status_rank > calls.status_rank THEN excluded.status_rank ELSE calls.status_rank END, \
         agent_id = COALESCE(calls.agent_id, excluded.agent_id), \
         customer_id = COALESCE(calls.customer_id, excluded.customer_id), \
         check_failures = CASE WHEN excluded.status_rank > calls.status_rank THEN 0 ELSE calls.check_failures END, \
         next_check_at = CASE WHEN excluded.status_rank > calls.status_rank THEN NULL ELSE calls.next_check_at END, \
         {}, updated_at = excluded.updated_at",
        merged.join(", ")
    )
}
