//! A tenant's webhook endpoints (ADMIN only): where events go, which ones, and the signing
//! secret, shown once at creation and at each rotation and encrypted at rest.

use chrono::{Duration as ChronoDuration, Utc};
use entity::webhook_endpoint;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use uuid::Uuid;

use super::Outbound;
use super::record::schedule_pump;
use super::types::Filter;
use crate::error::{DomainError, DomainResult};
use crate::net::OutboundError;
use crate::tenancy::TenantScope;
use crate::types::Role;

pub const MAX_ENDPOINTS: u64 = 20;
pub const MAX_URL_BYTES: usize = 2000;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

#[derive(Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

/// An endpoint and its secret in clear, returned once.
pub struct WithSecret {
    pub endpoint: webhook_endpoint::Model,
    pub secret: String,
}

fn context(id: Uuid) -> String {
    format!("webhook_endpoint:{id}")
}

/// Refuses what is not an http(s) URL or names a private address (unless allowlisted).
/// A name that does not resolve now is accepted: the delivery retries, and the guard
/// checks the address again when it connects.
async fn check_url(outbound: &Outbound, url: &str) -> DomainResult<String> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL_BYTES {
        return Err(DomainError::invalid(
            "url",
            format!("must be an http:// or https:// URL of at most {MAX_URL_BYTES} bytes"),
        ));
    }
    match outbound.policy().check(url).await {
        Ok(()) | Err(OutboundError::Unresolvable(_)) => Ok(url.to_owned()),
        Err(e) => Err(DomainError::invalid("url", e.to_string())),
    }
}

fn check_description(d: Option<String>) -> DomainResult<Option<String>> {
    match d.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()) {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(DomainError::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters"),
        )),
        d => Ok(d),
    }
}

pub async fn create(
    db: &DatabaseConnection,
    outbound: &Outbound,
    scope: &TenantScope,
    input: NewEndpoint,
) -> DomainResult<WithSecret> {
    scope.require(Role::Admin)?;
    let url = check_url(outbound, &input.url).await?;
    let filter = Filter::parse(&input.events)?;
    let description = check_description(input.description)?;
    // Counting and inserting under the tenant's row lock: concurrent creations cannot
    // pass the cap together (SQLite writes one at a time anyway).
    let txn = crate::db::begin_write(db).await?;
    if crate::db::Dialect::of(&txn) == crate::db::Dialect::Postgres {
        let mut b = crate::db::Binder::new(txn.get_database_backend());
        let sql = format!(
            "SELECT id FROM tenants WHERE id = {} FOR NO KEY UPDATE",
            b.bind(scope.tenant_id())
        );
        txn.query_one_raw(b.statement(sql)).await?;
    }
    let count = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(scope.tenant_id()))
        .count(&txn)
        .await?;
    if count >= MAX_ENDPOINTS {
        return Err(DomainError::invalid(
            "url",
            format!("a tenant may have at most {MAX_ENDPOINTS} webhook endpoints"),
        ));
    }
    let id = Uuid::now_v7();
    let secret = super::signing::new_secret()?;
    let secret_enc = outbound
        .cipher()
        .encrypt(&secret, &context(id))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = Utc::now();
    let endpoint = webhook_endpoint::ActiveModel {
        id: Set(id),
        tenant_id: Set(scope.tenant_id()),
        url: Set(url),
        description: Set(description),
        events: Set(filter.to_json()),
        secret_enc: Set(secret_enc),
        previous_secret_enc: Set(None),
        previous_expires_at: Set(None),
        enabled: Set(true),
        disabled_reason: Set(None),
        failing_since: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(WithSecret { endpoint, secret })
}

/// One of the tenant's endpoints.
pub async fn get(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<webhook_endpoint::Model> {
    scope.require(Role::Admin)?;
    webhook_endpoint::Entity::find_by_id(id)
        .filter(webhook_endpoint::Column::TenantId.eq(scope.tenant_id()))
        .one(db)
        .await?
        .ok_or_else(|| DomainError::not_found("webhook endpoint"))
}

pub async fn list(
    db: &DatabaseConnection,
    scope: &TenantScope,
) -> DomainResult<Vec<webhook_endpoint::Model>> {
    scope.require(Role::Admin)?;
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(scope.tenant_id()))
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(db)
        .await?)
}

pub async fn update(
    db: &DatabaseConnection,
    outbound: &Outbound,
    scope: &TenantScope,
    id: Uuid,
    changes: EndpointChanges,
) -> DomainResult<webhook_endpoint::Model> {
    let current = get(db, scope, id).await?;
    let mut row = current.into_active_model();
    if let Some(url) = changes.url {
        row.url = Set(check_url(outbound, &url).await?);
    }
    if let Some(events) = changes.events {
        row.events = Set(Filter::parse(&events)?.to_json());
    }
    if let Some(d) = changes.description {
        row.description = Set(check_description(Some(d))?);
    }
    row.updated_at = Set(Utc::now());
    Ok(row.update(db).await?)
}

