//! Lead scores in the database: the tenant's rules (ADMIN replaces them; every customer is
//! rescored in the background), and one customer's score recomputed from its calls and
//! their current analyses (after each analysis, in its transaction).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::analysis_setting;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use super::scoring::{self, ScoredCall, ScoringRules};
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::tenancy::TenantScope;
use crate::types::{CallOutcome, CallStatus, LeadStatus, Role};

/// Calls of one customer a score reads at most (the newest).
const CALLS_READ: i64 = 500;
/// Customers one rescoring job run takes.
pub(crate) const RESCORE_CHUNK: u64 = 200;

/// The tenant's scoring rules (the defaults until an ADMIN sets them).
pub async fn rules_of<C: ConnectionTrait>(conn: &C, tenant_id: Uuid) -> DomainResult<ScoringRules> {
    let row = analysis_setting::Entity::find_by_id(tenant_id)
        .one(conn)
        .await?;
    rules_from(row.and_then(|r| r.scoring_rules))
}

/// The rules a stored settings row holds (the defaults when it holds none).
pub(crate) fn rules_from(stored: Option<Value>) -> DomainResult<ScoringRules> {
    match stored {
        Some(v) => serde_json::from_value(v).map_err(|e| {
            DomainError::Internal(format!("stored scoring rules are unreadable: {e}"))
        }),
        None => Ok(ScoringRules::default()),
    }
}

/// The rules, for any of the tenant's keys.
pub async fn rules(db: &DatabaseConnection, scope: &TenantScope) -> DomainResult<ScoringRules> {
    rules_of(db, scope.tenant_id()).await
}

