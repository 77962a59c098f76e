//! The read path's load benchmark (issues: foundation, speed). Prints every figure as a ratio
//! to a ceiling measured in the same run, because these shared 2-core machines swing by 3x:
//! `me` against a bare axum server, `customer(id)` and the customers page against the same
//! answers written as SQL by hand and run by pgbench on the same database.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/bench`
//! Environment: BENCH_PG (admin URL, default postgres://postgres@127.0.0.1:5432/test),
//! BENCH_SECONDS (5), BENCH_RUNS (3), BENCH_CONNECTIONS (64), BENCH_TENANTS (10),
//! BENCH_CUSTOMERS (100000), BENCH_CALLS_PER_CUSTOMER (5), BENCH_API_BIN (target/release/api).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench::{
    CpuMeter, Proc, Waiter, db_url, env_or, free_port, fresh_database, load, median, metric, out,
    rss_kb, summarize, wait_http,
};
use sea_orm::{ConnectionTrait, Database, Statement};

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

fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
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

struct Seeded {
    keys: Vec<String>,
    tenant_ids: Vec<String>,
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
    let mut tenant_ids = Vec::new();
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
        tenant_ids.push(tid.to_string());
        let agent = uuid::Uuid::now_v7();
        db.execute_unprepared(&format!(
            "INSERT INTO agents (id, tenant_id, name, provider, provider_agent_id, business_name, created_at, updated_at) \
             VALUES ('{agent}', '{tid}', 'Agent {t}', 'SIMULATOR', 'sim-{agent}', 'Bench Co', now(), now())"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "INSERT INTO customers (id, tenant_id, phone_number, name, email, status, tags, lead_score, segment, notes, source, last_contacted_at, created_at, updated_at) \
             SELECT md5('{tid}' || g)::uuid, '{tid}', '+1650' || lpad(({t} * {per_tenant} + g)::text, 7, '0'), 'Customer ' || g, NULL, \
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
    Ok(Seeded {
        keys,
        tenant_ids,
        customers,
    })
}

/// The hand-written SQL for the same answers as the API's two read scenarios, as pgbench
/// custom scripts over the same database (the ceilings): the single-row select of
/// `customer(id)`, and one statement building the customers page as JSON (`json_agg` over a
/// `LIMIT 5` subquery per customer). Customer ids are `md5(tenant id || n)`, so a script can
/// name a random one.
fn ceiling_scripts(seeded: &Seeded, per_tenant: usize) -> anyhow::Result<(String, String)> {
    let tenants = seeded
        .tenant_ids
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",");
    let last = seeded.tenant_ids.len() - 1;
    let tenant = format!("(ARRAY[{tenants}])[:t + 1]");
    let one = format!(
        "\\set t random(0, {last})\n\\set g random(1, {per_tenant})\n\
         SELECT id, phone_number, name, status FROM customers \
         WHERE tenant_id = {tenant}::uuid AND id = md5({tenant} || :g)::uuid;\n"
    );
    let page = format!(
        "\\set t random(0, {last})\n\
         SELECT json_agg(json_build_object('id', c.id, 'phoneNumber', c.phone_number, 'calls', \
           (SELECT coalesce(json_agg(json_build_object('id', k.id, 'status', k.status)), '[]'::json) \
            FROM (SELECT id, status FROM calls WHERE customer_id = c.id ORDER BY id DESC LIMIT 5) k))) \
         FROM (SELECT id, phone_number FROM customers WHERE tenant_id = {tenant}::uuid ORDER BY id DESC LIMIT 50) c;\n"
    );
    let dir = std::env::temp_dir();
    let one_path = dir.join(format!("sb_bench_one_{}.sql", std::process::id()));
    let page_path = dir.join(format!("sb_bench_page_{}.sql", std::process::id()));
    std::fs::write(&one_path, one)?;
    std::fs::write(&page_path, page)?;
    Ok((
        one_path.display().to_string(),
        page_path.display().to_string(),
    ))
}

/// A custom script's transactions per second: prepared statements, 8 clients on 2 threads.
fn pgbench_script(url: &str, script: &str, seconds: u64) -> anyhow::Result<f64> {
    bench::pgbench(
        url,
        &[
            "-n",
            "-M",
            "prepared",
            "-c8",
            "-j2",
            "-T",
            &seconds.to_string(),
            "-f",
            script,
        ],
    )
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

    fresh_database(&admin, "sb_bench").await?;
    let url = db_url(&cfg.pg_admin, "sb_bench");
    let t0 = Instant::now();
    let seeded = seed(&cfg, &url).await?;
    out(format!("seeded in {:.1} s", t0.elapsed().as_secs_f64()));
    let (one_script, page_script) = ceiling_scripts(&seeded, cfg.customers / cfg.tenants)?;

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
            .env("SECRETS_KEY", bench::SECRETS_KEY)
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
    let mut pg_one = Vec::new();
    let mut pg_page = Vec::new();
    let mut me = Vec::new();
    let mut one = Vec::new();
    let mut page = Vec::new();
    // CPU per request of the server and of PostgreSQL: steadier than req/s on a machine
    // whose speed drifts, so candidates compare better on it.
    let (mut cpu_me, mut cpu_one, mut cpu_page) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..cfg.runs {
        out(format!("run {}/{}", run + 1, cfg.runs));
        let c = client.clone();
        let u = hello_url.clone();
        hello.push(load(cfg.connections, cfg.seconds, move |_| c.get(&u)).await);
        pg_one.push(pgbench_script(&url, &one_script, cfg.seconds)?);
        pg_page.push(pgbench_script(&url, &page_script, cfg.seconds)?);

        let _p = profile("me", run);
        let (c, g, keys) = (
            client.clone(),
            format!("{base}/graphql"),
            seeded.keys.clone(),
        );
        let meter = CpuMeter::start(api_pid);
        me.push(
            load(cfg.connections, cfg.seconds, move |i| {
                c.post(&g)
                    .bearer_auth(&keys[i % keys.len()])
                    .json(&serde_json::json!({ "query": "{ me { id } }" }))
            })
            .await,
        );
        cpu_me.push(meter.per_item_us(me.last().map_or(0, |f| f.requests) as f64));

        let _p = profile("customer", run);
        let (c, g, keys, ids) = (
            client.clone(),
            format!("{base}/graphql"),
            seeded.keys.clone(),
            seeded.customers.clone(),
        );
        let meter = CpuMeter::start(api_pid);
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
        cpu_one.push(meter.per_item_us(one.last().map_or(0, |f| f.requests) as f64));

        let _p = profile("page", run);
        let (c, g, keys) = (
            client.clone(),
            format!("{base}/graphql"),
            seeded.keys.clone(),
        );
        let meter = CpuMeter::start(api_pid);
        page.push(
            load(cfg.connections, cfg.seconds, move |i| {
                c.post(&g)
                    .bearer_auth(&keys[i % keys.len()])
                    .json(&serde_json::json!({ "query": CUSTOMERS_PAGE, "variables": { "n": 50 } }))
            })
            .await,
        );
        cpu_page.push(meter.per_item_us(page.last().map_or(0, |f| f.requests) as f64));
    }
    let loaded_rss = rss_kb(api.0.id())?;

    out("");
    let hello = summarize("bare axum hello (ceiling)", &hello);
    let ceiling = |name: &str, runs: &[f64]| {
        let each: Vec<String> = runs.iter().map(|t| format!("{t:.0}")).collect();
        let m = median(runs.to_vec());
        out(format!(
            "{name:<44} {m:>9.0} tps (runs: {})",
            each.join(", ")
        ));
        m
    };
    let one_ceiling = ceiling("pgbench: customer(id)'s select (ceiling)", &pg_one);
    let page_ceiling = ceiling("pgbench: the page as one JSON select (ceiling)", &pg_page);
    let me = summarize("{ me { id } }", &me);
    let one = summarize("customer(id)", &one);
    let page = summarize("customers(first:50)+calls(5)", &page);
    out("");
    out("CPU per request (median of runs)          server µs   PostgreSQL µs");
    for (name, runs) in [
        ("{ me { id } }", &cpu_me),
        ("customer(id)", &cpu_one),
        ("customers(first:50)+calls(5)", &cpu_page),
    ] {
        let api = median(runs.iter().map(|r| r.0).collect());
        let pg = median(runs.iter().map(|r| r.1).collect());
        out(format!("{name:<40} {api:>10.1}   {pg:>13.1}"));
    }

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
    let r = one.rps / one_ceiling;
    out(format!(
        "customer(id): req/s vs its SQL by pgbench {r:>7.2}x   >= 0.50x   {}",
        verdict(r >= 0.50)
    ));
    out(format!(
        "customer(id): p99                        {:>7.2}ms   <= 20 ms   {}",
        one.p99_ms,
        verdict(one.p99_ms <= 20.0)
    ));
    let r = page.rps / page_ceiling;
    out(format!(
        "customers page: req/s vs its SQL by pgb. {r:>8.2}x   >= 0.35x   {}",
        verdict(r >= 0.35)
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
    let _ = std::fs::remove_file(&one_script);
    let _ = std::fs::remove_file(&page_script);
    if std::env::var("BENCH_KEEP_DB").is_ok() {
        out("kept database sb_bench (BENCH_KEEP_DB)");
        return Ok(());
    }
    admin
        .execute_unprepared("DROP DATABASE IF EXISTS sb_bench WITH (FORCE)")
        .await?;
    Ok(())
}
