//! (a) Webhook ingestion: closed-loop throughput against a pgbench one-row upsert, and
//! the acknowledgement latency of an open loop at a fixed rate.

use std::time::{Duration, Instant};

use bench::{CpuMeter, median, metric, out, quantile};
use sea_orm::DatabaseConnection;

use crate::Bench;
use crate::harness::*;

#[derive(Default, Clone, Copy)]
struct Ingestion {
    acked_per_s: f64,
    applied_per_s: f64,
    p50: f64,
    p99: f64,
    errors_5xx: u64,
    other_errors: u64,
    /// Reports per group commit, on average over both APIs.
    group: f64,
    /// CPU per acknowledged report while sending and draining, in µs: both APIs (their
    /// embedded workers included), PostgreSQL.
    cpu: (f64, f64),
}

/// The APIs' `webhook_group_reports` histogram: (sum, count) over both processes.
async fn groups(client: &reqwest::Client, apis: &[String]) -> anyhow::Result<(f64, f64)> {
    let (mut sum, mut count) = (0.0, 0.0);
    for api in apis {
        sum += metric(client, api, "webhook_group_reports_sum").await?;
        count += metric(client, api, "webhook_group_reports_count").await?;
    }
    Ok((sum, count))
}

/// Closed loop: `senders` post back to back for `seconds`, alternating between the APIs.
#[allow(clippy::too_many_arguments)]
async fn ingest_closed(
    client: &reqwest::Client,
    apis: &[String],
    pids: [u32; 2],
    token: &str,
    senders: usize,
    seconds: u64,
    tag: &str,
    db: &DatabaseConnection,
) -> anyhow::Result<Ingestion> {
    let before = groups(client, apis).await?;
    let meters = pids.map(CpuMeter::start);
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
    let acked = lat.len() as f64;
    let (api1, postgres) = meters[0].per_item_us(acked);
    let (api2, _) = meters[1].per_item_us(acked);
    let after = groups(client, apis).await?;
    lat.sort_by(f64::total_cmp);
    Ok(Ingestion {
        acked_per_s: lat.len() as f64 / sent_for.as_secs_f64(),
        applied_per_s: lat.len() as f64 / (sent_for + drained).as_secs_f64(),
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
        errors_5xx: e5,
        other_errors: other,
        group: (after.0 - before.0) / (after.1 - before.1).max(1.0),
        cpu: (api1 + api2, postgres),
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

/// Runs (a) and returns its summary lines and the median of its runs' best acknowledged
/// reports/s.
pub(crate) async fn run(b: &Bench) -> anyhow::Result<(Vec<String>, f64)> {
    let Bench {
        client,
        apis,
        tenants,
        db,
        cfg,
        ..
    } = b;
    let mut summary = Vec::new();
    out(
        "\n(a) webhook ingestion vs pgbench one-row upsert (4 clients, ~2 KB transcript, durable commits)",
    );
    let mut ratios = Vec::new();
    let mut best_runs = Vec::new();
    for run in 0..cfg.runs {
        let tps = b.ceiling()?;
        let mut best = Ingestion::default();
        let mut best_c = 0;
        for senders in [4, 8, 16, 32] {
            let r = ingest_closed(
                client,
                apis,
                [b.api1.pid(), b.api2.pid()],
                &tenants[0].token,
                senders,
                cfg.seconds,
                &format!("a{run}c{senders}"),
                db,
            )
            .await?;
            out(format!(
                "  run {} senders {senders:>2}: acked {:>6.0}/s applied {:>6.0}/s p50 {:>6.2} ms p99 {:>7.2} ms 5xx {} other {} group {:.1} cpu/report api {:.0} µs postgres {:.0} µs",
                run + 1,
                r.acked_per_s,
                r.applied_per_s,
                r.p50,
                r.p99,
                r.errors_5xx,
                r.other_errors,
                r.group,
                r.cpu.0,
                r.cpu.1
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
    let acked_per_s = median(best_runs.iter().map(|r| r.acked_per_s).collect());
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
            client,
            apis,
            &tenants[0].token,
            200,
            cfg.seconds,
            &format!("open{run}"),
        )
        .await?;
        drain(db, Duration::from_secs(60)).await?;
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
    Ok((summary, acked_per_s))
}
