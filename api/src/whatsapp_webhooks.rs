//! `GET /webhooks/whatsapp/{token}`: Meta's verification handshake (the challenge echoed
//! as plain text). `POST`: its events, the signature checked before the body is parsed
//! (`domain::whatsapp::receive`).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::whatsapp::{InboundError, receive, verify_subscription};
use serde_json::json;

use crate::app::AppState;
use crate::webhooks::reject;

/// Meta sends events of up to 3 MB.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

fn status_of(e: &InboundError) -> (StatusCode, &'static str) {
    match e {
        InboundError::UnknownToken => (StatusCode::NOT_FOUND, "unknown_token"),
        InboundError::Refused => (StatusCode::FORBIDDEN, "refused"),
        InboundError::Unsigned | InboundError::BadSignature => {
            (StatusCode::UNAUTHORIZED, "bad_signature")
        }
        InboundError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
        InboundError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "error"),
    }
}

fn count(result: &'static str) {
    metrics::counter!("whatsapp_webhooks_total", "result" => result).increment(1);
}

pub async fn handshake(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| query.get(k).map(String::as_str);
    match verify_subscription(
        &state.db,
        &token,
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
    )
    .await
    {
        Ok(challenge) => {
            count("verified");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                challenge,
            )
                .into_response()
        }
        Err(e) => {
            let (status, label) = status_of(&e);
            count(label);
            reject(status, e.to_string())
        }
    }
}

pub async fn events(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            count("rejected");
            return reject(rejection.status(), rejection.body_text());
        }
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    match receive(
        &state.db,
        state.services.whatsapp(),
        &**state.services.events(),
        &token,
        signature,
        &body,
    )
    .await
    {
        Ok(r) => {
            count("applied");
            (
                StatusCode::OK,
                Json(json!({ "status": "applied", "messages": r.messages, "statuses": r.statuses, "templates": r.templates })),
            )
                .into_response()
        }
        Err(e) => {
            let (status, label) = status_of(&e);
            count(label);
            if let InboundError::Unavailable(why) = &e {
                tracing::error!(error = %why, "could not apply a WhatsApp webhook");
            }
            reject(status, e.to_string())
        }
    }
}
