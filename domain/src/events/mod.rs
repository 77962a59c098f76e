//! Domain events and the bus that carries them to every API process.
//!
//! Events are published after the write that caused them has committed. Two buses sit
//! behind [`EventBus`]: an in-process broadcast (the embedded default) and Redis pub/sub
//! (several API instances). Each process fans events out to its own subscribers through
//! one `tokio::sync::broadcast`, so a slow subscriber lags (and is told so) instead of
//! holding up the others or growing memory without bound.
//!
//! `in_process` and `redis_bus` are the two buses; `hub` is the per-tenant fan-out.

mod hub;
mod in_process;
mod redis_bus;

pub use hub::{Hub, TENANT_BUFFER};
pub use in_process::InProcessBus;
pub(crate) use redis_bus::redis_connection;
pub use redis_bus::{OUTBOX_CAPACITY, OUTBOX_MAX_BYTES, RedisBus};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::types::CallStatus;

/// The Redis channel every process shares (`EVENTS_CHANNEL` overrides it, e.g. to keep
/// several deployments, or test runs, on one Redis apart).
pub const EVENTS_CHANNEL: &str = "switchboard:events";

/// Redis pub/sub when `REDIS_URL` is set, else the in-process bus.
pub fn from_settings(
    settings: &crate::settings::Settings,
) -> Result<Arc<dyn EventBus>, EventError> {
    Ok(match &settings.redis_url {
        Some(url) => Arc::new(RedisBus::start(url.expose(), &settings.events_channel)?),
        None => Arc::new(InProcessBus::new()),
    })
}

/// How many events the process's fan-out (the hub) may fall behind the bus before events
/// are dropped and counted; bursts of a few thousand events pass.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// Long texts a call event carries inline; beyond, they are left for subscribers to read.
pub const EVENT_INLINE_TEXT_BYTES: usize = 8 * 1024;

/// Something a dashboard may want to see live. Every event belongs to one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    CallUpdated {
        tenant_id: Uuid,
        call_id: Uuid,
        campaign_id: Option<Uuid>,
        status: CallStatus,
        previous_status: Option<CallStatus>,
        at: DateTime<Utc>,
        /// The call as committed (without the provider's raw body), so subscribers can
        /// be answered without reading the database once per subscriber.
        /// Shared, not copied, by every subscriber it is delivered to.
        #[serde(default, with = "shared")]
        call: Option<Arc<entity::call::Model>>,
        /// The call's long texts (transcript, summary, extracted data) were left out of
        /// the event because they are large; subscribers that select them read the call.
        #[serde(default)]
        detail_omitted: bool,
    },
    CampaignProgress {
        tenant_id: Uuid,
        campaign_id: Uuid,
        at: DateTime<Utc>,
    },
    SyncRunUpdated {
        tenant_id: Uuid,
        sync_run_id: Uuid,
        at: DateTime<Utc>,
        /// The run as committed.
        #[serde(default)]
        run: Option<Box<entity::sync_run::Model>>,
    },
    /// A WhatsApp message arrived, was sent, or changed status.
    WhatsAppMessage {
        tenant_id: Uuid,
        customer_id: Option<Uuid>,
        at: DateTime<Utc>,
        /// The message as committed (its raw payload left out).
        message: Box<entity::whatsapp_message::Model>,
    },
}

/// Serde for a shared model: written and read as the model itself.
mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Arc<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_deref().serialize(s)
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Arc<T>>, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map(Arc::new))
    }
}

