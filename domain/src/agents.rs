//! Voice agents: a tenant's handle on an agent configured at a provider.

use chrono::Utc;
use entity::agent;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult, OnConflict};
use crate::tenancy::TenantScope;
use crate::types::{Provider, Role};

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub provider: Provider,
    /// Required for real providers; generated for the simulator when absent.
    pub provider_agent_id: Option<String>,
    pub business_name: Option<String>,
}

/// `None` leaves a field unchanged; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub provider_agent_id: Option<String>,
    pub business_name: Option<Option<String>>,
}

const DUPLICATE: &str = "this tenant already has an agent with that provider agent id";

fn clean(field: &'static str, value: &str, max: usize) -> DomainResult<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

fn clean_optional(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> DomainResult<Option<String>> {
    match value {
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => clean(field, &v, max).map(Some),
        None => Ok(None),
    }
}

pub async fn list(db: &DatabaseConnection, scope: &TenantScope) -> DomainResult<Vec<agent::Model>> {
    Ok(agent::Entity::find()
        .filter(agent::Column::TenantId.eq(scope.tenant_id()))
        .order_by_asc(agent::Column::Id)
        .all(db)
        .await?)
}

pub async fn get(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<agent::Model> {
    find(db, scope, id)
        .await?
        .ok_or(DomainError::not_found("agent"))
}

pub async fn find(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<Option<agent::Model>> {
    Ok(agent::Entity::find_by_id(id)
        .filter(agent::Column::TenantId.eq(scope.tenant_id()))
        .one(db)
        .await?)
}

/// Batch lookup for DataLoaders: one statement for any number of ids.
pub async fn by_ids(
    db: &DatabaseConnection,
    scope: &TenantScope,
    ids: &[Uuid],
) -> DomainResult<Vec<agent::Model>> {
    Ok(agent::Entity::find()
        .filter(agent::Column::TenantId.eq(scope.tenant_id()))
        .filter(agent::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn create(
    db: &DatabaseConnection,
    scope: &TenantScope,
    input: NewAgent,
) -> DomainResult<agent::Model> {
    scope.require(Role::Member)?;
    let name = clean("name", &input.name, 200)?;
    let provider_agent_id = match (
        input.provider,
        clean_optional("providerAgentId", input.provider_agent_id, 200)?,
    ) {
        (_, Some(id)) => id,
        (Provider::Simulator, None) => format!("sim-{}", Uuid::new_v4()),
        (_, None) => {
            return Err(DomainError::invalid(
                "providerAgentId",
                "is required for this provider",
            ));
        }
    };
    let now = Utc::now();
    agent::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(scope.tenant_id()),
        name: Set(name),
        provider: Set(input.provider),
        provider_agent_id: Set(provider_agent_id),
        business_name: Set(clean_optional("businessName", input.business_name, 200)?),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .on_conflict("providerAgentId", DUPLICATE)
}

pub async fn update(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
    patch: AgentPatch,
) -> DomainResult<agent::Model> {
    scope.require(Role::Member)?;
    let current = get(db, scope, id).await?;
    let mut active: agent::ActiveModel = current.into();
    if let Some(name) = patch.name {
        active.name = Set(clean("name", &name, 200)?);
    }
    if let Some(pid) = patch.provider_agent_id {
        active.provider_agent_id = Set(clean("providerAgentId", &pid, 200)?);
    }
    if let Some(bn) = patch.business_name {
        active.business_name = Set(clean_optional("businessName", bn, 200)?);
    }
    active.updated_at = Set(Utc::now());
    active
        .update(db)
        .await
        .on_conflict("providerAgentId", DUPLICATE)
}

/// Deletes the agent; its calls stay, with no agent.
pub async fn delete(db: &DatabaseConnection, scope: &TenantScope, id: Uuid) -> DomainResult<bool> {
    scope.require(Role::Member)?;
    let res = agent::Entity::delete_many()
        .filter(agent::Column::TenantId.eq(scope.tenant_id()))
        .filter(agent::Column::Id.eq(id))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(DomainError::not_found("agent"));
    }
    Ok(true)
}
