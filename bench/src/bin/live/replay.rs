//! (b) Replay: 2,000 calls of five reports each plus 2,000 duplicates, shuffled, with
//! national and E.164 numbers; the store must end with one call per execution and one
//! customer per person.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::out;

use crate::Bench;
use crate::harness::*;

/// Runs (b) and returns its summary lines.
pub(crate) async fn run(b: &Bench) -> anyhow::Result<Vec<String>> {
    let Bench {
        client,
        api1,
        apis,
        db,
        ..
    } = b;
    let mut summary = Vec::new();
    out(
        "\n(b) replay: 2,000 calls x 5 reports + 2,000 duplicates, shuffled, national and E.164 numbers",
    );
    let t = create_tenant(client, &api1.base, "Replay").await?;
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
    drain(db, Duration::from_secs(120)).await?;
    let took = started.elapsed().as_secs_f64();
    let tenant_filter = "(SELECT id FROM tenants WHERE name = 'Replay')";
    let calls = scalar(
        db,
        &format!("SELECT count(*) AS n FROM calls WHERE tenant_id = {tenant_filter}"),
    )
    .await?;
    let dup_calls = scalar(db, &format!("SELECT count(*) AS n FROM (SELECT provider_execution_id FROM calls WHERE tenant_id = {tenant_filter} GROUP BY 1 HAVING count(*) > 1) d")).await?;
    let customers = scalar(
        db,
        &format!("SELECT count(*) AS n FROM customers WHERE tenant_id = {tenant_filter}"),
    )
    .await?;
    let dup_customers = scalar(db, &format!("SELECT count(*) AS n FROM (SELECT phone_number FROM customers WHERE tenant_id = {tenant_filter} GROUP BY 1 HAVING count(*) > 1) d")).await?;
    let not_completed = scalar(db, &format!("SELECT count(*) AS n FROM calls WHERE tenant_id = {tenant_filter} AND status <> 'COMPLETED'")).await?;
    let events = scalar(
        db,
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
    Ok(summary)
}
