//! Lead scores in the database: the tenant's rules (ADMIN replaces them; every customer is
//! rescored in the background), and one customer's score recomputed from its calls and
//! their current analyses (after each analysis, in its transaction).

use chrono::Utc;
use entity::analysis_setting;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use super::scoring::{self, ScoredCall, ScoringRules};
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::tenancy::TenantScope;
use crate::types::{CallOutcome, CallStatus, Role};

/// Calls of one customer a score reads at most (the newest).
const CALLS_READ: i64 = 500;
/// Customers one rescoring job run takes.
pub(crate) const RESCORE_CHUNK: u64 = 200;

/// The tenant's scoring rules (the defaults until an ADMIN sets them).
pub async fn rules_of<C: ConnectionTrait>(conn: &C, tenant_id: Uuid) -> DomainResult<ScoringRules> {
    let row = analysis_setting::Entity::find_by_id(tenant_id)
        .one(conn)
        .await?;
    match row.and_then(|r| r.scoring_rules) {
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

/// Recomputes one customer's score, segment and explanation under `rules`.
pub(crate) async fn rescore<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    customer_id: Uuid,
    rules: &ScoringRules,
) -> DomainResult<()> {
    let Some(customer) = entity::customer::Entity::find_by_id(customer_id)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    if customer.tenant_id != tenant_id {
        return Ok(());
    }
    let calls = scored_calls(conn, tenant_id, customer_id).await?;
    let s = scoring::score(rules, customer.status, &calls, Utc::now());
    let explanation =
        serde_json::to_value(&s.explanation).map_err(|e| DomainError::Internal(e.to_string()))?;
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE customers SET lead_score = {}, segment = {}, score_explanation = {} WHERE id = {}",
        b.bind(s.score),
        b.bind(s.segment),
        b.bind(explanation),
        b.bind(customer_id)
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// The customer's newest calls with what their current analyses concluded, narrow
/// columns only (no transcripts).
async fn scored_calls<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    customer_id: Uuid,
) -> DomainResult<Vec<ScoredCall>> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "SELECT c.status, c.duration_seconds, COALESCE(c.started_at, c.created_at) AS at, \
         a.outcome, a.sentiment_score, a.extracted_data \
         FROM calls c LEFT JOIN call_analyses a ON a.call_id = c.id AND a.current = {} AND a.status = 'DONE' \
         WHERE c.tenant_id = {} AND c.customer_id = {} ORDER BY c.created_at DESC LIMIT {CALLS_READ}",
        b.bind(true),
        b.bind(tenant_id),
        b.bind(customer_id),
    );
    let rows = conn.query_all_raw(b.statement(sql)).await?;
    let mut calls = Vec::with_capacity(rows.len());
    for r in rows {
        let outcome: Option<CallOutcome> = r.try_get("", "outcome")?;
        calls.push(ScoredCall {
            at: r.try_get("", "at")?,
            status: r.try_get::<CallStatus>("", "status")?,
            duration_seconds: r.try_get("", "duration_seconds")?,
            outcome,
            sentiment_score: r.try_get("", "sentiment_score")?,
            extracted: r.try_get::<Option<Value>>("", "extracted_data")?,
        });
    }
    Ok(calls)
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
        .filter(entity::customer::Column::TenantId.eq(tenant_id));
    if let Some(a) = after {
        q = q.filter(entity::customer::Column::Id.gt(a));
    }
    let ids: Vec<Uuid> = q
        .order_by_asc(entity::customer::Column::Id)
        .limit(RESCORE_CHUNK)
        .into_tuple()
        .all(db)
        .await?;
    for id in &ids {
        rescore(db, tenant_id, *id, &rules).await?;
    }
    Ok((ids.len() as u64 == RESCORE_CHUNK)
        .then(|| ids.last().copied())
        .flatten())
}
