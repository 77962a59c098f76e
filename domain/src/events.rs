//! Domain events and the bus that carries them to every API process.
//!
//! Events are published after the write that caused them has committed. Two buses sit
//! behind [`EventBus`]: an in-process broadcast (the embedded default) and Redis pub/sub
//! (several API instances). Each process fans events out to its own subscribers through
//! one `tokio::sync::broadcast`, so a slow subscriber lags (and is told so) instead of
//! holding up the others or growing memory without bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

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

/// Something a dashboard may want to see live. Every event belongs to one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    CallUpdated {
        tenant_id: Uuid,
        call_id: Uuid,
        campaign_id: Option<Uuid>,
        status: String,
        previous_status: Option<String>,
        at: DateTime<Utc>,
        /// The call as committed (without the provider's raw body), so subscribers can
        /// be answered without reading the database once per subscriber.
        #[serde(default)]
        call: Option<Box<entity::call::Model>>,
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
}

impl Event {
    /// A call's change as committed; the provider's raw body stays out of the event.
    pub fn call_updated(mut call: entity::call::Model, previous_status: Option<&str>) -> Self {
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
            status: call.status.clone(),
            previous_status: previous_status.map(str::to_owned),
            at: Utc::now(),
            call: Some(Box::new(call)),
            detail_omitted,
        }
    }

    pub fn tenant_id(&self) -> Uuid {
        match self {
            Event::CallUpdated { tenant_id, .. }
            | Event::CampaignProgress { tenant_id, .. }
            | Event::SyncRunUpdated { tenant_id, .. } => *tenant_id,
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
}

/// The embedded default: one process, one broadcast channel.
pub struct InProcessBus {
    local: broadcast::Sender<Arc<Event>>,
}

impl InProcessBus {
    pub fn new() -> Self {
        InProcessBus {
            local: broadcast::channel(SUBSCRIBER_BUFFER).0,
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: Event) -> PublishFuture<'_> {
        // No receivers is not an error: nobody is watching.
        let _ = self.local.send(Arc::new(event));
        Box::pin(async { Ok(()) })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    fn is_connected(&self) -> bool {
        true
    }
}

/// What travels over Redis: the event and the process that sent it.
#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    event: Event,
}

/// Redis pub/sub between processes. Own events are delivered locally at once (so they
/// arrive even while Redis is down) and skipped when they come back from Redis. Remote
/// delivery goes through one bounded queue drained by one publisher task, so publishing
/// never waits on Redis and events leave in the order they were published.
pub struct RedisBus {
    origin: Uuid,
    local: broadcast::Sender<Arc<Event>>,
    outbox: tokio::sync::mpsc::Sender<String>,
    /// Bytes of the payloads waiting in `outbox`.
    outbox_bytes: Arc<std::sync::atomic::AtomicUsize>,
    connected: Arc<AtomicBool>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

/// Events waiting for Redis; beyond this many, or `OUTBOX_MAX_BYTES` of them (Redis down
/// for long), new ones are dropped and counted.
pub const OUTBOX_CAPACITY: usize = 10_000;
pub const OUTBOX_MAX_BYTES: usize = 32 * 1024 * 1024;
/// Long texts a call event carries inline; beyond, they are left for subscribers to read.
pub const EVENT_INLINE_TEXT_BYTES: usize = 8 * 1024;

/// A lazily connected, self-reconnecting Redis connection that fails fast (1 s to connect
/// or answer, one retry), so a Redis outage never holds up the caller for long.
pub(crate) fn redis_connection(
    client: redis::Client,
) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(1);
    redis::aio::ConnectionManager::new_lazy_with_config(client, config)
}

impl RedisBus {
    /// Starts the process's one subscriber connection on `channel` and its publisher;
    /// both reconnect with backoff for as long as the bus lives. Does not wait for Redis.
    pub fn start(url: &str, channel: &str) -> Result<Self, EventError> {
        let client = redis::Client::open(url)?;
        let publisher = redis_connection(client.clone())?;
        let origin = Uuid::new_v4();
        let local = broadcast::channel(SUBSCRIBER_BUFFER).0;
        let connected = Arc::new(AtomicBool::new(false));
        let (outbox, rx) = tokio::sync::mpsc::channel(OUTBOX_CAPACITY);
        let listener = tokio::spawn(listen(
            client,
            channel.to_owned(),
            origin,
            local.clone(),
            connected.clone(),
        ));
        let outbox_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sender = tokio::spawn(publish_loop(
            publisher,
            channel.to_owned(),
            rx,
            outbox_bytes.clone(),
        ));
        Ok(RedisBus {
            origin,
            local,
            outbox,
            outbox_bytes,
            connected,
            tasks: [listener, sender],
        })
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl EventBus for RedisBus {
    fn publish(&self, event: Event) -> PublishFuture<'_> {
        let payload = serde_json::to_string(&Envelope {
            origin: self.origin,
            event: event.clone(),
        });
        let _ = self.local.send(Arc::new(event));
        let queued = match payload {
            Ok(p) => {
                let len = p.len();
                let before = self.outbox_bytes.fetch_add(len, Ordering::Relaxed);
                let sent = if before + len > OUTBOX_MAX_BYTES {
                    Err(EventError::Backlog)
                } else {
                    self.outbox.try_send(p).map_err(|_| EventError::Backlog)
                };
                if sent.is_err() {
                    self.outbox_bytes.fetch_sub(len, Ordering::Relaxed);
                }
                sent
            }
            Err(e) => Err(EventError::Encode(e)),
        };
        if queued.is_err() {
            metrics::counter!("events_dropped_total", "where" => "redis_outbox").increment(1);
        }
        Box::pin(async move { queued })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }

    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// Sends queued events to Redis, pipelining whatever has piled up. While Redis is down
/// the batch in hand is dropped (other processes miss it; the database has it) and the
/// loop backs off instead of spinning.
async fn publish_loop(
    mut conn: redis::aio::ConnectionManager,
    channel: String,
    mut rx: tokio::sync::mpsc::Receiver<String>,
    queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(256);
    let mut delay = Duration::from_millis(50);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let sent = batch.len() as u64;
        let bytes: usize = batch.iter().map(String::len).sum();
        queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        let mut pipe = redis::pipe();
        for payload in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
        }
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => delay = Duration::from_millis(50),
            Err(e) => {
                metrics::counter!("events_dropped_total", "where" => "redis_publish")
                    .increment(sent);
                tracing::warn!(error = %e, "could not publish events to Redis");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The subscriber loop: connect, subscribe, forward; on any failure wait and start over.
async fn listen(
    client: redis::Client,
    channel: String,
    origin: Uuid,
    local: broadcast::Sender<Arc<Event>>,
    connected: Arc<AtomicBool>,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match subscribe_once(&client, &channel).await {
            Ok(pubsub) => {
                connected.store(true, Ordering::Relaxed);
                delay = Duration::from_millis(100);
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                        Ok(env) if env.origin == origin => {}
                        Ok(env) => {
                            let _ = local.send(Arc::new(env.event));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "skipped an undecodable event from Redis")
                        }
                    }
                }
                connected.store(false, Ordering::Relaxed);
                tracing::warn!("Redis event subscription ended; reconnecting");
            }
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_ms = delay.as_millis() as u64, "cannot subscribe to Redis events");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe_once(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// How many events one tenant's subscriber may fall behind before it is dropped.
pub const TENANT_BUFFER: usize = 256;

/// Fans the process's events out per tenant, so an event costs work for that tenant's
/// subscribers only, never for everyone connected to the process.
pub struct Hub {
    tenants: std::sync::Mutex<std::collections::HashMap<Uuid, broadcast::Sender<Arc<Event>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hub {
    /// Starts the one task that reads the bus and routes by tenant.
    pub fn start(bus: &Arc<dyn EventBus>) -> Arc<Hub> {
        let mut rx = bus.subscribe();
        Arc::new_cyclic(|weak: &std::sync::Weak<Hub>| {
            let weak = weak.clone();
            let task = tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => match weak.upgrade() {
                            Some(hub) => hub.dispatch(event),
                            None => break,
                        },
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            metrics::counter!("events_dropped_total", "where" => "hub")
                                .increment(n);
                            tracing::warn!(missed = n, "event hub fell behind the bus");
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            Hub {
                tenants: std::sync::Mutex::new(std::collections::HashMap::new()),
                task,
            }
        })
    }

    fn dispatch(&self, event: Arc<Event>) {
        let tenant = event.tenant_id();
        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        if let Some(tx) = tenants.get(&tenant)
            && tx.send(event).is_err()
        {
            // Nobody of this tenant is listening any more.
            tenants.remove(&tenant);
        }
    }

    /// Events of one tenant, from now on.
    pub fn subscribe(&self, tenant: Uuid) -> broadcast::Receiver<Arc<Event>> {
        match self.tenants.lock() {
            Ok(mut tenants) => tenants
                .entry(tenant)
                .or_insert_with(|| broadcast::channel(TENANT_BUFFER).0)
                .subscribe(),
            // A poisoned map only happens after a panic elsewhere: hand out a closed stream.
            Err(_) => broadcast::channel(1).1,
        }
    }

    /// Tenants with a channel open (for metrics and tests).
    pub fn tenant_count(&self) -> usize {
        self.tenants.lock().map(|t| t.len()).unwrap_or(0)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_event(tenant: Uuid, status: &str) -> Event {
        Event::CallUpdated {
            tenant_id: tenant,
            call_id: Uuid::now_v7(),
            campaign_id: None,
            status: status.to_owned(),
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
        let channel = format!("switchboard:test:{}", Uuid::new_v4());
        let a = RedisBus::start(&url, &channel).unwrap();
        let b = RedisBus::start(&url, &channel).unwrap();
        for _ in 0..100 {
            if a.is_connected() && b.is_connected() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(a.is_connected() && b.is_connected());
        let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
        let t = Uuid::now_v7();

        // Garbage on the channel is skipped, not fatal.
        let mut raw = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg("not json")
            .query_async::<i64>(&mut raw)
            .await
            .unwrap();

        for s in ["INITIATED", "RINGING", "COMPLETED"] {
            a.publish(call_event(t, s)).await.unwrap();
        }
        for s in ["INITIATED", "RINGING", "COMPLETED"] {
            for rx in [&mut on_a, &mut on_b] {
                match &*next(rx).await {
                    Event::CallUpdated { status, .. } => assert_eq!(status, s),
                    other => panic!("{other:?}"),
                }
            }
        }
        // Exactly once each: nothing else is waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(on_a.try_recv().is_err() && on_b.try_recv().is_err());
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
