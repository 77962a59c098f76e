//! Analytics and analysis benchmark, against the release API on PostgreSQL:
//!
//! 1. `analytics` over BENCH_CALLS (1,000,000) calls of one tenant among BENCH_TENANTS (10),
//!    spread over 90 days, 60 % of them analysed: p50/p99 of the GraphQL query over the
//!    whole period, against the same statements written by hand and run by pgbench in the
//!    same run (the ceiling); goal: API p50 ≤ 1.5× the SQL's mean latency.
//! 2. Heuristic analysis throughput on one core (`heuristic-v1` over a fixed transcript).
//! 3. The LLM path against a local fake server answering after BENCH_LLM_DELAY_MS (200):
//!    analyses/s at LLM_CONCURRENCY (BENCH_LLM_CONCURRENCY, 8); goal: concurrency ÷ delay
//!    within 10 %.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/analytics`
//! Environment: BENCH_PG, BENCH_API_BIN, BENCH_CALLS, BENCH_TENANTS, BENCH_QUERIES (30).

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::{db_url, env_or, fresh_database, gql, out, quantile};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789";
const DB: &str = "sb_analytics";
const DAYS: i64 = 90;

/// Seeds `calls` calls (and a customer per 20 calls) for `tenant` over the last 90 days.
async fn seed(db: &DatabaseConnection, tenant: &str, calls: i64) -> anyhow::Result<()> {
    let customers = (calls / 20).max(1);
    db.execute_unprepared(&format!(
        "INSERT INTO customers (id, tenant_id, phone_number, name, status, tags, source, lead_score, segment, created_at, updated_at) \
         SELECT md5('{tenant}' || i)::uuid, '{tenant}', '+1212' || lpad(i::text, 7, '0'), 'Lead ' || i, 'CONTACTED', '[]', 'BENCH', \
         (i % 100), (ARRAY['HOT','WARM','COLD'])[1 + i % 3], now(), now() FROM generate_series(0, {}) i",
        customers - 1
    ))
    .await
    .context("seeding customers")?;
    // In chunks, so one statement's memory stays small.
    let chunk = 200_000;
    let mut from = 0;
    while from < calls {
        let to = (from + chunk).min(calls) - 1;
        db.execute_unprepared(&format!(
            "INSERT INTO calls (id, tenant_id, customer_id, provider, provider_execution_id, direction, status, status_rank, \
             started_at, duration_seconds, cost, transcript, created_at, updated_at) \
             SELECT md5('{tenant}c' || i)::uuid, '{tenant}', md5('{tenant}' || (i % {customers}))::uuid, 'SIMULATOR', 'bench-' || i, 'OUTBOUND', \
             s.status, s.rank, now() - interval '1 hour' - (i % {secs}) * interval '1 second', \
             CASE WHEN s.status = 'COMPLETED' THEN 30 + (i % 300) END, (i % 100) / 100.0, NULL, now(), now() \
             FROM generate_series({from}, {to}) i CROSS JOIN LATERAL (SELECT CASE WHEN i % 10 < 6 THEN 'COMPLETED' WHEN i % 10 = 6 THEN 'BUSY' \
             WHEN i % 10 = 7 THEN 'NO_ANSWER' ELSE 'FAILED' END AS status, CASE WHEN i % 10 < 6 THEN 9 ELSE 10 END AS rank) s",
            secs = DAYS * 86_400 - 7_200,
        ))
        .await
        .context("seeding calls")?;
        db.execute_unprepared(&format!(
            "INSERT INTO call_analyses (id, tenant_id, call_id, current, status, sentiment, sentiment_score, outcome, summary, model, \
             prompt_tokens, completion_tokens, latency_ms, created_at, analyzed_at) \
             SELECT md5('{tenant}a' || i)::uuid, '{tenant}', md5('{tenant}c' || i)::uuid, true, 'DONE', \
             (ARRAY['POSITIVE','NEUTRAL','NEGATIVE'])[1 + i % 3], 0.1, \
             (ARRAY['APPOINTMENT_BOOKED','INTERESTED','CALLBACK_REQUESTED','NOT_INTERESTED','VOICEMAIL','OTHER'])[1 + (i / 10) % 6], \
             's', 'heuristic-v1', 0, 0, 1, now(), now() FROM generate_series({from}, {to}) i WHERE i % 10 < 6"
        ))
        .await
        .context("seeding analyses")?;
        from = to + 1;
    }
    Ok(())
}

