//! A call's life on our side: `startCall` queues it, a worker places it with the
//! provider, then follows it until it ends; the simulator's scripted reports and the
//! stale-call sweep feed the same ingestion.

use chrono::{Duration, Utc};
use entity::{call, tenant};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, SqlErr, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::agents;
use crate::db::param;
use crate::dnc;
use crate::error::{DomainError, DomainResult};
use crate::events::Event;
use crate::ingest::{self, recipient_name, upsert_customer};
use crate::phone::PhoneNumber;
use crate::providers::registry::ProviderLookupError;
use crate::providers::simulator::SimCall;
use crate::providers::{PlaceCall, ProviderError};
use crate::queue;
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{CallDirection, CallStatus, EventSource, LeadStatus, Provider, Role};

pub const PLACE_CALL_JOB: &str = "place_call";
pub const FOLLOW_CALL_JOB: &str = "follow_call";
pub const SIMULATOR_REPORT_JOB: &str = "simulator_report";
pub const STALE_CALLS_JOB: &str = "stale_calls";

/// Marks a call whose `POST /call` is in flight, so a retried job never sends it twice.
const PLACING: &str = "pending:";

#[derive(Debug, Clone, Default)]
pub struct StartCall {
    pub agent_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub phone_number: Option<String>,
    pub variables: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CallJob {
    tenant_id: Uuid,
    call_id: Uuid,
    #[serde(default)]
    attempt: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct SimulatorJob {
    tenant_id: Uuid,
    execution_id: String,
    stage: usize,
}

/// The provider execution id as users should see it (none while the call is being placed).
pub fn visible_execution_id(call: &call::Model) -> Option<&str> {
    call.provider_execution_id
        .as_deref()
        .filter(|id| !id.starts_with(PLACING))
}

/// Queues a call: validates, creates the call (QUEUED) and its placement job in one
/// transaction, and returns at once. The same `idempotency_key` returns the same call.
pub async fn start_call(
    services: &Services,
    scope: &TenantScope,
    input: StartCall,
) -> DomainResult<call::Model> {
    scope.require(Role::Member)?;
    let db = services.db();
    let key = match input.idempotency_key.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(k) if k.len() > 200 => {
            return Err(DomainError::invalid(
                "idempotencyKey",
                "must be at most 200 characters",
            ));
        }
        Some(k) => Some(k.to_owned()),
    };
    if let Some(k) = &key
        && let Some(existing) = by_idempotency_key(db, scope, k).await?
    {
        return Ok(existing);
    }
    let agent = agents::get(db, scope, input.agent_id)
        .await
        .map_err(|e| match e {
            DomainError::NotFound { .. } => DomainError::InvalidInput {
                field: Some("agentId"),
                message: "agent not found".into(),
            },
            other => other,
        })?;
    let provider: Provider = agent
        .provider
        .parse()
        .map_err(|e: crate::types::UnknownValue| DomainError::Internal(e.to_string()))?;
    let variables = match input.variables {
        None | Some(serde_json::Value::Null) => None,
        Some(v @ serde_json::Value::Object(_)) if v.to_string().len() <= 16 * 1024 => Some(v),
        Some(_) => {
            return Err(DomainError::invalid(
                "variables",
                "must be a JSON object of at most 16 KiB",
            ));
        }
    };

    let customer = match input.customer_id {
        Some(id) => Some(
            crate::customers::get(db, scope, id)
                .await
                .map_err(|e| match e {
                    DomainError::NotFound { .. } => {
                        DomainError::invalid("customerId", "customer not found")
                    }
                    other => other,
                })?,
        ),
        None => None,
    };
    let phone = match (&input.phone_number, &customer) {
        (Some(raw), _) => PhoneNumber::parse(raw, scope.region())
            .map_err(|e| DomainError::invalid("phoneNumber", e.to_string()))?,
        (None, Some(c)) => PhoneNumber::from_e164_unchecked(c.phone_number.clone()),
        (None, None) => {
            return Err(DomainError::invalid(
                "phoneNumber",
                "give a phoneNumber or a customerId",
            ));
        }
    };
    if let Some(c) = &customer
        && c.phone_number != phone.as_str()
    {
        return Err(DomainError::invalid(
            "phoneNumber",
            "differs from the customer's number",
        ));
    }
    if dnc::contains(db, scope, &phone).await?
        || customer
            .as_ref()
            .is_some_and(|c| c.status == LeadStatus::DoNotCall.as_str())
    {
        return Err(DomainError::invalid(
            "phoneNumber",
            "this number is on the do-not-call list",
        ));
    }

    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let customer_id = match &customer {
        Some(c) => c.id,
        None => {
            let name = variables.as_ref().and_then(recipient_name);
            upsert_customer(
                &txn,
                scope.tenant_id(),
                &phone,
                name,
                EventSource::Api,
                None,
            )
            .await?
            .0
        }
    };
    let id = Uuid::now_v7();
    let inserted = call::ActiveModel {
        id: Set(id),
        tenant_id: Set(scope.tenant_id()),
        agent_id: Set(Some(agent.id)),
        customer_id: Set(Some(customer_id)),
        campaign_id: Set(None),
        provider: Set(provider.as_str().to_owned()),
        provider_execution_id: Set(None),
        provider_call_id: Set(None),
        direction: Set(CallDirection::Outbound.as_str().to_owned()),
        status: Set(CallStatus::Queued.as_str().to_owned()),
        from_number: Set(None),
        to_number: Set(Some(phone.as_str().to_owned())),
        started_at: Set(None),
        ended_at: Set(None),
        duration_seconds: Set(None),
        cost: Set(None),
        transcript: Set(None),
        summary: Set(None),
        recording_url: Set(None),
        extracted_data: Set(None),
        hangup_reason: Set(None),
        raw_payload: Set(None),
        provider_agent_id: Set(Some(agent.provider_agent_id.clone())),
        status_rank: Set(CallStatus::Queued.rank()),
        idempotency_key: Set(key.clone()),
        error_message: Set(None),
        variables: Set(variables),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await;
    let model = match inserted {
        Ok(m) => m,
        // The same key raced in from another request: that call wins.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            txn.rollback().await?;
            if let Some(k) = &key
                && let Some(existing) = by_idempotency_key(db, scope, k).await?
            {
                return Ok(existing);
            }
            return Err(DomainError::Database(e));
        }
        Err(e) => return Err(e.into()),
    };
    record_event(&txn, &model, CallStatus::Queued, EventSource::Api).await?;
    queue::enqueue(
        &txn,
        PLACE_CALL_JOB,
        json!(CallJob {
            tenant_id: scope.tenant_id(),
            call_id: id,
            attempt: 0
        }),
        now,
        3,
    )
    .await?;
    txn.commit().await?;
    publish(services, &model, None).await;
    Ok(model)
}

async fn by_idempotency_key(
    db: &DatabaseConnection,
    scope: &TenantScope,
    key: &str,
) -> DomainResult<Option<call::Model>> {
    Ok(call::Entity::find()
        .filter(call::Column::TenantId.eq(scope.tenant_id()))
        .filter(call::Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

async fn record_event<C: ConnectionTrait>(
    conn: &C,
    model: &call::Model,
    status: CallStatus,
    source: EventSource,
) -> DomainResult<()> {
    ingest::record_event(conn, model.tenant_id, model.id, status, source, Utc::now()).await?;
    Ok(())
}

async fn publish(services: &Services, model: &call::Model, previous: Option<CallStatus>) {
    let event = Event::call_updated(model.clone(), previous.map(CallStatus::as_str));
    if let Err(e) = services.events().publish(event).await {
        tracing::warn!(error = %e, "could not publish a call update");
    }
}

async fn load_tenant(db: &DatabaseConnection, id: Uuid) -> Result<tenant::Model, String> {
    tenant::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("tenant {id} no longer exists"))
}

/// Ends a call we could not place: FAILED with the reason, unless it already moved on.
async fn fail_call(services: &Services, model: &call::Model, reason: &str) -> DomainResult<()> {
    end_unplaced(services, model, CallStatus::Failed, reason).await
}

/// Why `model` may not be dialled now, if it may not.
async fn do_not_call_reason(
    db: &sea_orm::DatabaseConnection,
    model: &call::Model,
    to: &str,
) -> DomainResult<Option<&'static str>> {
    if dnc::listed(db, model.tenant_id, to).await? {
        return Ok(Some("the number is on the do-not-call list"));
    }
    if let Some(customer_id) = model.customer_id
        && let Some(customer) = entity::customer::Entity::find_by_id(customer_id)
            .one(db)
            .await?
        && customer.status == crate::types::LeadStatus::DoNotCall.as_str()
    {
        return Ok(Some("the customer is marked DO_NOT_CALL"));
    }
    Ok(None)
}

/// Ends a call that was never sent to its provider, with `status` (FAILED, CANCELED).
async fn end_unplaced(
    services: &Services,
    model: &call::Model,
    status: CallStatus,
    reason: &str,
) -> DomainResult<()> {
    let db = services.db();
    let backend = db.get_database_backend();
    let p = |n| param(backend, n);
    let txn = crate::db::begin_write(db).await?;
    let updated = txn
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE calls SET status = {}, status_rank = {}, error_message = {}, updated_at = {}, \
                 provider_execution_id = CASE WHEN provider_execution_id LIKE '{PLACING}%' THEN NULL ELSE provider_execution_id END \
                 WHERE id = {} AND status_rank < {}",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6)
            ),
            [
                status.as_str().into(),
                status.rank().into(),
                reason.chars().take(1000).collect::<String>().into(),
                Utc::now().into(),
                model.id.into(),
                CallStatus::TERMINAL_RANK.into(),
            ],
        ))
        .await?
        .rows_affected();
    if updated == 0 {
        txn.rollback().await?;
        return Ok(());
    }
    record_event(&txn, model, status, EventSource::Api).await?;
    txn.commit().await?;
    if let Some(fresh) = call::Entity::find_by_id(model.id).one(db).await? {
        publish(services, &fresh, model.status.parse().ok()).await;
    }
    tracing::info!(call.id = %model.id, %status, reason, "call ended before it was placed");
    Ok(())
}

