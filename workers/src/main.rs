//! `workers`: runs the job runner against the configured database until SIGTERM/Ctrl-C.

use anyhow::Context;
use domain::settings::Settings;
use tokio::sync::watch;

// glibc malloc spent ~40% of CPU under load (many small, short-lived allocations across threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
workers::tune_allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
    let settings = Settings::from_env().context("invalid configuration")?;
    workers::init_tracing(settings.log_format);
    let mut db = domain::db::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    workers::metrics::observe_database(&mut db);
    domain::db::migrate(&db)
        .await
        .context("running migrations")?;
    let (tx, rx) = watch::channel(false);
    let metrics = match settings.worker_metrics_addr {
        Some(addr) => Some(tokio::spawn(
            workers::metrics::server(addr, rx.clone())
                .await
                .with_context(|| format!("binding WORKER_METRICS_ADDR {addr}"))?,
        )),
        None => None,
    };
    tokio::spawn(async move {
        workers::shutdown_signal().await;
        let _ = tx.send(true);
    });
    let services = domain::services::Services::start(db, &settings).context("starting services")?;
    workers::runner(services, &settings).run(rx).await;
    if let Some(server) = metrics {
        server.await.context("metrics server")??;
    }
    Ok(())
}
