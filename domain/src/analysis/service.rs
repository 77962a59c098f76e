//! Running an analysis and storing it: one current analysis per call (a re-analysis keeps
//! the earlier ones as history), with the model, tokens spent and latency; transcripts too
//! short to analyse are recorded as SKIPPED with no tokens spent.

use std::time::Instant;

use chrono::Utc;
use entity::{analysis_setting, call, call_analysis};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::fields::AnalysisField;
use super::heuristic;
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{AnalysisStatus, Role};

/// The tenant's custom extraction fields (none until an ADMIN sets them).
pub async fn fields_of<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
) -> DomainResult<Vec<AnalysisField>> {
    let Some(row) = analysis_setting::Entity::find_by_id(tenant_id)
        .one(conn)
        .await?
    else {
        return Ok(Vec::new());
    };
    serde_json::from_value(row.fields)
        .map_err(|e| DomainError::Internal(format!("stored analysis fields are unreadable: {e}")))
}

/// The tenant's fields, for any of its keys (definitions, not secrets).
pub async fn fields(
    db: &DatabaseConnection,
    scope: &TenantScope,
) -> DomainResult<Vec<AnalysisField>> {
    fields_of(db, scope.tenant_id()).await
}

/// Replaces the tenant's fields with `fields` (ADMIN), validated as a whole; later
/// analyses (and re-analyses) use them.
pub async fn set_fields(
    db: &DatabaseConnection,
    scope: &TenantScope,
    fields: Vec<AnalysisField>,
) -> DomainResult<Vec<AnalysisField>> {
    scope.require(Role::Admin)?;
    super::fields::validate(&fields)?;
    let fields: Vec<AnalysisField> = fields
        .into_iter()
        .map(|f| AnalysisField {
            description: f.description.trim().to_owned(),
            values: f.values.into_iter().map(|v| v.trim().to_owned()).collect(),
            ..f
        })
        .collect();
    let stored = serde_json::to_value(&fields).map_err(|e| DomainError::Internal(e.to_string()))?;
    let row = analysis_setting::ActiveModel {
        tenant_id: Set(scope.tenant_id()),
        fields: Set(stored),
        scoring_rules: sea_orm::NotSet,
        updated_at: Set(Utc::now()),
    };
    analysis_setting::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(analysis_setting::Column::TenantId)
                .update_columns([
                    analysis_setting::Column::Fields,
                    analysis_setting::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(fields)
}

/// Analyses the call again with the tenant's current fields, in the background (MEMBER);
/// the earlier analysis stays in the history. Returns the call.
pub async fn reanalyze(
    db: &DatabaseConnection,
    scope: &TenantScope,
    call_id: Uuid,
) -> DomainResult<call::Model> {
    scope.require(Role::Member)?;
    let call = crate::calls::find(db, scope, call_id)
        .await?
        .ok_or(DomainError::not_found("call"))?;
    if !call.status.is_terminal() {
        return Err(DomainError::invalid("id", "the call has not ended yet"));
    }
    if call
        .transcript
        .as_deref()
        .is_none_or(|t| t.trim().is_empty())
    {
        return Err(DomainError::invalid(
            "id",
            "the call has no transcript to analyse",
        ));
    }
    // Asking again while an analysis of the call is waiting or running adds nothing, so
    // repeated requests do not pile jobs up.
    use crate::jobs::Job as _;
    if crate::jobs::queue::has_live(db, super::jobs::AnalyzeCall::KIND, call.id).await? {
        return Ok(call);
    }
    crate::jobs::enqueue(
        db,
        &super::jobs::AnalyzeCall {
            tenant_id: call.tenant_id,
            call_id: call.id,
            again: true,
        },
        Utc::now(),
    )
    .await?;
    crate::jobs::wake(crate::jobs::Lane::Analysis);
    Ok(call)
}

/// Calls one `reanalyzeCalls` may cover at most (narrow the filter for more).
pub const MAX_REANALYSIS: u64 = 100_000;

/// Re-analyses the tenant's ended calls with a transcript that match `filter`, in the
/// background (MEMBER); returns the task whose counts show the progress. One re-analysis
/// runs per tenant at a time.
pub async fn reanalyze_calls(
    db: &DatabaseConnection,
    scope: &TenantScope,
    filter: crate::calls::CallFilter,
) -> DomainResult<entity::task::Model> {
    scope.require(Role::Member)?;
    let total = crate::calls::repo::count_analysable(db, scope, &filter).await?;
    if total > MAX_REANALYSIS {
        return Err(DomainError::invalid(
            "filter",
            format!("{total} calls match; at most {MAX_REANALYSIS} can be re-analysed at once"),
        ));
    }
    let running = entity::task::Entity::find()
        .filter(entity::task::Column::TenantId.eq(scope.tenant_id()))
        .filter(entity::task::Column::Kind.eq(super::jobs::ReanalyzeCalls::TASK))
        .filter(entity::task::Column::Status.eq(crate::types::TaskStatus::Running))
        .one(db)
        .await?;
    if running.is_some() {
        return Err(DomainError::conflict(
            "filter",
            "a re-analysis is already running for this tenant",
        ));
    }
    let params = serde_json::to_value(&filter).map_err(|e| DomainError::Internal(e.to_string()))?;
    let txn = crate::db::begin_write(db).await?;
    let task = crate::tasks::create(
        &txn,
        scope.tenant_id(),
        super::jobs::ReanalyzeCalls::TASK,
        total as i64,
        params,
    )
    .await?;
    crate::jobs::enqueue(
        &txn,
        &super::jobs::ReanalyzeCalls {
            tenant_id: scope.tenant_id(),
            task_id: task.id,
            filter,
            after: None,
        },
        Utc::now(),
    )
    .await?;
    txn.commit().await?;
    crate::jobs::wake(crate::jobs::Lane::Analysis);
    Ok(task)
}

/// The call's current analysis, if it has one.
pub async fn current<C: ConnectionTrait>(
    conn: &C,
    call_id: Uuid,
) -> DomainResult<Option<call_analysis::Model>> {
    Ok(call_analysis::Entity::find()
        .filter(call_analysis::Column::CallId.eq(call_id))
        .filter(call_analysis::Column::Current.eq(true))
        .one(conn)
        .await?)
}

/// The current analyses of the tenant's calls among `call_ids`, by call.
pub async fn current_for_calls(
    db: &DatabaseConnection,
    scope: &TenantScope,
    call_ids: &[Uuid],
) -> DomainResult<std::collections::HashMap<Uuid, call_analysis::Model>> {
    if call_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = call_analysis::Entity::find()
        .filter(call_analysis::Column::TenantId.eq(scope.tenant_id()))
        .filter(call_analysis::Column::CallId.is_in(call_ids.iter().copied()))
        .filter(call_analysis::Column::Current.eq(true))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.call_id, r)).collect())
}

