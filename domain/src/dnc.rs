//! The tenant's do-not-call list: numbers (E.164) no call may be placed to.

use chrono::Utc;
use entity::do_not_call;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::error::{DomainError, DomainResult};
use crate::phone::PhoneNumber;
use crate::tenancy::TenantScope;
use crate::types::Role;

fn parse(scope: &TenantScope, raw: &str) -> DomainResult<PhoneNumber> {
    PhoneNumber::parse(raw, scope.region())
        .map_err(|e| DomainError::invalid("phoneNumber", e.to_string()))
}

/// Adds a number (any format; read in the tenant's region). Adding it again keeps the
/// first reason. MEMBER or above.
pub async fn add(
    db: &DatabaseConnection,
    scope: &TenantScope,
    raw: &str,
    reason: Option<String>,
) -> DomainResult<bool> {
    scope.require(Role::Member)?;
    let phone = parse(scope, raw)?;
    let reason = reason
        .map(|r| r.trim().chars().take(500).collect::<String>())
        .filter(|r| !r.is_empty());
    list_number(db, scope.tenant_id(), phone.as_str(), reason).await?;
    Ok(true)
}

/// Puts an E.164 number on the tenant's list inside the caller's transaction; a number
/// already listed keeps its first reason.
pub(crate) async fn list_number<C: ConnectionTrait>(
    conn: &C,
    tenant_id: uuid::Uuid,
    e164: &str,
    reason: Option<String>,
) -> DomainResult<()> {
    do_not_call::Entity::insert(do_not_call::ActiveModel {
        tenant_id: Set(tenant_id),
        phone_number: Set(e164.to_owned()),
        reason: Set(reason),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([
            do_not_call::Column::TenantId,
            do_not_call::Column::PhoneNumber,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Removes a number; `false` when it was not on the list.
pub async fn remove(db: &DatabaseConnection, scope: &TenantScope, raw: &str) -> DomainResult<bool> {
    scope.require(Role::Member)?;
    let phone = parse(scope, raw)?;
    let res = do_not_call::Entity::delete_many()
        .filter(do_not_call::Column::TenantId.eq(scope.tenant_id()))
        .filter(do_not_call::Column::PhoneNumber.eq(phone.as_str()))
        .exec(db)
        .await?;
    Ok(res.rows_affected > 0)
}

/// Whether an E.164 number is on tenant `tenant_id`'s list (for workers, which act
/// for the tenant without a caller's scope).
pub async fn listed<C: ConnectionTrait>(
    conn: &C,
    tenant_id: uuid::Uuid,
    e164: &str,
) -> DomainResult<bool> {
    Ok(
        do_not_call::Entity::find_by_id((tenant_id, e164.to_owned()))
            .one(conn)
            .await?
            .is_some(),
    )
}

/// Whether an E.164 number is on the tenant's list.
pub async fn contains<C: ConnectionTrait>(
    conn: &C,
    scope: &TenantScope,
    phone: &PhoneNumber,
) -> DomainResult<bool> {
    Ok(
        do_not_call::Entity::find_by_id((scope.tenant_id(), phone.as_str().to_owned()))
            .one(conn)
            .await?
            .is_some(),
    )
}
