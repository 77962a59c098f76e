//! `GET /graphql/ws`: the graphql-transport-ws protocol, written out so the edge can be
//! closed against clients that hold sockets or memory: authentication in `connection_init` within
//! `GRAPHQL_WS_INIT_TIMEOUT_MS` (10 s; 4408), a repeated init refused (4429), subscribing before the ack refused (4401),
//! duplicate ids refused (4409), at most 20 subscriptions per socket, 64 KiB messages,
//! small socket buffers, and a bounded outgoing queue: a client that cannot keep up is
//! disconnected rather than buffered without limit.
//!
//! The key is checked again on every `subscribe` and every `AUTH_CACHE_SECONDS / 2`
//! (at least each second) while the socket is open, through the same authenticator as
//! HTTP: a revoked key's socket is closed with 4403. Only subscriptions run here; queries
//! and mutations go over `POST /graphql`, where every HTTP limit applies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::Request;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::task::AbortHandle;

use super::context::Caller;
use super::error::assign_codes;
use crate::app::AppState;

pub const PROTOCOL: &str = "graphql-transport-ws";
const KEEPALIVE: Duration = Duration::from_secs(30);
pub const MAX_SUBSCRIPTIONS: usize = 20;
const MAX_MESSAGE: usize = 64 * 1024;
/// Largest message sent: a call's transcript may be up to the 1 MiB webhook limit, and
/// JSON escaping can double it.
const MAX_OUTGOING: usize = 2 * 1024 * 1024 + 64 * 1024;
/// Messages waiting for a slow client before it is cut off.
const OUT_QUEUE: usize = 64;
/// Bytes of large messages (those of `LARGE` bytes or more) waiting for one client: a few
/// long transcripts, not 64 of them.
const MAX_QUEUED_LARGE_BYTES: usize = 4 * 1024 * 1024;
const LARGE: usize = 16 * 1024;

/// Whether `msg` counts against `MAX_QUEUED_LARGE_BYTES` (the same test on both sides).
fn large_len(msg: &Message) -> Option<usize> {
    match msg {
        Message::Text(t) if t.len() >= LARGE => Some(t.len()),
        _ => None,
    }
}
/// Socket buffers: an idle connection should cost kilobytes, not tungstenite's 128 KiB
/// defaults; messages larger than these still pass, the buffer just grows for them.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 0;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: Value,
    },
    Complete {
        id: String,
    },
}

pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Response {
    let peer = Some(crate::limits::client_ip(
        peer.ip(),
        &headers,
        &state.settings.trusted_proxies,
    ));
    ws.protocols([PROTOCOL])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_OUTGOING)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(socket, state, peer))
}

