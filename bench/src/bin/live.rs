//! Live-calls benchmark: webhook ingestion against a pgbench upsert ceiling, a shuffled
//! replay, subscription fan-out across two API processes sharing Redis, saturation, and
//! memory per idle subscriber. Every rate is a ratio to a ceiling measured in the same run.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/live`
//! Environment: BENCH_PG (admin URL, default postgres://postgres@127.0.0.1:5432/test),
//! BENCH_REDIS (redis://127.0.0.1:6379), BENCH_SECONDS (5), BENCH_RUNS (3),
//! BENCH_TENANTS (100), BENCH_SUBSCRIBERS_PER_TENANT (10), BENCH_RATE (500),
//! BENCH_IDLE_SUBSCRIBERS (5000), BENCH_API_BIN (target/release/api), BENCH_ONLY (a,b,c,d,e).

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench::{
    Proc, SECRETS_KEY, calls_like_database, db_url, env_or, free_port, fresh_database, gql, median,
    metric, out, pgbench, quantile, rss_kb, wait_http,
};
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789";
const AGENT: &str = "bench-agent";
const STATUSES: [&str; 5] = [
    "initiated",
    "ringing",
    "in-progress",
    "call-disconnected",
    "completed",
];
const DB: &str = "sb_live";
const PGB_DB: &str = "sb_live_pgbench";

struct Config {
    pg_admin: String,
    redis: String,
    seconds: u64,
    runs: usize,
    tenants: usize,
    per_tenant: usize,
    rate: u64,
    idle: usize,
    api_bin: String,
    only: Option<String>,
}

impl Config {
    fn wants(&self, part: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|p| p.trim() == part))
    }
}

struct Api {
    proc: Proc,
    base: String,
    port: u16,
}

impl Api {
    fn pid(&self) -> u32 {
        self.proc.0.id()
    }
}

async fn spawn_api(
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

struct Tenant {
    key: String,
    token: String,
}

async fn create_tenant(client: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<Tenant> {
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
fn report(exec: &str, status: &str, phone: &str, transcript: usize) -> String {
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

fn phone(n: usize) -> String {
    format!("+9198{:08}", n % 100_000_000)
}

async fn pending_ingest(db: &DatabaseConnection) -> anyhow::Result<i64> {
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
async fn drain(db: &DatabaseConnection, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while pending_ingest(db).await? > 0 {
        if started.elapsed() > limit {
            bail!("reports still pending after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get("", "n")?)
}

#[derive(Default, Clone, Copy)]
struct Ingestion {
    acked_per_s: f64,
    applied_per_s: f64,
    p50: f64,
    p99: f64,
    errors_5xx: u64,
    other_errors: u64,
}

/// Closed loop: `senders` post back to back for `seconds`, alternating between the APIs.
async fn ingest_closed(
    client: &reqwest::Client,
    apis: &[String],
    token: &str,
    senders: usize,
    seconds: u64,
    tag: &str,
    db: &DatabaseConnection,
) -> anyhow::Result<Ingestion> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (client, url) = (
            client.clone(),
            format!("{}/webhooks/bolna/{token}", apis[s % apis.len()]),
        );
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut e5, mut other, mut n) = (Vec::new(), 0u64, 0u64, 0usize);
            while Instant::now() < deadline {
                let exec = format!("{tag}-{s}-{}", n / 5);
                let body = report(&exec, STATUSES[n % 5], &phone(s * 1_000_000 + n / 5), 2000);
                let t0 = Instant::now();
                match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) if r.status().is_server_error() => e5 += 1,
                    _ => other += 1,
                }
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                n += 1;
            }
            (lat, e5, other)
        }));
    }
    let (mut lat, mut e5, mut other) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, a, b) = t.await?;
        lat.extend(l);
        e5 += a;
        other += b;
    }
    let sent_for = started.elapsed();
    let drained = drain(db, Duration::from_secs(120)).await?;
    lat.sort_by(f64::total_cmp);
    Ok(Ingestion {
        acked_per_s: lat.len() as f64 / sent_for.as_secs_f64(),
        applied_per_s: lat.len() as f64 / (sent_for + drained).as_secs_f64(),
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
        errors_5xx: e5,
        other_errors: other,
    })
}

