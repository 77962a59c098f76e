//! `workers`: runs the job runner against the configured database until SIGTERM/Ctrl-C.

use anyhow::Context;
use domain::settings::{LogFormat, Settings};
use tokio::sync::watch;

// glibc malloc spent ~40% of CPU under load (many small, short-lived allocations across threads).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("invalid configuration")?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let db = domain::db::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    domain::db::migrate(&db)
        .await
        .context("running migrations")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        workers::shutdown_signal().await;
        let _ = tx.send(true);
    });
    workers::runner(db, &settings).run(rx).await;
    Ok(())
}
