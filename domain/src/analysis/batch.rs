//! Analysing many calls of one tenant at once. The reads (calls, analyses already stored,
//! the tenant's fields and rules, the customers' histories) and the writes (analyses,
//! customers' statuses and scores, CRM outbox, outbound events) are one statement each
//! for the whole batch, so a sync that completes thousands of calls costs a few
//! statements per batch rather than a dozen per call.
//!
//! Within a customer the batch's calls apply in the order they were made, against a
//! history that already holds every analysis of the batch: the newest call's evidence
//! wins as it would had they been analysed one by one in any order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use entity::{call, call_analysis};
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::effects;
use super::fields::AnalysisField;
use super::heuristic;
use super::llm::LlmError;
use super::scores::{self, Standing};
use super::service::Ran;
use crate::db::Binder;
use crate::error::DomainResult;
use crate::outbound::{EventType, NewEvent, Subscriptions, payloads};
use crate::services::Services;
use crate::types::{AnalysisStatus, CallOutcome, LeadStatus};

/// Analyzer requests one batch has in flight (an LLM's own caps still apply).
const PARALLEL: usize = 8;

/// What a batch did, call by call.
#[derive(Debug, Default)]
pub struct Batch {
    /// Calls analysed, skipped, or needing nothing (already analysed, or gone).
    pub ran: Vec<(Uuid, Ran)>,
    /// Calls whose analyzer failed: nothing was stored for them.
    pub failed: Vec<(Uuid, LlmError)>,
}

/// What an analyzer returned, with its cost.
struct Analysed {
    analysis: Option<super::Analysis>,
    prompt_tokens: i64,
    completion_tokens: i64,
}

/// Runs the configured analyzer (the LLM, else the heuristic one) on a transcript worth
/// analysing; `None` analysis means too little to analyse (no tokens spent).
async fn run_analyzer(
    services: &Services,
    transcript: Option<&str>,
    fields: &[AnalysisField],
) -> Result<Analysed, LlmError> {
    let worth = transcript.filter(|t| super::transcript::worth_analysing(t));
    let Some(text) = worth else {
        return Ok(Analysed {
            analysis: None,
            prompt_tokens: 0,
            completion_tokens: 0,
        });
    };
    match services.analyzer() {
        Some(llm) => {
            let done = llm.analyze(text, fields).await?;
            Ok(Analysed {
                analysis: Some(done.analysis),
                prompt_tokens: done.prompt_tokens,
                completion_tokens: done.completion_tokens,
            })
        }
        None => Ok(Analysed {
            analysis: heuristic::analyze(text, fields),
            prompt_tokens: 0,
            completion_tokens: 0,
        }),
    }
}

/// The stored row of an analyzer's result.
fn row_of(
    tenant_id: Uuid,
    call_id: Uuid,
    result: &Analysed,
    latency: Duration,
) -> call_analysis::Model {
    let tokens = |n: i64| Some(n.clamp(0, i64::from(i32::MAX)) as i32);
    let now = Utc::now();
    let mut row = call_analysis::Model {
        id: Uuid::now_v7(),
        tenant_id,
        call_id,
        current: true,
        status: AnalysisStatus::Skipped,
        sentiment: None,
        sentiment_score: None,
        outcome: None,
        summary: None,
        extracted_data: None,
        model: None,
        prompt_tokens: Some(0),
        completion_tokens: Some(0),
        latency_ms: None,
        error: Some(format!(
            "too little to analyse: fewer than {} words, or no customer turn",
            super::MIN_WORDS
        )),
        created_at: now,
        analyzed_at: Some(now),
    };
    if let Some(a) = &result.analysis {
        row.status = AnalysisStatus::Done;
        row.sentiment = Some(a.sentiment);
        row.sentiment_score = Some(a.sentiment_score);
        row.outcome = Some(a.outcome);
        row.summary = Some(a.summary.clone());
        row.extracted_data = Some(serde_json::Value::Object(a.extracted.clone()));
        row.model = Some(a.model.clone());
        row.prompt_tokens = tokens(result.prompt_tokens);
        row.completion_tokens = tokens(result.completion_tokens);
        row.latency_ms = Some(latency.as_millis().min(i32::MAX as u128) as i32);
        row.error = None;
    }
    row
}