/// What one run of the analysis job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Analysed,
    Skipped,
    /// The call already has its analysis (a duplicate job), or is gone.
    AlreadyDone,
}

/// Why an analysis did not complete.
#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    #[error(transparent)]
    Llm(#[from] super::llm::LlmError),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<sea_orm::DbErr> for AnalyseError {
    fn from(e: sea_orm::DbErr) -> Self {
        AnalyseError::Domain(e.into())
    }
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
) -> Result<Analysed, AnalyseError> {
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

/// Analyses `call_id` once: a call with a current analysis is left alone unless `again`
/// (a re-analysis asked for), which analyses with the tenant's current fields and keeps
/// the earlier analysis as history. In the same transaction the outcome moves the
/// customer's lead status (see `effects`) and the customer is rescored; dashboards get a
/// `callUpdated` after the commit.
pub async fn analyse(
    services: &Services,
    tenant_id: Uuid,
    call_id: Uuid,
    again: bool,
) -> Result<Ran, AnalyseError> {
    let db = services.db();
    let Some(call) = call::Entity::find_by_id(call_id)
        .filter(call::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?
    else {
        return Ok(Ran::AlreadyDone);
    };
    if !again && current(db, call_id).await?.is_some() {
        return Ok(Ran::AlreadyDone);
    }
    let fields = fields_of(db, tenant_id).await?;
    let started = Instant::now();
    let result = run_analyzer(services, call.transcript.as_deref(), &fields).await?;
    let latency = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let tokens = |n: i64| Some(n.clamp(0, i64::from(i32::MAX)) as i32);
    let now = Utc::now();
    let row = match &result.analysis {
        Some(a) => call_analysis::Model {
            id: Uuid::now_v7(),
            tenant_id,
            call_id,
            current: true,
            status: AnalysisStatus::Done,
            sentiment: Some(a.sentiment),
            sentiment_score: Some(a.sentiment_score),
            outcome: Some(a.outcome),
            summary: Some(a.summary.clone()),
            extracted_data: Some(serde_json::Value::Object(a.extracted.clone())),
            model: Some(a.model.clone()),
            prompt_tokens: tokens(result.prompt_tokens),
            completion_tokens: tokens(result.completion_tokens),
            latency_ms: Some(latency),
            error: None,
            created_at: now,
            analyzed_at: Some(now),
        },
        None => call_analysis::Model {
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
        },
    };
    let txn = crate::db::begin_write(db).await?;
    if again {
        let mut b = Binder::new(txn.get_database_backend());
        let sql = format!(
            "UPDATE call_analyses SET current = {} WHERE call_id = {} AND current",
            b.bind(false),
            b.bind(call_id)
        );
        txn.execute_raw(b.statement(sql)).await?;
    }
    let inserted = call_analysis::Entity::insert(call_analysis::ActiveModel::from(row.clone()))
        .exec_without_returning(&txn)
        .await;
    match inserted {
        Ok(_) => {}
        // Another run stored the call's analysis first: that one stands.
        Err(e) if crate::db::is_unique_violation(&e) => return Ok(Ran::AlreadyDone),
        Err(e) => return Err(AnalyseError::Domain(e.into())),
    }
    use crate::outbound::{EventType, NewEvent, Subscriptions, payloads};
    let subs = Subscriptions::load(&txn, [tenant_id]).await?;
    let before = match call.customer_id {
        Some(id) if subs.wants(tenant_id, EventType::CustomerUpdated) => {
            entity::customer::Entity::find_by_id(id).one(&txn).await?
        }
        _ => None,
    };
    if let Some(outcome) = row.outcome {
        super::effects::apply(&txn, &call, outcome).await?;
    }
    if let Some(customer_id) = call.customer_id {
        let rules = super::scores::rules_of(&txn, tenant_id).await?;
        super::scores::rescore(&txn, tenant_id, customer_id, &rules).await?;
        // Status, score, segment and the last call's summary may have moved.
        crate::crm::outbox::mark(&txn, tenant_id, &[customer_id]).await?;
    }
    let mut events = vec![NewEvent::new(
        tenant_id,
        EventType::CallAnalyzed,
        Some(call.id),
        serde_json::json!({ "analysis": payloads::analysis(&row), "customerId": call.customer_id }),
    )];
    if let Some(before) = before
        && let Some(after) = entity::customer::Entity::find_by_id(before.id)
            .one(&txn)
            .await?
        && (after.status, after.lead_score, &after.segment)
            != (before.status, before.lead_score, &before.segment)
    {
        events.push(payloads::customer_event(EventType::CustomerUpdated, &after));
    }
    let webhooks = crate::outbound::record(&txn, &subs, events).await?;
    txn.commit().await?;
    if webhooks {
        crate::jobs::wake(crate::jobs::Lane::Webhooks);
    }
    // Dashboards see the analysis through the call's update (its status unchanged).
    let status = call.status;
    if let Err(e) = services
        .events()
        .publish(crate::events::Event::call_updated(call, Some(status)))
        .await
    {
        tracing::warn!(error = %e, "could not publish a call's analysis");
    }
    Ok(if row.status == AnalysisStatus::Done {
        Ran::Analysed
    } else {
        Ran::Skipped
    })
}

/// Records that the call's analysis failed for good, keeping the error.
pub async fn fail(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    call_id: Uuid,
    error: &str,
) -> DomainResult<()> {
    if current(db, call_id).await?.is_some() {
        return Ok(());
    }
    let now = Utc::now();
    let row = call_analysis::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        call_id: Set(call_id),
        current: Set(true),
        status: Set(AnalysisStatus::Failed),
        sentiment: Set(None),
        sentiment_score: Set(None),
        outcome: Set(None),
        summary: Set(None),
        extracted_data: Set(None),
        model: Set(None),
        prompt_tokens: Set(None),
        completion_tokens: Set(None),
        latency_ms: Set(None),
        error: Set(Some(error.chars().take(2000).collect())),
        created_at: Set(now),
        analyzed_at: Set(None),
    };
    match call_analysis::Entity::insert(row)
        .exec_without_returning(db)
        .await
    {
        Err(e) if crate::db::is_unique_violation(&e) => Ok(()),
        other => other.map(|_| ()).map_err(Into::into),
    }
}
