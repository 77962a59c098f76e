//! Events are recorded in the transaction of the change they describe: one event row and
//! one delivery row per enabled endpoint whose filter matches, and a pump job for the
//! webhooks lane. Nothing is written when no endpoint of the tenant wants the event, so a
//! tenant without webhooks pays one indexed read per transaction.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::types::{EventType, Filter};
use crate::db::Binder;
use crate::error::DomainResult;
use crate::jobs::{Job, Lane, queue};
use crate::types::DeliveryTrigger;

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant_id: Uuid,
    pub kind: EventType,
    /// The call, customer or campaign it is about: one endpoint receives one subject's
    /// events in the order they were recorded.
    pub subject: Option<Uuid>,
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

impl NewEvent {
    pub fn new(
        tenant_id: Uuid,
        kind: EventType,
        subject: Option<Uuid>,
        data: serde_json::Value,
    ) -> Self {
        NewEvent {
            tenant_id,
            kind,
            subject,
            data,
            at: Utc::now(),
        }
    }
}

/// The enabled endpoints of some tenants and what they subscribe to.
#[derive(Debug, Default)]
pub struct Subscriptions {
    endpoints: Vec<(Uuid, Uuid, Filter)>,
}

impl Subscriptions {
    pub async fn load<C: ConnectionTrait>(
        conn: &C,
        tenants: impl IntoIterator<Item = Uuid>,
    ) -> DomainResult<Self> {
        let tenants: HashSet<Uuid> = tenants.into_iter().collect();
        if tenants.is_empty() {
            return Ok(Subscriptions::default());
        }
        let mut b = Binder::new(conn.get_database_backend());
        let list = b.list(tenants.into_iter().map(Into::into));
        let yes = b.bind(true);
        let sql = format!(
            "SELECT id, tenant_id, events FROM webhook_endpoints WHERE tenant_id IN ({list}) AND enabled = {yes}"
        );
        let mut endpoints = Vec::new();
        for row in conn.query_all_raw(b.statement(sql)).await? {
            let events: serde_json::Value = row.try_get("", "events")?;
            endpoints.push((
                row.try_get("", "id")?,
                row.try_get("", "tenant_id")?,
                Filter::from_json(&events),
            ));
        }
        Ok(Subscriptions { endpoints })
    }

