//! Deletes and merges at scale, against the release API on PostgreSQL: one tenant holding
//! BENCH_CALLS (500,000) calls of BENCH_CUSTOMERS (100,000) customers, most of them placed by
//! one agent, plus BENCH_OPS (100) small agents with a few calls each. Times BENCH_OPS
//! sequential `deleteCustomer`, `mergeCustomers` and `deleteAgent` mutations end to end (HTTP
//! included) and prints p50 / p99 of each; goal: p99 < 50 ms.
//!
//! A delete sets the parent's calls' foreign key to null, which PostgreSQL looks up by that
//! column alone: without an index led by it, every delete scans the calls table.
//!
//! Usage: `cargo build --release -p api -p bench && target/release/deletes`
//! Environment: BENCH_PG, BENCH_API_BIN, BENCH_CALLS, BENCH_CUSTOMERS, BENCH_OPS;
//! BENCH_OLD_INDEXES=1 puts back the indexes led by `tenant_id` (the schema before
//! `m20261206_000018_parent_indexes`) after seeding, for a before/after with one binary.

use std::time::Instant;

use anyhow::Context;
use bench::{db_url, env_or, fresh_database, gql, out, quantile};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::json;

const ADMIN_TOKEN: &str = "bench-operator-token-0123456789";
const DB: &str = "sb_deletes";
const GOAL_MS: f64 = 50.0;

async fn seed(
    db: &DatabaseConnection,
    tenant: &str,
    calls: i64,
    customers: i64,
    small_agents: i64,
) -> anyhow::Result<()> {
    db.execute_unprepared(&format!(
        "INSERT INTO agents (id, tenant_id, name, provider, provider_agent_id, business_name, created_at, updated_at) \
         SELECT md5('{tenant}a' || i)::uuid, '{tenant}', 'Agent ' || i, 'SIMULATOR', 'sim-' || i, 'Bench Co', now(), now() \
         FROM generate_series(0, {small_agents}) i"
    ))
    .await
    .context("seeding agents")?;
    db.execute_unprepared(&format!(
        "INSERT INTO customers (id, tenant_id, phone_number, name, status, tags, source, created_at, updated_at) \
         SELECT md5('{tenant}' || i)::uuid, '{tenant}', '+1212' || lpad(i::text, 7, '0'), 'Lead ' || i, 'CONTACTED', '[]', 'BENCH', now(), now() \
         FROM generate_series(0, {last}) i",
        last = customers - 1
    ))
    .await
    .context("seeding customers")?;
    // Agent 0 placed most calls; agents 1..=small_agents placed 5 each.
    let chunk = 200_000;
    let mut from = 0;
    while from < calls {
        let to = (from + chunk).min(calls) - 1;
        db.execute_unprepared(&format!(
            "INSERT INTO calls (id, tenant_id, agent_id, customer_id, provider, provider_execution_id, direction, status, status_rank, \
             started_at, duration_seconds, cost, transcript, summary, created_at, updated_at) \
             SELECT gen_random_uuid(), '{tenant}', \
             md5('{tenant}a' || CASE WHEN i < {small} THEN 1 + i / 5 ELSE 0 END)::uuid, \
             md5('{tenant}' || (i % {customers}))::uuid, 'SIMULATOR', 'bench-' || i, 'OUTBOUND', 'COMPLETED', 9, \
             now() - (i || ' seconds')::interval, 60, 0.5, 'assistant: Hello.\nuser: Hi.', 'A short call.', now(), now() \
             FROM generate_series({from}, {to}) i",
            small = small_agents * 5,
        ))
        .await
        .context("seeding calls")?;
        from = to + 1;
    }
    if std::env::var("BENCH_OLD_INDEXES").is_ok() {
        // The schema before the parent-led indexes, for a before/after with one binary.
        for sql in [
            "CREATE INDEX idx_calls_tenant_customer ON calls (tenant_id, customer_id, id)",
            "CREATE INDEX idx_calls_tenant_agent ON calls (tenant_id, agent_id, id)",
            "DROP INDEX idx_calls_customer",
            "DROP INDEX idx_calls_agent",
        ] {
            db.execute_unprepared(sql).await?;
        }
    }
    db.execute_unprepared("ANALYZE").await?;
    Ok(())
}

