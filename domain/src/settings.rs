//! Typed configuration read from the environment and validated once at boot.

use std::fmt;
use std::net::SocketAddr;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://switchboard.db?mode=rwc";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{name}: {message} (got {value:?})")]
    Invalid {
        name: &'static str,
        value: String,
        message: String,
    },
}

/// A secret string that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The job runner's settings, read from `WORKER_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// How often an idle lane looks for due jobs when nothing woke it (`WORKER_POLL_MS`).
    pub poll_ms: u64,
    /// Jobs one process runs at once per lane (`WORKER_CONCURRENCY_<LANE>`).
    pub calls: usize,
    pub ingest: usize,
    pub sync: usize,
    pub campaigns: usize,
    pub analysis: usize,
    pub maintenance: usize,
    /// Outbound webhook pumps (each sends many deliveries at once).
    pub webhooks: usize,
    /// How long a claimed job is held without a heartbeat before another worker may take
    /// it over (`WORKER_LEASE_SECONDS`): how long a killed worker's jobs wait.
    pub lease_seconds: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            poll_ms: 1000,
            calls: 16,
            ingest: 16,
            sync: 2,
            campaigns: 4,
            analysis: 4,
            maintenance: 2,
            webhooks: 2,
            lease_seconds: 60,
        }
    }
}

