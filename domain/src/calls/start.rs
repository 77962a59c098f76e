//! `startCall`: validates, creates the call (QUEUED) and its placement job in one
//! transaction, and returns at once; a worker places it (`place`).

use chrono::Utc;
use entity::call;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::jobs::PlaceCall;
use super::transition;
use crate::agents;
use crate::customers::bulk::upsert_customer;
use crate::dnc;
use crate::error::{DomainError, DomainResult};
use crate::ingest::recipient_name;
use crate::jobs::{self, Job};
use crate::phone::PhoneNumber;
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{CallDirection, CallStatus, EventSource, LeadStatus, Role};

#[derive(Debug, Clone, Default)]
pub struct StartCall {
    pub agent_id: Uuid,
    pub customer_id: Option<Uuid>,
    pub phone_number: Option<String>,
    pub variables: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
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
    let provider = agent.provider;
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
            .is_some_and(|c| c.status == LeadStatus::DoNotCall)
    {
        return Err(DomainError::invalid(
            "phoneNumber",
            "this number is on the do-not-call list",
        ));
    }

    crate::credits::check_can_dial(db, scope.tenant_id()).await?;

    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let customer_id = match &customer {
        Some(c) => c.id,
        None => {
            let name = variables.as_ref().and_then(recipient_name);
            let (id, created) = upsert_customer(
                &txn,
                scope.tenant_id(),
                &phone,
                name,
                EventSource::Api,
                None,
            )
            .await?;
            if created {
                crate::outbound::record::customer_changes(&txn, scope.tenant_id(), &[id], &[])
                    .await?;
            }
            id
        }
    };
    let id = Uuid::now_v7();
    let inserted = call::ActiveModel {
        id: Set(id),
        tenant_id: Set(scope.tenant_id()),
        agent_id: Set(Some(agent.id)),
        customer_id: Set(Some(customer_id)),
        campaign_id: Set(None),
        campaign_item_id: Set(None),
        provider: Set(provider),
        provider_execution_id: Set(None),
        placing_since: Set(None),
        provider_call_id: Set(None),
        direction: Set(CallDirection::Outbound),
        status: Set(CallStatus::Queued),
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
        Err(e) if crate::db::is_unique_violation(&e) => {
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
    let after = transition::created(
        &txn,
        services.ingestor().follow_ups(),
        &model,
        EventSource::Api,
    )
    .await?;
    jobs::enqueue(
        &txn,
        &PlaceCall {
            tenant_id: scope.tenant_id(),
            call_id: id,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    jobs::wake(PlaceCall::LANE);
    after.run(&**services.events()).await;
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