/// Replaces the tenant's rules (ADMIN), validated, and rescores every customer in the
/// background.
pub async fn set_rules(
    db: &DatabaseConnection,
    scope: &TenantScope,
    rules: ScoringRules,
) -> DomainResult<ScoringRules> {
    scope.require(Role::Admin)?;
    rules.validate()?;
    let stored = serde_json::to_value(&rules).map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let row = analysis_setting::ActiveModel {
        tenant_id: Set(scope.tenant_id()),
        fields: Set(Value::Array(Vec::new())),
        scoring_rules: Set(Some(stored)),
        updated_at: Set(now),
    };
    analysis_setting::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(analysis_setting::Column::TenantId)
                .update_columns([
                    analysis_setting::Column::ScoringRules,
                    analysis_setting::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    crate::jobs::enqueue(
        &txn,
        &super::jobs::RescoreCustomers {
            tenant_id: scope.tenant_id(),
            after: None,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    crate::jobs::wake(crate::jobs::Lane::Analysis);
    Ok(rules)
}

/// One of a customer's newest calls, as its score and the status precedence read it.
#[derive(Debug, Clone)]
pub(crate) struct HistoryCall {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The provider's own extraction says where the lead stands.
    pub provider_intent: bool,
    pub scored: ScoredCall,
}

/// Customers one history read covers (its statement binds one value per customer).
const HISTORY_CHUNK: usize = 200;

/// The newest calls of each of `customers` (at most `CALLS_READ` each) with what their
/// current analyses concluded: narrow columns only (no transcripts), one statement per
/// chunk of customers. The provider's extraction is read only for calls made after
/// `evidence_after` (the status precedence looks at nothing older; `None`: not at all),
/// and the analyses' extracted fields only when `rules` score fields.
pub(crate) async fn histories<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    customers: &[Uuid],
    evidence_after: Option<DateTime<Utc>>,
    rules: &ScoringRules,
) -> DomainResult<HashMap<Uuid, Vec<HistoryCall>>> {
    let mut out: HashMap<Uuid, Vec<HistoryCall>> = HashMap::new();
    for chunk in customers.chunks(HISTORY_CHUNK) {
        let mut b = Binder::new(conn.get_database_backend());
        let call_extracted = match evidence_after {
            Some(at) => format!(
                "CASE WHEN c.created_at > {} THEN c.extracted_data END",
                b.bind(at)
            ),
            None => "NULL".to_owned(),
        };
        let fields = if rules.field_rules.is_empty() {
            "NULL"
        } else {
            "a.extracted_data"
        };
        let tenant = b.bind(tenant_id);
        let sql = if crate::db::Dialect::of(conn).probes_laterally() {
            // One index probe per customer (by primary key, its tenant checked), then its
            // newest calls and their current analyses: a join over an `IN` list could be
            // planned as a walk of every customer or analysis of the tenant while the
            // table statistics lag behind a growing table.
            let keys: Vec<String> = chunk
                .iter()
                .map(|id| format!("({})", b.bind(*id)))
                .collect();
            format!(
                "SELECT c.customer_id, c.id, c.created_at, c.status, c.duration_seconds, c.at, \
                 c.call_extracted, a.outcome, a.sentiment_score, a.extracted_data \
                 FROM (VALUES {}) AS keys (k) \
                 CROSS JOIN LATERAL (SELECT id FROM customers \
                   WHERE id = keys.k AND tenant_id = {tenant} LIMIT 1) k \
                 CROSS JOIN LATERAL (SELECT c.customer_id, c.id, c.created_at, c.status, \
                   c.duration_seconds, COALESCE(c.started_at, c.created_at) AS at, \
                   {call_extracted} AS call_extracted FROM calls c WHERE c.customer_id = k.id \
                   ORDER BY c.created_at DESC LIMIT {CALLS_READ}) c \
                 LEFT JOIN LATERAL (SELECT a.outcome, a.sentiment_score, {fields} AS extracted_data \
                   FROM call_analyses a WHERE a.call_id = c.id AND a.current AND a.status = 'DONE' \
                   LIMIT 1) a ON TRUE",
                keys.join(", ")
            )
        } else {
            let list = b.list(chunk.iter().map(|id| (*id).into()));
            format!(
                "SELECT customer_id, id, created_at, status, duration_seconds, at, call_extracted, \
                 outcome, sentiment_score, extracted_data FROM (\
                 SELECT c.customer_id, c.id, c.created_at, c.status, c.duration_seconds, \
                 COALESCE(c.started_at, c.created_at) AS at, {call_extracted} AS call_extracted, \
                 a.outcome, a.sentiment_score, {fields} AS extracted_data, \
                 ROW_NUMBER() OVER (PARTITION BY c.customer_id ORDER BY c.created_at DESC) AS rn \
                 FROM customers k JOIN calls c ON c.customer_id = k.id \
                 LEFT JOIN call_analyses a ON a.call_id = c.id AND a.current AND a.status = 'DONE' \
                 WHERE k.tenant_id = {tenant} AND k.id IN ({list})) h \
                 WHERE rn <= {CALLS_READ}"
            )
        };
        for r in conn.query_all_raw(b.statement(sql)).await? {
            let customer: Uuid = r.try_get("", "customer_id")?;
            let call_extracted: Option<Value> = r.try_get("", "call_extracted")?;
            out.entry(customer).or_default().push(HistoryCall {
                id: r.try_get("", "id")?,
                created_at: r.try_get("", "created_at")?,
                provider_intent: call_extracted
                    .as_ref()
                    .and_then(crate::ingest::lead::intent_of)
                    .is_some(),
                scored: ScoredCall {
                    at: r.try_get("", "at")?,
                    status: r.try_get::<CallStatus>("", "status")?,
                    duration_seconds: r.try_get("", "duration_seconds")?,
                    outcome: r.try_get::<Option<CallOutcome>>("", "outcome")?,
                    sentiment_score: r.try_get("", "sentiment_score")?,
                    extracted: r.try_get::<Option<Value>>("", "extracted_data")?,
                },
            });
        }
    }
    Ok(out)
}

/// A customer's recomputed standing, to be written.
pub(crate) struct Standing {
    pub customer_id: Uuid,
    pub status: LeadStatus,
    /// The status moved (so `updated_at` moves too).
    pub moved: bool,
    pub score: scoring::Score,
}

/// The standing of a customer at `status` with `calls`, under `rules`.
pub(crate) fn standing(
    rules: &ScoringRules,
    customer_id: Uuid,
    status: LeadStatus,
    moved: bool,
    calls: &[HistoryCall],
    now: DateTime<Utc>,
) -> Standing {
    let scored: Vec<ScoredCall> = calls.iter().map(|c| c.scored.clone()).collect();
    Standing {
        customer_id,
        status,
        moved,
        score: scoring::score(rules, status, &scored, now),
    }
}

/// Rows one standings write covers (seven values each).
const WRITE_CHUNK: usize = 200;

/// Writes `standings` (status, score, segment, explanation), one statement per chunk;
/// returns the customers as written. The status is written only where it moved (a
/// concurrent change is not undone), and never away from DO_NOT_CALL.
pub(crate) async fn write_standings<C: ConnectionTrait>(
    conn: &C,
    standings: &[Standing],
    now: DateTime<Utc>,
) -> DomainResult<Vec<entity::customer::Model>> {
    use sea_orm::{FromQueryResult, Iterable};
    let columns: Vec<&str> = entity::customer::Column::iter()
        .map(|c| sea_orm::IdenStatic::as_str(&c))
        .collect();
    let returning = columns.join(", ");
    let mut out = Vec::with_capacity(standings.len());
    for chunk in standings.chunks(WRITE_CHUNK) {
        let mut b = Binder::new(conn.get_database_backend());
        let mut rows = Vec::with_capacity(chunk.len());
        for s in chunk {
            let explanation = serde_json::to_value(&s.score.explanation)
                .map_err(|e| DomainError::Internal(e.to_string()))?;
            rows.push(b.row([
                s.customer_id.into(),
                s.status.as_str().into(),
                s.moved.into(),
                now.into(),
                s.score.score.into(),
                s.score.segment.into(),
                explanation.into(),
            ]));
        }
        // VALUES columns are column1..column7 on both databases.
        let sql = format!(
            "UPDATE customers SET \
             status = CASE WHEN v.column3 AND customers.status <> 'DO_NOT_CALL' THEN v.column2 ELSE customers.status END, \
             updated_at = CASE WHEN v.column3 AND customers.status <> 'DO_NOT_CALL' THEN v.column4 ELSE customers.updated_at END, \
             lead_score = v.column5, segment = v.column6, score_explanation = v.column7 \
             FROM (VALUES {}) AS v WHERE customers.id = v.column1 RETURNING {returning}",
            rows.join(", ")
        );
        for row in conn.query_all_raw(b.statement(sql)).await? {
            out.push(entity::customer::Model::from_query_result(&row, "")?);
        }
    }
    Ok(out)
}

/// Recomputes the score, segment and explanation of `customers` (of `tenant_id`, with
/// their stored statuses) under `rules`.
async fn rescore_many<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    customers: &[(Uuid, LeadStatus)],
    rules: &ScoringRules,
) -> DomainResult<()> {
    if customers.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = customers.iter().map(|c| c.0).collect();
    let histories = histories(conn, tenant_id, &ids, None, rules).await?;
    let now = Utc::now();
    let standings: Vec<Standing> = customers
        .iter()
        .map(|(id, status)| {
            let calls = histories.get(id).map(Vec::as_slice).unwrap_or_default();
            standing(rules, *id, *status, false, calls, now)
        })
        .collect();
    write_standings(conn, &standings, now).await?;
    Ok(())
}

/// Rescores the tenant's customers after `after` (by id), one chunk; returns the last id
/// done when more may follow.
pub(crate) async fn rescore_chunk(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    after: Option<Uuid>,
) -> DomainResult<Option<Uuid>> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let rules = rules_of(db, tenant_id).await?;
    let mut q = entity::customer::Entity::find()
        .select_only()
        .column(entity::customer::Column::Id)
        .column(entity::customer::Column::Status)
        .filter(entity::customer::Column::TenantId.eq(tenant_id));
    if let Some(a) = after {
        q = q.filter(entity::customer::Column::Id.gt(a));
    }
    let customers: Vec<(Uuid, LeadStatus)> = q
        .order_by_asc(entity::customer::Column::Id)
        .limit(RESCORE_CHUNK)
        .into_tuple()
        .all(db)
        .await?;
    rescore_many(db, tenant_id, &customers, &rules).await?;
    Ok((customers.len() as u64 == RESCORE_CHUNK)
        .then(|| customers.last().map(|c| c.0))
        .flatten())
}
