//! Sync benchmark: a local fake Bolna serving BENCH_EXECUTIONS (100,000) executions in
//! pages of 50 over two 7-day windows, synced into PostgreSQL end to end by the release
//! API's embedded worker (HTTP paging, routing, customer dedupe, call upsert), then synced
//! again (all duplicates). The ceiling is pgbench inserting 100-row `INSERT .. ON CONFLICT`
//! batches of the calls-like row from one client, measured in the same run. A second
//! reference, without a goal, is pgbench writing the same calls and events into the real
//! schema (see `schema_reference`).
//!
//! Then, in the same API process, a first pull of BENCH_PEOPLE (10,000) people from a fake
//! Twenty with no rate limit (pages of 60, ordered by `updatedAt`), as a ratio to the first
//! sync's executions/s.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/sync`
//! Environment: BENCH_PG, BENCH_SECONDS (10, the pgbench duration), BENCH_EXECUTIONS
//! (100000), BENCH_PEOPLE (10000), BENCH_API_BIN.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path, Query, State};
use bench::{
    Proc, SECRETS_KEY, calls_like_database, db_url, env_or, free_port, fresh_database, gql, out,
    pgbench, rss_kb, wait_http,
};
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789";
const DB: &str = "sb_sync";
const PGB_DB: &str = "sb_sync_pgbench";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

#[derive(Clone)]
struct Fake {
    total: usize,
}

impl Fake {
    /// Execution `i` happens at `start + i * step`, over 14 days.
    fn at(&self, i: usize) -> DateTime<Utc> {
        let step = 14 * 86_400_000 / self.total as i64;
        start() + chrono::Duration::milliseconds(i as i64 * step)
    }

    fn body(&self, i: usize) -> Value {
        let at = self.at(i).to_rfc3339();
        json!({ "id": format!("exec-{i:07}"), "agent_id": "bench-agent", "status": "completed",
                "created_at": at, "updated_at": at, "conversation_duration": 61.5, "total_cost": 5.5,
                "transcript": format!("assistant: hello, calling about your enquiry\nuser: yes, tell me more {i}\nassistant: we have two options\nuser: send details"),
                "summary": "Asked for details.",
                "telephony_data": { "to_number": format!("+9198{:08}", i % 20_000), "call_type": "outbound", "duration": "62" },
                "extracted_data": { "intent": "interested" } })
    }
}

async fn agents() -> axum::Json<Value> {
    axum::Json(json!([{ "id": "bench-agent", "agent_name": "Bench" }]))
}

