//! Outbound webhooks as the API shows them (ADMIN): endpoints and their secrets, the
//! delivery log with every attempt, redelivery and test messages.

use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::outbound::{endpoints, log};
use domain::pagination::{Page, PageRequest};
use entity::{webhook_attempt, webhook_delivery, webhook_endpoint};

use super::connection::{Connection, Listing, connection_object};
use super::context::{db, scope, services};
use super::error::{GqlResultExt, parse_id};

/// Where a tenant's events are sent.
#[derive(SimpleObject)]
pub struct WebhookEndpoint {
    pub id: ID,
    pub url: String,
    pub description: Option<String>,
    /// The event filters (`call.completed`, `call.*`, `*`); empty means every event.
    pub events: Vec<String>,
    /// False after `disableWebhookEndpoint`, a `410 Gone`, or failing for too long;
    /// pending deliveries wait and resume with `enableWebhookEndpoint`.
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (null while deliveries succeed).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs beside the current one (after a rotation).
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(e: webhook_endpoint::Model) -> Self {
        WebhookEndpoint {
            id: ID(e.id.to_string()),
            url: e.url,
            description: e.description,
            events: domain::outbound::types::Filter::from_json(&e.events)
                .names()
                .to_vec(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            previous_secret_expires_at: e.previous_expires_at.filter(|t| *t > Utc::now()),
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint with its signing secret, shown only here (at creation and rotation).
#[derive(SimpleObject)]
pub struct WebhookEndpointSecret {
    pub endpoint: WebhookEndpoint,
    /// `whsec_` and base64: verify `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

impl From<endpoints::WithSecret> for WebhookEndpointSecret {
    fn from(w: endpoints::WithSecret) -> Self {
        WebhookEndpointSecret {
            endpoint: w.endpoint.into(),
            secret: w.secret,
        }
    }
}

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt, or for a retry.
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Every attempt of the retry schedule failed.
    Failed,
}

impl From<WebhookDeliveryStatus> for domain::types::DeliveryStatus {
    fn from(v: WebhookDeliveryStatus) -> Self {
        match v {
            WebhookDeliveryStatus::Pending => Self::Pending,
            WebhookDeliveryStatus::Succeeded => Self::Succeeded,
            WebhookDeliveryStatus::Failed => Self::Failed,
        }
    }
}

impl From<domain::types::DeliveryStatus> for WebhookDeliveryStatus {
    fn from(v: domain::types::DeliveryStatus) -> Self {
        use domain::types::DeliveryStatus as S;
        match v {
            S::Pending => Self::Pending,
            S::Succeeded => Self::Succeeded,
            S::Failed => Self::Failed,
        }
    }
}

/// Why a delivery exists.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookDeliveryTrigger {
    /// Something happened.
    Event,
    /// `redeliverWebhook`.
    Manual,
    /// `sendTestWebhook`.
    Test,
}

impl From<domain::types::DeliveryTrigger> for WebhookDeliveryTrigger {
    fn from(v: domain::types::DeliveryTrigger) -> Self {
        use domain::types::DeliveryTrigger as T;
        match v {
            T::Event => Self::Event,
            T::Manual => Self::Manual,
            T::Test => Self::Test,
        }
    }
}

/// One HTTP attempt of a delivery.
#[derive(SimpleObject, Clone)]
pub struct WebhookAttempt {
    pub id: ID,
    pub attempted_at: DateTime<Utc>,
    /// The endpoint's HTTP status; null when no answer came (see `error`).
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    /// The start of the answer's body (at most 1 KiB).
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

impl From<&webhook_attempt::Model> for WebhookAttempt {
    fn from(a: &webhook_attempt::Model) -> Self {
        WebhookAttempt {
            id: ID(a.id.to_string()),
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt.clone(),
            error: a.error.clone(),
        }
    }
}

/// One event sent (or to be sent) to one endpoint.
#[derive(SimpleObject, Clone)]
pub struct WebhookDelivery {
    pub id: ID,
    pub endpoint_id: ID,
    /// The event's id, sent as `webhook-id` (the same on every attempt and redelivery).
    pub event_id: String,
    pub event_type: String,
    /// The call, customer or campaign the event is about.
    pub subject_id: Option<ID>,
    pub status: WebhookDeliveryStatus,
    pub trigger: WebhookDeliveryTrigger,
    /// Attempts made so far.
    pub attempt_count: i32,
    /// When the next attempt is due (while PENDING; null while the endpoint is disabled).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The JSON body as signed and sent.
    pub payload: Option<String>,
    /// Every attempt, newest first (at most 50).
    pub attempts: Vec<WebhookAttempt>,
}

fn delivery(
    d: &webhook_delivery::Model,
    attempts: &[&webhook_attempt::Model],
    payload: Option<String>,
) -> WebhookDelivery {
    use domain::types::DeliveryStatus;
    WebhookDelivery {
        id: ID(d.id.to_string()),
        endpoint_id: ID(d.endpoint_id.to_string()),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        subject_id: d.subject.map(|s| ID(s.to_string())),
        status: d.status.into(),
        trigger: d.trigger.into(),
        attempt_count: d.attempts,
        // Parked (year 9999) while the endpoint is disabled: no attempt is due.
        next_attempt_at: (d.status == DeliveryStatus::Pending
            && chrono::Datelike::year(&d.next_attempt_at) < 9999)
            .then_some(d.next_attempt_at),
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        created_at: d.created_at,
        finished_at: d.finished_at,
        payload,
        attempts: attempts.iter().map(|a| WebhookAttempt::from(*a)).collect(),
    }
}

/// Deliveries with their attempts and bodies, loaded for the whole page at once.
async fn with_details(
    ctx: &Context<'_>,
    rows: Vec<webhook_delivery::Model>,
) -> async_graphql::Result<Vec<WebhookDelivery>> {
    let tenant = scope(ctx)?.tenant_id();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|d| d.id).collect();
    let attempts = log::attempts_of(db(ctx)?, tenant, &ids).await.gql()?;
    let mut by_delivery: HashMap<uuid::Uuid, Vec<&webhook_attempt::Model>> = HashMap::new();
    for a in &attempts {
        let list = by_delivery.entry(a.delivery_id).or_default();
        if list.len() < log::MAX_ATTEMPTS_LISTED as usize {
            list.push(a);
        }
    }
    let events: Vec<&str> = rows.iter().map(|d| d.event_id.as_str()).collect();
    let bodies = log::bodies(db(ctx)?, tenant, &events).await.gql()?;
    Ok(rows
        .iter()
        .map(|d| {
            let attempts = by_delivery.get(&d.id).map(Vec::as_slice).unwrap_or(&[]);
            // A redelivery shares its event (and body) with the original.
            let body = bodies.get(&d.event_id).cloned();
            delivery(d, attempts, body)
        })
        .collect())
}

/// An endpoint's deliveries, newest first.
pub struct WebhookDeliveryListing {
    endpoint_id: uuid::Uuid,
    status: Option<domain::types::DeliveryStatus>,
}

/// A delivery with its attempts and body, loaded with the page.
pub struct DeliveryRow(uuid::Uuid, WebhookDelivery);

impl Listing for WebhookDeliveryListing {
    type Row = DeliveryRow;
    type Node = WebhookDelivery;

    fn id(row: &Self::Row) -> uuid::Uuid {
        row.0
    }

    fn node(&self, row: &Self::Row) -> WebhookDelivery {
        row.1.clone()
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        log::count(db(ctx)?, scope(ctx)?, self.endpoint_id, self.status)
            .await
            .gql()
    }
}

connection_object!(
    WebhookDeliveryListing,
    "WebhookDeliveryConnection",
    "A page of an endpoint's deliveries, newest first.",
    "Number of deliveries (of the status asked for), over all pages."
);

pub type WebhookDeliveryConnection = Connection<WebhookDeliveryListing>;

#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// http:// or https://, at most 2000 bytes; private addresses are refused unless the
    /// deployment allowlists them (`WEBHOOK_URL_ALLOWLIST`).
    pub url: String,
    /// Event names, groups such as `call.*`, or `*`; empty or absent: every event.
    #[graphql(default)]
    pub events: Vec<String>,
    pub description: Option<String>,
}

#[derive(InputObject, Default)]
pub struct UpdateWebhookEndpointInput {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

#[derive(Default)]
pub struct WebhookEndpointsQuery;

#[Object]
impl WebhookEndpointsQuery {
    /// The tenant's webhook endpoints (ADMIN).
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WebhookEndpoint>> {
        Ok(endpoints::list(db(ctx)?, scope(ctx)?)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// One endpoint (ADMIN), or an error if it is not this tenant's.
    async fn webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WebhookEndpoint> {
        let id = parse_id("id", &id)?;
        endpoints::get(db(ctx)?, scope(ctx)?, id)
            .await
            .map(Into::into)
            .gql()
    }

    /// The event types an endpoint can subscribe to.
    async fn webhook_event_types(&self) -> Vec<String> {
        domain::outbound::EventType::ALL
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect()
    }

    /// An endpoint's delivery log, newest first, with every attempt (ADMIN).
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        status: Option<WebhookDeliveryStatus>,
    ) -> async_graphql::Result<WebhookDeliveryConnection> {
        let endpoint_id = parse_id("endpointId", &endpoint_id)?;
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        let status = status.map(Into::into);
        let rows = log::deliveries(db(ctx)?, scope(ctx)?, endpoint_id, status, page)
            .await
            .gql()?;
        let has_next_page = rows.has_next_page;
        let ids: Vec<uuid::Uuid> = rows.items.iter().map(|d| d.id).collect();
        let nodes = with_details(ctx, rows.items).await?;
        let items = ids
            .into_iter()
            .zip(nodes)
            .map(|(id, node)| DeliveryRow(id, node))
            .collect();
        Ok(Connection::new(
            Page {
                items,
                has_next_page,
            },
            WebhookDeliveryListing {
                endpoint_id,
                status,
            },
        ))
    }
}

#[derive(Default)]
pub struct WebhookEndpointsMutation;

#[Object]
impl WebhookEndpointsMutation {
    /// Registers an endpoint (ADMIN; at most 20 per tenant). The signing secret is in the
    /// answer and never shown again (`rotateWebhookSecret` makes a new one).
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> async_graphql::Result<WebhookEndpointSecret> {
        let s = services(ctx)?;
        endpoints::create(
            db(ctx)?,
            s.outbound(),
            scope(ctx)?,
            endpoints::NewEndpoint {
                url: input.url,
                events: input.events,
                description: input.description,
            },
        )
        .await
        .map(Into::into)
        .gql()
    }

    /// Changes an endpoint's URL, filters or description (ADMIN).
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookEndpointInput,
    ) -> async_graphql::Result<WebhookEndpoint> {
        let id = parse_id("id", &id)?;
        let s = services(ctx)?;
        endpoints::update(
            db(ctx)?,
            s.outbound(),
            scope(ctx)?,
            id,
            endpoints::EndpointChanges {
                url: input.url,
                events: input.events,
                description: input.description,
            },
        )
        .await
        .map(Into::into)
        .gql()
    }

    /// A new signing secret (ADMIN); the previous one keeps signing beside it for 24 hours,
    /// so receivers can switch without losing a message.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WebhookEndpointSecret> {
        let id = parse_id("id", &id)?;
        let s = services(ctx)?;
        endpoints::rotate_secret(db(ctx)?, s.outbound(), scope(ctx)?, id)
            .await
            .map(Into::into)
            .gql()
    }

    /// Stops deliveries to an endpoint (ADMIN); pending ones wait for `enableWebhookEndpoint`.
    async fn disable_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<WebhookEndpoint> {
        let id = parse_id("id", &id)?;
        endpoints::disable(db(ctx)?, scope(ctx)?, id, reason)
            .await
            .map(Into::into)
            .gql()
    }

    /// Enables an endpoint again (ADMIN); its pending deliveries resume.
    async fn enable_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WebhookEndpoint> {
        let id = parse_id("id", &id)?;
        endpoints::enable(db(ctx)?, scope(ctx)?, id)
            .await
            .map(Into::into)
            .gql()
    }

    /// Deletes an endpoint with its delivery log (ADMIN). False if there was none.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let id = parse_id("id", &id)?;
        endpoints::delete(db(ctx)?, scope(ctx)?, id).await.gql()
    }

    /// Sends a delivery's event again, as a new delivery with the same event id (ADMIN).
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> async_graphql::Result<WebhookDelivery> {
        let id = parse_id("deliveryId", &delivery_id)?;
        let d = log::redeliver(db(ctx)?, scope(ctx)?, id).await.gql()?;
        Ok(with_details(ctx, vec![d]).await?.remove(0))
    }

    /// Queues a `webhook.test` event to an endpoint (ADMIN).
    async fn send_test_webhook(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
    ) -> async_graphql::Result<WebhookDelivery> {
        let id = parse_id("endpointId", &endpoint_id)?;
        let d = log::send_test(db(ctx)?, scope(ctx)?, id).await.gql()?;
        Ok(with_details(ctx, vec![d]).await?.remove(0))
    }
}

/// Rows of this list always take the derived resolver (see `plain`).
impl super::plain::PlainFields for WebhookDelivery {}
