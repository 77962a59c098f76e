//! (e) Memory per idle subscriber on a fresh API process.

use std::time::Duration;

use bench::{median, out, rss_kb};

use crate::Bench;
use crate::fanout::{SUBSCRIPTION, ws_connect};
use crate::harness::*;

/// Runs (e) and returns its summary lines.
pub(crate) async fn run(b: &Bench) -> anyhow::Result<Vec<String>> {
    let Bench {
        cfg,
        client,
        tenants,
        url,
        ..
    } = b;
    let mut summary = Vec::new();
    out(format!(
        "\n(e) memory per idle subscriber ({} subscriptions on one fresh API process)",
        cfg.idle
    ));
    let mut per_sub = Vec::new();
    for run in 0..cfg.runs {
        let api3 = spawn_api(cfg, client, url, false).await?;
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
    Ok(summary)
}