async fn executions(
    State(fake): State<Arc<Fake>>,
    Path(_agent): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::Json<Value> {
    let page: usize = q
        .get("page_number")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let size: usize = q
        .get("page_size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .min(50);
    let from: DateTime<Utc> = q
        .get("from")
        .and_then(|v| v.parse().ok())
        .unwrap_or(start());
    let to: DateTime<Utc> = q.get("to").and_then(|v| v.parse().ok()).unwrap_or(start());
    // Indices in [from, to], newest first (times grow with the index).
    let step = 14 * 86_400_000 / fake.total as i64;
    let ms = |t: DateTime<Utc>| (t - start()).num_milliseconds();
    let lo = (ms(from).max(0) + step - 1) / step;
    let hi = (ms(to) / step).min(fake.total as i64 - 1);
    let count = (hi - lo + 1).max(0) as usize;
    let first = (page - 1) * size;
    let slice: Vec<Value> = (0..size)
        .map(|k| first + k)
        .take_while(|k| *k < count)
        .map(|k| fake.body((hi as usize) - k))
        .collect();
    let ids = vec![(); count];
    let has_more = page * size < ids.len();
    axum::Json(
        json!({ "page_number": page, "page_size": size, "total": ids.len(), "has_more": has_more, "data": slice }),
    )
}

/// A Twenty workspace of `total` people, person `i` changed at `start + i` seconds.
struct People {
    people: Vec<Value>,
}

impl People {
    fn new(total: usize) -> People {
        let people = (0..total)
            .map(|i| {
                let at = (start() + chrono::Duration::seconds(i as i64))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                json!({ "id": format!("person-{i:07}"), "createdAt": at, "updatedAt": at, "deletedAt": null,
                        "name": { "firstName": format!("First{i}"), "lastName": "Bench" },
                        "emails": { "primaryEmail": format!("p{i}@bench.example"), "additionalEmails": [] },
                        "phones": { "primaryPhoneNumber": format!("97{:08}", i), "primaryPhoneCallingCode": "+91",
                                    "primaryPhoneCountryCode": "IN", "additionalPhones": [] } })
            })
            .collect();
        People { people }
    }
}

async fn people(
    State(p): State<Arc<People>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> axum::Json<Value> {
    let limit: usize = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
        .min(60);
    let since = q
        .get("filter")
        .and_then(|f| f.strip_prefix("updatedAt[gte]:"))
        .map(|v| v.trim_matches('"').to_owned());
    let mut from = match since {
        Some(s) => p
            .people
            .partition_point(|x| x["updatedAt"].as_str().unwrap_or("") < s.as_str()),
        None => 0,
    };
    if let Some(after) = q.get("starting_after") {
        from = after
            .strip_prefix("person-")
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(p.people.len(), |n| n + 1);
    }
    let page: Vec<Value> = p.people.iter().skip(from).take(limit).cloned().collect();
    let has_next = from + page.len() < p.people.len();
    let end = page.last().map(|x| x["id"].clone());
    axum::Json(
        json!({ "data": { "people": page }, "totalCount": p.people.len(),
                       "pageInfo": { "hasNextPage": has_next, "endCursor": end } }),
    )
}

struct Sync {
    seconds: f64,
    run: Value,
    peak_rss_mb: f64,
}

async fn sync_once(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    pid: u32,
) -> anyhow::Result<Sync> {
    let until = start() + chrono::Duration::days(14) + chrono::Duration::minutes(1);
    let started = Instant::now();
    let data = gql(
        client,
        base,
        key,
        "mutation($s: DateTime!, $u: DateTime!) { triggerSync(input: {provider: BOLNA, since: $s, until: $u}) { id } }",
        json!({ "s": start().to_rfc3339(), "u": until.to_rfc3339() }),
    )
    .await?;
    let id = data["triggerSync"]["id"].as_str().context("id")?.to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            peak
        })
    };
    let run = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let d = gql(
            client,
            base,
            key,
            "query($id: ID!) { syncRun(id: $id) { status totalCalls syncedCalls duplicateCalls newCustomers updatedCustomers skippedNoPhone skippedUnknownAgent errors } }",
            json!({ "id": id }),
        )
        .await?;
        if d["syncRun"]["status"] != "RUNNING" {
            break d["syncRun"].clone();
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await?;
    Ok(Sync {
        seconds,
        run,
        peak_rss_mb: peak as f64 / 1024.0,
    })
}

async fn run() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let pg_admin = std::env::var("BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let api_bin =
        std::env::var("BENCH_API_BIN").unwrap_or_else(|_| format!("{root}/target/release/api"));
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let total: usize = env_or("BENCH_EXECUTIONS", 100_000);
    let people_total: usize = env_or("BENCH_PEOPLE", 10_000);
    if !std::path::Path::new(&api_bin).exists() {
        bail!("{api_bin} not found: run `cargo build --release -p api -p bench` first");
    }
    out(format!(
        "Switchboard sync benchmark: {total} executions in pages of 50, one run each"
    ));
    let admin = Database::connect(&pg_admin).await?;

    // Ceiling: 100-row upsert batches from one client.
    let pgb_url = calls_like_database(&admin, &pg_admin, PGB_DB).await?;
    let script = std::env::temp_dir().join(format!("sb-batch-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set base random(1, 10000000)\n\
         INSERT INTO calls_like SELECT '00000000-0000-0000-0000-000000000001', 'BOLNA', 'exec-' || (:base + g), 'COMPLETED', 9, \
         repeat('assistant: hello user: yes ', 6), now() FROM generate_series(1, 100) g \
         ON CONFLICT (tenant_id, provider, execution_id) DO UPDATE SET status = excluded.status, status_rank = excluded.status_rank, \
         transcript = excluded.transcript, updated_at = excluded.updated_at;\n",
    )?;
    let tps = pgbench(
        &pgb_url,
        &[
            "-n",
            "-c1",
            "-j1",
            "-T",
            &seconds.to_string(),
            "-f",
            &script.to_string_lossy(),
        ],
    )?;
    let ceiling = tps * 100.0;
    out(format!(
        "ceiling: pgbench 100-row upsert batches, 1 client: {tps:.0} tps = {ceiling:.0} rows/s"
    ));

    // The fake provider.
    let fake_port = free_port()?;
    let app = axum::Router::new()
        .route("/v2/agent/all", axum::routing::get(agents))
        .route("/v2/agent/{id}/executions", axum::routing::get(executions))
        .with_state(Arc::new(Fake { total }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", fake_port)).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let twenty_port = free_port()?;
    let twenty = axum::Router::new()
        .route("/rest/people", axum::routing::get(people))
        .with_state(Arc::new(People::new(people_total)));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", twenty_port)).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, twenty).await;
    });

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
            .env("SEED_DEMO", "false")
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SECRETS_KEY", SECRETS_KEY)
            .env("ALLOW_PROVIDER_BASE_URL", "true")
            .env("PROVIDER_BASE_URL_ALLOWLIST", "127.0.0.1")
            .env("SYNC_INTERVAL_SECONDS", "86400")
            // The fake is local: Bolna's request budget would cap the run at 450 pages a minute.
            .env("BOLNA_REQUESTS_PER_MINUTE", "0")
            .env("RECONCILE_INTERVAL_SECONDS", "604800")
            // The fake Twenty is local and unlimited: no request budget in the way.
            .env("CRM_REQUESTS_PER_MINUTE", "10000000")
            .env("CRM_SYNC_INTERVAL_SECONDS", "86400")
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
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&client, &format!("{base}/readyz")).await?;
    let data = gql(
        &client,
        &base,
        ADMIN_TOKEN,
        "mutation { createTenant(input: {name: \"Sync bench\", defaultRegion: \"IN\"}) { apiKey } }",
        json!({}),
    )
    .await?;
    let key = data["createTenant"]["apiKey"]
        .as_str()
        .context("key")?
        .to_owned();
    gql(&client, &base, &key, "mutation($u: String) { setProviderCredentials(input: {provider: BOLNA, apiKey: \"bn\", baseUrl: $u}) }", json!({ "u": format!("http://127.0.0.1:{fake_port}") })).await?;
    gql(&client, &base, &key, "mutation { createAgent(input: {name: \"Bench\", provider: BOLNA, providerAgentId: \"bench-agent\", businessName: \"Bench Homes\"}) { id } }", json!({})).await?;

    let first = sync_once(&client, &base, &key, api.0.id()).await?;
    let rate1 = total as f64 / first.seconds;
    out(format!(
        "first sync:  {:.1} s, {rate1:.0} executions/s, peak RSS {:.0} MB: {}",
        first.seconds, first.peak_rss_mb, first.run
    ));
    // Every synced call has a transcript: the worker analyses them all. Waiting here keeps
    // that work out of the re-run's figure, and says how far analysis trails the sync.
    let analysed_db = Database::connect(&url).await?;
    let waited = Instant::now();
    let mut analysed = 0i64;
    let mut progress = Instant::now();
    while (analysed as usize) < total && progress.elapsed() < Duration::from_secs(60) {
        let row = analysed_db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT count(*) AS n FROM call_analyses WHERE current",
            ))
            .await?
            .context("count")?;
        let n: i64 = row.try_get("", "n")?;
        if n > analysed {
            analysed = n;
            progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let trail = waited.elapsed().as_secs_f64();
    analysed_db.close().await?;
    out(format!(
        "analysis:    {analysed} of {total} calls analysed {trail:.1} s after the first sync ended \
         ({:.0} analyses/s from the sync's start)",
        analysed as f64 / (first.seconds + trail)
    ));
    let second = sync_once(&client, &base, &key, api.0.id()).await?;
    let rate2 = total as f64 / second.seconds;
    out(format!(
        "re-run:      {:.1} s, {rate2:.0} executions/s, peak RSS {:.0} MB: {}",
        second.seconds, second.peak_rss_mb, second.run
    ));

    // A first CRM pull, in the same process, for a tenant of its own (the synced calls'
    // analyses would otherwise queue pushes of their customers behind the pull):
    // connecting starts it.
    let data = gql(
        &client,
        &base,
        ADMIN_TOKEN,
        "mutation { createTenant(input: {name: \"CRM bench\", defaultRegion: \"IN\"}) { apiKey } }",
        json!({}),
    )
    .await?;
    let key = data["createTenant"]["apiKey"]
        .as_str()
        .context("key")?
        .to_owned();
    let started = Instant::now();
    gql(
        &client,
        &base,
        &key,
        "mutation($u: String!) { connectTwenty(input: {baseUrl: $u, apiKey: \"tw\", webhookSecret: \"s\"}) { baseUrl } }",
        json!({ "u": format!("http://127.0.0.1:{twenty_port}") }),
    )
    .await?;
    let crm_run = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let d = gql(
            &client,
            &base,
            &key,
            "{ syncRuns(first: 5) { edges { node { crm status newCustomers updatedCustomers skipped errors } } } }",
            json!({}),
        )
        .await?;
        let run = d["syncRuns"]["edges"].as_array().and_then(|e| {
            e.iter()
                .map(|e| e["node"].clone())
                .find(|n| n["crm"] == "TWENTY")
        });
        if let Some(run) = run
            && run["status"] != "RUNNING"
        {
            break run;
        }
    };
    let crm_seconds = started.elapsed().as_secs_f64();
    let crm_rate = people_total as f64 / crm_seconds;
    out(format!(
        "CRM pull:    {crm_seconds:.1} s, {crm_rate:.0} people/s: {crm_run}"
    ));

    drop(api);
    let schema = schema_reference(&url, total, seconds)?;
    out(format!(
        "reference:   pgbench, 2 clients, 100-row batches of the same calls (+ one event each) into the migrated schema: {schema:.0} rows/s"
    ));

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    out("\nfigure                                          measured     goal       verdict");
    let r = rate1 / ceiling;
    out(format!(
        "first sync / pgbench batch upsert rows/s       {r:>8.3}x   >= 0.45x   {}",
        verdict(r >= 0.45)
    ));
    let peak = first.peak_rss_mb.max(second.peak_rss_mb);
    out(format!(
        "peak RSS of the API process                    {peak:>7.0}MB   < 150 MB   {}",
        verdict(peak < 150.0)
    ));
    let r = rate2 / rate1;
    out(format!(
        "re-run rate / first rate                       {r:>8.2}x   >= 2x      {}",
        verdict(r >= 2.0)
    ));
    out(format!(
        "first sync / schema reference (no goal)        {:>8.3}x",
        rate1 / schema
    ));
    out(format!(
        "CRM first pull people/s / first sync executions/s (no goal) {:>6.3}x",
        crm_rate / rate1
    ));
    let crm_ok = crm_run["status"] == "SUCCEEDED"
        && crm_run["newCustomers"].as_u64() == Some(people_total as u64);
    out(format!(
        "every person became a customer                 {crm_ok:>8}              {}",
        verdict(crm_ok)
    ));
    let ok = first.run["syncedCalls"] == total && second.run["duplicateCalls"] == total;
    out(format!(
        "all synced once, all duplicates on re-run      {ok:>8}              {}",
        verdict(ok)
    ));

    let _ = std::fs::remove_file(&script);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {PGB_DB} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// What the real schema accepts, to set the sync against: pgbench writing the benchmark's
/// calls (same transcript, extraction and raw body, a customer looked up per row) with one
/// event each, in 100-row statements from 2 clients (the sync writes with 2), into the
/// database the sync just filled, so the tables hold what they hold during a sync. No
/// HTTP, parsing, routing or customer upserts: the share of the work that is pure storage.
fn schema_reference(url: &str, total: usize, seconds: u64) -> anyhow::Result<f64> {
    let raw = Fake { total }.body(0).to_string().replace('\'', "''");
    let transcript = Fake { total }.body(0)["transcript"]
        .as_str()
        .unwrap_or_default()
        .replace('\'', "''");
    let script = std::env::temp_dir().join(format!("sb-schema-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "\\set base random(1, 1000000000)\n\
             WITH a AS (SELECT id, tenant_id FROM agents WHERE provider_agent_id = 'bench-agent' LIMIT 1), \
             ins AS (INSERT INTO calls (id, tenant_id, agent_id, customer_id, provider, provider_execution_id, direction, \
             status, status_rank, to_number, started_at, duration_seconds, cost, transcript, summary, extracted_data, \
             raw_payload, created_at, updated_at) \
             SELECT gen_random_uuid(), a.tenant_id, a.id, (SELECT c.id FROM customers c WHERE c.tenant_id = a.tenant_id \
             AND c.phone_number = '+9198' || lpad(((:base + g) % 20000)::text, 8, '0')), 'BOLNA', 'pgb-' || :base || '-' || g, \
             'OUTBOUND', 'COMPLETED', 9, '+919800000001', now(), 61.5, 5.5, '{transcript}', 'Asked for details.', \
             '{{\"intent\": \"interested\"}}', '{raw}', now(), now() FROM a, generate_series(1, 100) g \
             ON CONFLICT (tenant_id, provider, provider_execution_id) DO UPDATE SET status = excluded.status, \
             updated_at = excluded.updated_at RETURNING id, tenant_id) \
             INSERT INTO call_events (id, tenant_id, call_id, status, source, at) \
             SELECT gen_random_uuid(), tenant_id, id, 'COMPLETED', 'SYNC', now() FROM ins;\n"
        ),
    )?;
    let tps = pgbench(
        url,
        &[
            "-n",
            "-c2",
            "-j2",
            "-T",
            &seconds.to_string(),
            "-f",
            &script.to_string_lossy(),
        ],
    );
    let _ = std::fs::remove_file(&script);
    Ok(tps? * 100.0)
}

fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}
