//! `workers`: runs the job runner against the configured database until SIGTERM/Ctrl-C.

use anyhow::Context;
use domain::settings::Settings;
use tokio::sync::watch;

// glibc malloc spent ~40% of CPU under load (many small, short-lived allocations across threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    domain::install_tls_provider();
    let settings = Settings::from_env().context("invalid configuration")?;
    workers::init_tracing(settings.log_format);
    let db = domain::db::open(&settings.database)
        .await
        .context("opening the database")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        workers::shutdown_signal().await;
        let _ = tx.send(true);
    });
    let services = domain::services::Services::start(db, &settings).context("starting services")?;
    workers::runner(services, &settings).run(rx).await;
    Ok(())
}