/// Analyses the calls among `call_ids` that belong to `tenant_id`: a call with a current
/// analysis is left alone unless `again`, which analyses with the tenant's current fields
/// and keeps the earlier analysis as history. In one transaction the analyses are stored,
/// their outcomes move the customers' lead statuses (see `effects`) and the customers
/// are rescored; dashboards get a `callUpdated` per call after the commit. A call whose
/// analyzer failed is reported in [`Batch::failed`] and stores nothing.
pub async fn analyse_many(
    services: &Services,
    tenant_id: Uuid,
    call_ids: &[Uuid],
    again: bool,
) -> DomainResult<Batch> {
    let db = services.db();
    let mut batch = Batch::default();
    let ids: Vec<Uuid> = call_ids
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(batch);
    }
    let mut calls = crate::calls::repo::of_tenant_by_ids(db, tenant_id, &ids).await?;
    let found: HashSet<Uuid> = calls.iter().map(|c| c.id).collect();
    if !again && !found.is_empty() {
        let done = with_current_analysis(db, &found).await?;
        calls.retain(|c| !done.contains(&c.id));
    }
    let pending: HashSet<Uuid> = calls.iter().map(|c| c.id).collect();
    for id in &ids {
        if !pending.contains(id) {
            batch.ran.push((*id, Ran::AlreadyDone));
        }
    }
    if calls.is_empty() {
        return Ok(batch);
    }
    let (fields, rules) = super::service::settings_of(db, tenant_id).await?;
    let results: Vec<(call::Model, Result<Analysed, LlmError>, Duration)> =
        futures_util::stream::iter(calls)
            .map(|c| {
                let fields = &fields;
                async move {
                    let started = Instant::now();
                    let result = run_analyzer(services, c.transcript.as_deref(), fields).await;
                    (c, result, started.elapsed())
                }
            })
            .buffered(PARALLEL)
            .collect()
            .await;
    let mut rows: Vec<(call::Model, call_analysis::Model)> = Vec::with_capacity(results.len());
    for (c, result, latency) in results {
        match result {
            Ok(done) => {
                let row = row_of(tenant_id, c.id, &done, latency);
                rows.push((c, row));
            }
            Err(e) => batch.failed.push((c.id, e)),
        }
    }
    if rows.is_empty() {
        return Ok(batch);
    }

    let txn = crate::db::begin_write(db).await?;
    if again {
        let mut b = Binder::new(txn.get_database_backend());
        let no = b.bind(false);
        let list = b.list(rows.iter().map(|(c, _)| c.id.into()));
        let sql = format!(
            "UPDATE call_analyses SET current = {no} WHERE call_id IN ({list}) AND current"
        );
        txn.execute_raw(b.statement(sql)).await?;
    }
    let stored = insert_analyses(&txn, &rows).await?;
    // Another run stored some calls' analyses first: those stand.
    rows.retain(|(c, _)| {
        let kept = stored.contains(&c.id);
        if !kept {
            batch.ran.push((c.id, Ran::AlreadyDone));
        }
        kept
    });
    let subs = Subscriptions::load(&txn, [tenant_id]).await?;
    let wanted = subs.wants(tenant_id, EventType::CallAnalyzed);
    let mut events: Vec<NewEvent> = rows
        .iter()
        .filter(|_| wanted)
        .map(|(c, row)| {
            NewEvent::new(
                tenant_id,
                EventType::CallAnalyzed,
                Some(c.id),
                serde_json::json!({ "analysis": payloads::analysis(row), "customerId": c.customer_id }),
            )
        })
        .collect();
    for (c, row) in &rows {
        if row.outcome == Some(CallOutcome::DoNotCall)
            && let Some(phone) = effects::customer_phone(c)
        {
            effects::do_not_call(&txn, c, phone).await?;
        }
    }
    events.extend(apply_to_customers(&txn, tenant_id, &rows, &rules, &subs).await?);
    let webhooks = crate::outbound::record(&txn, &subs, events).await?;
    txn.commit().await?;
    if webhooks {
        crate::jobs::wake(crate::jobs::Lane::Webhooks);
    }
    for (c, row) in rows {
        batch.ran.push((
            c.id,
            if row.status == AnalysisStatus::Done {
                Ran::Analysed
            } else {
                Ran::Skipped
            },
        ));
        // Dashboards see the analysis through the call's update (its status unchanged).
        let status = c.status;
        if let Err(e) = services
            .events()
            .publish(crate::events::Event::call_updated(c, Some(status)))
            .await
        {
            tracing::warn!(error = %e, "could not publish a call's analysis");
        }
    }
    Ok(batch)
}

/// The calls among `ids` that have a current analysis.
async fn with_current_analysis<C: ConnectionTrait>(
    conn: &C,
    ids: &HashSet<Uuid>,
) -> DomainResult<HashSet<Uuid>> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = if crate::db::Dialect::of(conn).probes_laterally() {
        // One probe of the current-analysis index per call: an `IN` list over a table
        // growing faster than its statistics was planned as a scan of every analysis.
        let keys: Vec<String> = ids.iter().map(|id| format!("({})", b.bind(*id))).collect();
        format!(
            "SELECT m.call_id FROM (VALUES {}) AS keys (k) CROSS JOIN LATERAL \
             (SELECT call_id FROM call_analyses WHERE call_id = keys.k AND current LIMIT 1) m",
            keys.join(", ")
        )
    } else {
        let list = b.list(ids.iter().map(|id| (*id).into()));
        format!("SELECT call_id FROM call_analyses WHERE call_id IN ({list}) AND current")
    };
    let mut out = HashSet::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        out.insert(row.try_get("", "call_id")?);
    }
    Ok(out)
}

/// Rows one analyses insert covers (seventeen values each).
const INSERT_CHUNK: usize = 200;

