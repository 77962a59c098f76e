//! Test harness: the real app on a random port over a fresh database, spoken to over HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use domain::settings::Settings;
use domain::testdb::{Backend, TestDb};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789";

/// Runs an async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        $crate::on_both!($name, $body, []);
    };
    ($name:ident, $body:ident, [$(($k:expr, $v:expr)),* $(,)?]) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let extra: &[(&str, &str)] = &[$(($k, $v)),*];
                if let Some(app) = $crate::common::TestApp::spawn_with(domain::testdb::Backend::Sqlite, extra).await {
                    super::$body(app).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let extra: &[(&str, &str)] = &[$(($k, $v)),*];
                match $crate::common::TestApp::spawn_with(domain::testdb::Backend::Postgres, extra).await {
                    Some(app) => super::$body(app).await,
                    None => eprintln!("skipped: TEST_DATABASE_URL is not set"),
                }
            }
        }
    };
}

pub const SECRETS_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: DatabaseConnection,
    pub backend: Backend,
    pub services: domain::services::Services,
    /// The running app's state (its caches and limiters), for what HTTP cannot show.
    pub state: api::AppState,
    /// The settings it was started with (variable names and values).
    pub env: HashMap<String, String>,
    statements: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
    // Dropped last: the database outlives the server using it.
    _testdb: Option<TestDb>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub struct Tenant {
    pub id: String,
    pub key: String,
    pub webhook_token: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts the app with extra settings (environment-variable names and values).
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
        init_logs();
        let testdb = TestDb::create(backend).await?;
        let mut env: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), testdb.url.clone()),
            ("ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("RUN_WORKER".into(), "false".into()),
            ("SEED_DEMO".into(), "false".into()),
            ("DATABASE_MAX_CONNECTIONS".into(), "5".into()),
            ("SECRETS_KEY".into(), SECRETS_KEY.into()),
            // The fake providers listen on loopback, which the outbound guard refuses.
            ("PROVIDER_BASE_URL_ALLOWLIST".into(), "127.0.0.1".into()),
        ]);
        if let Some(redis) = domain::testdb::redis_url() {
            env.insert("REDIS_URL".into(), redis);
            // Tests share one Redis: each app (and its siblings) gets a channel of its own.
            env.insert(
                "EVENTS_CHANNEL".into(),
                format!("switchboard:test:{}", uuid::Uuid::new_v4().simple()),
            );
        }
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        Some(Self::start(env, backend, Some(testdb)).await)
    }

    /// Another API process on the same database (and Redis, if any): its own pool, event
    /// bus and hub, as a second replica would have.
    pub async fn sibling(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut env = self.env.clone();
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        Self::start(env, self.backend, None).await
    }

    async fn start(
        env: HashMap<String, String>,
        backend: Backend,
        testdb: Option<TestDb>,
    ) -> TestApp {
        let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings");
        let mut db = domain::db::connect(&settings.database)
            .await
            .expect("connect");
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        db.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        domain::db::migrate(&db).await.expect("migrate");
        let state = api::AppState::new(db.clone(), settings).expect("state");
        let services = state.services.clone();
        let app_state = state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = api::server::serve(state, listener, std::future::pending()).await;
        });
        TestApp {
            addr,
            client: reqwest::Client::new(),
            db,
            backend,
            services,
            state: app_state,
            env,
            statements,
            server,
            _testdb: testdb,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SQL statements executed so far on the app's pool.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::SeqCst)
    }

    /// The body of a GET (e.g. `/metrics`), whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POSTs a GraphQL request and returns the JSON body (whatever the status).
    pub async fn gql(&self, key: Option<&str>, query: &str, variables: Value) -> Value {
        serde_json::from_str(&self.gql_text(key, query, variables).await).unwrap()
    }

    /// Like `gql`, the body as sent (field order and bytes included).
    pub async fn gql_text(&self, key: Option<&str>, query: &str, variables: Value) -> String {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send().await.unwrap().text().await.unwrap()
    }

    /// Like `gql` but panics on any error and returns `data`.
    pub async fn ok(&self, key: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(key), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn create_tenant(&self, name: &str, region: &str) -> Tenant {
        let body = self
            .gql(
                Some(ADMIN_TOKEN),
                "mutation($n: String!, $r: String!) { createTenant(input: {name: $n, defaultRegion: $r}) { apiKey tenant { id webhookToken } } }",
                json!({ "n": name, "r": region }),
            )
            .await;
        let p = &body["data"]["createTenant"];
        assert!(p.is_object(), "createTenant failed: {body}");
        Tenant {
            id: p["tenant"]["id"].as_str().unwrap().to_owned(),
            key: p["apiKey"].as_str().unwrap().to_owned(),
            webhook_token: p["tenant"]["webhookToken"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn create_customer(&self, key: &str, phone: &str, name: &str) -> String {
        let data = self
            .ok(
                key,
                "mutation($p: String!, $n: String) { createCustomer(input: {phoneNumber: $p, name: $n}) { id } }",
                json!({ "p": phone, "n": name }),
            )
            .await;
        data["createCustomer"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_agent(&self, key: &str, name: &str) -> String {
        let data = self
            .ok(
                key,
                "mutation($n: String!) { createAgent(input: {name: $n, provider: SIMULATOR, businessName: \"Acme\"}) { id } }",
                json!({ "n": name }),
            )
            .await;
        data["createAgent"]["id"].as_str().unwrap().to_owned()
    }

    /// Calls are written by ingestion (a later capability); tests insert them directly.
    pub async fn insert_call(
        &self,
        tenant_id: &str,
        customer_id: Option<&str>,
        agent_id: Option<&str>,
    ) -> String {
        use sea_orm::{ActiveModelTrait, Set};
        let now = chrono::Utc::now();
        let id = uuid::Uuid::now_v7();
        let parse = |s: &str| uuid::Uuid::parse_str(s).unwrap();
        entity::call::ActiveModel {
            id: Set(id),
            tenant_id: Set(parse(tenant_id)),
            agent_id: Set(agent_id.map(parse)),
            customer_id: Set(customer_id.map(parse)),
            campaign_id: Set(None),
            campaign_item_id: Set(None),
            provider: Set(domain::types::Provider::Simulator),
            provider_execution_id: Set(Some(uuid::Uuid::new_v4().to_string())),
            placing_since: Set(None),
            provider_call_id: Set(None),
            direction: Set(domain::types::CallDirection::Outbound),
            status: Set(domain::types::CallStatus::Completed),
            from_number: Set(Some("+15550000000".into())),
            to_number: Set(Some("+15550000001".into())),
            started_at: Set(Some(now)),
            ended_at: Set(Some(now)),
            duration_seconds: Set(Some(42.0)),
            cost: Set(Some(1.5)),
            transcript: Set(Some("assistant: hello\nuser: hi".into())),
            summary: Set(Some("Said hello.".into())),
            recording_url: Set(None),
            extracted_data: Set(Some(json!({ "interested": true }))),
            hangup_reason: Set(None),
            raw_payload: Set(None),
            provider_agent_id: Set(None),
            status_rank: Set(9),
            idempotency_key: Set(None),
            error_message: Set(None),
            variables: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .unwrap();
        entity::call_event::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            tenant_id: Set(parse(tenant_id)),
            call_id: Set(id),
            status: Set(domain::types::CallStatus::Completed),
            source: Set(domain::types::EventSource::Simulator),
            at: Set(now),
            payload: Set(None),
        }
        .insert(&self.db)
        .await
        .unwrap();
        id.to_string()
    }
}

impl TestApp {
    /// POSTs a raw body to a webhook route; returns status and JSON body.
    pub async fn webhook(
        &self,
        provider: &str,
        token: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(&format!("/webhooks/{provider}/{token}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The tenant row, for tests that call `domain` directly.
    pub async fn tenant_model(&self, id: &str) -> entity::tenant::Model {
        use sea_orm::EntityTrait;
        entity::tenant::Entity::find_by_id(uuid::Uuid::parse_str(id).unwrap())
            .one(&self.db)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn create_agent_for(
        &self,
        key: &str,
        provider: &str,
        provider_agent_id: &str,
    ) -> String {
        let data = self
            .ok(
                key,
                "mutation($p: Provider!, $a: String) { createAgent(input: {name: \"Agent\", provider: $p, providerAgentId: $a, businessName: \"Acme Homes\"}) { id } }",
                json!({ "p": provider, "a": provider_agent_id }),
            )
            .await;
        data["createAgent"]["id"].as_str().unwrap().to_owned()
    }
}

/// Polls `check` until it returns `Some`, for up to `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// The `extensions.code` of the first error.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_test_writer()
            .try_init();
    }
}
