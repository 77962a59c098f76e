//! Running an analysis and storing it: one current analysis per call (a re-analysis keeps
//! the earlier ones as history), with the model, tokens spent and latency; transcripts too
//! short to analyse are recorded as SKIPPED with no tokens spent.

use chrono::Utc;
use entity::{analysis_setting, call, call_analysis};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::fields::AnalysisField;
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
    fields_from(row.fields)
}

/// The fields a stored settings row holds.
fn fields_from(stored: serde_json::Value) -> DomainResult<Vec<AnalysisField>> {
    serde_json::from_value(stored)
        .map_err(|e| DomainError::Internal(format!("stored analysis fields are unreadable: {e}")))
}

/// The tenant's custom fields and scoring rules, in one read (what a batch of analyses
/// needs).
pub(crate) async fn settings_of<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
) -> DomainResult<(Vec<AnalysisField>, super::scoring::ScoringRules)> {
    let Some(row) = analysis_setting::Entity::find_by_id(tenant_id)
        .one(conn)
        .await?
    else {
        return Ok(Default::default());
    };
    let fields = fields_from(row.fields)?;
    let rules = super::scores::rules_from(row.scoring_rules)?;
    Ok((fields, rules))
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

/// Analyses `call_id` once: a call with a current analysis is left alone unless `again`
/// (a re-analysis asked for), which analyses with the tenant's current fields and keeps
/// the earlier analysis as history. See [`super::batch::analyse_many`].
pub async fn analyse(
    services: &Services,
    tenant_id: Uuid,
    call_id: Uuid,
    again: bool,
) -> Result<Ran, AnalyseError> {
    let mut batch = super::batch::analyse_many(services, tenant_id, &[call_id], again).await?;
    if let Some((_, e)) = batch.failed.pop() {
        return Err(AnalyseError::Llm(e));
    }
    Ok(batch
        .ran
        .pop()
        .map(|(_, ran)| ran)
        .unwrap_or(Ran::AlreadyDone))
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