impl WorkerSettings {
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = WorkerSettings::default();
        Ok(WorkerSettings {
            poll_ms: parse_num(get, "WORKER_POLL_MS", d.poll_ms, 10, 60_000)?,
            calls: parse_num(get, "WORKER_CONCURRENCY_CALLS", d.calls, 1, 1024)?,
            ingest: parse_num(get, "WORKER_CONCURRENCY_INGEST", d.ingest, 1, 1024)?,
            sync: parse_num(get, "WORKER_CONCURRENCY_SYNC", d.sync, 1, 64)?,
            campaigns: parse_num(get, "WORKER_CONCURRENCY_CAMPAIGNS", d.campaigns, 1, 256)?,
            analysis: parse_num(get, "WORKER_CONCURRENCY_ANALYSIS", d.analysis, 1, 256)?,
            maintenance: parse_num(get, "WORKER_CONCURRENCY_MAINTENANCE", d.maintenance, 1, 64)?,
            webhooks: parse_num(get, "WORKER_CONCURRENCY_WEBHOOKS", d.webhooks, 1, 64)?,
            lease_seconds: parse_num(get, "WORKER_LEASE_SECONDS", d.lease_seconds, 3, 3600)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub max_connections: u32,
}

impl DatabaseSettings {
    pub fn is_sqlite(&self) -> bool {
        self.url.expose().starts_with("sqlite:")
    }
}

/// Limits the GraphQL edge enforces on every document.
#[derive(Debug, Clone)]
pub struct GraphqlLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_directives: usize,
    pub max_recursive_depth: usize,
    pub max_batch: usize,
    pub max_body_bytes: usize,
    /// How long a WebSocket may take to send `connection_init`.
    pub ws_init_timeout_ms: u64,
    /// Whether `__schema` / `__type` are answered (`GRAPHQL_INTROSPECTION`).
    pub introspection: bool,
    /// Depth allowed to documents that select only introspection fields (the standard
    /// introspection query is 15 deep).
    pub max_introspection_depth: usize,
    /// `__schema` / `__type` fields one document may hold.
    pub max_introspection_fields: usize,
}

impl Default for GraphqlLimits {
    fn default() -> Self {
        GraphqlLimits {
            max_depth: 10,
            max_complexity: 2000,
            max_directives: 5,
            max_recursive_depth: 32,
            max_batch: 10,
            max_body_bytes: 1024 * 1024,
            ws_init_timeout_ms: 10_000,
            introspection: true,
            max_introspection_depth: 16,
            max_introspection_fields: 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub redis_url: Option<Secret>,
    /// Redis pub/sub channel of the event bus.
    pub events_channel: String,
    pub bind_addr: SocketAddr,
    pub admin_token: Option<Secret>,
    pub run_worker: bool,
    pub seed_demo: bool,
    pub log_format: LogFormat,
    pub graphql: GraphqlLimits,
    /// The job runner: polling and each lane's concurrency.
    pub worker: WorkerSettings,
    /// Where the standalone `workers` binary serves `/metrics` and `/healthz` (unset: nowhere;
    /// the API process serves the embedded worker's metrics on its own `/metrics`).
    pub worker_metrics_addr: Option<SocketAddr>,
    /// How long a resolved API key is trusted before it is looked up again.
    pub auth_cache_seconds: u64,
    pub providers: ProviderSettings,
    /// Webhook reports one API process applies at once before it queues the rest.
    pub webhook_inline_limit: usize,
    /// Bearer token `/metrics` requires (unset: open, as on a private network).
    pub metrics_token: Option<Secret>,
    /// Failed authentications one client IP may make a minute before it is refused (429).
    pub auth_failures_per_minute: u32,
    /// Addresses of the deployment's own proxies (`TRUSTED_PROXIES`): for a request from one
    /// of them, the client is the last `X-Forwarded-For` address that is not a proxy.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The OpenAI-compatible analyzer (`LLM_BASE_URL`, `LLM_MODEL`); unset: the heuristic one.
    pub llm: Option<LlmSettings>,
    /// Outbound webhooks: timeouts, the retry schedule, retention, private hosts allowed.
    pub webhooks: WebhookSettings,
    /// The CRM sync: its period, request budget and failure threshold (`CRM_*`).
    pub crm: CrmSettings,
    /// The address integrators reach this deployment on (`PUBLIC_URL`), for the webhook
    /// URLs it hands out; unset, they name `BIND_ADDR`.
    pub public_url: Option<String>,
}

/// How the two-way CRM sync runs (`CRM_*`).
#[derive(Debug, Clone)]
pub struct CrmSettings {
    /// A pull and push of every connection this often (`CRM_SYNC_INTERVAL_SECONDS`).
    pub sync_interval_seconds: u64,
    /// Requests a minute to one CRM workspace, shared by every process through Redis
    /// when there is one (`CRM_REQUESTS_PER_MINUTE`; Twenty allows about 100).
    pub requests_per_minute: u32,
    /// A CRM failing every request this long fires `crm.sync_failing`
    /// (`CRM_FAILING_AFTER_SECONDS`).
    pub failing_after_seconds: u64,
    /// One request's time limit (`CRM_TIMEOUT_MS`).
    pub timeout_ms: u64,
}

impl Default for CrmSettings {
    fn default() -> Self {
        CrmSettings {
            sync_interval_seconds: 300,
            requests_per_minute: 100,
            failing_after_seconds: 900,
            timeout_ms: 10_000,
        }
    }
}

impl CrmSettings {
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = CrmSettings::default();
        Ok(CrmSettings {
            sync_interval_seconds: parse_num(
                get,
                "CRM_SYNC_INTERVAL_SECONDS",
                d.sync_interval_seconds,
                5,
                86_400,
            )?,
            requests_per_minute: parse_num(
                get,
                "CRM_REQUESTS_PER_MINUTE",
                d.requests_per_minute,
                1,
                10_000_000,
            )?,
            failing_after_seconds: parse_num(
                get,
                "CRM_FAILING_AFTER_SECONDS",
                d.failing_after_seconds,
                1,
                30 * 86_400,
            )?,
            timeout_ms: parse_num(get, "CRM_TIMEOUT_MS", d.timeout_ms, 100, 120_000)?,
        })
    }
}

/// How outbound webhooks are delivered (`WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// A delivery succeeds with a 2xx within this time (`WEBHOOK_TIMEOUT_MS`).
    pub timeout_ms: u64,
    /// Waits after the 1st, 2nd, ... failed attempt; after the last the delivery fails
    /// (`WEBHOOK_RETRY_SCHEDULE`, seconds, comma-separated).
    pub retry_schedule: Vec<std::time::Duration>,
    /// An endpoint failing without a success for this long is disabled
    /// (`WEBHOOK_DISABLE_AFTER_SECONDS`).
    pub disable_after_seconds: u64,
    /// Finished deliveries and their attempts are kept this long (`WEBHOOK_RETENTION_DAYS`).
    pub retention_days: u64,
    /// Hosts endpoints may name although they are private or loopback
    /// (`WEBHOOK_URL_ALLOWLIST`, comma-separated).
    pub allowlist: Vec<String>,
    /// Requests one pump has in flight at once, and to one endpoint at once.
    pub in_flight: usize,
    pub per_endpoint: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout_ms: 15_000,
            retry_schedule: [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .into_iter()
                .map(std::time::Duration::from_secs)
                .collect(),
            disable_after_seconds: 5 * 86_400,
            retention_days: 30,
            allowlist: Vec::new(),
            in_flight: 64,
            per_endpoint: 32,
        }
    }
}