async fn ids(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<String>> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get::<String>("", "id").map_err(Into::into))
        .collect()
}

/// Runs `op` for each item sequentially; returns the sorted latencies in ms.
async fn timed<F, Fut>(items: Vec<Vec<String>>, mut op: F) -> anyhow::Result<Vec<f64>>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut ms = Vec::with_capacity(items.len());
    for item in items {
        let t = Instant::now();
        op(item).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

async fn run() -> anyhow::Result<()> {
    let (pg_admin, api_bin) = bench::targets()?;
    let calls: i64 = env_or("BENCH_CALLS", 500_000);
    let customers: i64 = env_or("BENCH_CUSTOMERS", 100_000);
    let ops: i64 = env_or("BENCH_OPS", 100);
    anyhow::ensure!(
        customers >= 3 * ops && calls >= customers && calls >= ops * 5,
        "BENCH_CUSTOMERS must be at least 3 x BENCH_OPS and BENCH_CALLS at least both"
    );
    out(format!(
        "Switchboard deletes benchmark: one tenant, {calls} calls, {customers} customers, {ops} of each mutation"
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
    let (key, tenant) =
        bench::create_tenant(&client, &base, ADMIN_TOKEN, "Big", "US", "UTC").await?;
    let db = Database::connect(&url).await?;
    let t0 = Instant::now();
    seed(&db, &tenant, calls, customers, ops).await?;
    out(format!("seeded in {:.1} s", t0.elapsed().as_secs_f64()));

    // Ids are deterministic (md5 of the tenant and a number), so they are named, not read back.
    // Distinct customers for each mutation: deletes take 0..ops, merges fold ops+i into 2*ops+i.
    let customer = |i: i64| format!("md5('{tenant}' || {i})::uuid::text");
    let list = |range: std::ops::Range<i64>| {
        range
            .map(|i| format!("SELECT {} AS id", customer(i)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let deleted = ids(&db, &list(0..ops)).await?;
    let primaries = ids(&db, &list(ops..2 * ops)).await?;
    let duplicates = ids(&db, &list(2 * ops..3 * ops)).await?;
    let agents = ids(
        &db,
        &(1..=ops)
            .map(|i| format!("SELECT md5('{tenant}a' || {i})::uuid::text AS id"))
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
    )
    .await?;

    let run_op = |query: &'static str, vars: serde_json::Value| {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        async move {
            gql(&client, &base, &key, query, vars).await?;
            Ok(())
        }
    };
    let del = timed(deleted.into_iter().map(|id| vec![id]).collect(), |v| {
        run_op(
            "mutation($id: ID!) { deleteCustomer(id: $id) }",
            json!({ "id": v[0] }),
        )
    })
    .await?;
    let merge = timed(
        primaries
            .into_iter()
            .zip(duplicates)
            .map(|(p, d)| vec![p, d])
            .collect(),
        |v| {
            run_op(
                "mutation($p: ID!, $d: ID!) { mergeCustomers(primaryId: $p, duplicateId: $d) { id } }",
                json!({ "p": v[0], "d": v[1] }),
            )
        },
    )
    .await?;
    let agent = timed(agents.into_iter().map(|id| vec![id]).collect(), |v| {
        run_op(
            "mutation($id: ID!) { deleteAgent(id: $id) }",
            json!({ "id": v[0] }),
        )
    })
    .await?;
    let left: i64 = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM calls",
        ))
        .await?
        .context("count")?
        .try_get("", "n")?;
    anyhow::ensure!(left == calls, "calls were lost: {left} of {calls} left");

    out("");
    out("figure                                         p50        p99       goal       verdict");
    for (name, ms) in [
        ("deleteCustomer", &del),
        ("mergeCustomers", &merge),
        ("deleteAgent", &agent),
    ] {
        let p99 = quantile(ms, 0.99);
        out(format!(
            "{name:<16} over {calls} calls        {:>7.2}ms  {p99:>7.2}ms   < {GOAL_MS} ms   {}",
            quantile(ms, 0.5),
            if p99 < GOAL_MS { "met" } else { "MISSED" }
        ));
    }
    drop(db);
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    domain::install_tls_provider();
    if let Err(e) = run().await {
        eprintln!("deletes benchmark failed: {e:#}");
        std::process::exit(1);
    }
}