    /// The enabled endpoints of one tenant, read by another statement: (id, the stored
    /// event filter).
    pub(crate) fn of_tenant(
        tenant_id: Uuid,
        endpoints: impl IntoIterator<Item = (Uuid, serde_json::Value)>,
    ) -> Self {
        Subscriptions {
            endpoints: endpoints
                .into_iter()
                .map(|(id, events)| (id, tenant_id, Filter::from_json(&events)))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Whether some endpoint of `tenant` wants `kind` (to skip building unwanted payloads).
    pub fn wants(&self, tenant: Uuid, kind: EventType) -> bool {
        self.endpoints
            .iter()
            .any(|(_, t, f)| *t == tenant && f.matches(kind.as_str()))
    }

    fn endpoints_for(&self, tenant: Uuid, kind: EventType) -> impl Iterator<Item = Uuid> + '_ {
        self.endpoints
            .iter()
            .filter(move |(_, t, f)| *t == tenant && f.matches(kind.as_str()))
            .map(|(id, _, _)| *id)
    }
}

/// A new event id: `evt_` and a time-ordered UUID.
pub(crate) fn event_id() -> String {
    format!("evt_{}", Uuid::now_v7().simple())
}

/// The body every endpoint receives for an event: `type`, `timestamp`, `data`.
pub(crate) fn body(kind: EventType, at: DateTime<Utc>, data: &serde_json::Value) -> String {
    serde_json::json!({
        "type": kind.as_str(),
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

// Rows per multi-row insert: well under both databases' bound-parameter limits.
const CHUNK: usize = 500;

/// Records `events` for the endpoints in `subs`, in the caller's transaction. Returns
/// whether any delivery was written (the caller wakes the webhooks lane after commit).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    subs: &Subscriptions,
    events: Vec<NewEvent>,
) -> DomainResult<bool> {
    if subs.is_empty() || events.is_empty() {
        return Ok(false);
    }
    let now = Utc::now();
    let mut event_rows: Vec<(String, NewEvent)> = Vec::new();
    let mut deliveries: Vec<NewDelivery> = Vec::new();
    for e in events {
        let targets: Vec<Uuid> = subs.endpoints_for(e.tenant_id, e.kind).collect();
        if targets.is_empty() {
            continue;
        }
        let id = event_id();
        for endpoint_id in targets {
            deliveries.push(NewDelivery {
                id: Uuid::now_v7(),
                tenant_id: e.tenant_id,
                endpoint_id,
                event_id: id.clone(),
                event_type: e.kind.as_str().to_owned(),
                subject: e.subject,
                trigger: DeliveryTrigger::Event,
            });
        }
        event_rows.push((id, e));
    }
    if deliveries.is_empty() {
        return Ok(false);
    }
    insert_events(conn, &event_rows).await?;
    insert_deliveries(conn, &deliveries, now).await?;
    metrics::counter!("webhook_events_recorded_total").increment(event_rows.len() as u64);
    schedule_pump(conn, now).await?;
    Ok(true)
}

/// A delivery about to be written: an event to an endpoint.
pub(crate) struct NewDelivery {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: String,
    pub event_type: String,
    pub subject: Option<Uuid>,
    pub trigger: DeliveryTrigger,
}

/// Writes events (with their ids) as their bodies will be signed.
pub(crate) async fn insert_events<C: ConnectionTrait>(
    conn: &C,
    events: &[(String, NewEvent)],
) -> DomainResult<()> {
    for chunk in events.chunks(CHUNK) {
        let mut b = Binder::new(conn.get_database_backend());
        let rows: Vec<String> = chunk
            .iter()
            .map(|(id, e)| {
                b.row([
                    id.clone().into(),
                    e.tenant_id.into(),
                    e.kind.as_str().into(),
                    e.subject.into(),
                    body(e.kind, e.at, &e.data).into(),
                    e.at.into(),
                ])
            })
            .collect();
        let sql = format!(
            "INSERT INTO webhook_events (id, tenant_id, type, subject, body, created_at) VALUES {}",
            rows.join(", ")
        );
        conn.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// Writes deliveries, due at `now`.
pub(crate) async fn insert_deliveries<C: ConnectionTrait>(
    conn: &C,
    deliveries: &[NewDelivery],
    now: DateTime<Utc>,
) -> DomainResult<()> {
    for chunk in deliveries.chunks(CHUNK) {
        let mut b = Binder::new(conn.get_database_backend());
        let rows: Vec<String> = chunk
            .iter()
            .map(|d| {
                b.row([
                    d.id.into(),
                    d.tenant_id.into(),
                    d.endpoint_id.into(),
                    d.event_id.clone().into(),
                    d.event_type.clone().into(),
                    d.subject.into(),
                    "PENDING".into(),
                    d.trigger.as_str().into(),
                    0i32.into(),
                    now.into(),
                    now.into(),
                    now.into(),
                ])
            })
            .collect();
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, subject, status, \"trigger\", attempts, next_attempt_at, created_at, updated_at) VALUES {}",
            rows.join(", ")
        );
        conn.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// Records `customer.created` for `created` and `customer.updated` for `updated` (ids of
/// one tenant), and notes them for the tenant's CRM (if it has one).
pub(crate) async fn customer_changes<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    created: &[Uuid],
    updated: &[Uuid],
) -> DomainResult<bool> {
    let subs = if created.is_empty() && updated.is_empty() {
        Subscriptions::default()
    } else {
        Subscriptions::load(conn, [tenant_id]).await?
    };
    customer_changes_with(conn, &subs, tenant_id, created, updated, false).await
}

/// [`customer_changes`] with the tenant's subscriptions already loaded; `crm_noted` when
/// the statements that wrote the customers noted them for the CRM already.
pub(crate) async fn customer_changes_with<C: ConnectionTrait>(
    conn: &C,
    subs: &Subscriptions,
    tenant_id: Uuid,
    created: &[Uuid],
    updated: &[Uuid],
    crm_noted: bool,
) -> DomainResult<bool> {
    if !crm_noted {
        let changed: Vec<Uuid> = created.iter().chain(updated).copied().collect();
        crate::crm::outbox::mark(conn, tenant_id, &changed).await?;
    }
    customer_events_with(conn, subs, tenant_id, created, updated).await
}

/// Records `customer.created` and `customer.updated` only, reading the customers only
/// when some endpoint wants the events (changes that came from the CRM itself).
pub(crate) async fn customer_events<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    created: &[Uuid],
    updated: &[Uuid],
) -> DomainResult<bool> {
    if created.is_empty() && updated.is_empty() {
        return Ok(false);
    }
    let subs = Subscriptions::load(conn, [tenant_id]).await?;
    customer_events_with(conn, &subs, tenant_id, created, updated).await
}

/// [`customer_events`] with the tenant's subscriptions already loaded.
async fn customer_events_with<C: ConnectionTrait>(
    conn: &C,
    subs: &Subscriptions,
    tenant_id: Uuid,
    created: &[Uuid],
    updated: &[Uuid],
) -> DomainResult<bool> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mut wanted: Vec<(Uuid, EventType)> = Vec::new();
    if subs.wants(tenant_id, EventType::CustomerCreated) {
        wanted.extend(created.iter().map(|id| (*id, EventType::CustomerCreated)));
    }
    if subs.wants(tenant_id, EventType::CustomerUpdated) {
        wanted.extend(updated.iter().map(|id| (*id, EventType::CustomerUpdated)));
    }
    if wanted.is_empty() {
        return Ok(false);
    }
    let mut events = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(CHUNK) {
        let models: std::collections::HashMap<Uuid, entity::customer::Model> =
            // By primary key alone, the tenant checked on the rows: a generic plan of the
            // tenant's index could walk every customer of the tenant.
            entity::customer::Entity::find()
                .filter(entity::customer::Column::Id.is_in(chunk.iter().map(|c| c.0)))
                .all(conn)
                .await?
                .into_iter()
                .filter(|m| m.tenant_id == tenant_id)
                .map(|m| (m.id, m))
                .collect();
        for (id, kind) in chunk {
            if let Some(m) = models.get(id) {
                events.push(super::payloads::customer_event(*kind, m));
            }
        }
    }
    record(conn, subs, events).await
}

/// Loads the tenants' subscriptions and records `events` for them.
pub async fn record_events<C: ConnectionTrait>(
    conn: &C,
    events: Vec<NewEvent>,
) -> DomainResult<bool> {
    if events.is_empty() {
        return Ok(false);
    }
    let subs = Subscriptions::load(conn, events.iter().map(|e| e.tenant_id)).await?;
    record(conn, &subs, events).await
}

/// Keeps the pump's advisory locks apart from any other use of advisory locks.
const PUMP_LOCK_SPACE: i64 = 0x5742_4850_0000_0000;

/// Makes sure a pump runs now: one job per 50 ms window however many transactions ask.
/// The job runs until a little after its window ends, so a transaction that joined the
/// window but committed after the pump's first pass is still sent by it.
pub(crate) async fn schedule_pump<C: ConnectionTrait>(
    conn: &C,
    at: DateTime<Utc>,
) -> DomainResult<()> {
    use super::jobs::DeliverWebhooks;
    const WINDOW_MS: i64 = 50;
    const GRACE_MS: i64 = 250;
    let window = at.timestamp_millis() / WINDOW_MS;
    // Transactions recording in the same window would otherwise queue behind the first
    // one's uncommitted job row (PostgreSQL waits on a conflicting insert): whoever holds
    // the window's lock writes it, the others go on. If that one rolls back, the periodic
    // pump sends the rest within seconds.
    if crate::db::Dialect::of(conn) == crate::db::Dialect::Postgres {
        let mut b = crate::db::Binder::new(conn.get_database_backend());
        let key = b.bind(PUMP_LOCK_SPACE ^ window);
        let sql = format!("SELECT pg_try_advisory_xact_lock({key}) AS got");
        let got: bool = match conn.query_one_raw(b.statement(sql)).await? {
            Some(row) => row.try_get("", "got")?,
            None => false,
        };
        if !got {
            return Ok(());
        }
    }
    let job = DeliverWebhooks {
        until: Some((window + 1) * WINDOW_MS + GRACE_MS),
    };
    queue::enqueue_once(
        conn,
        DeliverWebhooks::KIND,
        Lane::Webhooks,
        window,
        serde_json::to_value(&job)
            .map_err(|e| crate::error::DomainError::Internal(e.to_string()))?,
        at,
    )
    .await?;
    Ok(())
}