impl WebhookSettings {
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = WebhookSettings::default();
        let retry_schedule = match get("WEBHOOK_RETRY_SCHEDULE") {
            None => d.retry_schedule,
            Some(raw) => {
                let parsed: Option<Vec<std::time::Duration>> = raw
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 7.0 * 86_400.0)
                            .map(std::time::Duration::from_secs_f64)
                    })
                    .collect();
                match parsed {
                    Some(v) if !v.is_empty() && v.len() <= 20 => v,
                    _ => {
                        return Err(SettingsError::Invalid {
                            name: "WEBHOOK_RETRY_SCHEDULE",
                            value: raw,
                            message: "must be 1 to 20 comma-separated waits in seconds (each up to 7 days)".into(),
                        });
                    }
                }
            }
        };
        Ok(WebhookSettings {
            timeout_ms: parse_num(get, "WEBHOOK_TIMEOUT_MS", d.timeout_ms, 100, 60_000)?,
            retry_schedule,
            disable_after_seconds: parse_num(
                get,
                "WEBHOOK_DISABLE_AFTER_SECONDS",
                d.disable_after_seconds,
                1,
                365 * 86_400,
            )?,
            retention_days: parse_num(get, "WEBHOOK_RETENTION_DAYS", d.retention_days, 1, 3650)?,
            allowlist: get("WEBHOOK_URL_ALLOWLIST")
                .map(|v| {
                    v.split(',')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            in_flight: parse_num(get, "WEBHOOK_IN_FLIGHT", d.in_flight, 1, 1024)?,
            per_endpoint: parse_num(get, "WEBHOOK_PER_ENDPOINT", d.per_endpoint, 1, 256)?,
        })
    }
}

/// Where post-call analysis goes when an LLM is configured, and how hard it may be used.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    /// Requests in flight at once across the deployment (`LLM_CONCURRENCY`).
    pub concurrency: usize,
    /// Requests a minute across the deployment (`LLM_REQUESTS_PER_MINUTE`, 0: no cap).
    pub requests_per_minute: u32,
    pub timeout_seconds: u64,
    pub max_tokens: u32,
}

impl LlmSettings {
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, SettingsError> {
        let Some(base_url) = get("LLM_BASE_URL") else {
            return Ok(None);
        };
        let base_url = base_url.trim().to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
            || reqwest::Url::parse(&base_url).is_err()
        {
            return Err(SettingsError::Invalid {
                name: "LLM_BASE_URL",
                value: redact_url(&base_url),
                message: "must be an http:// or https:// URL".into(),
            });
        }
        let Some(model) = get("LLM_MODEL") else {
            return Err(SettingsError::Invalid {
                name: "LLM_MODEL",
                value: String::new(),
                message: "is required with LLM_BASE_URL".into(),
            });
        };
        Ok(Some(LlmSettings {
            base_url,
            api_key: read_token(get, "LLM_API_KEY", true)?,
            model: model.trim().chars().take(200).collect(),
            concurrency: parse_num(get, "LLM_CONCURRENCY", 4, 1, 1_000)?,
            requests_per_minute: parse_num(get, "LLM_REQUESTS_PER_MINUTE", 60, 0, 1_000_000)?,
            timeout_seconds: parse_num(get, "LLM_TIMEOUT_SECONDS", 60, 1, 600)?,
            max_tokens: parse_num(get, "LLM_MAX_TOKENS", 1_000, 64, 32_000)?,
        }))
    }
}