/// Open loop at `rate` reports/s for `seconds`: latency of the acknowledgement.
async fn ingest_open(
    client: &reqwest::Client,
    apis: &[String],
    token: &str,
    rate: u64,
    seconds: u64,
    tag: &str,
) -> anyhow::Result<(f64, f64, u64, u64)> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * seconds;
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total as usize {
        tick.tick().await;
        let (client, url) = (
            client.clone(),
            format!("{}/webhooks/bolna/{token}", apis[n % apis.len()]),
        );
        let body = report(
            &format!("{tag}-{}", n / 5),
            STATUSES[n % 5],
            &phone(n / 5),
            2000,
        );
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let code = match client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            (t0.elapsed().as_secs_f64() * 1000.0, code)
        }));
    }
    let (mut lat, mut e5, mut other) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, code) = t.await?;
        lat.push(l);
        if code >= 500 {
            e5 += 1;
        } else if code != 200 {
            other += 1;
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok((quantile(&lat, 0.5), quantile(&lat, 0.99), e5, other))
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(port: u16, key: &str, query: &str) -> anyhow::Result<WsStream> {
    let mut req = format!("ws://127.0.0.1:{port}/graphql/ws").into_client_request()?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {key}")}})
            .to_string(),
    ))
    .await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().contains("connection_ack") => {}
        other => bail!("no ack: {other:?}"),
    }
    ws.send(Message::text(
        json!({"type": "subscribe", "id": "1", "payload": {"query": query}}).to_string(),
    ))
    .await?;
    Ok(ws)
}

const SUBSCRIPTION: &str = "subscription { callUpdated { status call { providerExecutionId } } }";

fn rank(status: &str) -> i32 {
    match status {
        "INITIATED" => 1,
        "RINGING" => 2,
        "IN_PROGRESS" => 3,
        "CALL_DISCONNECTED" => 4,
        "COMPLETED" => 5,
        _ => 0,
    }
}

#[derive(Default)]
struct Receipts {
    latencies: Mutex<Vec<f64>>,
    received: AtomicU64,
    reordered: AtomicU64,
    errors: AtomicU64,
    closed: AtomicU64,
}

