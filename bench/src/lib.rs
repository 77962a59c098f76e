//! Shared pieces of the benchmark binaries: child processes, load loops, percentiles,
//! PostgreSQL scratch databases and Prometheus scraping.

use std::io::Write;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseConnection};

/// The secrets key every benchmarked server runs with (PostgreSQL requires one).
pub const SECRETS_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Kills the child process when dropped, so a failed run leaves no server behind.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the child when dropped (a profiler that must finish writing).
pub struct Waiter(pub Child);
impl Drop for Waiter {
    fn drop(&mut self) {
        let _ = self.0.wait();
    }
}

pub fn out(line: impl AsRef<str>) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", line.as_ref());
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn wait_http(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not come up")
}

pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS not found")
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at its closing paren.
    let rest = stat.rsplit_once(')').map(|x| x.1).context("bad stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 (11 and 12 after the paren), in clock ticks.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// CPU seconds (user + system) each running `postgres` process has used so far, by pid.
pub fn postgres_cpu_seconds() -> std::collections::HashMap<u32, f64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| Some((pid, cpu_seconds(pid).ok()?)))
        .collect()
}

/// CPU seconds of one process and of PostgreSQL over a stretch of work, per item of work.
/// PostgreSQL's share counts the processes alive at the end (a backend that started
/// during the stretch from zero); one that exited during it (pgbench's, before an API
/// load) is left out rather than counted as negative time.
pub struct CpuMeter {
    process: f64,
    postgres: std::collections::HashMap<u32, f64>,
    pid: u32,
}

impl CpuMeter {
    pub fn start(pid: u32) -> Self {
        CpuMeter {
            process: cpu_seconds(pid).unwrap_or(0.0),
            postgres: postgres_cpu_seconds(),
            pid,
        }
    }

    /// Microseconds of CPU per item since `start`: (the process, PostgreSQL).
    pub fn per_item_us(&self, items: f64) -> (f64, f64) {
        if items <= 0.0 {
            return (0.0, 0.0);
        }
        let process = cpu_seconds(self.pid).unwrap_or(self.process) - self.process;
        let postgres: f64 = postgres_cpu_seconds()
            .into_iter()
            .map(|(pid, now)| now - self.postgres.get(&pid).copied().unwrap_or(0.0))
            .sum();
        (process * 1e6 / items, postgres * 1e6 / items)
    }
}

pub fn db_url(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{name}")
}

pub async fn fresh_database(admin: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok(())
}

#[derive(Clone, Copy, Debug)]
pub struct Figures {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    /// Requests answered (successfully or not) in the run.
    pub requests: u64,
}

/// `connections` workers send requests back to back for `seconds`; each request is built by `make`.
pub async fn load<F>(connections: usize, seconds: u64, make: F) -> Figures
where
    F: Fn(usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..connections {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut i = w;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match make(i).send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) if !b.windows(9).any(|x| x == b"\"errors\"") => {}
                        _ => errors += 1,
                    },
                    _ => errors += 1,
                }
                lat.push(t0.elapsed());
                i += connections;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    Figures {
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        requests: all.len() as u64,
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn summarize(name: &str, runs: &[Figures]) -> Figures {
    let f = Figures {
        rps: median(runs.iter().map(|f| f.rps).collect()),
        p50_ms: median(runs.iter().map(|f| f.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|f| f.p99_ms).collect()),
        errors: runs.iter().map(|f| f.errors).sum(),
        requests: runs.iter().map(|f| f.requests).sum(),
    };
    let each: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
    out(format!(
        "{name:<28} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  (runs: {})",
        f.rps,
        f.p50_ms,
        f.p99_ms,
        f.errors,
        each.join(", ")
    ));
    f
}

pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum())
}

/// Runs pgbench with `args` against `url` and returns its tps.
pub fn pgbench(url: &str, args: &[&str]) -> anyhow::Result<f64> {
    let output = std::process::Command::new("pgbench")
        .args(args)
        .arg(url)
        .output()
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "no tps in pgbench output: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// The `p` quantile (0..1) of sorted milliseconds.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// POSTs a GraphQL request; errors in the answer are an error.
pub async fn gql(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    query: &str,
    vars: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let body: serde_json::Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .json(&serde_json::json!({ "query": query, "variables": vars }))
        .send()
        .await?
        .json()
        .await?;
    if body.get("errors").is_some() {
        bail!("GraphQL errors: {body}");
    }
    Ok(body["data"].clone())
}

/// Creates a tenant through the operator's `createTenant` (`admin_token`) with `name`, a
/// default region and a time zone; returns its ADMIN key and its id.
pub async fn create_tenant(
    client: &reqwest::Client,
    base: &str,
    admin_token: &str,
    name: &str,
    region: &str,
    timezone: &str,
) -> anyhow::Result<(String, String)> {
    let data = gql(
        client,
        base,
        admin_token,
        "mutation($n: String!, $r: String!, $z: String!) { createTenant(input: {name: $n, defaultRegion: $r, timezone: $z}) { apiKey tenant { id } } }",
        serde_json::json!({ "n": name, "r": region, "z": timezone }),
    )
    .await?;
    let field = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    Ok((
        field(&data["createTenant"]["apiKey"]).context("no apiKey in createTenant")?,
        field(&data["createTenant"]["tenant"]["id"]).context("no tenant id in createTenant")?,
    ))
}

/// A fresh database `name` holding the calls-like table the pgbench ceilings write to;
/// returns its URL.
pub async fn calls_like_database(
    admin: &DatabaseConnection,
    admin_url: &str,
    name: &str,
) -> anyhow::Result<String> {
    fresh_database(admin, name).await?;
    let url = db_url(admin_url, name);
    let db = sea_orm::Database::connect(&url).await?;
    db.execute_unprepared(
        "CREATE TABLE calls_like (tenant_id uuid NOT NULL, provider text NOT NULL, execution_id text NOT NULL, \
         status text NOT NULL, status_rank int NOT NULL, transcript text, updated_at timestamptz NOT NULL, \
         PRIMARY KEY (tenant_id, provider, execution_id))",
    )
    .await?;
    Ok(url)
}

/// The PostgreSQL admin URL (`BENCH_PG`) and the release API binary (`BENCH_API_BIN`),
/// which must have been built.
pub fn targets() -> anyhow::Result<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let pg_admin = std::env::var("BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let api_bin =
        std::env::var("BENCH_API_BIN").unwrap_or_else(|_| format!("{root}/target/release/api"));
    if !std::path::Path::new(&api_bin).exists() {
        bail!("{api_bin} not found: run `cargo build --release -p api -p bench` first");
    }
    Ok((pg_admin, api_bin))
}

/// Starts `api serve` on `database_url` and a free port (no Redis, no demo, the bench's
/// operator token and secrets key, `env` on top) and waits until it is ready; returns the
/// process and its base URL.
pub async fn start_api(
    api_bin: &str,
    database_url: &str,
    admin_token: &str,
    env: &[(&str, String)],
) -> anyhow::Result<(Proc, String)> {
    let port = free_port()?;
    let mut cmd = std::process::Command::new(api_bin);
    cmd.arg("serve")
        .env("DATABASE_URL", database_url)
        .env_remove("REDIS_URL")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("SEED_DEMO", "false")
        .env("ADMIN_TOKEN", admin_token)
        .env("SECRETS_KEY", SECRETS_KEY)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let api = Proc(cmd.spawn().context("starting the API")?);
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&reqwest::Client::new(), &format!("{base}/readyz")).await?;
    Ok((api, base))
}
