//! `POST /webhooks/{bolna,teli}/{token}`: provider call reports.
//!
//! The body is checked (size, JSON, the provider's shape) and applied before the answer,
//! so a 2xx means the report is stored. When this process already has `WEBHOOK_INLINE_LIMIT`
//! reports in flight, the report is queued instead (one insert, `domain::ingest::accept`)
//! and a worker applies it: a burst costs latency of application, not acknowledgements.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::ingest::{self, GroupCommit, Ingestor};
use domain::providers::{CallReport, ProviderError, bolna, teli};
use domain::types::{EventSource, Provider};
use entity::tenant;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::app::AppState;

/// How long a token → tenant lookup is reused.
const TOKEN_TTL: Duration = Duration::from_secs(5);
pub struct WebhookState {
    tenants: Mutex<HashMap<String, (Arc<tenant::Model>, Instant)>>,
    inline: Arc<Semaphore>,
    /// Reports applied in the request are written by group commit.
    group: GroupCommit,
}

impl WebhookState {
    /// `inline`: reports applied in the request (`WEBHOOK_INLINE_LIMIT`), by group commit;
    /// beyond, they are queued.
    pub fn new(inline: usize, ingestor: Ingestor) -> Self {
        WebhookState {
            tenants: Mutex::default(),
            inline: Arc::new(Semaphore::new(inline)),
            group: GroupCommit::start(ingestor, inline),
        }
    }
}

impl WebhookState {
    /// Drops every cached token (after a rotation), so an old token stops at once here.
    pub fn forget_tokens(&self) {
        if let Ok(mut cache) = self.tenants.lock() {
            cache.clear();
        }
    }
}

pub(crate) fn reject(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub async fn bolna(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    receive(state, Provider::Bolna, token, body, bolna::parse_execution).await
}

pub async fn teli(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Teli documents no webhook; accept its call object bare or Retell-style `{event, call}`.
    receive(state, Provider::Teli, token, body, |v| {
        match v.get("call") {
            Some(call) if call.is_object() => teli::parse_call(call.clone()),
            _ => teli::parse_call(v),
        }
    })
    .await
}

async fn receive(
    state: AppState,
    provider: Provider,
    token: String,
    body: Result<Bytes, BytesRejection>,
    parse: impl FnOnce(serde_json::Value) -> Result<CallReport, ProviderError>,
) -> Response {
    let label = provider.as_str();
    let count = |result: &'static str| {
        metrics::counter!("webhook_reports_total", "provider" => label, "result" => result)
            .increment(1)
    };
    let tenant = match tenant_by_token(&state, &token).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            count("unknown_token");
            return reject(StatusCode::NOT_FOUND, "unknown webhook token");
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook token lookup failed");
            count("error");
            return reject(StatusCode::SERVICE_UNAVAILABLE, "try again later");
        }
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            count("rejected");
            return reject(rejection.status(), rejection.body_text());
        }
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            count("malformed");
            return reject(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"));
        }
    };
    let report = match parse(value) {
        Ok(r) => r,
        Err(e) => {
            count("malformed");
            return reject(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let execution_id = report.execution_id.clone();
    let accepted = || {
        (
            StatusCode::OK,
            Json(json!({ "status": "accepted", "executionId": execution_id })),
        )
            .into_response()
    };
    match state.webhooks.inline.clone().try_acquire_owned() {
        Ok(_permit) => {
            match state
                .webhooks
                .group
                .ingest(tenant.clone(), report, EventSource::Webhook)
                .await
            {
                Ok(_) => {
                    count("applied");
                    accepted()
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not apply a webhook report");
                    count("error");
                    reject(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "could not store the report; retry",
                    )
                }
            }
        }
        Err(_) => match ingest::accept(&state.db, tenant.id, report, EventSource::Webhook).await {
            Ok(_) => {
                domain::jobs::wake(domain::jobs::Lane::Ingest);
                count("queued");
                accepted()
            }
            Err(e) => {
                tracing::error!(error = %e, "could not queue a webhook report");
                count("error");
                reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "could not store the report; retry",
                )
            }
        },
    }
}

async fn tenant_by_token(
    state: &AppState,
    token: &str,
) -> Result<Option<Arc<tenant::Model>>, sea_orm::DbErr> {
    if token.is_empty() || token.len() > 200 {
        return Ok(None);
    }
    if let Ok(cache) = state.webhooks.tenants.lock()
        && let Some((t, at)) = cache.get(token)
        && at.elapsed() < TOKEN_TTL
    {
        return Ok(Some(t.clone()));
    }
    let found = tenant::Entity::find()
        .filter(tenant::Column::WebhookToken.eq(token))
        .one(&state.db)
        .await?
        .map(Arc::new);
    if let (Some(t), Ok(mut cache)) = (&found, state.webhooks.tenants.lock()) {
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(token.to_owned(), (t.clone(), Instant::now()));
    }
    Ok(found)
}