/// The analytics statements written by hand for pgbench (the same two the API runs, with
/// literal values), one transaction of the script = one analytics answer.
fn ceiling_script(
    tenant: &str,
    since: &str,
    until: &str,
    days: &[(String, String, String)],
) -> String {
    let t = "COALESCE(c.started_at, c.created_at)";
    let period = format!("c.tenant_id = '{tenant}' AND {t} >= '{since}' AND {t} < '{until}'");
    let values: Vec<String> = days
        .iter()
        .map(|(d, s, e)| format!("('{d}'::text, '{s}'::timestamptz, '{e}'::timestamptz)"))
        .collect();
    format!(
        "WITH d (day, s, e) AS (VALUES {}) SELECT d.day, c.status, a.outcome, a.sentiment, COUNT(*), \
SUM(CASE WHEN c.duration_seconds IS NOT NULL THEN 1 ELSE 0 END), COALESCE(SUM(c.duration_seconds), 0.0), COALESCE(SUM(c.cost), 0.0) \
FROM d JOIN calls c ON c.tenant_id = '{tenant}' AND {t} >= d.s AND {t} < d.e \
LEFT JOIN call_analyses a ON a.call_id = c.id AND a.current AND a.status = 'DONE' GROUP BY d.day, c.status, a.outcome, a.sentiment;\n\
SELECT COALESCE(cu.segment, 'NONE'), COUNT(*) FROM customers cu WHERE cu.tenant_id = '{tenant}' AND cu.id IN \
(SELECT c.customer_id FROM calls c WHERE {period} AND c.customer_id IS NOT NULL) GROUP BY 1 ORDER BY 1;\n",
        values.join(", ")
    )
}