fn text(v: Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

/// A result for one operation, serialized straight from the response (every subscriber
/// of every event goes through here: no intermediate JSON tree); when it does not
/// serialize, the `error` message that ends the operation instead.
fn outgoing<P: serde::Serialize>(
    kind: &'static str,
    id: &str,
    payload: &P,
) -> Result<Message, Message> {
    #[derive(serde::Serialize)]
    struct Outgoing<'a, P> {
        r#type: &'static str,
        id: &'a str,
        payload: &'a P,
    }
    match serde_json::to_string(&Outgoing {
        r#type: kind,
        id,
        payload,
    }) {
        Ok(s) => Ok(Message::Text(Utf8Bytes::from(s))),
        Err(e) => {
            tracing::error!(error = %e, "a subscription result did not serialize");
            Err(text(json!({
                "type": "error", "id": id,
                "payload": [{ "message": "internal error", "extensions": { "code": "INTERNAL" } }]
            })))
        }
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// The key from `{"authorization": "Bearer <key>"}` (key name in any case, "Bearer" optional).
fn bearer(payload: &Option<Value>) -> Option<String> {
    let map = payload.as_ref()?.as_object()?;
    let raw = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
        .1
        .as_str()?
        .trim();
    let key = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(raw);
    Some(key.trim().to_owned())
}

struct Gauge(&'static str);

impl Gauge {
    fn up(name: &'static str) -> Self {
        metrics::gauge!(name).increment(1.0);
        Gauge(name)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

async fn session(socket: WebSocket, state: AppState, peer: Option<std::net::IpAddr>) {
    let _connected = Gauge::up("ws_connections");
    let (mut sink, mut incoming) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(OUT_QUEUE);
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer_queued = queued.clone();
    let writer = tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if let Some(n) = large_len(&msg) {
                writer_queued.fetch_sub(n, std::sync::atomic::Ordering::Relaxed);
            }
            let closing = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let overflow = Arc::new(Notify::new());
    let subs: Arc<Mutex<HashMap<String, AbortHandle>>> = Arc::default();

    run(&state, peer, &mut incoming, &out, &overflow, &subs, &queued).await;

    if let Ok(mut subs) = subs.lock() {
        for (_, handle) in subs.drain() {
            handle.abort();
        }
    }
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

type Incoming = futures_util::stream::SplitStream<WebSocket>;

/// Next text message; `None` when the socket closed or failed.
async fn next_text(incoming: &mut Incoming) -> Option<Utf8Bytes> {
    loop {
        match incoming.next().await? {
            Ok(Message::Text(t)) => return Some(t),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

async fn run(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    incoming: &mut Incoming,
    out: &mpsc::Sender<Message>,
    overflow: &Arc<Notify>,
    subs: &Arc<Mutex<HashMap<String, AbortHandle>>>,
    queued: &Arc<std::sync::atomic::AtomicUsize>,
) {
    // connection_init, within the time limit.
    let init_timeout = Duration::from_millis(state.settings.graphql.ws_init_timeout_ms);
    let first = match tokio::time::timeout(init_timeout, next_text(incoming)).await {
        Err(_) => {
            let _ = out
                .send(close(4408, "Connection initialisation timeout"))
                .await;
            return;
        }
        Ok(None) => return,
        Ok(Some(t)) => t,
    };
    let payload = match serde_json::from_str::<ClientMessage>(first.as_str()) {
        Ok(ClientMessage::ConnectionInit { payload }) => payload,
        Ok(ClientMessage::Subscribe { .. }) => {
            let _ = out.send(close(4401, "Unauthorized")).await;
            return;
        }
        _ => {
            let _ = out.send(close(4400, "Expected connection_init")).await;
            return;
        }
    };
    let Some(key) = bearer(&payload) else {
        let _ = out
            .send(close(4403, "Forbidden: authorization missing"))
            .await;
        return;
    };
    // Counted against the client like a key over HTTP (hints with spaces are not).
    let counted =
        peer.filter(|_| state.auth.cached(&key).is_none() && !key.contains(char::is_whitespace));
    if let Some(ip) = counted
        && !state.auth_failures.try_begin(ip)
    {
        let _ = out
            .send(close(
                4429,
                "Too many failed authentications; wait a minute",
            ))
            .await;
        return;
    }
    match state.auth.authenticate(&state.db, &key).await {
        Ok(_) => {
            if let Some(ip) = counted {
                state.auth_failures.succeeded(ip);
            }
        }
        Err(domain::DomainError::Unauthenticated) => {
            if let Some(ip) = counted {
                state.auth_failures.failed(ip);
            }
            let _ = out.send(close(4403, "Forbidden")).await;
            return;
        }
        Err(e) => {
            if let Some(ip) = counted {
                state.auth_failures.succeeded(ip);
            }
            tracing::error!(error = %e, "authentication lookup failed");
            let _ = out.send(close(1011, "Internal error")).await;
            return;
        }
    };
    if out
        .send(text(json!({"type": "connection_ack"})))
        .await
        .is_err()
    {
        return;
    }

    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    let recheck_every = Duration::from_millis((state.settings.auth_cache_seconds * 500).max(1000));
    let mut recheck = tokio::time::interval(recheck_every);
    recheck.tick().await;
    let mut last_heard = Instant::now();
    loop {
        let msg = tokio::select! {
            m = next_text(incoming) => m,
            _ = overflow.notified() => {
                metrics::counter!("ws_slow_clients_dropped_total").increment(1);
                let _ = out.try_send(close(4429, "Too slow: messages were not read"));
                return;
            }
            _ = recheck.tick() => {
                match state.auth.authenticate(&state.db, &key).await {
                    Ok(_) => {}
                    Err(domain::DomainError::Unauthenticated) => {
                        let _ = out.try_send(close(4403, "Forbidden: the key was revoked"));
                        return;
                    }
                    // The database is unreachable: keep the socket, check again later.
                    Err(e) => tracing::warn!(error = %e, "could not re-check a socket's key"),
                }
                continue;
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() > KEEPALIVE * 3 {
                    let _ = out.try_send(close(1001, "Keepalive timeout"));
                    return;
                }
                let _ = out.try_send(text(json!({"type": "ping"})));
                continue;
            }
        };
        let Some(msg) = msg else { return };
        last_heard = Instant::now();
        let parsed = match serde_json::from_str::<ClientMessage>(msg.as_str()) {
            Ok(m) => m,
            Err(_) => {
                let _ = out.send(close(4400, "Invalid message")).await;
                return;
            }
        };
        match parsed {
            ClientMessage::ConnectionInit { .. } => {
                let _ = out
                    .send(close(4429, "Too many initialisation requests"))
                    .await;
                return;
            }
            ClientMessage::Ping { .. } => {
                let _ = out.try_send(text(json!({"type": "pong"})));
            }
            ClientMessage::Pong { .. } => {}
            ClientMessage::Complete { id } => {
                if let Some(h) = subs.lock().ok().and_then(|mut s| s.remove(&id)) {
                    h.abort();
                }
            }
            ClientMessage::Subscribe { id, payload } => {
                let request: Request = match serde_json::from_value(payload) {
                    Ok(r) => r,
                    Err(_) => {
                        let _ = out.send(close(4400, "Invalid subscribe payload")).await;
                        return;
                    }
                };
                let scope = match state.auth.authenticate(&state.db, &key).await {
                    Ok(scope) => scope,
                    Err(domain::DomainError::Unauthenticated) => {
                        let _ = out
                            .send(close(4403, "Forbidden: the key was revoked"))
                            .await;
                        return;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "authentication lookup failed");
                        let _ = out.send(close(1011, "Internal error")).await;
                        return;
                    }
                };
                let mut request = request;
                if let Some(refused) = not_a_subscription(&mut request) {
                    let _ = out.try_send(text(json!({
                        "type": "error", "id": id,
                        "payload": [{ "message": refused, "extensions": { "code": "BAD_USER_INPUT" } }]
                    })));
                    continue;
                }
                let request = request.data(Caller::subscriber(state.db.clone(), scope.clone()));
                // Decided under the lock, answered after it is released.
                let refusal = {
                    let Ok(mut active) = subs.lock() else { return };
                    if active.contains_key(&id) {
                        Some(true)
                    } else if active.len() >= MAX_SUBSCRIPTIONS {
                        Some(false)
                    } else {
                        let stream = state.schema.execute_stream(request);
                        let task = tokio::spawn(forward(
                            id.clone(),
                            stream,
                            out.clone(),
                            overflow.clone(),
                            subs.clone(),
                            queued.clone(),
                        ));
                        active.insert(id.clone(), task.abort_handle());
                        None
                    }
                };
                match refusal {
                    Some(true) => {
                        let _ = out
                            .send(close(4409, "Subscriber for this id already exists"))
                            .await;
                        return;
                    }
                    Some(false) => {
                        let _ = out.try_send(text(json!({
                            "type": "error", "id": id,
                            "payload": [{ "message": format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
                                          "extensions": { "code": "RATE_LIMITED" } }]
                        })));
                    }
                    None => {}
                }
            }
        }
    }
}

/// Parses the operation (attaching the parse) and explains why it may not run here, if
/// it is not a subscription. Unparsable documents are left for execution to report.
fn not_a_subscription(request: &mut Request) -> Option<&'static str> {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let doc = async_graphql::parser::parse_query(&request.query).ok()?;
    let ty = match (&doc.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    };
    request.set_parsed_query(doc);
    match ty {
        Some(OperationType::Query) | Some(OperationType::Mutation) => Some(
            "only subscriptions run over this socket; send queries and mutations to POST /graphql",
        ),
        _ => None,
    }
}

/// Sends one operation's results; the first result carrying only errors is an `error`.
async fn forward(
    id: String,
    mut stream: futures_util::stream::BoxStream<'static, async_graphql::Response>,
    out: mpsc::Sender<Message>,
    overflow: Arc<Notify>,
    subs: Arc<Mutex<HashMap<String, AbortHandle>>>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let _active = Gauge::up("ws_subscriptions");
    let mut first = true;
    let mut failed = false;
    while let Some(mut response) = stream.next().await {
        assign_codes(&mut response);
        let msg = if first && response.data == async_graphql::Value::Null && response.is_err() {
            failed = true;
            outgoing("error", &id, &response.errors)
        } else {
            outgoing("next", &id, &response)
        };
        // A result that did not serialize was answered with an error: the operation ends.
        let msg = msg.unwrap_or_else(|error| {
            failed = true;
            error
        });
        first = false;
        let large = large_len(&msg);
        if let Some(n) = large
            && queued.fetch_add(n, Ordering::Relaxed) + n > MAX_QUEUED_LARGE_BYTES
        {
            queued.fetch_sub(n, Ordering::Relaxed);
            overflow.notify_one();
            return;
        }
        if out.try_send(msg).is_err() {
            if let Some(n) = large {
                queued.fetch_sub(n, Ordering::Relaxed);
            }
            overflow.notify_one();
            return;
        }
        if failed {
            break;
        }
    }
    if let Ok(mut s) = subs.lock() {
        s.remove(&id);
    }
    if !failed
        && out
            .try_send(text(json!({ "type": "complete", "id": id })))
            .is_err()
    {
        overflow.notify_one();
    }
}