/// Provider endpoints, secrets at rest and call-following knobs.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// 32-byte AES-256-GCM key (64 hex characters) for provider credentials at rest.
    /// Unset: the embedded default keeps a key file beside the SQLite database.
    pub secrets_key: Option<Secret>,
    pub allow_custom_base_url: bool,
    pub bolna_base_url: String,
    /// Meta's Graph API, version included (`WHATSAPP_BASE_URL`).
    pub whatsapp_base_url: String,
    pub teli_base_url: String,
    /// How much faster than real time the simulator plays calls.
    pub simulator_speed: f64,
    /// Requests a minute to one Bolna account from this process (0: no limit).
    pub bolna_requests_per_minute: u32,
    /// A call non-terminal this long is re-fetched from its provider.
    pub stale_call_seconds: u64,
    /// Per-request timeout of provider HTTP calls.
    pub request_timeout_ms: u64,
    /// Period of the scheduled sync of every tenant with credentials.
    pub sync_interval_seconds: u64,
    /// Period of the reconciler (audit and repair of the last 7 days).
    pub reconcile_interval_seconds: u64,
    /// Hosts a tenant's custom base URL may name although they resolve to loopback,
    /// private, link-local or metadata addresses (`PROVIDER_BASE_URL_ALLOWLIST`).
    pub outbound_allowlist: Vec<String>,
    /// Calls out with a provider at once across the deployment
    /// (`SYSTEM_CONCURRENT_CALLS_LIMIT`); tenants and campaigns have their own caps below it.
    pub system_concurrent_calls: u32,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of the environment.
    /// Each section reads and validates its own variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let database = DatabaseSettings::read(&get)?;
        let is_sqlite = database.is_sqlite();
        Ok(Settings {
            redis_url: read_redis_url(&get)?,
            events_channel: get("EVENTS_CHANNEL")
                .unwrap_or_else(|| crate::events::EVENTS_CHANNEL.to_owned()),
            bind_addr: read_addr(&get, "BIND_ADDR", "127.0.0.1:8080")?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_token: read_token(&get, "ADMIN_TOKEN", false)?,
            run_worker: parse_bool(&get, "RUN_WORKER", true)?,
            // The demo tenant belongs to the embedded default; production opts in explicitly.
            seed_demo: parse_bool(&get, "SEED_DEMO", is_sqlite)?,
            log_format: read_log_format(&get)?,
            graphql: GraphqlLimits::read(&get)?,
            worker: WorkerSettings::read(&get)?,
            worker_metrics_addr: read_addr(&get, "WORKER_METRICS_ADDR", "")?,
            auth_cache_seconds: parse_num(&get, "AUTH_CACHE_SECONDS", 5, 0, 300)?,
            providers: ProviderSettings::read(&get, is_sqlite)?,
            webhook_inline_limit: parse_num(&get, "WEBHOOK_INLINE_LIMIT", 64, 0, 10_000)?,
            metrics_token: read_token(&get, "METRICS_TOKEN", true)?,
            trusted_proxies: read_trusted_proxies(&get)?,
            llm: LlmSettings::read(&get)?,
            webhooks: WebhookSettings::read(&get)?,
            crm: CrmSettings::read(&get)?,
            public_url: read_public_url(&get)?,
            auth_failures_per_minute: parse_num(
                &get,
                "AUTH_FAILURES_PER_MINUTE",
                30,
                0,
                1_000_000,
            )?,
            database,
        })
    }
}

impl DatabaseSettings {
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(SettingsError::Invalid {
                name: "DATABASE_URL",
                value: redact_url(&url),
                message: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        let is_sqlite = url.starts_with("sqlite:");
        let max_connections = parse_num(
            get,
            "DATABASE_MAX_CONNECTIONS",
            if is_sqlite { 4 } else { 10 },
            1,
            1000,
        )?;
        Ok(DatabaseSettings {
            url: Secret::new(url),
            max_connections,
        })
    }
}

impl GraphqlLimits {
    fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = GraphqlLimits::default();
        Ok(GraphqlLimits {
            max_depth: parse_num(get, "GRAPHQL_MAX_DEPTH", d.max_depth, 2, 100)?,
            max_complexity: parse_num(
                get,
                "GRAPHQL_MAX_COMPLEXITY",
                d.max_complexity,
                10,
                1_000_000,
            )?,
            max_batch: parse_num(get, "GRAPHQL_MAX_BATCH", d.max_batch, 1, 100)?,
            ws_init_timeout_ms: parse_num(
                get,
                "GRAPHQL_WS_INIT_TIMEOUT_MS",
                d.ws_init_timeout_ms,
                100,
                120_000,
            )?,
            introspection: parse_bool(get, "GRAPHQL_INTROSPECTION", d.introspection)?,
            ..d
        })
    }
}