impl Event {
    /// A call's change as committed; the provider's raw body stays out of the event.
    pub fn call_updated(
        mut call: entity::call::Model,
        previous_status: Option<CallStatus>,
    ) -> Self {
        // Every event sits in the hub's buffer, the Redis outbox and each subscriber's
        // copy: a call with a long transcript travels without its long texts.
        let text_bytes = call.transcript.as_ref().map_or(0, String::len)
            + call.summary.as_ref().map_or(0, String::len)
            + call
                .extracted_data
                .as_ref()
                .map_or(0, |v| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len()));
        let detail_omitted = text_bytes > EVENT_INLINE_TEXT_BYTES;
        if detail_omitted {
            call.transcript = None;
            call.summary = None;
            call.extracted_data = None;
        }
        call.raw_payload = None;
        Event::CallUpdated {
            tenant_id: call.tenant_id,
            call_id: call.id,
            campaign_id: call.campaign_id,
            status: call.status,
            previous_status,
            at: Utc::now(),
            call: Some(Arc::new(call)),
            detail_omitted,
        }
    }

    /// A message's change as committed; the payload of types we do not render stays out.
    pub fn whatsapp_message(mut message: entity::whatsapp_message::Model) -> Self {
        message.payload = None;
        Event::WhatsAppMessage {
            tenant_id: message.tenant_id,
            customer_id: message.customer_id,
            at: Utc::now(),
            message: Box::new(message),
        }
    }

    pub fn tenant_id(&self) -> Uuid {
        match self {
            Event::CallUpdated { tenant_id, .. }
            | Event::CampaignProgress { tenant_id, .. }
            | Event::SyncRunUpdated { tenant_id, .. }
            | Event::WhatsAppMessage { tenant_id, .. } => *tenant_id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("publishing to Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("encoding the event failed: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("too many events are waiting for Redis; this one reaches this process only")]
    Backlog,
}

pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), EventError>> + Send + 'a>>;

/// Carries events to every subscriber of every process.
pub trait EventBus: Send + Sync {
    /// Delivers `event` to this process's subscribers at once and, where there are other
    /// processes, to theirs. An error means only other processes may have missed it.
    fn publish(&self, event: Event) -> PublishFuture<'_>;
    /// A receiver of every event this process sees, in publish order per publisher.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>>;
    /// Whether the bus reaches other processes right now (always true in-process).
    fn is_connected(&self) -> bool;
    /// From now on, other processes' events reach this process's receivers (every
    /// receiver of [`EventBus::subscribe`]) only for the tenants some filter given here
    /// accepts; the others are dropped before they are decoded. The hub gives the tenants
    /// with a subscriber here; a consumer that wants every tenant must give a filter that
    /// accepts all. This process's own events are always delivered.
    fn only_tenants(&self, wanted: TenantFilter) {
        let _ = wanted;
    }
}

