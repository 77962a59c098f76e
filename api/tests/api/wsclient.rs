//! A small graphql-transport-ws client for tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    pub socket: Socket,
}

/// How a connection ended: the close code the server sent, if any.
pub enum Next {
    Msg(Value),
    Closed(Option<u16>),
    Timeout,
}

impl Ws {
    /// Opens the socket without initialising.
    pub async fn open(addr: SocketAddr) -> Ws {
        let mut req = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, response) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "graphql-transport-ws"
        );
        Ws { socket }
    }

    /// Opens and initialises with `key`; panics unless acknowledged.
    pub async fn connect(addr: SocketAddr, key: &str) -> Ws {
        let mut ws = Self::open(addr).await;
        ws.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {key}")}}))
            .await;
        match ws.next(5).await {
            Next::Msg(m) if m["type"] == "connection_ack" => ws,
            other => panic!("no ack: {}", describe(&other)),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.socket
            .send(Message::text(v.to_string()))
            .await
            .unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({"type": "subscribe", "id": id, "payload": {"query": query, "variables": variables}}))
            .await;
    }

    /// The next protocol message (pings are answered and skipped).
    pub async fn next(&mut self, secs: u64) -> Next {
        loop {
            let got = tokio::time::timeout(Duration::from_secs(secs), self.socket.next()).await;
            match got {
                Err(_) => return Next::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return Next::Closed(None),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Next::Closed(frame.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Next::Msg(v);
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next `next` payload's data, panicking on anything else.
    pub async fn data(&mut self, secs: u64) -> Value {
        match self.next(secs).await {
            Next::Msg(m) if m["type"] == "next" => {
                assert!(m["payload"].get("errors").is_none(), "errors: {m}");
                m["payload"]["data"].clone()
            }
            other => panic!("expected next, got {}", describe(&other)),
        }
    }

    pub async fn close_code(&mut self, secs: u64) -> Option<u16> {
        loop {
            match self.next(secs).await {
                Next::Closed(code) => return code,
                Next::Timeout => panic!("socket did not close"),
                Next::Msg(_) => continue,
            }
        }
    }
}

pub fn describe(n: &Next) -> String {
    match n {
        Next::Msg(v) => v.to_string(),
        Next::Closed(c) => format!("closed {c:?}"),
        Next::Timeout => "timeout".into(),
    }
}

pub const CALL_UPDATED: &str = "subscription($c: ID) { callUpdated(callId: $c) { status previousStatus call { id status providerExecutionId transcript customer { phoneNumber } } } }";
