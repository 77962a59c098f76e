//! Campaign benchmark, against the release API with its embedded worker on PostgreSQL:
//!
//! 1. Import: a BENCH_ROWS-row (100,000) CSV through `POST /campaigns/import` (customers +
//!    queue items), its rate set against a `COPY` of the same rows into the same two
//!    tables (psql `\copy`, for another tenant, in the same database) measured in the same
//!    run; the API process's peak RSS during the import.
//! 2. Dispatch: the imported campaign started with a campaign cap and a system cap of
//!    BENCH_CAP (500) and the simulator: live calls counted from the database every 20 ms;
//!    the maximum seen (must equal the cap, never exceed it), how long the dispatcher took
//!    to reach the cap, and dials/s and mean concurrency over BENCH_SECONDS at the cap.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/campaigns`
//! Environment: BENCH_PG, BENCH_API_BIN, BENCH_ROWS (100000), BENCH_CAP (500),
//! BENCH_SECONDS (15), BENCH_SIM_SPEED (10: a simulated call outlasts the ramp, then ends
//! within the measured window so slots turn over),
//! BENCH_CALL_JOBS (16, the worker's WORKER_CONCURRENCY_CALLS).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench::{Proc, SECRETS_KEY, db_url, env_or, free_port, fresh_database, gql, out, rss_kb};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789";
const DB: &str = "sb_campaigns";

/// Row `i`'s number: distinct, valid New York numbers.
fn phone(i: usize) -> String {
    format!("+1212{}{:04}", 300 + i / 10_000, i % 10_000)
}

fn csv(rows: usize) -> String {
    let mut s = String::with_capacity(rows * 64);
    s.push_str("phone,first_name,last_name,email,plan\n");
    for i in 0..rows {
        s.push_str(&format!(
            "{},Lead,Number {i},lead{i}@example.com,gold\n",
            phone(i)
        ));
    }
    s
}

/// Peak resident set of a process so far (VmHWM).
fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmHWM not found")
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index(0)?)
}

