//! Outbound webhook benchmark, against the release API with its embedded worker on
//! PostgreSQL and a receiver in this process that answers 200 at once:
//!
//! 1. Ceiling: BENCH_DELIVERIES (20,000) signed POSTs of a real event body to the receiver
//!    by a minimal reqwest loop with BENCH_CEILING_CONCURRENCY (32) requests in flight.
//! 2. Throughput: as many pending deliveries (one endpoint, every delivery its own subject)
//!    written straight into the migrated schema while the endpoint is disabled, then the
//!    endpoint enabled: deliveries/s until the receiver has them all, as a ratio to (1).
//! 3. Latency: customers created through the API at BENCH_RATE (100) a second for
//!    BENCH_SECONDS (10), each a `customer.created` event: p50/p99 from the event's
//!    timestamp (written in the creating transaction) to its receipt.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/webhooks`
//! Environment: BENCH_PG, BENCH_API_BIN, BENCH_DELIVERIES, BENCH_RATE, BENCH_SECONDS,
//! BENCH_CEILING_CONCURRENCY.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use bench::{db_url, env_or, fresh_database, gql, out, quantile, start_api, targets};
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789";
const DB: &str = "sb_webhooks";

#[derive(Default)]
struct Receiver {
    count: AtomicU64,
    /// Seconds from each event's timestamp to its receipt (latency phase only).
    latencies: Mutex<Vec<f64>>,
    measure: std::sync::atomic::AtomicBool,
}