/// A call job's payload and its call (`None` when the call is gone).
async fn job_call(
    services: &Services,
    payload: serde_json::Value,
) -> Result<(CallJob, Option<call::Model>), String> {
    let job: CallJob = serde_json::from_value(payload).map_err(|e| e.to_string())?;
    let model = call::Entity::find_by_id(job.call_id)
        .filter(call::Column::TenantId.eq(job.tenant_id))
        .one(services.db())
        .await
        .map_err(|e| e.to_string())?;
    Ok((job, model))
}

/// Job: place a queued call with its provider. Idempotent, and never sends the
/// provider's create request twice for one call.
pub async fn place_call(services: &Services, payload: serde_json::Value) -> Result<(), String> {
    let db = services.db();
    let (job, Some(model)) = job_call(services, payload).await? else {
        return Ok(());
    };
    if let Some(id) = &model.provider_execution_id {
        if id.starts_with(PLACING) {
            // A previous attempt died between sending and recording: the provider may
            // have the call, so sending again could ring the customer twice.
            fail_call(
                services,
                &model,
                "the worker stopped while placing this call; not sent again to avoid calling twice",
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    if model.status_rank != CallStatus::Queued.rank() {
        return Ok(());
    }
    let provider: Provider = model
        .provider
        .parse()
        .map_err(|e: crate::types::UnknownValue| e.to_string())?;
    let client = match services
        .providers()
        .for_tenant(job.tenant_id, provider)
        .await
    {
        Ok(c) => c,
        Err(ProviderLookupError::Provider(e)) => {
            return fail_call(services, &model, &e.to_string())
                .await
                .map_err(|e| e.to_string());
        }
        Err(ProviderLookupError::Domain(e)) => return Err(e.to_string()),
    };
    let Some(to) = model.to_number.clone() else {
        return fail_call(services, &model, "the call has no number")
            .await
            .map_err(|e| e.to_string());
    };
    // The number may have been put on the do-not-call list (or its customer marked
    // DO_NOT_CALL) since the call was queued: checked again at the moment of dialling.
    if let Some(reason) = do_not_call_reason(db, &model, &to)
        .await
        .map_err(|e| e.to_string())?
    {
        return end_unplaced(services, &model, CallStatus::Canceled, reason)
            .await
            .map_err(|e| e.to_string());
    }
    // Claim the placement: only one worker gets past this update.
    let marker = format!("{PLACING}{}", model.id);
    let claimed = call::Entity::update_many()
        .col_expr(
            call::Column::ProviderExecutionId,
            sea_orm::sea_query::Expr::value(marker),
        )
        .filter(call::Column::Id.eq(model.id))
        .filter(call::Column::ProviderExecutionId.is_null())
        .exec(db)
        .await
        .map_err(|e| e.to_string())?
        .rows_affected;
    if claimed == 0 {
        return Ok(());
    }
    let placed = client
        .place_call(PlaceCall {
            provider_agent_id: model.provider_agent_id.clone().unwrap_or_default(),
            to_number: to,
            from_number: None,
            variables: model.variables.clone().unwrap_or(json!({})),
        })
        .await;
    match placed {
        Ok(placed) => {
            // The provider has the call now: try hard to record its id.
            let mut attempt = 0;
            while let Err(e) = adopt_execution(services, &model, &placed.execution_id).await {
                attempt += 1;
                if attempt >= 5 {
                    tracing::error!(call.id = %model.id, execution.id = %placed.execution_id, error = %e, "placed a call but could not record its execution id");
                    return Err(e.to_string());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
            follow(services, &model, provider, &placed.execution_id)
                .await
                .map_err(|e| e.to_string())
        }
        Err(e) => {
            let reason = match &e {
                ProviderError::Ambiguous(_) => format!(
                    "{e}; the call was not sent again to avoid calling twice (check the provider)"
                ),
                _ => e.to_string(),
            };
            fail_call(services, &model, &reason)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// Stores the provider's execution id on our call. If a webhook for it already created a
/// call row, that row is folded into ours (its events and fields kept).
async fn adopt_execution(
    services: &Services,
    model: &call::Model,
    execution_id: &str,
) -> DomainResult<()> {
    let db = services.db();
    let txn = crate::db::begin_write(db).await?;
    let duplicate = call::Entity::find()
        .filter(call::Column::TenantId.eq(model.tenant_id))
        .filter(call::Column::Provider.eq(model.provider.clone()))
        .filter(call::Column::ProviderExecutionId.eq(execution_id))
        .one(&txn)
        .await?;
    let mut active: call::ActiveModel = call::Entity::find_by_id(model.id)
        .one(&txn)
        .await?
        .ok_or(DomainError::not_found("call"))?
        .into();
    if let Some(dup) = duplicate.filter(|d| d.id != model.id) {
        let backend = txn.get_database_backend();
        let p = |n| param(backend, n);
        // Keep one event per status: ours where both have one.
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM call_events WHERE call_id = {} AND status IN (SELECT status FROM call_events WHERE call_id = {})",
                p(1),
                p(2)
            ),
            [dup.id.into(), model.id.into()],
        ))
        .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE call_events SET call_id = {} WHERE call_id = {}",
                p(1),
                p(2)
            ),
            [model.id.into(), dup.id.into()],
        ))
        .await?;
        call::Entity::delete_by_id(dup.id).exec(&txn).await?;
        if dup.status_rank > model.status_rank {
            active.status = Set(dup.status.clone());
            active.status_rank = Set(dup.status_rank);
        }
        macro_rules! fill {
            ($($f:ident),*) => {$(
                if dup.$f.is_some() { active.$f = Set(dup.$f.clone()); }
            )*};
        }
        fill!(
            provider_call_id,
            from_number,
            started_at,
            ended_at,
            duration_seconds,
            cost,
            transcript,
            summary,
            recording_url,
            extracted_data,
            hangup_reason,
            raw_payload
        );
    }
    active.provider_execution_id = Set(Some(execution_id.to_owned()));
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// After placing: the simulator's scripted reports, or polls of a real provider.
async fn follow(
    services: &Services,
    model: &call::Model,
    provider: Provider,
    execution_id: &str,
) -> DomainResult<()> {
    let db = services.db();
    if provider == Provider::Simulator {
        let sim = services.providers().simulator();
        let Some(sim_call) = SimCall::parse(execution_id) else {
            return Ok(());
        };
        let script = sim.script(&sim_call);
        let txn = crate::db::begin_write(db).await?;
        for (stage, step) in script.stages.iter().enumerate() {
            queue::enqueue(
                &txn,
                SIMULATOR_REPORT_JOB,
                json!(SimulatorJob {
                    tenant_id: model.tenant_id,
                    execution_id: execution_id.to_owned(),
                    stage
                }),
                sim.stage_time(&sim_call, step),
                3,
            )
            .await?;
        }
        txn.commit().await?;
        return Ok(());
    }
    queue::enqueue(
        db,
        FOLLOW_CALL_JOB,
        json!(CallJob {
            tenant_id: model.tenant_id,
            call_id: model.id,
            attempt: 0
        }),
        Utc::now() + follow_delay(0),
        3,
    )
    .await?;
    Ok(())
}

/// 15 s, 30 s, 60 s, ... capped at 10 minutes.
fn follow_delay(attempt: u32) -> Duration {
    Duration::seconds((15i64 << attempt.min(6)).min(600))
}

/// Job: one step of a simulated call's script, ingested like a webhook.
pub async fn simulator_report(
    services: &Services,
    payload: serde_json::Value,
) -> Result<(), String> {
    let job: SimulatorJob = serde_json::from_value(payload).map_err(|e| e.to_string())?;
    let tenant = load_tenant(services.db(), job.tenant_id).await?;
    let Some(sim_call) = SimCall::parse(&job.execution_id) else {
        return Ok(());
    };
    let Some(report) = services
        .providers()
        .simulator()
        .report_at(&sim_call, job.stage)
    else {
        return Ok(());
    };
    services
        .ingestor()
        .ingest(&tenant, &report, EventSource::Simulator)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Job: poll a placed call until it ends (webhooks usually get there first).
pub async fn follow_call(services: &Services, payload: serde_json::Value) -> Result<(), String> {
    let db = services.db();
    let (job, Some(model)) = job_call(services, payload).await? else {
        return Ok(());
    };
    if model.status_rank >= CallStatus::TERMINAL_RANK {
        return Ok(());
    }
    refresh(services, &model, EventSource::Poll)
        .await
        .map_err(|e| e.to_string())?;
    let fresh = call::Entity::find_by_id(model.id)
        .one(db)
        .await
        .map_err(|e| e.to_string())?;
    // Two hours of polling at most; the stale-call sweep takes over after that.
    if fresh.is_some_and(|c| c.status_rank < CallStatus::TERMINAL_RANK) && job.attempt < 16 {
        queue::enqueue(
            db,
            FOLLOW_CALL_JOB,
            json!(CallJob {
                attempt: job.attempt + 1,
                ..job
            }),
            Utc::now() + follow_delay(job.attempt + 1),
            3,
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Asks the provider where a call stands and ingests the answer.
pub async fn refresh(
    services: &Services,
    model: &call::Model,
    source: EventSource,
) -> Result<CallStatus, RefreshError> {
    let Some(execution_id) = visible_execution_id(model) else {
        return Err(ProviderError::NotFound.into());
    };
    let provider: Provider = model
        .provider
        .parse()
        .map_err(|e: crate::types::UnknownValue| DomainError::Internal(e.to_string()))?;
    let client = match services
        .providers()
        .for_tenant(model.tenant_id, provider)
        .await
    {
        Ok(c) => c,
        Err(ProviderLookupError::Provider(e)) => return Err(e.into()),
        Err(ProviderLookupError::Domain(e)) => return Err(e.into()),
    };
    let report = client.fetch_execution(execution_id).await?;
    let tenant = load_tenant(services.db(), model.tenant_id)
        .await
        .map_err(DomainError::Internal)?;
    let outcome = services.ingestor().ingest(&tenant, &report, source).await?;
    Ok(outcome.status)
}

/// After a refresh: a success is looked at again a stale period later; each failure in a
/// row doubles the wait (up to a day), so unrefreshable calls stop crowding the sweep.
async fn schedule_next_check(
    db: &sea_orm::DatabaseConnection,
    id: Uuid,
    failed: bool,
    stale_seconds: i64,
) -> DomainResult<()> {
    let backend = db.get_database_backend();
    let p = |n| param(backend, n);
    let failures: i64 = if failed {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!("SELECT check_failures FROM calls WHERE id = {}", p(1)),
                [id.into()],
            ))
            .await?;
        row.and_then(|r| r.try_get::<i32>("", "check_failures").ok())
            .unwrap_or(0) as i64
            + 1
    } else {
        0
    };
    let wait = stale_seconds
        .saturating_mul(1i64 << failures.clamp(0, 20))
        .min(MAX_CHECK_BACKOFF_SECONDS);
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "UPDATE calls SET check_failures = {}, next_check_at = {} WHERE id = {}",
            p(1),
            p(2),
            p(3)
        ),
        [
            (failures as i32).into(),
            (Utc::now() + Duration::seconds(wait)).into(),
            id.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// What one stale-call sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StaleSweep {
    pub found: u64,
    pub refreshed: u64,
    pub ended: u64,
    pub failed: u64,
}

/// Calls of one tenant one sweep looks at, before any tenant gets more.
const SWEEP_PER_TENANT: u64 = 20;
/// Longest a failing call waits between refreshes.
const MAX_CHECK_BACKOFF_SECONDS: i64 = 86_400;

/// Re-fetches every call non-terminal for longer than `STALE_CALL_SECONDS`, so a lost
/// webhook cannot leave a call "in progress" forever. At most `limit` calls per pass,
/// shared across tenants (each tenant's oldest first, round-robin), skipping calls whose
/// last refresh failed until their back-off ends.
pub async fn sweep_stale(services: &Services, limit: u64) -> DomainResult<StaleSweep> {
    let db = services.db();
    let backend = db.get_database_backend();
    let stale_seconds = services.providers().settings().stale_call_seconds as i64;
    let now = Utc::now();
    let cutoff = now - Duration::seconds(stale_seconds);
    let p = |n| param(backend, n);
    let picked = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT id FROM (SELECT id, updated_at, \
                 ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY updated_at) AS rn FROM calls \
                 WHERE status_rank < {rank} AND updated_at < {} AND provider_execution_id IS NOT NULL \
                 AND provider_execution_id NOT LIKE '{PLACING}%' \
                 AND (next_check_at IS NULL OR next_check_at <= {})) t \
                 WHERE rn <= {} ORDER BY rn, updated_at LIMIT {}",
                p(1),
                p(2),
                p(3),
                p(4),
                rank = CallStatus::TERMINAL_RANK,
            ),
            [
                cutoff.into(),
                now.into(),
                (SWEEP_PER_TENANT as i64).into(),
                (limit as i64).into(),
            ],
        ))
        .await?;
    let ids: Vec<Uuid> = picked
        .iter()
        .filter_map(|row| row.try_get::<Uuid>("", "id").ok())
        .collect();
    let mut stale = call::Entity::find()
        .filter(call::Column::Id.is_in(ids))
        .all(db)
        .await?;
    stale.sort_by_key(|c| c.updated_at);
    let mut sweep = StaleSweep {
        found: stale.len() as u64,
        ..Default::default()
    };
    for model in stale.iter().filter(|c| visible_execution_id(c).is_some()) {
        let failed = match refresh(services, model, EventSource::Poll).await {
            Ok(status) => {
                sweep.refreshed += 1;
                if status.is_terminal() {
                    sweep.ended += 1;
                }
                false
            }
            Err(e) => {
                sweep.failed += 1;
                tracing::warn!(call.id = %model.id, error = %e, "could not refresh a stale call");
                true
            }
        };
        schedule_next_check(db, model.id, failed, stale_seconds).await?;
    }
    metrics::counter!("stale_calls_found_total").increment(sweep.found);
    metrics::counter!("stale_calls_refreshed_total").increment(sweep.refreshed);
    metrics::counter!("stale_calls_failed_total").increment(sweep.failed);
    Ok(sweep)
}
