//! Redis pub/sub between API processes, with a bounded outbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::{Event, EventBus, EventError, PublishFuture, SUBSCRIBER_BUFFER, TenantFilter};

/// What travels over Redis: the process that sent it, the event's tenant, and the event.
/// Origin and tenant come first and are read on their own ([`Head`]), so a process skips
/// its own events and those of tenants nobody there listens to without decoding them.
#[derive(Serialize)]
struct Outgoing<'a> {
    origin: Uuid,
    tenant: Uuid,
    event: &'a Event,
}

/// What a process reads of an arriving message before deciding to decode its event.
/// `tenant` is missing from processes of earlier versions (then the event is decoded).
#[derive(Deserialize)]
struct Head {
    origin: Uuid,
    #[serde(default)]
    tenant: Option<Uuid>,
}

/// The event of an arriving message.
#[derive(Deserialize)]
struct Envelope {
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
    /// Which tenants' events from other processes are decoded: those some filter
    /// accepts, or all while there is none.
    wanted: Wanted,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

type Wanted = Arc<std::sync::RwLock<Vec<TenantFilter>>>;

/// Events waiting for Redis; beyond this many, or `OUTBOX_MAX_BYTES` of them (Redis down
/// for long), new ones are dropped and counted.
pub const OUTBOX_CAPACITY: usize = 10_000;
pub const OUTBOX_MAX_BYTES: usize = 32 * 1024 * 1024;

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
        let wanted = Wanted::default();
        let (outbox, rx) = tokio::sync::mpsc::channel(OUTBOX_CAPACITY);
        let listener = tokio::spawn(listen(
            client,
            channel.to_owned(),
            origin,
            local.clone(),
            connected.clone(),
            wanted.clone(),
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
            wanted,
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
        let payload = serde_json::to_string(&Outgoing {
            origin: self.origin,
            tenant: event.tenant_id(),
            event: &event,
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

    fn only_tenants(&self, wanted: TenantFilter) {
        if let Ok(mut w) = self.wanted.write() {
            w.push(wanted);
        }
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
    wanted: Wanted,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match subscribe_once(&client, &channel).await {
            Ok(pubsub) => {
                connected.store(true, Ordering::Relaxed);
                delay = Duration::from_millis(100);
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    if let Some(event) = arrived(msg.get_payload_bytes(), origin, &wanted) {
                        let _ = local.send(Arc::new(event));
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

/// The event of a message from Redis, unless it is this process's own, of a tenant not
/// wanted here, or undecodable.
fn arrived(payload: &[u8], origin: Uuid, wanted: &Wanted) -> Option<Event> {
    let decoded = serde_json::from_slice::<Head>(payload).and_then(|head| {
        if head.origin == origin {
            return Ok(None);
        }
        if let Some(tenant) = head.tenant
            && let Ok(filters) = wanted.read()
            && !filters.is_empty()
            && !filters.iter().any(|wants| wants(tenant))
        {
            return Ok(None);
        }
        serde_json::from_slice::<Envelope>(payload).map(|env| Some(env.event))
    });
    decoded.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "skipped an undecodable event from Redis");
        None
    })
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
