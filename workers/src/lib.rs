//! The worker: runs the product's jobs (`domain::jobs::kinds::product`) on the runner
//! (`runner`), which owns lanes, leasing, heartbeats, retries and waking; plus the
//! process's metrics and logging set-up, shared with the API binary.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::jobs::{Lane, kinds};
use domain::services::Services;

pub mod allocator;
pub mod metrics;
pub mod runner;

pub use runner::{PassStats, Runner};

/// The worker as the `workers` binary and the embedded default run it: every job kind
/// of the product, each lane with its configured concurrency.
pub fn runner(services: Services, settings: &domain::settings::Settings) -> Runner<Services> {
    let w = &settings.worker;
    let concurrency = BTreeMap::from([
        (Lane::Calls, w.calls),
        (Lane::Ingest, w.ingest),
        (Lane::Sync, w.sync),
        (Lane::Campaigns, w.campaigns),
        (Lane::Analysis, w.analysis),
        (Lane::Maintenance, w.maintenance),
        (Lane::Webhooks, w.webhooks),
    ]);
    let registry = kinds::product(
        &settings.providers,
        &settings.crm,
        services.analyzer().is_some(),
    );
    Runner::new(
        services.db().clone(),
        services,
        registry,
        Duration::from_millis(w.poll_ms),
        &concurrency,
    )
    .with_lease(lease(w.lease_seconds))
}

/// Heartbeats three times per lease, so one late beat never loses it; expired leases are
/// looked for twice per lease.
fn lease(seconds: u64) -> domain::jobs::LeaseConfig {
    let lease = Duration::from_secs(seconds);
    domain::jobs::LeaseConfig {
        lease,
        heartbeat: lease / 3,
        sweep: lease / 2,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Logs for both binaries: human-readable or JSON (`LOG_FORMAT`), filtered by `RUST_LOG`.
pub fn init_tracing(format: domain::settings::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        domain::settings::LogFormat::Json => builder.json().init(),
        domain::settings::LogFormat::Text => builder.init(),
    }
}