/// A new secret; the previous one keeps signing beside it for 24 hours.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    outbound: &Outbound,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<WithSecret> {
    let current = get(db, scope, id).await?;
    let secret = super::signing::new_secret()?;
    let secret_enc = outbound
        .cipher()
        .encrypt(&secret, &context(id))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = Utc::now();
    let mut row = current.clone().into_active_model();
    row.previous_secret_enc = Set(Some(current.secret_enc));
    row.previous_expires_at = Set(Some(now + ChronoDuration::hours(ROTATION_OVERLAP_HOURS)));
    row.secret_enc = Set(secret_enc);
    row.updated_at = Set(now);
    let endpoint = row.update(db).await?;
    Ok(WithSecret { endpoint, secret })
}

/// Stops deliveries to the endpoint; pending ones wait (nothing is dropped) and new events
/// are not recorded for it until it is enabled again.
pub async fn disable(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
    reason: Option<String>,
) -> DomainResult<webhook_endpoint::Model> {
    let current = get(db, scope, id).await?;
    let mut row = current.into_active_model();
    row.enabled = Set(false);
    row.disabled_reason = Set(Some(
        reason
            .map(|r| {
                r.trim()
                    .chars()
                    .take(MAX_DESCRIPTION_CHARS)
                    .collect::<String>()
            })
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "disabled by a user".to_owned()),
    ));
    row.updated_at = Set(Utc::now());
    let txn = db.begin().await?;
    let endpoint = row.update(&txn).await?;
    park(&txn, id).await?;
    txn.commit().await?;
    Ok(endpoint)
}

/// A disabled endpoint's pending deliveries wait out of the way of the pumps' search for
/// due work, however many there are; `unpark` makes them due again.
pub(crate) async fn park<C: ConnectionTrait>(conn: &C, endpoint: Uuid) -> DomainResult<()> {
    let mut b = crate::db::Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE webhook_deliveries SET next_attempt_at = {} WHERE endpoint_id = {} AND status = 'PENDING'",
        b.bind(parked_until()),
        b.bind(endpoint)
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

async fn unpark<C: ConnectionTrait>(conn: &C, endpoint: Uuid) -> DomainResult<()> {
    let now = Utc::now();
    let mut b = crate::db::Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE webhook_deliveries SET next_attempt_at = {} WHERE endpoint_id = {} AND status = 'PENDING' AND next_attempt_at > {}",
        b.bind(now),
        b.bind(endpoint),
        b.bind(now)
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// When a parked delivery is due: never, in practice (9999-01-01).
fn parked_until() -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(253_370_764_800, 0).unwrap_or_else(Utc::now)
}

/// Enables the endpoint again; its pending deliveries resume.
pub async fn enable(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<webhook_endpoint::Model> {
    let current = get(db, scope, id).await?;
    let txn = db.begin().await?;
    let mut row = current.into_active_model();
    row.enabled = Set(true);
    row.disabled_reason = Set(None);
    row.failing_since = Set(None);
    let now = Utc::now();
    row.updated_at = Set(now);
    let endpoint = row.update(&txn).await?;
    unpark(&txn, id).await?;
    schedule_pump(&txn, now).await?;
    txn.commit().await?;
    crate::jobs::wake(crate::jobs::Lane::Webhooks);
    Ok(endpoint)
}

/// Deletes the endpoint with its deliveries and their attempts.
pub async fn delete(db: &DatabaseConnection, scope: &TenantScope, id: Uuid) -> DomainResult<bool> {
    use entity::webhook_delivery;
    scope.require(Role::Admin)?;
    let txn = db.begin().await?;
    let res = webhook_endpoint::Entity::delete_many()
        .filter(webhook_endpoint::Column::Id.eq(id))
        .filter(webhook_endpoint::Column::TenantId.eq(scope.tenant_id()))
        .exec(&txn)
        .await?;
    if res.rows_affected > 0 {
        // Attempts go with their deliveries (cascade).
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(id))
            .filter(webhook_delivery::Column::TenantId.eq(scope.tenant_id()))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(res.rows_affected > 0)
}

/// The secrets that sign now: the current one, and the previous one during its overlap.
pub(crate) fn signing_secrets(
    outbound: &Outbound,
    e: &webhook_endpoint::Model,
) -> DomainResult<Vec<String>> {
    let ctx = context(e.id);
    let decrypt = |s: &str| {
        outbound
            .cipher()
            .decrypt(s, &ctx)
            .map_err(|e| DomainError::Internal(e.to_string()))
    };
    let mut out = vec![decrypt(&e.secret_enc)?];
    if let (Some(prev), Some(until)) = (&e.previous_secret_enc, e.previous_expires_at)
        && until > Utc::now()
    {
        out.push(decrypt(prev)?);
    }
    Ok(out)
}
