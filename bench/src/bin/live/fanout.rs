//! (c, d) Subscription fan-out across two API processes sharing Redis: latency from the
//! webhook POST to each subscriber's receipt, order per call, loss, and behaviour at twice
//! the rate (memory, dashboard queries, lagging clients).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use bench::{gql, median, metric, out, quantile, rss_kb};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::Bench;
use crate::Config;
use crate::harness::*;

pub(crate) type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn ws_connect(port: u16, key: &str, query: &str) -> anyhow::Result<WsStream> {
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

pub(crate) const SUBSCRIPTION: &str =
    "subscription { callUpdated { status call { providerExecutionId } } }";

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
                    let r = rank(status);
                    let key_status = STATUSES[(r.max(1) - 1) as usize];
                    let posted = sent
                        .lock()
                        .ok()
                        .and_then(|m| m.get(&(exec.to_owned(), key_status)).copied());
                    // Only this run's reports count: a call of an earlier scenario may
                    // still change on the same tenant (its analysis lands a moment after
                    // it ended).
                    let Some(t0) = posted else {
                        continue;
                    };
                    receipts.received.fetch_add(1, Ordering::Relaxed);
                    let prev = last.insert(exec.to_owned(), r).unwrap_or(0);
                    if r <= prev {
                        receipts.reordered.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut l) = receipts.latencies.lock() {
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

/// Runs (c) at `rate` reports/s (`basis` says where it came from) and (d) at twice it, as
/// asked for.
pub(crate) async fn run(b: &Bench, rate: u64, basis: &str) -> anyhow::Result<Vec<String>> {
    let Bench {
        cfg,
        client,
        api1,
        api2,
        tenants,
        db,
        ..
    } = b;
    let mut summary = Vec::new();
    let fan = |name: &'static str, rate: u64| (name, rate);
    for (part, rate) in [fan("c", rate), fan("d", rate * 2)] {
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
                cfg,
                client,
                &[api1, api2],
                tenants,
                rate,
                &format!("{part}{run}"),
            )
            .await?;
            drain(db, Duration::from_secs(60)).await?;
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
                "(c) report rate                               {rate:>8}/s ({basis})"
            ));
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
    Ok(summary)
}
