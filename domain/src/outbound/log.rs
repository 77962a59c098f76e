//! The delivery log (ADMIN): an endpoint's deliveries newest first with every attempt,
//! redelivery of one, and a test message.

use chrono::Utc;
use entity::{webhook_attempt, webhook_delivery};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::record::{
    NewDelivery, NewEvent, event_id, insert_deliveries, insert_events, schedule_pump,
};
use super::types::EventType;
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::pagination::{Page, PageRequest, fetch};
use crate::tenancy::TenantScope;
use crate::types::{DeliveryStatus, DeliveryTrigger, Role};

/// Attempts listed per delivery (the newest); older ones stay counted in `attempts`.
pub const MAX_ATTEMPTS_LISTED: u64 = 50;

pub async fn deliveries(
    db: &DatabaseConnection,
    scope: &TenantScope,
    endpoint_id: Uuid,
    status: Option<DeliveryStatus>,
    page: PageRequest,
) -> DomainResult<Page<webhook_delivery::Model>> {
    // Also checks the endpoint is the tenant's.
    super::endpoints::get(db, scope, endpoint_id).await?;
    let mut q = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::TenantId.eq(scope.tenant_id()))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(s) = status {
        q = q.filter(webhook_delivery::Column::Status.eq(s));
    }
    fetch(db, q, webhook_delivery::Column::Id, page).await
}

/// Deliveries of an endpoint over all pages (with `status`, of that status only).
pub async fn count(
    db: &DatabaseConnection,
    scope: &TenantScope,
    endpoint_id: Uuid,
    status: Option<DeliveryStatus>,
) -> DomainResult<u64> {
    use sea_orm::PaginatorTrait;
    scope.require(Role::Admin)?;
    let mut q = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::TenantId.eq(scope.tenant_id()))
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(s) = status {
        q = q.filter(webhook_delivery::Column::Status.eq(s));
    }
    Ok(q.count(db).await?)
}

/// The bodies of some events (the tenant's), by event id.
pub async fn bodies(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    event_ids: &[&str],
) -> DomainResult<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    if event_ids.is_empty() {
        return Ok(out);
    }
    let mut b = Binder::new(db.get_database_backend());
    let list = b.list(event_ids.iter().map(|s| (*s).to_owned().into()));
    let sql = format!(
        "SELECT id, body FROM webhook_events WHERE tenant_id = {} AND id IN ({list})",
        b.bind(tenant_id)
    );
    for r in db.query_all_raw(b.statement(sql)).await? {
        out.insert(r.try_get("", "id")?, r.try_get("", "body")?);
    }
    Ok(out)
}

/// The attempts of some deliveries (the tenant's), newest first per delivery.
pub async fn attempts_of(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    delivery_ids: &[Uuid],
) -> DomainResult<Vec<webhook_attempt::Model>> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::TenantId.eq(tenant_id))
        .filter(webhook_attempt::Column::DeliveryId.is_in(delivery_ids.iter().copied()))
        .order_by_desc(webhook_attempt::Column::AttemptedAt)
        .limit(MAX_ATTEMPTS_LISTED * delivery_ids.len() as u64)
        .all(db)
        .await?)
}

/// Writes one delivery of an existing event and makes sure a pump runs.
async fn insert_delivery<C: ConnectionTrait>(
    conn: &C,
    delivery: NewDelivery,
) -> DomainResult<Uuid> {
    let now = Utc::now();
    let id = delivery.id;
    insert_deliveries(conn, &[delivery], now).await?;
    schedule_pump(conn, now).await?;
    Ok(id)
}

/// Sends a delivery's event again to its endpoint, as a new delivery (same event id, so
/// the receiver can tell it is the same event).
pub async fn redeliver(
    db: &DatabaseConnection,
    scope: &TenantScope,
    delivery_id: Uuid,
) -> DomainResult<webhook_delivery::Model> {
    scope.require(Role::Admin)?;
    let d = webhook_delivery::Entity::find_by_id(delivery_id)
        .filter(webhook_delivery::Column::TenantId.eq(scope.tenant_id()))
        .one(db)
        .await?
        .ok_or_else(|| DomainError::not_found("webhook delivery"))?;
    let txn = db.begin().await?;
    let id = insert_delivery(
        &txn,
        NewDelivery {
            id: Uuid::now_v7(),
            tenant_id: d.tenant_id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            subject: d.subject,
            trigger: DeliveryTrigger::Manual,
        },
    )
    .await?;
    txn.commit().await?;
    crate::jobs::wake(crate::jobs::Lane::Webhooks);
    webhook_delivery::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| DomainError::Internal("a new delivery vanished".into()))
}

/// Queues a `webhook.test` event to one endpoint.
pub async fn send_test(
    db: &DatabaseConnection,
    scope: &TenantScope,
    endpoint_id: Uuid,
) -> DomainResult<webhook_delivery::Model> {
    let endpoint = super::endpoints::get(db, scope, endpoint_id).await?;
    if !endpoint.enabled {
        return Err(DomainError::invalid(
            "endpointId",
            "the endpoint is disabled; enable it first",
        ));
    }
    let id = event_id();
    let event = NewEvent::new(
        scope.tenant_id(),
        EventType::Test,
        None,
        serde_json::json!({
            "endpointId": endpoint.id,
            "message": "A test event from Switchboard.",
        }),
    );
    let txn = db.begin().await?;
    insert_events(&txn, &[(id.clone(), event)]).await?;
    let delivery = insert_delivery(
        &txn,
        NewDelivery {
            id: Uuid::now_v7(),
            tenant_id: scope.tenant_id(),
            endpoint_id: endpoint.id,
            event_id: id,
            event_type: EventType::Test.as_str().to_owned(),
            subject: None,
            trigger: DeliveryTrigger::Test,
        },
    )
    .await?;
    txn.commit().await?;
    crate::jobs::wake(crate::jobs::Lane::Webhooks);
    webhook_delivery::Entity::find_by_id(delivery)
        .one(db)
        .await?
        .ok_or_else(|| DomainError::Internal("a new delivery vanished".into()))
}

/// Deletes finished deliveries (with their attempts) and events older than the retention
/// period, a slice at a time. Returns the rows deleted.
pub async fn prune(db: &DatabaseConnection, retention_days: u64) -> DomainResult<u64> {
    let cut = Utc::now() - chrono::Duration::days(retention_days as i64);
    let mut total = 0;
    for sql in [
        "DELETE FROM webhook_attempts WHERE id IN (SELECT id FROM webhook_attempts WHERE attempted_at < {cut} LIMIT 5000)",
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE status <> 'PENDING' AND finished_at < {cut} LIMIT 5000)",
        // Recorded for an endpoint deleted at that moment: never sent, kept as long as the rest.
        "DELETE FROM webhook_deliveries WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE d.created_at < {cut} \
         AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.endpoint_id) LIMIT 5000)",
        "DELETE FROM webhook_events WHERE id IN (SELECT e.id FROM webhook_events e WHERE e.created_at < {cut} \
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id) LIMIT 5000)",
    ] {
        loop {
            let mut b = Binder::new(db.get_database_backend());
            let stmt = sql.replace("{cut}", &b.bind(cut));
            let n = db.execute_raw(b.statement(stmt)).await?.rows_affected();
            total += n;
            if n < 5000 {
                break;
            }
        }
    }
    Ok(total)
}