/// pgbench's mean latency (ms) for `script` run `transactions` times on one client.
fn pgbench_latency(url: &str, script: &str, transactions: usize) -> anyhow::Result<f64> {
    let file = std::env::temp_dir().join(format!("sb-analytics-{}.sql", std::process::id()));
    std::fs::write(&file, script)?;
    let output = Command::new("pgbench")
        .args(["-n", "-c", "1", "-t", &transactions.to_string(), "-f"])
        .arg(&file)
        .arg(url)
        .output()
        .context("running pgbench")?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("latency average ="))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .with_context(|| {
            format!(
                "no latency in pgbench output: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

async fn analytics_figures(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    db: &DatabaseConnection,
    url: &str,
    tenant: &str,
    queries: usize,
) -> anyhow::Result<()> {
    let until = chrono::Utc::now();
    let since = until - chrono::Duration::days(DAYS);
    let query = "query($s: DateTime, $u: DateTime) { analytics(filter: {since: $s, until: $u}) { totalCalls connectedCalls connectRate averageDurationSeconds totalCost byStatus { status count } byOutcome { outcome count } bySentiment { sentiment count } bySegment { segment count } daily { date calls connected booked } } }";
    let vars = json!({ "s": since.to_rfc3339(), "u": until.to_rfc3339() });
    // Warm both paths once.
    let first = gql(client, base, key, query, vars.clone()).await?;
    let total = first["analytics"]["totalCalls"].as_i64().unwrap_or(0);
    let mut ms = Vec::with_capacity(queries);
    for _ in 0..queries {
        let started = Instant::now();
        gql(client, base, key, query, vars.clone()).await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = (quantile(&ms, 0.5), quantile(&ms, 0.99));
    out(format!(
        "analytics: {total} calls in 90 days, {queries} queries: p50 {p50:.1} ms, p99 {p99:.1} ms"
    ));
    let tz = chrono_tz::UTC;
    let days: Vec<(String, String, String)> = domain::analytics::days::days(tz, since, until)
        .into_iter()
        .map(|d| (d.date.to_string(), d.start.to_rfc3339(), d.end.to_rfc3339()))
        .collect();
    let script = ceiling_script(tenant, &since.to_rfc3339(), &until.to_rfc3339(), &days);
    // The ceiling sees the same planner statistics.
    db.execute_unprepared("ANALYZE").await?;
    let sql_ms = pgbench_latency(url, &script, queries)?;
    let ratio = p50 / sql_ms;
    out(format!(
        "ceiling:   the same two statements by pgbench: mean {sql_ms:.1} ms per answer"
    ));
    out(format!(
        "verdict:   analytics p50 / hand-written SQL = {ratio:.2}x (goal <= 1.5x): {}",
        if ratio <= 1.5 { "met" } else { "MISSED" }
    ));
    Ok(())
}

fn heuristic_throughput(seconds: f64) {
    let transcript = "assistant: Hi Rahul, this is Asha from Green Homes. You enquired about a 2BHK in Whitefield?\n\
user: Yes, I did. What is the price?\nassistant: It starts at 85 lakh. Would you like to visit the site this Saturday at 11 am?\n\
user: Saturday 11 works, please book it. My email is rahul@example.com.\nassistant: Done, see you Saturday at 11 am.";
    let fields = vec![domain::analysis::fields::AnalysisField {
        name: "meeting_time".into(),
        description: "When the visit is".into(),
        kind: domain::types::FieldType::String,
        values: vec![],
    }];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        for _ in 0..100 {
            std::hint::black_box(domain::analysis::heuristic::analyze(
                std::hint::black_box(transcript),
                &fields,
            ));
        }
        n += 100;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    out(format!(
        "heuristic: {rate:.0} analyses/s on one core ({n} in {:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    out("verdict:   heuristic throughput measured (no ceiling: informative)");
}

async fn llm_throughput(delay_ms: u64, concurrency: usize, analyses: usize) -> anyhow::Result<()> {
    use domain::analysis::llm::{LlmAnalyzer, LlmConfig};
    let content = json!({"summary": "s", "sentiment": "POSITIVE", "sentiment_score": 0.5,
        "outcome": "INTERESTED", "extracted": {}})
    .to_string();
    let reply = json!({"model": "fake", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}});
    // A fake OpenAI-compatible server answering every completion after `delay_ms`.
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let reply = reply.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                axum::Json(reply)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = LlmConfig {
        base_url: format!("http://{addr}"),
        api_key: None,
        model: "fake".into(),
        concurrency,
        requests_per_minute: 0,
        timeout: Duration::from_secs(10),
        max_tokens: 500,
    };
    let (budget, slots) = config.limits(None);
    let analyzer = std::sync::Arc::new(LlmAnalyzer::new(config, budget, slots)?);
    let transcript =
        "assistant: Would you like a demo?\nuser: Yes I am interested, tell me more about it.";
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(analyses);
    // More analyses in flight than the cap, as the analysis lane would have.
    for _ in 0..analyses {
        let a = analyzer.clone();
        tasks.push(tokio::spawn(
            async move { a.analyze(transcript, &[]).await },
        ));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = analyses as f64 / secs;
    let ideal = concurrency as f64 / (delay_ms as f64 / 1000.0);
    let ratio = rate / ideal;
    out(format!(
        "llm:       {analyses} analyses at concurrency {concurrency}, {delay_ms} ms replies: {rate:.1}/s (ideal {ideal:.1}/s)"
    ));
    out(format!(
        "verdict:   LLM throughput / (concurrency / delay) = {ratio:.2} (goal 0.9-1.1): {}",
        if (0.9..=1.1).contains(&ratio) {
            "met"
        } else {
            "MISSED"
        }
    ));
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let (pg_admin, api_bin) = bench::targets()?;
    let calls: i64 = env_or("BENCH_CALLS", 1_000_000);
    let tenants: usize = env_or("BENCH_TENANTS", 10);
    let queries: usize = env_or("BENCH_QUERIES", 30);
    let seconds: f64 = env_or("BENCH_SECONDS", 5.0);
    out(format!(
        "Switchboard analytics benchmark: {calls} calls of one tenant among {tenants}"
    ));
    let admin = Database::connect(&pg_admin).await?;
    fresh_database(&admin, DB).await?;
    let url = db_url(&pg_admin, DB);
    let client = reqwest::Client::new();
    let (_api, base) = bench::start_api(
        &api_bin,
        &url,
        ADMIN_TOKEN,
        &[("RUN_WORKER", "false".into())],
    )
    .await?;
    let db = Database::connect(&url).await?;
    let mut first = None;
    let seeded = Instant::now();
    for i in 0..tenants {
        let (key, id) = bench::create_tenant(
            &client,
            &base,
            ADMIN_TOKEN,
            &format!("Tenant {i}"),
            "US",
            "UTC",
        )
        .await?;
        let n = if i == 0 { calls } else { (calls / 50).max(1) };
        seed(&db, &id, n).await?;
        if i == 0 {
            first = Some((key, id));
        }
    }
    db.execute_unprepared("ANALYZE").await?;
    out(format!("seeded in {:.1} s", seeded.elapsed().as_secs_f64()));
    let (key, tenant) = first.context("no tenant")?;
    analytics_figures(&client, &base, &key, &db, &url, &tenant, queries).await?;
    heuristic_throughput(seconds);
    llm_throughput(
        env_or("BENCH_LLM_DELAY_MS", 200),
        env_or("BENCH_LLM_CONCURRENCY", 8),
        env_or("BENCH_LLM_ANALYSES", 200),
    )
    .await?;
    // The bench's database is its own: left behind, it would only take space.
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    domain::install_tls_provider();
    if let Err(e) = run().await {
        eprintln!("analytics benchmark failed: {e:#}");
        std::process::exit(1);
    }
}