/// Inserts `rows` as their calls' current analyses; returns the calls whose row went in
/// (a call that got its current analysis meanwhile keeps that one).
async fn insert_analyses<C: ConnectionTrait>(
    conn: &C,
    rows: &[(call::Model, call_analysis::Model)],
) -> DomainResult<HashSet<Uuid>> {
    let mut stored = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut b = Binder::new(conn.get_database_backend());
        let values: Vec<String> = chunk
            .iter()
            .map(|(_, r)| {
                b.row([
                    r.id.into(),
                    r.tenant_id.into(),
                    r.call_id.into(),
                    r.current.into(),
                    r.status.into(),
                    r.sentiment.into(),
                    r.sentiment_score.into(),
                    r.outcome.into(),
                    r.summary.clone().into(),
                    r.extracted_data.clone().into(),
                    r.model.clone().into(),
                    r.prompt_tokens.into(),
                    r.completion_tokens.into(),
                    r.latency_ms.into(),
                    r.error.clone().into(),
                    r.created_at.into(),
                    r.analyzed_at.into(),
                ])
            })
            .collect();
        let sql = format!(
            "INSERT INTO call_analyses (id, tenant_id, call_id, current, status, sentiment, \
             sentiment_score, outcome, summary, extracted_data, model, prompt_tokens, \
             completion_tokens, latency_ms, error, created_at, analyzed_at) VALUES {} \
             ON CONFLICT DO NOTHING RETURNING call_id",
            values.join(", ")
        );
        for row in conn.query_all_raw(b.statement(sql)).await? {
            stored.insert(row.try_get("", "call_id")?);
        }
    }
    Ok(stored)
}

/// Moves the customers of `rows` by their outcomes and rescores them; returns the
/// `customer.updated` events of those whose standing moved, when someone subscribes.
async fn apply_to_customers<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    rows: &[(call::Model, call_analysis::Model)],
    rules: &super::scoring::ScoringRules,
    subs: &Subscriptions,
) -> DomainResult<Vec<NewEvent>> {
    let mut by_customer: HashMap<Uuid, Vec<&(call::Model, call_analysis::Model)>> = HashMap::new();
    for r in rows {
        if let Some(id) = r.0.customer_id {
            by_customer.entry(id).or_default().push(r);
        }
    }
    if by_customer.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = by_customer.keys().copied().collect();
    // By primary key alone, the tenant checked here: a generic plan of the tenant's index
    // would walk every customer of the tenant.
    let before: HashMap<Uuid, entity::customer::Model> = entity::customer::Entity::find()
        .filter(entity::customer::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .filter(|c| c.tenant_id == tenant_id)
        .map(|c| (c.id, c))
        .collect();
    // The precedence looks only at calls newer than one analysed here.
    let oldest = rows.iter().map(|(c, _)| c.created_at).min();
    let histories = scores::histories(conn, tenant_id, &ids, oldest, rules).await?;
    let now = Utc::now();
    let mut standings: Vec<Standing> = Vec::with_capacity(before.len());
    for (id, mut analysed) in by_customer {
        let Some(customer) = before.get(&id) else {
            continue;
        };
        let history = histories.get(&id).map(Vec::as_slice).unwrap_or_default();
        analysed.sort_by_key(|(c, _)| (c.created_at, c.id));
        let mut status: LeadStatus = customer.status;
        for (c, row) in analysed {
            let Some(target) = row.outcome.and_then(effects::lead_status_of) else {
                continue;
            };
            let newest = !effects::newer_evidence(history, c);
            status = effects::next_status(status, target, newest);
        }
        let moved = status != customer.status;
        standings.push(scores::standing(rules, id, status, moved, history, now));
    }
    let after = scores::write_standings(conn, &standings, now).await?;
    // Status, score, segment and the last call's summary may have moved.
    crate::crm::outbox::mark(conn, tenant_id, &ids).await?;
    if !subs.wants(tenant_id, EventType::CustomerUpdated) {
        return Ok(Vec::new());
    }
    Ok(after
        .iter()
        .filter(|a| {
            before.get(&a.id).is_some_and(|b| {
                (b.status, b.lead_score, &b.segment) != (a.status, a.lead_score, &a.segment)
            })
        })
        .map(|a| payloads::customer_event(EventType::CustomerUpdated, a))
        .collect())
}

/// Settles the calls whose analyzer failed in a batch: those it cannot help to retry
/// are recorded FAILED with the reason; the others are returned with when to try again.
pub(crate) async fn settle_failures(
    services: &Services,
    tenant_id: Uuid,
    failed: Vec<(Uuid, LlmError)>,
) -> DomainResult<Vec<(Uuid, Duration, String)>> {
    let mut again = Vec::new();
    for (id, e) in failed {
        if e.is_retryable() {
            let after = e
                .retry_after()
                .unwrap_or(Duration::from_secs(2))
                .clamp(Duration::from_secs(1), Duration::from_secs(600));
            again.push((id, after, e.to_string()));
        } else {
            super::service::fail(services.db(), tenant_id, id, &e.to_string()).await?;
        }
    }
    Ok(again)
}
