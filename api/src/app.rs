//! Application state and the router; public so tests drive the real stack.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::events::{EventBus, Hub};
use domain::health::{self, RedisProbe};
use domain::services::Services;
use domain::settings::Settings;
use domain::tenancy::Authenticator;
use sea_orm::DatabaseConnection;

use crate::graphql::{self, AppSchema};

/// What every handler shares. Cloned per request by axum's `State`, so it is one `Arc`:
/// a field-by-field clone cost dozens of allocations (settings' strings) per request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub db: DatabaseConnection,
    pub schema: AppSchema,
    pub settings: Arc<Settings>,
    pub auth: Arc<Authenticator>,
    pub redis: Option<RedisProbe>,
    /// The schema for documents that select only introspection fields: the same types,
    /// with the depth the standard introspection query needs.
    pub introspection_schema: AppSchema,
    pub parse_cache: Arc<crate::graphql::parse_cache::ParseCache>,
    pub operation_labels: Arc<crate::metrics::OperationLabels>,
    pub auth_failures: Arc<crate::limits::FailureLimiter>,
    /// Redis pub/sub when `REDIS_URL` is set, else in-process.
    pub events: Arc<dyn EventBus>,
    /// Per-tenant fan-out of events to this process's subscribers.
    pub hub: Arc<Hub>,
    /// Ingestion, providers and the event bus, shared with the embedded worker.
    pub services: Services,
    pub webhooks: Arc<crate::webhooks::WebhookState>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, settings: Settings) -> anyhow::Result<Self> {
        let services = Services::start(db.clone(), &settings)?;
        Self::with_services(services, settings)
    }

    pub fn with_services(services: Services, settings: Settings) -> anyhow::Result<Self> {
        let db = services.db().clone();
        let auth = Arc::new(Authenticator::new(Duration::from_secs(
            settings.auth_cache_seconds,
        )));
        let events = services.events().clone();
        let hub = Hub::start(&events);
        let webhooks = Arc::new(crate::webhooks::WebhookState::new(
            settings.webhook_inline_limit,
            services.ingestor().clone(),
        ));
        let data = graphql::SchemaData {
            db: db.clone(),
            auth: auth.clone(),
            services: services.clone(),
            hub: hub.clone(),
            webhooks: webhooks.clone(),
        };
        let schema =
            graphql::build_schema(data.clone(), &settings.graphql, settings.graphql.max_depth);
        let introspection_schema = graphql::build_schema(
            data,
            &settings.graphql,
            settings.graphql.max_introspection_depth,
        );
        let auth_failures = Arc::new(crate::limits::FailureLimiter::new(
            settings.auth_failures_per_minute,
        ));
        let redis = settings
            .redis_url
            .as_ref()
            .map(RedisProbe::new)
            .transpose()?;
        Ok(AppState(Arc::new(Shared {
            db,
            schema,
            introspection_schema,
            settings: Arc::new(settings),
            auth,
            redis,
            parse_cache: Arc::default(),
            operation_labels: Arc::default(),
            auth_failures,
            events,
            hub,
            services,
            webhooks,
        })))
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.graphql.max_body_bytes;
    let _ = workers::metrics::handle();
    Router::new()
        .route(
            "/graphql",
            get(graphql::http::get).post(graphql::http::post),
        )
        .route("/graphql/ws", get(graphql::ws::upgrade))
        .route(
            "/webhooks/bolna/{token}",
            axum::routing::post(crate::webhooks::bolna),
        )
        .route(
            "/webhooks/teli/{token}",
            axum::routing::post(crate::webhooks::teli),
        )
        .route(
            "/webhooks/twenty/{token}",
            axum::routing::post(crate::crm_webhooks::twenty),
        )
        .route(
            "/webhooks/whatsapp/{token}",
            get(crate::whatsapp_webhooks::handshake)
                .post(crate::whatsapp_webhooks::events)
                .layer(DefaultBodyLimit::max(
                    crate::whatsapp_webhooks::MAX_BODY_BYTES,
                )),
        )
        .route(
            "/campaigns/import",
            axum::routing::post(crate::campaign_import::import)
                .layer(DefaultBodyLimit::max(domain::campaigns::MAX_FILE_BYTES)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/graphiql/{file}", get(crate::graphiql::asset))
        .route("/console", get(crate::console::page))
        .route("/console/{file}", get(crate::console::asset))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let r = health::check(&state.db, state.redis.as_ref()).await;
    let status = if r.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": r.ready(), "database": r.database, "redis": r.redis })),
    )
        .into_response()
}

/// `/metrics`, behind `METRICS_TOKEN` when one is set.
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.settings.metrics_token {
        let given = crate::graphql::http::bearer(&headers).unwrap_or_default();
        if !domain::tenancy::secrets_match(given, token.expose()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                Json(serde_json::json!({ "error": "metrics need the METRICS_TOKEN bearer token" })),
            )
                .into_response();
        }
    }
    workers::metrics::render()
}