async fn start_receiver(state: Arc<Receiver>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let state = state.clone();
            async move {
                state.count.fetch_add(1, Ordering::Relaxed);
                if state.measure.load(Ordering::Relaxed)
                    && let Ok(v) = serde_json::from_slice::<Value>(&body)
                    && let Some(ts) = v["timestamp"].as_str()
                    && let Ok(ts) = chrono::DateTime::parse_from_rfc3339(ts)
                {
                    let lag = chrono::Utc::now().signed_duration_since(ts);
                    if let Ok(mut l) = state.latencies.lock() {
                        l.push(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
                    }
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://127.0.0.1:{port}/hook"))
}

/// An event body as the server writes it (a customer update), for both sides.
fn sample_body() -> String {
    json!({
        "type": "customer.updated",
        "timestamp": "2026-12-06T08:02:10.004Z",
        "data": { "customer": {
            "id": "0193a1c2-7e4b-7c1a-9d2e-3f4a5b6c7d8e", "phoneNumber": "+919812345678",
            "name": "Priya Sharma", "email": "priya@example.com", "status": "INTERESTED",
            "tags": ["vip", "hot"], "leadScore": 72.5, "segment": "HOT", "source": "BOLNA",
            "lastContactedAt": "2026-12-06T08:01:55.000Z", "createdAt": "2026-12-01T10:00:00.000Z",
            "updatedAt": "2026-12-06T08:02:10.000Z"
        }}
    })
    .to_string()
}

async fn wait_for(rx: &Receiver, n: u64, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while rx.count.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} deliveries arrived within {limit:?}",
                rx.count.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The same signed POSTs from a bare reqwest loop: requests/s.
async fn ceiling(url: &str, n: u64, concurrency: usize, rx: &Receiver) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let secret = domain::outbound::signing::new_secret()?;
    let body = sample_body();
    let before = rx.count.load(Ordering::Relaxed);
    let started = Instant::now();
    let results: Vec<bool> = futures_util::stream::iter(0..n)
        .map(|i| {
            let (client, secret, body) = (&client, &secret, &body);
            async move {
                let id = format!("evt_ceiling_{i}");
                let ts = chrono::Utc::now().timestamp();
                let sig = domain::outbound::signing::signature_header(
                    &[secret.as_str()],
                    &id,
                    ts,
                    body.as_bytes(),
                );
                client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", sig)
                    .body(body.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    if results.iter().any(|ok| !ok) || rx.count.load(Ordering::Relaxed) - before != n {
        bail!("the ceiling loop lost requests");
    }
    Ok(n as f64 / seconds)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
    let n: u64 = env_or("BENCH_DELIVERIES", 20_000);
    let rate: u64 = env_or("BENCH_RATE", 100);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let concurrency: usize = env_or("BENCH_CEILING_CONCURRENCY", 32);
    let (pg_admin, api_bin) = targets()?;

    let rx = Arc::new(Receiver::default());
    let url = start_receiver(rx.clone()).await?;

    let admin = Database::connect(&pg_admin).await?;
    fresh_database(&admin, DB).await?;
    let db_url = db_url(&pg_admin, DB);
    let (_api, base) = start_api(
        &api_bin,
        &db_url,
        ADMIN_TOKEN,
        &[
            ("WEBHOOK_URL_ALLOWLIST", "127.0.0.1".into()),
            ("RUN_WORKER", "true".into()),
        ],
    )
    .await?;
    let client = reqwest::Client::new();
    let (key, tenant) =
        bench::create_tenant(&client, &base, ADMIN_TOKEN, "Bench", "IN", "UTC").await?;
    let e = gql(
        &client,
        &base,
        &key,
        "mutation($u: String!) { createWebhookEndpoint(input: {url: $u, events: [\"customer.*\"]}) { endpoint { id } } }",
        json!({ "u": url }),
    )
    .await?;
    let endpoint = e["createWebhookEndpoint"]["endpoint"]["id"]
        .as_str()
        .context("endpoint")?
        .to_owned();

    out(format!(
        "webhooks benchmark: {n} deliveries, latency at {rate}/s for {seconds} s, ceiling concurrency {concurrency}"
    ));
    let ceiling_rate = ceiling(&url, n, concurrency, &rx).await?;
    out(format!(
        "ceiling:     reqwest loop, {concurrency} in flight, signed POSTs: {ceiling_rate:.0} requests/s"
    ));

    // Throughput: a backlog written while the endpoint is disabled, then released.
    gql(
        &client,
        &base,
        &key,
        "mutation($id: ID!) { disableWebhookEndpoint(id: $id) { id } }",
        json!({ "id": endpoint }),
    )
    .await?;
    let db = Database::connect(&db_url).await?;
    let body = sample_body().replace('\'', "''");
    db.execute_unprepared(&format!(
        "INSERT INTO webhook_events (id, tenant_id, type, subject, body, created_at) \
         SELECT 'evt_bench_' || g, '{tenant}', 'customer.updated', NULL, '{body}', now() FROM generate_series(1, {n}) g"
    ))
    .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_id, event_type, subject, status, \"trigger\", attempts, next_attempt_at, created_at, updated_at) \
         SELECT gen_random_uuid(), '{tenant}', '{endpoint}', 'evt_bench_' || g, 'customer.updated', gen_random_uuid(), 'PENDING', 'EVENT', 0, now(), now(), now() \
         FROM generate_series(1, {n}) g"
    ))
    .await?;
    db.execute_unprepared("ANALYZE webhook_deliveries").await?;
    let before = rx.count.load(Ordering::Relaxed);
    let started = Instant::now();
    gql(
        &client,
        &base,
        &key,
        "mutation($id: ID!) { enableWebhookEndpoint(id: $id) { id } }",
        json!({ "id": endpoint }),
    )
    .await?;
    wait_for(&rx, before + n, Duration::from_secs(600)).await?;
    let delivered_rate = n as f64 / started.elapsed().as_secs_f64();
    out(format!(
        "throughput:  {n} pending deliveries sent in {:.2} s: {delivered_rate:.0} deliveries/s",
        started.elapsed().as_secs_f64()
    ));
    // Receipt comes before the attempt is recorded: wait for the last batch's commit.
    let mut succeeded: i64 = 0;
    for _ in 0..300 {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'SUCCEEDED'",
            ))
            .await?
            .context("count")?;
        succeeded = row.try_get("", "n")?;
        if succeeded as u64 >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Latency: events from real writes at a steady rate.
    rx.measure.store(true, Ordering::Relaxed);
    let before = rx.count.load(Ordering::Relaxed);
    let total = rate * seconds;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tick = tokio::time::interval(interval);
    let mut sent = Vec::with_capacity(total as usize);
    for i in 0..total {
        tick.tick().await;
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        sent.push(tokio::spawn(async move {
            gql(
                &client,
                &base,
                &key,
                "mutation($p: String!) { createCustomer(input: {phoneNumber: $p, name: \"Lead\"}) { id } }",
                json!({ "p": format!("+91981{:07}", i) }),
            )
            .await
        }));
    }
    for s in sent {
        s.await??;
    }
    wait_for(&rx, before + total, Duration::from_secs(120)).await?;
    let mut lat = rx.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (quantile(&lat, 0.5) * 1000.0, quantile(&lat, 0.99) * 1000.0);
    out(format!(
        "latency:     {total} customer.created events at {rate}/s: event to receipt p50 {p50:.1} ms, p99 {p99:.1} ms"
    ));

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    out("\nfigure                                          measured     goal       verdict");
    let r = delivered_rate / ceiling_rate;
    out(format!(
        "deliveries/s / reqwest loop requests/s         {r:>8.3}x   >= 0.5x    {}",
        verdict(r >= 0.5)
    ));
    out(format!(
        "p99 event to receipt at {rate}/s                {p99:>8.1}ms   (no goal)"
    ));
    let duplicates = rx.count.load(Ordering::Relaxed) - n - n - total;
    let ok = succeeded as u64 == n && duplicates == 0;
    out(format!(
        "every delivery SUCCEEDED, none sent twice      {ok:>8}              {}",
        verdict(ok)
    ));
    if !ok {
        bail!("{succeeded} of {n} deliveries succeeded; {duplicates} extra receipts");
    }
    // The bench's database is its own: left behind, it would only take space.
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await?;
    Ok(())
}