/// The ceiling: the same rows (as the import would write them, for another tenant and a
/// copy of the campaign) loaded with `\copy` into the same tables; seconds.
async fn copy_ceiling(
    db: &DatabaseConnection,
    url: &str,
    rows: usize,
    campaign_id: &str,
) -> anyhow::Result<f64> {
    let tenant = uuid::Uuid::now_v7();
    let campaign = uuid::Uuid::now_v7();
    db.execute_unprepared(&format!(
        "INSERT INTO tenants (id, name, default_region, timezone, concurrency_limit, webhook_token, created_at, updated_at) \
         SELECT '{tenant}', 'COPY ceiling', default_region, timezone, concurrency_limit, \
         'copy-' || md5(random()::text), now(), now() FROM tenants LIMIT 1"
    ))
    .await
    .context("the ceiling's tenant")?;
    db.execute_unprepared(&format!(
        "INSERT INTO campaigns (id, tenant_id, agent_id, name, status, concurrency_limit, max_attempts, retry_delays, \
         retry_on, calling_window, timezone, paused_reason, created_at, updated_at, started_at, finished_at) SELECT '{campaign}', '{tenant}', NULL, name, 'DRAFT', concurrency_limit, max_attempts, \
         retry_delays, retry_on, calling_window, timezone, paused_reason, now(), now(), NULL, NULL \
         FROM campaigns WHERE id = '{campaign_id}'"
    ))
    .await
    .context("the ceiling's campaign")?;
    let dir = std::env::temp_dir().join(format!("sb-copy-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let customers_file = dir.join("customers.csv");
    let items_file = dir.join("items.csv");
    let now = chrono::Utc::now().to_rfc3339();
    let mut customers = String::with_capacity(rows * 160);
    let mut items = String::with_capacity(rows * 200);
    for i in 0..rows {
        let id = uuid::Uuid::now_v7();
        customers.push_str(&format!(
            "{id},{tenant},{},Lead Number {i},lead{i}@example.com,NEW,[],CAMPAIGN,{now},{now}\n",
            phone(i)
        ));
        items.push_str(&format!(
            "{},{tenant},{campaign},{id},{},{},\"{{\"\"plan\"\": \"\"gold\"\"}}\",,PENDING,0,{now},{now},{now}\n",
            uuid::Uuid::now_v7(),
            phone(i),
            i + 2
        ));
    }
    std::fs::write(&customers_file, customers)?;
    std::fs::write(&items_file, items)?;
    let started = Instant::now();
    for (table, cols, file) in [
        (
            "customers",
            "id, tenant_id, phone_number, name, email, status, tags, source, created_at, updated_at",
            &customers_file,
        ),
        (
            "campaign_items",
            "id, tenant_id, campaign_id, customer_id, phone_number, line, variables, timezone, status, attempts, next_attempt_at, created_at, updated_at",
            &items_file,
        ),
    ] {
        let status = Command::new("psql")
            .args([
                url,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                &format!(
                    "\\copy {table} ({cols}) FROM '{}' WITH (FORMAT csv)",
                    file.display()
                ),
            ])
            .status()
            .context("running psql")?;
        if !status.success() {
            bail!("psql \\copy into {table} failed");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(secs)
}

async fn run() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let pg_admin = std::env::var("BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let api_bin =
        std::env::var("BENCH_API_BIN").unwrap_or_else(|_| format!("{root}/target/release/api"));
    let rows: usize = env_or("BENCH_ROWS", 100_000);
    let cap: i64 = env_or("BENCH_CAP", 500);
    let seconds: u64 = env_or("BENCH_SECONDS", 15);
    let speed: f64 = env_or("BENCH_SIM_SPEED", 10.0);
    if !std::path::Path::new(&api_bin).exists() {
        bail!("{api_bin} not found: run `cargo build --release -p api -p bench` first");
    }
    out(format!(
        "Switchboard campaign benchmark: {rows}-row import, dispatch at cap {cap}"
    ));
    let admin = Database::connect(&pg_admin).await?;
    fresh_database(&admin, DB).await?;
    let url = db_url(&pg_admin, DB);
    let client = reqwest::Client::new();
    let port = free_port()?;
    let api = Proc(
        Command::new(&api_bin)
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env_remove("REDIS_URL")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUN_WORKER", "true")
            .env("WORKER_POLL_MS", "50")
            .env(
                "WORKER_CONCURRENCY_CALLS",
                env_or("BENCH_CALL_JOBS", 16).to_string(),
            )
            .env(
                "DATABASE_MAX_CONNECTIONS",
                env_or("BENCH_POOL", 40).to_string(),
            )
            .env("SEED_DEMO", "false")
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SECRETS_KEY", SECRETS_KEY)
            .env("SIMULATOR_SPEED", speed.to_string())
            .env("SYSTEM_CONCURRENT_CALLS_LIMIT", cap.to_string())
            .env(
                "RUST_LOG",
                std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(match std::env::var("BENCH_LOG_FILE") {
                Ok(path) => Stdio::from(std::fs::File::create(path)?),
                Err(_) => Stdio::null(),
            })
            .spawn()?,
    );
    let pid = api.0.id();
    let base = format!("http://127.0.0.1:{port}");
    bench::wait_http(&client, &format!("{base}/readyz")).await?;
    let data = gql(
        &client,
        &base,
        ADMIN_TOKEN,
        "mutation($l: Int!) { createTenant(input: {name: \"Campaign bench\", defaultRegion: \"US\", timezone: \"America/New_York\", concurrencyLimit: $l}) { apiKey } }",
        json!({ "l": cap.max(1) }),
    )
    .await?;
    let key = data["createTenant"]["apiKey"]
        .as_str()
        .context("key")?
        .to_owned();
    let data = gql(
        &client,
        &base,
        &key,
        "mutation { createAgent(input: {name: \"Bench\", provider: SIMULATOR, businessName: \"Bench Homes\"}) { id } }",
        json!({}),
    )
    .await?;
    let agent = data["createAgent"]["id"]
        .as_str()
        .context("agent")?
        .to_owned();

    // 1. Import.
    let body = csv(rows);
    let bytes = body.len();
    let rss_before = rss_kb(pid)?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let cpu_before = bench::cpu_seconds(pid)?;
    let started = Instant::now();
    let res = client
        .post(format!(
            "{base}/campaigns/import?name=Bench&agentId={agent}&concurrencyLimit={}",
            cap.clamp(1, 1000)
        ))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let report: Value = res.json().await?;
    let import_secs = started.elapsed().as_secs_f64();
    let import_cpu = bench::cpu_seconds(pid)? - cpu_before;
    stop.store(true, Ordering::Relaxed);
    let sampled_peak = sampler.await?;
    let hwm = peak_rss_kb(pid)?;
    if !status.is_success() {
        bail!("import refused: {status} {report}");
    }
    let accepted = report["accepted"].as_u64().unwrap_or(0);
    let campaign_id = report["campaign"]["id"]
        .as_str()
        .context("campaign id")?
        .to_owned();
    let import_rate = rows as f64 / import_secs;
    out(format!(
        "import:   {rows} rows ({:.1} MB) in {import_secs:.2} s = {import_rate:.0} rows/s, accepted {accepted}, \
         API CPU {import_cpu:.2} s, RSS {:.0} MB before, peak {:.0} MB (sampled {:.0} MB)",
        bytes as f64 / 1e6,
        rss_before as f64 / 1024.0,
        hwm as f64 / 1024.0,
        sampled_peak as f64 / 1024.0
    ));
    let db = Database::connect(&url).await?;
    let copy_secs = copy_ceiling(&db, &url, rows, &campaign_id).await?;
    let copy_rate = rows as f64 / copy_secs;
    out(format!(
        "ceiling:  \\copy of the same {rows} customers and queue items: {copy_secs:.2} s = {copy_rate:.0} rows/s"
    ));

    // 2. Dispatch.
    let live_sql = format!(
        "SELECT COUNT(*) FROM calls WHERE campaign_id = '{campaign_id}' AND status_rank < {} \
         AND (placing_since IS NOT NULL OR provider_execution_id IS NOT NULL)",
        domain::types::CallStatus::TERMINAL_RANK
    );
    let dialled_sql = format!(
        "SELECT COUNT(*) FROM calls WHERE campaign_id = '{campaign_id}' AND (placing_since IS NOT NULL OR provider_execution_id IS NOT NULL)"
    );
    gql(
        &client,
        &base,
        &key,
        "mutation($id: ID!) { startCampaign(id: $id) { id } }",
        json!({ "id": campaign_id }),
    )
    .await?;
    let created_sql = format!("SELECT COUNT(*) FROM calls WHERE campaign_id = '{campaign_id}'");
    let started = Instant::now();
    let mut ramp = Vec::new();
    let mut next_mark = 0.25;
    let mut max_live = 0;
    let mut reached: Option<f64> = None;
    let mut steady: Vec<i64> = Vec::new();
    let mut dialled_at_cap: Option<(Instant, i64)> = None;
    let end_at = loop {
        let live = scalar(&db, &live_sql).await?;
        max_live = max_live.max(live);
        let t = started.elapsed().as_secs_f64();
        if reached.is_none() && t >= next_mark && t < 4.0 {
            ramp.push(format!(
                "{t:.2}s: {live} live/{} created",
                scalar(&db, &created_sql).await?
            ));
            next_mark += 0.25;
        }
        if reached.is_none() && live >= cap {
            reached = Some(started.elapsed().as_secs_f64());
            dialled_at_cap = Some((Instant::now(), scalar(&db, &dialled_sql).await?));
        }
        if let Some((at, _)) = dialled_at_cap {
            steady.push(live);
            if at.elapsed() >= Duration::from_secs(seconds) {
                break Instant::now();
            }
        } else if started.elapsed() > Duration::from_secs(30) {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dial_rate = match dialled_at_cap {
        Some((at, before)) => {
            let after = scalar(&db, &dialled_sql).await?;
            (after - before) as f64 / (end_at - at).as_secs_f64()
        }
        None => 0.0,
    };
    let mean = if steady.is_empty() {
        0.0
    } else {
        steady.iter().sum::<i64>() as f64 / steady.len() as f64
    };
    gql(
        &client,
        &base,
        &key,
        "mutation($id: ID!) { cancelCampaign(id: $id) { id } }",
        json!({ "id": campaign_id }),
    )
    .await?;
    out(format!("ramp:     {}", ramp.join(", ")));
    out(format!(
        "dispatch: max live {max_live} (cap {cap}), cap reached after {}, at the cap for {seconds} s: \
         {dial_rate:.0} dials/s, mean live {mean:.0}",
        reached.map_or("never".into(), |s| format!("{s:.2} s"))
    ));

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    out("\nfigure                                          measured     goal       verdict");
    let r = import_rate / copy_rate;
    out(format!(
        "import rows/s / \\copy rows/s                   {r:>8.3}x   >= 0.5x    {}",
        verdict(r >= 0.5)
    ));
    let peak_mb = hwm as f64 / 1024.0;
    out(format!(
        "peak RSS of the API process during import     {peak_mb:>7.0}MB   < 200 MB   {}",
        verdict(peak_mb < 200.0)
    ));
    out(format!(
        "all rows accepted                              {:>8}              {}",
        accepted == rows as u64,
        verdict(accepted == rows as u64)
    ));
    out(format!(
        "max live calls == cap (never above)            {max_live:>8}   == {cap:<6}  {}",
        verdict(max_live == cap)
    ));
    let secs = reached.unwrap_or(f64::INFINITY);
    out(format!(
        "time to reach the cap                          {secs:>7.2}s   <= 2 s     {}",
        verdict(secs <= 2.0)
    ));
    let share = mean / cap as f64;
    out(format!(
        "mean live / cap while at the cap (no goal)     {share:>8.3}x"
    ));

    drop(api);
    drop(db);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}