type SendTimes = Arc<Mutex<HashMap<(String, &'static str), Instant>>>;

/// One subscriber: records latency against the send time and checks per-call order.
fn spawn_subscriber(
    mut ws: WsStream,
    sent: SendTimes,
    receipts: Arc<Receipts>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: HashMap<String, i32> = HashMap::new();
        while let Some(msg) = ws.next().await {
            let Ok(Message::Text(t)) = msg else {
                if matches!(msg, Ok(Message::Close(_)) | Err(_)) {
                    receipts.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                continue;
            };
            let now = Instant::now();
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                continue;
            };
            match v["type"].as_str() {
                Some("ping") => {
                    let _ = ws.send(Message::text("{\"type\":\"pong\"}")).await;
                }
                Some("next") => {
                    let u = &v["payload"]["data"]["callUpdated"];
                    let (Some(exec), Some(status)) = (
                        u["call"]["providerExecutionId"].as_str(),
                        u["status"].as_str(),
                    ) else {
                        receipts.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    receipts.received.fetch_add(1, Ordering::Relaxed);
                    let r = rank(status);
                    let prev = last.insert(exec.to_owned(), r).unwrap_or(0);
                    if r <= prev {
                        receipts.reordered.fetch_add(1, Ordering::Relaxed);
                    }
                    let key_status = STATUSES[(r.max(1) - 1) as usize];
                    if let Some(t0) = sent
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&(exec.to_owned(), key_status)).copied())
                        && let Ok(mut l) = receipts.latencies.lock()
                    {
                        l.push(now.duration_since(t0).as_secs_f64() * 1000.0);
                    }
                }
                Some("error") | Some("complete") => {
                    receipts.errors.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        receipts.closed.fetch_add(1, Ordering::Relaxed);
    })
}

struct FanOut {
    p50: f64,
    p99: f64,
    expected: u64,
    received: u64,
    reordered: u64,
    errors: u64,
    closed: u64,
    e5xx: u64,
    query_p99: f64,
    query_errors: u64,
    max_rss_mb: f64,
    lagged: f64,
    slow_dropped: f64,
}

/// Webhooks at `rate` reports/s spread over the tenants (one live call per tenant, its
/// five reports evenly spaced), to both APIs; 10 subscribers per tenant across both.
async fn fan_out(
    cfg: &Config,
    client: &reqwest::Client,
    apis: &[&Api],
    tenants: &[Tenant],
    rate: u64,
    tag: &str,
) -> anyhow::Result<FanOut> {
    let sent: SendTimes = Arc::default();
    let receipts = Arc::new(Receipts::default());
    let mut subs = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        for s in 0..cfg.per_tenant {
            let api = apis[(t + s) % apis.len()];
            let ws = ws_connect(api.port, &tenant.key, SUBSCRIPTION).await?;
            subs.push(spawn_subscriber(ws, sent.clone(), receipts.clone()));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A dashboard query every 50 ms while the load runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (client, base, key, stop) = (
            client.clone(),
            apis[0].base.clone(),
            tenants[0].key.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match gql(
                    &client,
                    &base,
                    &key,
                    "{ me { name } calls(first: 5) { edges { node { id status } } } }",
                    json!({}),
                )
                .await
                {
                    Ok(_) => lat.push(t0.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => errors += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (lat, errors)
        })
    };
    let rss_peak = {
        let (pids, stop) = (
            apis.iter().map(|a| a.pid()).collect::<Vec<_>>(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(pids.iter().filter_map(|p| rss_kb(*p).ok()).sum());
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            peak
        })
    };

    let per_tenant_interval = Duration::from_secs_f64(tenants.len() as f64 / rate as f64);
    let deadline = Instant::now() + Duration::from_secs(cfg.seconds);
    let e5xx = Arc::new(AtomicU64::new(0));
    let tenant_count = tenants.len() as f64;
    let mut senders = Vec::new();
    for (t, tenant) in tenants.iter().enumerate() {
        let (client, sent, e5xx) = (client.clone(), sent.clone(), e5xx.clone());
        let url = format!(
            "{}/webhooks/bolna/{}",
            apis[t % apis.len()].base,
            tenant.token
        );
        let tag = format!("{tag}-{t}");
        senders.push(tokio::spawn(async move {
            // Stagger tenants so the load is even.
            tokio::time::sleep(per_tenant_interval.mul_f64(t as f64 / tenant_count)).await;
            let mut tick = tokio::time::interval(per_tenant_interval);
            let mut posted = 0u64;
            let mut call = 0usize;
            'calls: loop {
                let exec = format!("{tag}-{call}");
                for status in STATUSES {
                    tick.tick().await;
                    if Instant::now() >= deadline {
                        break 'calls;
                    }
                    let body = report(&exec, status, &phone(t * 10_000 + call), 0);
                    if let Ok(mut m) = sent.lock() {
                        m.insert((exec.clone(), status), Instant::now());
                    }
                    match client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => posted += 1,
                        Ok(r) if r.status().is_server_error() => {
                            e5xx.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                call += 1;
            }
            posted
        }));
    }
    let mut posted = 0;
    for s in senders {
        posted += s.await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut qlat, query_errors) = prober.await?;
    let peak = rss_peak.await?;
    let mut lagged = 0.0;
    let mut slow = 0.0;
    for api in apis {
        lagged += metric(client, &api.base, "subscriptions_lagged_total")
            .await
            .unwrap_or(0.0);
        slow += metric(client, &api.base, "ws_slow_clients_dropped_total")
            .await
            .unwrap_or(0.0);
    }
    for s in subs {
        s.abort();
    }
    let mut lat = receipts
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    qlat.sort_by(f64::total_cmp);
    Ok(FanOut {
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
        expected: posted * cfg.per_tenant as u64,
        received: receipts.received.load(Ordering::Relaxed),
        reordered: receipts.reordered.load(Ordering::Relaxed),
        errors: receipts.errors.load(Ordering::Relaxed),
        closed: receipts.closed.load(Ordering::Relaxed),
        e5xx: e5xx.load(Ordering::Relaxed),
        query_p99: quantile(&qlat, 0.99),
        query_errors,
        max_rss_mb: peak as f64 / 1024.0,
        lagged,
        slow_dropped: slow,
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    if !std::path::Path::new(&cfg.api_bin).exists() {
        bail!(
            "{} not found: run `cargo build --release -p api -p bench` first",
            cfg.api_bin
        );
    }
    out(format!(
        "Switchboard live-calls benchmark: {} s x {} runs (median), {} tenants x {} subscribers, {} reports/s",
        cfg.seconds, cfg.runs, cfg.tenants, cfg.per_tenant, cfg.rate
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
    let secs = cfg.seconds.to_string();
    let ceiling = || {
        pgbench(
            &pgb_url,
            &["-n", "-c4", "-j2", "-T", &secs, "-f", &script_path],
        )
    };

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
    let mut summary: Vec<String> = Vec::new();

    if cfg.wants("a") {
        out(
            "\n(a) webhook ingestion vs pgbench one-row upsert (4 clients, ~2 KB transcript, durable commits)",
        );
        let mut ratios = Vec::new();
        let mut best_runs = Vec::new();
        for run in 0..cfg.runs {
            let tps = ceiling()?;
            let mut best = Ingestion::default();
            let mut best_c = 0;
            for senders in [4, 8, 16, 32] {
                let r = ingest_closed(
                    &client,
                    &apis,
                    &tenants[0].token,
                    senders,
                    cfg.seconds,
                    &format!("a{run}c{senders}"),
                    &db,
                )
                .await?;
                out(format!(
                    "  run {} senders {senders:>2}: acked {:>6.0}/s applied {:>6.0}/s p50 {:>6.2} ms p99 {:>7.2} ms 5xx {} other {}",
                    run + 1,
                    r.acked_per_s,
                    r.applied_per_s,
                    r.p50,
                    r.p99,
                    r.errors_5xx,
                    r.other_errors
                ));
                if r.acked_per_s > best.acked_per_s {
                    best = r;
                    best_c = senders;
                }
            }
            out(format!(
                "  run {}: pgbench {tps:.0} tps; best {best_c} senders: {:.2}x acked, {:.2}x applied",
                run + 1,
                best.acked_per_s / tps,
                best.applied_per_s / tps
            ));
            ratios.push((best.acked_per_s / tps, best.applied_per_s / tps));
            best_runs.push(best);
        }
        let acked = median(ratios.iter().map(|r| r.0).collect());
        let applied = median(ratios.iter().map(|r| r.1).collect());
        summary.push(format!(
            "(a) ingestion acked / pgbench upsert tps      {acked:>8.2}x   >= 0.60x   {}",
            verdict(acked >= 0.60)
        ));
        summary.push(format!("(a) ingestion applied / pgbench upsert tps    {applied:>8.2}x   (all work done, informational)"));
        let mut p99s = Vec::new();
        let mut fives = 0;
        for run in 0..cfg.runs {
            let (p50, p99, e5, other) = ingest_open(
                &client,
                &apis,
                &tenants[0].token,
                200,
                cfg.seconds,
                &format!("open{run}"),
            )
            .await?;
            drain(&db, Duration::from_secs(60)).await?;
            out(format!(
                "  run {}: 200 reports/s open loop: p50 {p50:.2} ms p99 {p99:.2} ms 5xx {e5} other {other}",
                run + 1
            ));
            p99s.push(p99);
            fives += e5;
        }
        let p99 = median(p99s);
        summary.push(format!(
            "(a) p99 ack at 200 reports/s                  {p99:>7.2}ms   <= 50 ms   {}",
            verdict(p99 <= 50.0)
        ));
        summary.push(format!(
            "(a) 5xx at 200 reports/s                      {fives:>8}    0          {}",
            verdict(fives == 0)
        ));
    }

    if cfg.wants("b") {
        out(
            "\n(b) replay: 2,000 calls x 5 reports + 2,000 duplicates, shuffled, national and E.164 numbers",
        );
        let t = create_tenant(&client, &api1.base, "Replay").await?;
        let mut reports = Vec::new();
        for call in 0..2000usize {
            let person = call % 1000;
            let number = match call % 3 {
                0 => format!("+91 98{:08}", person),
                1 => format!("098{:08}", person),
                _ => format!("98{:08}", person),
            };
            for status in STATUSES {
                reports.push(report(&format!("replay-{call}"), status, &number, 300));
            }
        }
        // Deterministic shuffle (xorshift) and 2,000 duplicates.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let i = (next() % reports.len() as u64) as usize;
            reports.push(reports[i].clone());
        }
        for i in (1..reports.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            reports.swap(i, j);
        }
        let total = reports.len();
        let queue = Arc::new(Mutex::new(reports));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..16 {
            let (client, queue) = (client.clone(), queue.clone());
            let url = format!("{}/webhooks/bolna/{}", apis[s % 2], t.token);
            tasks.push(tokio::spawn(async move {
                let mut failures = 0u64;
                while let Some(body) = queue.lock().ok().and_then(|mut q| q.pop()) {
                    match client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => {}
                        _ => failures += 1,
                    }
                }
                failures
            }));
        }
        let mut failures = 0;
        for task in tasks {
            failures += task.await?;
        }
        drain(&db, Duration::from_secs(120)).await?;
        let took = started.elapsed().as_secs_f64();
        let tenant_filter = "(SELECT id FROM tenants WHERE name = 'Replay')";
        let calls = scalar(
            &db,
            &format!("SELECT count(*) AS n FROM calls WHERE tenant_id = {tenant_filter}"),
        )
        .await?;
        let dup_calls = scalar(&db, &format!("SELECT count(*) AS n FROM (SELECT provider_execution_id FROM calls WHERE tenant_id = {tenant_filter} GROUP BY 1 HAVING count(*) > 1) d")).await?;
        let customers = scalar(
            &db,
            &format!("SELECT count(*) AS n FROM customers WHERE tenant_id = {tenant_filter}"),
        )
        .await?;
        let dup_customers = scalar(&db, &format!("SELECT count(*) AS n FROM (SELECT phone_number FROM customers WHERE tenant_id = {tenant_filter} GROUP BY 1 HAVING count(*) > 1) d")).await?;
        let not_completed = scalar(&db, &format!("SELECT count(*) AS n FROM calls WHERE tenant_id = {tenant_filter} AND status <> 'COMPLETED'")).await?;
        let events = scalar(
            &db,
            &format!("SELECT count(*) AS n FROM call_events WHERE tenant_id = {tenant_filter}"),
        )
        .await?;
        out(format!(
            "  {total} reports in {took:.1} s ({:.0}/s), failures {failures}: calls {calls} (dup {dup_calls}), customers {customers} (dup {dup_customers}), not completed {not_completed}, events {events}",
            total as f64 / took
        ));
        let ok = calls == 2000
            && dup_calls == 0
            && customers == 1000
            && dup_customers == 0
            && not_completed == 0
            && events == 10_000
            && failures == 0;
        summary.push(format!(
            "(b) replay: 2000 calls, 1000 customers, 0 dup {:>8}              {}",
            ok,
            verdict(ok)
        ));
    }

    let fan = |name: &'static str, rate: u64| (name, rate);
    for (part, rate) in [fan("c", cfg.rate), fan("d", cfg.rate * 2)] {
        if !cfg.wants(part) {
            continue;
        }
        out(format!(
            "\n({part}) fan-out: {} subscribers over {} tenants on two API processes, webhooks at {rate} reports/s",
            cfg.tenants * cfg.per_tenant,
            cfg.tenants
        ));
        let mut runs = Vec::new();
        for run in 0..cfg.runs {
            let f = fan_out(
                &cfg,
                &client,
                &[&api1, &api2],
                &tenants,
                rate,
                &format!("{part}{run}"),
            )
            .await?;
            drain(&db, Duration::from_secs(60)).await?;
            out(format!(
                "  run {}: p50 {:.1} ms p99 {:.1} ms; received {}/{} reordered {} errors {} closed {}; 5xx {}; query p99 {:.1} ms ({} failed); peak RSS {:.0} MB; lagged {} slow-dropped {}",
                run + 1,
                f.p50,
                f.p99,
                f.received,
                f.expected,
                f.reordered,
                f.errors,
                f.closed,
                f.e5xx,
                f.query_p99,
                f.query_errors,
                f.max_rss_mb,
                f.lagged,
                f.slow_dropped
            ));
            runs.push(f);
        }
        let p50 = median(runs.iter().map(|f| f.p50).collect());
        let p99 = median(runs.iter().map(|f| f.p99).collect());
        let lost: u64 = runs
            .iter()
            .map(|f| f.expected.saturating_sub(f.received))
            .sum();
        let reordered: u64 = runs.iter().map(|f| f.reordered).sum();
        if part == "c" {
            summary.push(format!(
                "(c) POST to receipt p50                       {p50:>7.1}ms"
            ));
            summary.push(format!(
                "(c) POST to receipt p99                       {p99:>7.1}ms   <= 100 ms  {}",
                verdict(p99 <= 100.0)
            ));
            summary.push(format!("(c) lost / reordered events                   {lost:>4} / {reordered:<4} 0 / 0      {}", verdict(lost == 0 && reordered == 0)));
        } else {
            let rss = runs.iter().map(|f| f.max_rss_mb).fold(0.0, f64::max);
            let qp99 = median(runs.iter().map(|f| f.query_p99).collect());
            let qerr: u64 = runs.iter().map(|f| f.query_errors).sum();
            let dropped: f64 = runs.iter().map(|f| f.lagged + f.slow_dropped).sum();
            summary.push(format!(
                "(d) at 2x: POST to receipt p50 / p99          {p50:>6.1} / {p99:.1} ms"
            ));
            summary.push(format!(
                "(d) at 2x: peak RSS of both APIs              {rss:>7.0}MB   bounded"
            ));
            summary.push(format!("(d) at 2x: dashboard query p99, failures      {qp99:>7.1}ms / {qerr}  answered   {}", verdict(qerr == 0)));
            summary.push(format!(
                "(d) at 2x: lagging clients counted/dropped    {dropped:>8.0}    lost events {lost}"
            ));
        }
    }

    if cfg.wants("e") {
        out(format!(
            "\n(e) memory per idle subscriber ({} subscriptions on one fresh API process)",
            cfg.idle
        ));
        let mut per_sub = Vec::new();
        for run in 0..cfg.runs {
            let api3 = spawn_api(&cfg, &client, &url, false).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let before = rss_kb(api3.pid())?;
            let mut sockets = Vec::with_capacity(cfg.idle);
            for i in 0..cfg.idle {
                let t = &tenants[i % tenants.len()];
                sockets.push(ws_connect(api3.port, &t.key, SUBSCRIPTION).await?);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = rss_kb(api3.pid())?;
            let kb = (after.saturating_sub(before)) as f64 / cfg.idle as f64;
            out(format!(
                "  run {}: RSS {:.1} MB -> {:.1} MB: {kb:.1} KB per subscriber",
                run + 1,
                before as f64 / 1024.0,
                after as f64 / 1024.0
            ));
            per_sub.push(kb);
            drop(sockets);
            drop(api3);
        }
        let kb = median(per_sub);
        summary.push(format!(
            "(e) RSS per idle subscriber at {}          {kb:>7.1}KB   < 50 KB    {}",
            cfg.idle,
            verdict(kb < 50.0)
        ));
    }

    out("\nfigure                                          measured     goal       verdict");
    for line in summary {
        out(line);
    }
    drop(api1);
    drop(api2);
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
        rate: env_or("BENCH_RATE", 500),
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