impl ProviderSettings {
    fn read(get: &impl Fn(&str) -> Option<String>, is_sqlite: bool) -> Result<Self, SettingsError> {
        let secrets_key = match get("SECRETS_KEY") {
            Some(k) if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(Secret::new(k.to_ascii_lowercase()))
            }
            Some(_) => {
                return Err(SettingsError::Invalid {
                    name: "SECRETS_KEY",
                    value: "***".into(),
                    message: "must be 64 hex characters (32 bytes), e.g. `openssl rand -hex 32`"
                        .into(),
                });
            }
            None if !is_sqlite => {
                return Err(SettingsError::Invalid {
                    name: "SECRETS_KEY",
                    value: String::new(),
                    message: "is required with PostgreSQL (every replica needs the same key); \
                              generate one with `openssl rand -hex 32`"
                        .into(),
                });
            }
            None => None,
        };
        let base_url = |name: &'static str, default: &str| -> Result<String, SettingsError> {
            let v = get(name).unwrap_or_else(|| default.to_owned());
            if v.starts_with("http://") || v.starts_with("https://") {
                Ok(v.trim_end_matches('/').to_owned())
            } else {
                Err(SettingsError::Invalid {
                    name,
                    value: v,
                    message: "must be an http:// or https:// URL".into(),
                })
            }
        };
        Ok(ProviderSettings {
            system_concurrent_calls: parse_num(
                get,
                "SYSTEM_CONCURRENT_CALLS_LIMIT",
                10,
                1,
                100_000,
            )?,
            secrets_key,
            allow_custom_base_url: parse_bool(get, "ALLOW_PROVIDER_BASE_URL", false)?,
            bolna_base_url: base_url("BOLNA_BASE_URL", "https://api.bolna.ai")?,
            whatsapp_base_url: base_url("WHATSAPP_BASE_URL", "https://graph.facebook.com/v21.0")?,
            teli_base_url: base_url("TELI_BASE_URL", "https://api.teli.ai")?,
            simulator_speed: parse_num(get, "SIMULATOR_SPEED", 1.0, 0.01, 100_000.0)?,
            bolna_requests_per_minute: parse_num(
                get,
                "BOLNA_REQUESTS_PER_MINUTE",
                450,
                0,
                1_000_000,
            )?,
            stale_call_seconds: parse_num(get, "STALE_CALL_SECONDS", 1800, 1, 30 * 86_400)?,
            request_timeout_ms: parse_num(get, "PROVIDER_TIMEOUT_MS", 10_000, 100, 120_000)?,
            sync_interval_seconds: parse_num(get, "SYNC_INTERVAL_SECONDS", 300, 10, 86_400)?,
            reconcile_interval_seconds: parse_num(
                get,
                "RECONCILE_INTERVAL_SECONDS",
                3600,
                60,
                7 * 86_400,
            )?,
            outbound_allowlist: get("PROVIDER_BASE_URL_ALLOWLIST")
                .map(|v| {
                    v.split(',')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

fn read_redis_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Secret>, SettingsError> {
    match get("REDIS_URL") {
        Some(v) if v.starts_with("redis://") || v.starts_with("rediss://") => {
            Ok(Some(Secret::new(v)))
        }
        Some(v) => Err(SettingsError::Invalid {
            name: "REDIS_URL",
            value: redact_url(&v),
            message: "must start with redis:// or rediss://".into(),
        }),
        None => Ok(None),
    }
}

/// An address and port; `default` ("" for none) when unset.
fn read_addr(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<Option<SocketAddr>, SettingsError> {
    let raw = match get(name) {
        Some(raw) => raw,
        None if default.is_empty() => return Ok(None),
        None => default.to_owned(),
    };
    raw.parse().map(Some).map_err(|_| SettingsError::Invalid {
        name,
        value: raw.clone(),
        message: "must be an address and port such as 127.0.0.1:8080".into(),
    })
}

/// A bearer token of at least 16 characters: with `trim`, surrounding spaces are dropped;
/// without, any space is refused.
fn read_token(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    trim: bool,
) -> Result<Option<Secret>, SettingsError> {
    let Some(raw) = get(name) else {
        return Ok(None);
    };
    let t = if trim { raw.trim().to_owned() } else { raw };
    if t.len() < 16 || (!trim && t.contains(char::is_whitespace)) {
        return Err(SettingsError::Invalid {
            name,
            value: "***".into(),
            message: if trim {
                "must be at least 16 characters".into()
            } else {
                "must be at least 16 characters, without spaces".into()
            },
        });
    }
    Ok(Some(Secret::new(t)))
}

fn read_log_format(get: &impl Fn(&str) -> Option<String>) -> Result<LogFormat, SettingsError> {
    match get("LOG_FORMAT")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(SettingsError::Invalid {
            name: "LOG_FORMAT",
            value: other.to_owned(),
            message: "must be text or json".into(),
        }),
    }
}

fn read_trusted_proxies(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<std::net::IpAddr>, SettingsError> {
    let Some(list) = get("TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|_| SettingsError::Invalid {
                name: "TRUSTED_PROXIES",
                value: a.to_owned(),
                message: "must be comma-separated IP addresses".into(),
            })
        })
        .collect()
}

fn parse_bool(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, SettingsError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
        Some(v) => Err(SettingsError::Invalid {
            name,
            value: v,
            message: "must be true or false".into(),
        }),
    }
}

fn parse_num<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, SettingsError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(SettingsError::Invalid {
            name,
            value: raw,
            message: format!("must be a number from {min} to {max}"),
        }),
    }
}

