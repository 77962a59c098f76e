//! `POST /webhooks/twenty/{token}`: Twenty's person events, signature checked before the
//! body is read (`domain::crm::receive`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::crm::{InboundError, receive};
use serde_json::json;

use crate::app::AppState;
use crate::webhooks::reject;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn twenty(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let count = |result: &'static str| {
        metrics::counter!("crm_webhooks_total", "result" => result).increment(1)
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            count("rejected");
            return reject(rejection.status(), rejection.body_text());
        }
    };
    let outcome = receive(
        &state.db,
        state.services.crm(),
        &token,
        header(&headers, "x-twenty-webhook-timestamp"),
        header(&headers, "x-twenty-webhook-signature"),
        &body,
    )
    .await;
    let (status, label) = match &outcome {
        Ok(r) if r.ignored => {
            count("ignored");
            return (StatusCode::OK, Json(json!({ "status": "ignored" }))).into_response();
        }
        Ok(r) => {
            count("applied");
            return (
                StatusCode::OK,
                Json(json!({ "status": "applied", "records": r.applied })),
            )
                .into_response();
        }
        Err(InboundError::UnknownToken) => (StatusCode::NOT_FOUND, "unknown_token"),
        Err(InboundError::Unsigned | InboundError::BadSignature) => {
            (StatusCode::UNAUTHORIZED, "bad_signature")
        }
        Err(InboundError::Malformed(_)) => (StatusCode::BAD_REQUEST, "malformed"),
        Err(InboundError::Unavailable(e)) => {
            tracing::error!(error = %e, "could not apply a Twenty webhook");
            (StatusCode::SERVICE_UNAVAILABLE, "error")
        }
    };
    count(label);
    reject(
        status,
        outcome.err().map(|e| e.to_string()).unwrap_or_default(),
    )
}
