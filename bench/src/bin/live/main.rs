//! Live-calls benchmark: webhook ingestion against a pgbench upsert ceiling, a shuffled
//! replay, subscription fan-out across two API processes sharing Redis, saturation, and
//! memory per idle subscriber. Every rate is a ratio to a ceiling measured in the same run.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/live`
//! Environment: BENCH_PG (admin URL, default postgres://postgres@127.0.0.1:5432/test),
//! BENCH_REDIS (redis://127.0.0.1:6379), BENCH_SECONDS (5), BENCH_RUNS (3),
//! BENCH_TENANTS (100), BENCH_SUBSCRIBERS_PER_TENANT (10), BENCH_RATE (fan-out's report
//! rate: by default 80 % of the ingestion rate (a) measured in the same run, so the figure
//! means the same on a slow and a fast machine; 500 when (a) does not run),
//! BENCH_IDLE_SUBSCRIBERS (5000), BENCH_API_BIN (target/release/api), BENCH_ONLY (a,b,c,d,e).

mod fanout;
mod harness;
mod idle;
mod ingestion;
mod replay;

use anyhow::{Context, bail};
use bench::{calls_like_database, db_url, env_or, fresh_database, out, pgbench};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use harness::{Api, DB, PGB_DB, Tenant, create_tenant, spawn_api};

pub(crate) struct Config {
    pub(crate) pg_admin: String,
    pub(crate) redis: String,
    pub(crate) seconds: u64,
    pub(crate) runs: usize,
    pub(crate) tenants: usize,
    pub(crate) per_tenant: usize,
    /// BENCH_RATE, when set.
    pub(crate) rate: Option<u64>,
    pub(crate) idle: usize,
    pub(crate) api_bin: String,
    pub(crate) only: Option<String>,
}

impl Config {
    pub(crate) fn wants(&self, part: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|p| p.trim() == part))
    }
}

/// What the scenarios share: two API processes with workers on one database, the tenants,
/// and the pgbench ceiling's database and script.
pub(crate) struct Bench {
    pub(crate) cfg: Config,
    pub(crate) client: reqwest::Client,
    pub(crate) api1: Api,
    pub(crate) api2: Api,
    /// Both APIs' base URLs, for alternating between them.
    pub(crate) apis: Vec<String>,
    pub(crate) db: DatabaseConnection,
    pub(crate) tenants: Vec<Tenant>,
    pub(crate) url: String,
    pgb_url: String,
    script_path: String,
}

impl Bench {
    /// The ceiling: pgbench's one-row upsert with 4 clients, in transactions per second.
    pub(crate) fn ceiling(&self) -> anyhow::Result<f64> {
        let secs = self.cfg.seconds.to_string();
        pgbench(
            &self.pgb_url,
            &["-n", "-c4", "-j2", "-T", &secs, "-f", &self.script_path],
        )
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    if !std::path::Path::new(&cfg.api_bin).exists() {
        bail!(
            "{} not found: run `cargo build --release -p api -p bench` first",
            cfg.api_bin
        );
    }
    out(format!(
        "Switchboard live-calls benchmark: {} s x {} runs (median), {} tenants x {} subscribers",
        cfg.seconds, cfg.runs, cfg.tenants, cfg.per_tenant
    ));
    let admin = Database::connect(&cfg.pg_admin)
        .await
        .context("connecting to PostgreSQL (BENCH_PG)")?;
    let pgb_url = calls_like_database(&admin, &cfg.pg_admin, PGB_DB).await?;
    let script = std::env::temp_dir().join(format!("sb-upsert-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set n random(1, 10000000)\n\
         INSERT INTO calls_like VALUES ('00000000-0000-0000-0000-000000000001', 'BOLNA', 'exec-' || :n, 'COMPLETED', 9, repeat('assistant: hello user: yes ', 75), now()) \
         ON CONFLICT (tenant_id, provider, execution_id) DO UPDATE SET status = excluded.status, status_rank = excluded.status_rank, transcript = excluded.transcript, updated_at = excluded.updated_at;\n",
    )?;
    let script_path = script.to_string_lossy().into_owned();
    fresh_database(&admin, DB).await?;
    let url = db_url(&cfg.pg_admin, DB);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let api1 = spawn_api(&cfg, &client, &url, true).await?;
    let api2 = spawn_api(&cfg, &client, &url, true).await?;
    let db = Database::connect(&url).await?;
    let apis = vec![api1.base.clone(), api2.base.clone()];
    let mut tenants = Vec::new();
    for t in 0..cfg.tenants.max(1) {
        tenants.push(create_tenant(&client, &api1.base, &format!("Bench {t}")).await?);
    }
    out(format!("{} tenants ready", tenants.len()));
    let b = Bench {
        cfg,
        client,
        api1,
        api2,
        apis,
        db,
        tenants,
        url,
        pgb_url,
        script_path,
    };
    let mut summary: Vec<String> = Vec::new();
    let mut ingestion_rate = None;
    if b.cfg.wants("a") {
        let (lines, acked_per_s) = ingestion::run(&b).await?;
        summary.extend(lines);
        ingestion_rate = Some(acked_per_s);
    }
    if b.cfg.wants("b") {
        summary.extend(replay::run(&b).await?);
    }
    let (rate, basis) = match (b.cfg.rate, ingestion_rate) {
        (Some(r), _) => (r, "BENCH_RATE".to_owned()),
        (None, Some(acked)) => (
            ((acked * 0.8).round() as u64).max(1),
            format!("80 % of (a)'s {acked:.0} reports/s"),
        ),
        (None, None) => (500, "default".to_owned()),
    };
    summary.extend(fanout::run(&b, rate, &basis).await?);
    if b.cfg.wants("e") {
        summary.extend(idle::run(&b).await?);
    }

    out("\nfigure                                          measured     goal       verdict");
    for line in summary {
        out(line);
    }
    drop(b);
    let _ = std::fs::remove_file(&script);
    if std::env::var("BENCH_KEEP_DB").is_err() {
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
            .await?;
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {PGB_DB} WITH (FORCE)"))
            .await?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cfg = Config {
        pg_admin: std::env::var("BENCH_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        redis: std::env::var("BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        seconds: env_or("BENCH_SECONDS", 5),
        runs: env_or("BENCH_RUNS", 3),
        tenants: env_or("BENCH_TENANTS", 100),
        per_tenant: env_or("BENCH_SUBSCRIBERS_PER_TENANT", 10),
        rate: std::env::var("BENCH_RATE")
            .ok()
            .and_then(|v| v.parse().ok()),
        idle: env_or("BENCH_IDLE_SUBSCRIBERS", 5000),
        api_bin: std::env::var("BENCH_API_BIN")
            .unwrap_or_else(|_| format!("{root}/target/release/api")),
        only: std::env::var("BENCH_ONLY").ok(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(cfg))
}