/// Hides the password in a connection URL before it is shown in an error.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn read_public_url(get: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, SettingsError> {
    let Some(raw) = get("PUBLIC_URL").map(|v| v.trim().trim_end_matches('/').to_owned()) else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    match url::Url::parse(&raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(raw)),
        _ => Err(SettingsError::Invalid {
            name: "PUBLIC_URL",
            value: raw,
            message: "must be an http(s) URL such as https://crm.example.com".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_embedded_product() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database.url.expose(), DEFAULT_DATABASE_URL);
        assert!(s.database.is_sqlite());
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8080");
        assert!(s.run_worker && s.seed_demo && s.redis_url.is_none() && s.admin_token.is_none());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = settings(&[("WORKER_METRICS_ADDR", "9091")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("WORKER_METRICS_ADDR"), "{err}");
        let err = settings(&[("BIND_ADDR", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("BIND_ADDR"), "{err}");
        let err = settings(&[("DATABASE_URL", "mysql://u:pw@h/db")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DATABASE_URL") && !err.contains("pw"), "{err}");
        assert!(settings(&[("RUN_WORKER", "maybe")]).is_err());
        assert!(settings(&[("ADMIN_TOKEN", "short")]).is_err());
        assert!(settings(&[("ADMIN_TOKEN", "a token with spaces in it")]).is_err());
        assert!(settings(&[("TRUSTED_PROXIES", "10.0.0.1, not-an-ip")]).is_err());
        assert_eq!(
            settings(&[("TRUSTED_PROXIES", "10.0.0.1, ::1")])
                .unwrap()
                .trusted_proxies
                .len(),
            2
        );
        assert!(settings(&[("REDIS_URL", "http://x")]).is_err());
        assert!(settings(&[("SECRETS_KEY", "short")]).is_err());
        assert!(settings(&[("BOLNA_BASE_URL", "ftp://x")]).is_err());
        assert!(settings(&[("SIMULATOR_SPEED", "0")]).is_err());
    }

    #[test]
    fn postgres_does_not_seed_a_demo_tenant_by_default() {
        let key = "ab".repeat(32);
        assert!(settings(&[("DATABASE_URL", "postgres://postgres@127.0.0.1/db")]).is_err());
        let s = settings(&[
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/db"),
            ("SECRETS_KEY", &key),
        ])
        .unwrap();
        assert!(!s.seed_demo);
        assert_eq!(format!("{:?}", s.database.url), "Secret(***)");
    }
}
