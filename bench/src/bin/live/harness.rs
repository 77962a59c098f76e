//! What every scenario shares: the API processes, tenants, Bolna report bodies and waiting
//! for the queue to drain.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench::{Proc, SECRETS_KEY, free_port, gql, wait_http};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

use crate::Config;

pub(crate) const ADMIN_TOKEN: &str = "bench-operator-token-0123456789";
pub(crate) const AGENT: &str = "bench-agent";
pub(crate) const STATUSES: [&str; 5] = [
    "initiated",
    "ringing",
    "in-progress",
    "call-disconnected",
    "completed",
];
pub(crate) const DB: &str = "sb_live";
pub(crate) const PGB_DB: &str = "sb_live_pgbench";

pub(crate) struct Api {
    pub(crate) proc: Proc,
    pub(crate) base: String,
    pub(crate) port: u16,
}

impl Api {
    pub(crate) fn pid(&self) -> u32 {
        self.proc.0.id()
    }
}

pub(crate) async fn spawn_api(
    cfg: &Config,
    client: &reqwest::Client,
    url: &str,
    worker: bool,
) -> anyhow::Result<Api> {
    let port = free_port()?;
    let proc = Proc(
        Command::new(&cfg.api_bin)
            .arg("serve")
            .env("DATABASE_URL", url)
            .env("REDIS_URL", &cfg.redis)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUN_WORKER", if worker { "true" } else { "false" })
            .env("SEED_DEMO", "false")
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SECRETS_KEY", SECRETS_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_http(client, &format!("{base}/readyz")).await?;
    Ok(Api { proc, base, port })
}

pub(crate) struct Tenant {
    pub(crate) key: String,
    pub(crate) token: String,
}

pub(crate) async fn create_tenant(
    client: &reqwest::Client,
    base: &str,
    name: &str,
) -> anyhow::Result<Tenant> {
    let data = gql(
        client,
        base,
        ADMIN_TOKEN,
        "mutation($n: String!) { createTenant(input: {name: $n, defaultRegion: \"IN\"}) { apiKey tenant { webhookToken } } }",
        json!({ "n": name }),
    )
    .await?;
    let t = Tenant {
        key: data["createTenant"]["apiKey"]
            .as_str()
            .context("apiKey")?
            .to_owned(),
        token: data["createTenant"]["tenant"]["webhookToken"]
            .as_str()
            .context("token")?
            .to_owned(),
    };
    gql(
        client,
        base,
        &t.key,
        "mutation($a: String!) { createAgent(input: {name: \"Bench\", provider: BOLNA, providerAgentId: $a, businessName: \"Bench Homes\"}) { id } }",
        json!({ "a": AGENT }),
    )
    .await?;
    Ok(t)
}

/// A Bolna execution body; `transcript` bytes of transcript (the ceiling writes ~2 KB).
pub(crate) fn report(exec: &str, status: &str, phone: &str, transcript: usize) -> String {
    json!({
        "id": exec, "agent_id": AGENT, "status": status,
        "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:01:00Z",
        "conversation_duration": 61.5, "total_cost": 5.5,
        "transcript": if transcript > 0 { Value::String("assistant: hello\nuser: yes\n".repeat(transcript / 26 + 1)) } else { Value::Null },
        "telephony_data": { "to_number": phone, "from_number": "+918045671234", "call_type": "outbound", "duration": "62" },
        "context_details": { "recipient_data": { "customer_name": "Bench Lead" } }
    })
    .to_string()
}

pub(crate) fn phone(n: usize) -> String {
    format!("+9198{:08}", n % 100_000_000)
}

pub(crate) async fn pending_ingest(db: &DatabaseConnection) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM jobs WHERE kind = 'ingest_report'",
        ))
        .await?
        .context("count")?;
    Ok(row.try_get("", "n")?)
}

/// Waits until every accepted report is applied; returns how long that took.
pub(crate) async fn drain(db: &DatabaseConnection, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while pending_ingest(db).await? > 0 {
        if started.elapsed() > limit {
            bail!("reports still pending after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

pub(crate) async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get("", "n")?)
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
