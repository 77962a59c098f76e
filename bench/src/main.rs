//! Load benchmark for the foundation (issue: foundation). Prints every figure as a ratio to a
//! ceiling measured in the same run, because these shared 2-core machines swing by 2x.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/bench`
//! Environment: BENCH_PG (admin URL, default postgres://postgres@127.0.0.1:5432/test),
//! BENCH_SECONDS (5), BENCH_RUNS (3), BENCH_CONNECTIONS (64), BENCH_TENANTS (10),
//! BENCH_CUSTOMERS (100000), BENCH_CALLS_PER_CUSTOMER (5), BENCH_API_BIN (target/release/api).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Config {
    pg_admin: String,
    seconds: u64,
    runs: usize,
    connections: usize,
    tenants: usize,
    customers: usize,
    calls_per_customer: usize,
    api_bin: String,
}

/// Kills the child process when dropped, so a failed run leaves no server behind.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the child when dropped (a profiler that must finish writing).
struct Waiter(Child);
impl Drop for Waiter {
    fn drop(&mut self) {
        let _ = self.0.wait();
    }
}

fn out(line: impl AsRef<str>) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", line.as_ref());
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some("hello") {
        let addr = args.get(2).context("hello ADDR")?.clone();
        return rt.block_on(hello_server(addr));
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let cfg = Config {
        pg_admin: std::env::var("BENCH_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
        seconds: env_or("BENCH_SECONDS", 5),
        runs: env_or("BENCH_RUNS", 3),
        connections: env_or("BENCH_CONNECTIONS", 64),
        tenants: env_or("BENCH_TENANTS", 10),
        customers: env_or("BENCH_CUSTOMERS", 100_000),
        calls_per_customer: env_or("BENCH_CALLS_PER_CUSTOMER", 5),
        api_bin: std::env::var("BENCH_API_BIN")
            .unwrap_or_else(|_| format!("{root}/target/release/api")),
    };
    rt.block_on(run(cfg))
}

/// The ceiling: the smallest useful axum server.
async fn hello_server(addr: String) -> anyhow::Result<()> {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_http(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
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

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS not found")
}

fn db_url(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    format!("{base}/{name}")
}

async fn fresh_database(admin: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok(())
}

struct Seeded {
    keys: Vec<String>,
    /// (customer id, index into keys)
    customers: Vec<(String, usize)>,
}

async fn seed(cfg: &Config, url: &str) -> anyhow::Result<Seeded> {
    let settings = domain::settings::DatabaseSettings {
        url: domain::settings::Secret::new(url),
        max_connections: 4,
    };
    let db = domain::db::connect(&settings).await?;
    domain::db::migrate(&db).await?;
    let per_tenant = cfg.customers / cfg.tenants;
    let mut keys = Vec::new();
    for t in 0..cfg.tenants {
        let (tenant, key) = domain::tenancy::create_tenant(
            &db,
            domain::tenancy::NewTenant {
                name: format!("Bench {t}"),
                default_region: "US".into(),
                timezone: "UTC".into(),
                concurrency_limit: 10,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        keys.push(key.key);
        let tid = tenant.id;
        let agent = uuid::Uuid::now_v7();
        db.execute_unprepared(&format!(
            "INSERT INTO agents (id, tenant_id, name, provider, provider_agent_id, business_name, created_at, updated_at) \
             VALUES ('{agent}', '{tid}', 'Agent {t}', 'SIMULATOR', 'sim-{agent}', 'Bench Co', now(), now())"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO customers (id, tenant_id, phone_number, name, email, status, tags, lead_score, segment, notes, source, last_contacted_at, created_at, updated_at) \
             SELECT gen_random_uuid(), '{tid}', '+1650' || lpad(({t} * {per_tenant} + g)::text, 7, '0'), 'Customer ' || g, NULL, \
                    (ARRAY['NEW','CONTACTED','INTERESTED','CALLBACK'])[1 + g % 4], '[\"bench\"]'::jsonb, (g % 100)::float8, NULL, NULL, 'BENCH', now(), now(), now() \
             FROM generate_series(1, {per_tenant}) g"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO calls (id, tenant_id, agent_id, customer_id, campaign_id, provider, provider_execution_id, provider_call_id, direction, status, \
                                from_number, to_number, started_at, ended_at, duration_seconds, cost, transcript, summary, recording_url, extracted_data, \
                                hangup_reason, raw_payload, created_at, updated_at) \
             SELECT gen_random_uuid(), c.tenant_id, '{agent}', c.id, NULL, 'SIMULATOR', gen_random_uuid()::text, NULL, 'OUTBOUND', \
                    (ARRAY['COMPLETED','BUSY','NO_ANSWER','COMPLETED','COMPLETED'])[n], '+15550000000', c.phone_number, now(), now(), 60, 1.5, \
                    'assistant: Hello, this is Bench Co.\nuser: Hi, tell me more.', 'A short call.', NULL, '{{\"interested\": true}}'::jsonb, NULL, NULL, \
                    now() - (n || ' minutes')::interval, now() \
             FROM customers c CROSS JOIN generate_series(1, {calls}) n WHERE c.tenant_id = '{tid}'",
            calls = cfg.calls_per_customer
        ))
        .await?;
    }
    db.execute_unprepared("ANALYZE").await?;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT c.id::text AS id, t.name AS tenant FROM customers c JOIN tenants t ON t.id = c.tenant_id ORDER BY random() LIMIT 2000",
        ))
        .await?;
    let mut customers = Vec::new();
    for r in rows {
        let id: String = r.try_get("", "id")?;
        let tenant: String = r.try_get("", "tenant")?;
        let idx: usize = tenant.trim_start_matches("Bench ").parse()?;
        customers.push((id, idx));
    }
    db.close().await?;
    Ok(Seeded { keys, customers })
}

#[derive(Clone, Copy, Debug)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `connections` workers send requests back to back for `seconds`; each request is built by `make`.
async fn load<F>(connections: usize, seconds: u64, make: F) -> Figures
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
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn summarize(name: &str, runs: &[Figures]) -> Figures {
    let f = Figures {
        rps: median(runs.iter().map(|f| f.rps).collect()),
        p50_ms: median(runs.iter().map(|f| f.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|f| f.p99_ms).collect()),
        errors: runs.iter().map(|f| f.errors).sum(),
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

fn pgbench_tps(url: &str, seconds: u64) -> anyhow::Result<f64> {
    let output = Command::new("pgbench")
        .args(["-S", "-c2", "-j2", "-T", &seconds.to_string(), "-n", url])
        .output()
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench output: {text}"))
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
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

const CUSTOMERS_PAGE: &str = "query($n: Int!) { customers(first: $n) { edges { node { id phoneNumber calls(first: 5) { edges { node { id status } } } } } } }";

async fn run(cfg: Config) -> anyhow::Result<()> {
    if !std::path::Path::new(&cfg.api_bin).exists() {
        bail!(
            "{} not found: run `cargo build --release -p api -p bench` first",
            cfg.api_bin
        );
    }
    out(format!(
        "Switchboard foundation benchmark: {} tenants, {} customers, {} calls, {} connections, {} s x {} runs (median)",
        cfg.tenants,
        cfg.customers,
        cfg.customers * cfg.calls_per_customer,
        cfg.connections,
        cfg.seconds,
        cfg.runs
    ));
    let admin = Database::connect(&cfg.pg_admin)
        .await
        .context("connecting to PostgreSQL (BENCH_PG)")?;

    // pgbench ceiling in its own database.
    fresh_database(&admin, "sb_bench_pgbench").await?;
    let pgb_url = db_url(&cfg.pg_admin, "sb_bench_pgbench");
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", "10", &pgb_url])
        .output()?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }

    fresh_database(&admin, "sb_bench").await?;
    let url = db_url(&cfg.pg_admin, "sb_bench");
    let t0 = Instant::now();
    let seeded = seed(&cfg, &url).await?;
    out(format!("seeded in {:.1} s", t0.elapsed().as_secs_f64()));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.connections * 2)
        .build()?;

    let hello_port = free_port()?;
    let _hello = Proc(
        Command::new(std::env::current_exe()?)
            .args(["hello", &format!("127.0.0.1:{hello_port}")])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let hello_url = format!("http://127.0.0.1:{hello_port}/");
    wait_http(&client, &hello_url).await?;

    let api_port = free_port()?;
    let api = Proc(
        Command::new(&cfg.api_bin)
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("BIND_ADDR", format!("127.0.0.1:{api_port}"))
            .env("RUN_WORKER", "false")
            .env("SEED_DEMO", "false")
            .env("RUST_LOG", "warn")
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{api_port}");
    wait_http(&client, &format!("{base}/readyz")).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kb(api.0.id())?;

    // Statements per request for the nested page, at two page sizes.
    let key0 = seeded.keys[0].clone();
    let mut per_request = Vec::new();
    for n in [10, 50] {
        let body = serde_json::json!({ "query": CUSTOMERS_PAGE, "variables": { "n": n } });
        let post = || {
            client
                .post(format!("{base}/graphql"))
                .bearer_auth(&key0)
                .json(&body)
                .send()
        };
        post().await?; // warm the key cache
        let before = metric(&client, &base, "db_statements_total").await?;
        for _ in 0..20 {
            post().await?;
        }
        let after = metric(&client, &base, "db_statements_total").await?;
        per_request.push((n, (after - before) / 20.0));
    }

    // BENCH_PERF=1: sample the server's CPU with `perf record` during the first run of each load.
    let perf = std::env::var("BENCH_PERF").is_ok();
    let system_wide = std::env::var("BENCH_PERF").is_ok_and(|v| v == "all");
    let api_pid = api.0.id();
    let profile = |name: &str, run: usize| -> Option<Waiter> {
        (perf && run == 0)
            .then(|| {
                Command::new("perf")
                    .args([
                        "record",
                        "-F",
                        "499",
                        "-o",
                        &format!("/tmp/api-{name}.perf"),
                    ])
                    // BENCH_PERF=all samples every process (server, PostgreSQL, load generator).
                    .args(if system_wide {
                        vec!["-a".to_owned()]
                    } else {
                        vec!["-p".to_owned(), api_pid.to_string()]
                    })
                    .args(["--", "sleep", &cfg.seconds.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
                    .map(Waiter)
            })
            .flatten()
    };
    let mut hello = Vec::new();
    let mut pg = Vec::new();
    let mut me = Vec::new();
    let mut one = Vec::new();
    let mut page = Vec::new();
    for run in 0..cfg.runs {
        out(format!("run {}/{}", run + 1, cfg.runs));
        let c = client.clone();
        let u = hello_url.clone();
        hello.push(load(cfg.connections, cfg.seconds, move |_| c.get(&u)).await);
        pg.push(pgbench_tps(&pgb_url, cfg.seconds)?);

        let _p = profile("me", run);
        let (c, g, keys) = (
            client.clone(),
            format!("{base}/graphql"),
            seeded.keys.clone(),
        );
        me.push(
            load(cfg.connections, cfg.seconds, move |i| {
                c.post(&g)
                    .bearer_auth(&keys[i % keys.len()])
                    .json(&serde_json::json!({ "query": "{ me { id } }" }))
            })
            .await,
        );

        let _p = profile("customer", run);
        let (c, g, keys, ids) = (
            client.clone(),
            format!("{base}/graphql"),
            seeded.keys.clone(),
            seeded.customers.clone(),
        );
        one.push(
            load(cfg.connections, cfg.seconds, move |i| {
                let (id, k) = &ids[i % ids.len()];
                c.post(&g).bearer_auth(&keys[*k]).json(&serde_json::json!({
                    "query": "query($id: ID!) { customer(id: $id) { id phoneNumber name status } }",
                    "variables": { "id": id }
                }))
            })
            .await,
        );

        let _p = profile("page", run);
        let (c, g, keys) = (
            client.clone(),
            format!("{base}/graphql"),
            seeded.keys.clone(),
        );
        page.push(
            load(cfg.connections, cfg.seconds, move |i| {
                c.post(&g)
                    .bearer_auth(&keys[i % keys.len()])
                    .json(&serde_json::json!({ "query": CUSTOMERS_PAGE, "variables": { "n": 50 } }))
            })
            .await,
        );
    }
    let loaded_rss = rss_kb(api.0.id())?;

    out("");
    let hello = summarize("bare axum hello (ceiling)", &hello);
    let pg_tps = median(pg.clone());
    let each: Vec<String> = pg.iter().map(|t| format!("{t:.0}")).collect();
    out(format!(
        "{:<28} {:>9.0} tps (runs: {})",
        "pgbench -S -c2 -j2 (ceiling)",
        pg_tps,
        each.join(", ")
    ));
    let me = summarize("{ me { id } }", &me);
    let one = summarize("customer(id)", &one);
    let page = summarize("customers(first:50)+calls(5)", &page);

    out("");
    out("figure                                   measured     goal       verdict");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let r = me.rps / hello.rps;
    out(format!(
        "me: req/s vs bare axum                   {r:>8.2}x   >= 0.40x   {}",
        verdict(r >= 0.40)
    ));
    let r = me.p99_ms / hello.p99_ms;
    out(format!(
        "me: p99 vs bare axum p99                 {r:>8.2}x   <= 2.00x   {}",
        verdict(r <= 2.0)
    ));
    let r = one.rps / pg_tps;
    out(format!(
        "customer(id): req/s vs pgbench tps       {r:>8.2}x   >= 0.35x   {}",
        verdict(r >= 0.35)
    ));
    out(format!(
        "customer(id): p99                        {:>7.2}ms   <= 20 ms   {}",
        one.p99_ms,
        verdict(one.p99_ms <= 20.0)
    ));
    let r = page.rps / pg_tps;
    out(format!(
        "customers page: req/s vs pgbench tps     {r:>8.3}x   >= 0.10x   {}",
        verdict(r >= 0.10)
    ));
    out(format!(
        "customers page: p99                      {:>7.2}ms   <= 50 ms   {}",
        page.p99_ms,
        verdict(page.p99_ms <= 50.0)
    ));
    for (n, s) in &per_request {
        out(format!("customers(first:{n}) SQL statements/req  {s:>8.1}"));
    }
    let constant = per_request
        .windows(2)
        .all(|w| (w[0].1 - w[1].1).abs() < 0.01);
    out(format!(
        "statements constant across page sizes    {:>8}              {}",
        constant,
        verdict(constant)
    ));
    let idle_mb = idle_rss as f64 / 1024.0;
    out(format!(
        "idle RSS of the server                   {idle_mb:>7.1}MB   < 60 MB    {}",
        verdict(idle_mb < 60.0)
    ));
    out(format!(
        "RSS after the load                       {:>7.1}MB",
        loaded_rss as f64 / 1024.0
    ));

    drop(api);
    if std::env::var("BENCH_KEEP_DB").is_ok() {
        out("kept database sb_bench (BENCH_KEEP_DB)");
        return Ok(());
    }
    admin
        .execute_unprepared("DROP DATABASE IF EXISTS sb_bench WITH (FORCE)")
        .await?;
    admin
        .execute_unprepared("DROP DATABASE IF EXISTS sb_bench_pgbench WITH (FORCE)")
        .await?;
    Ok(())
}