/// Which tenants' events a process wants (see [`EventBus::only_tenants`]).
pub type TenantFilter = Arc<dyn Fn(Uuid) -> bool + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call_event(tenant: Uuid, status: &str) -> Event {
        Event::CallUpdated {
            tenant_id: tenant,
            call_id: Uuid::now_v7(),
            campaign_id: None,
            status: status.parse().unwrap(),
            previous_status: None,
            at: Utc::now(),
            call: None,
            detail_omitted: false,
        }
    }

    async fn next(rx: &mut broadcast::Receiver<Arc<Event>>) -> Arc<Event> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
    }

    /// Two buses on a fresh channel, both connected: two API processes.
    async fn two_processes(url: &str) -> (String, RedisBus, RedisBus) {
        let channel = format!("switchboard:test:{}", Uuid::new_v4());
        let a = RedisBus::start(url, &channel).unwrap();
        let b = RedisBus::start(url, &channel).unwrap();
        for _ in 0..100 {
            if a.is_connected() && b.is_connected() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(a.is_connected() && b.is_connected());
        (channel, a, b)
    }

    /// Publishes `payload` on `channel` as is, as anything with access to Redis could.
    async fn publish_raw(url: &str, channel: &str, payload: &str) {
        let mut raw = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut raw)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn in_process_delivers_in_order() {
        let bus = InProcessBus::new();
        let mut rx = bus.subscribe();
        let t = Uuid::now_v7();
        for s in ["RINGING", "IN_PROGRESS", "COMPLETED"] {
            bus.publish(call_event(t, s)).await.unwrap();
        }
        for s in ["RINGING", "IN_PROGRESS", "COMPLETED"] {
            match &*next(&mut rx).await {
                Event::CallUpdated {
                    status, tenant_id, ..
                } => assert_eq!((status.as_str(), *tenant_id), (s, t)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn slow_subscribers_lag_instead_of_growing() {
        let bus = InProcessBus::new();
        let mut rx = bus.subscribe();
        let t = Uuid::now_v7();
        for _ in 0..(SUBSCRIBER_BUFFER + 10) {
            bus.publish(call_event(t, "RINGING")).await.unwrap();
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
    }

    #[test]
    fn events_round_trip_as_json() {
        let e = call_event(Uuid::now_v7(), "BUSY");
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"type\":\"call_updated\""));
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }

    /// Two buses on one channel stand for two API processes.
    #[tokio::test]
    async fn redis_reaches_other_processes_once() {
        let Some(url) = crate::testing_redis_url() else {
            return;
        };
        let (channel, a, b) = two_processes(&url).await;
        let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
        let t = Uuid::now_v7();

        // Garbage on the channel is skipped, not fatal.
        publish_raw(&url, &channel, "not json").await;

        for s in ["INITIATED", "RINGING", "COMPLETED"] {
            a.publish(call_event(t, s)).await.unwrap();
        }
        for s in ["INITIATED", "RINGING", "COMPLETED"] {
            for rx in [&mut on_a, &mut on_b] {
                match &*next(rx).await {
                    Event::CallUpdated { status, .. } => assert_eq!(status.as_str(), s),
                    other => panic!("{other:?}"),
                }
            }
        }
        // Exactly once each: nothing else is waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(on_a.try_recv().is_err() && on_b.try_recv().is_err());
    }

    /// With a hub, a process decodes other processes' events only for tenants someone
    /// there listens to; its own events, and messages of earlier versions (no tenant ahead
    /// of the event), still arrive.
    #[tokio::test]
    async fn redis_events_of_tenants_nobody_here_wants_are_skipped() {
        let Some(url) = crate::testing_redis_url() else {
            return;
        };
        let (channel, a, b) = two_processes(&url).await;
        let b: Arc<dyn EventBus> = Arc::new(b);
        let mut seen = b.subscribe();
        let hub = Hub::start(&b);
        let (wanted, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut on_wanted = hub.subscribe(wanted);

        a.publish(call_event(other, "RINGING")).await.unwrap();
        a.publish(call_event(wanted, "RINGING")).await.unwrap();
        assert_eq!(next(&mut seen).await.tenant_id(), wanted);
        assert_eq!(next(&mut on_wanted).await.tenant_id(), wanted);

        // Its own events, whatever the tenant.
        b.publish(call_event(other, "BUSY")).await.unwrap();
        assert_eq!(next(&mut seen).await.tenant_id(), other);

        // A head that reads but an event that does not, for a wanted tenant: skipped, and
        // the next message still arrives.
        let lying = serde_json::json!({ "origin": Uuid::new_v4(), "tenant": wanted, "event": 5 });
        publish_raw(&url, &channel, &lying.to_string()).await;

        // An earlier version's message: origin and event only.
        let old = serde_json::json!({
            "origin": Uuid::new_v4(),
            "event": call_event(other, "COMPLETED"),
        });
        publish_raw(&url, &channel, &old.to_string()).await;
        assert_eq!(next(&mut seen).await.tenant_id(), other);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(seen.try_recv().is_err() && on_wanted.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_hub_routes_by_tenant() {
        let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new());
        let hub = Hub::start(&bus);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut on_a = hub.subscribe(a);
        let mut on_b = hub.subscribe(b);
        bus.publish(call_event(a, "RINGING")).await.unwrap();
        bus.publish(call_event(b, "BUSY")).await.unwrap();
        assert_eq!(next(&mut on_a).await.tenant_id(), a);
        assert_eq!(next(&mut on_b).await.tenant_id(), b);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(on_a.try_recv().is_err() && on_b.try_recv().is_err());
        drop(on_a);
        bus.publish(call_event(a, "COMPLETED")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            hub.tenant_count(),
            1,
            "a tenant without listeners is forgotten"
        );
    }

    /// With Redis unreachable, publishing does not wait and this process still sees its events.
    #[tokio::test]
    async fn redis_down_still_delivers_locally() {
        let bus = RedisBus::start("redis://127.0.0.1:1", "switchboard:test:down").unwrap();
        let mut rx = bus.subscribe();
        let started = std::time::Instant::now();
        for _ in 0..100 {
            let _ = bus.publish(call_event(Uuid::now_v7(), "QUEUED")).await;
        }
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(matches!(&*next(&mut rx).await, Event::CallUpdated { .. }));
        assert!(!bus.is_connected());
    }
}
