//! Start-up and shutdown: connect, migrate, seed, serve, run the embedded worker.

use std::io::Write;

use anyhow::Context;
use domain::settings::Settings;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{AppState, router};

/// Connects, migrates and (for the embedded default) creates the demo tenant.
pub async fn prepare(settings: Settings) -> anyhow::Result<AppState> {
    let mut db = domain::db::connect(&settings.database)
        .await
        .context("connecting to the database")?;
    workers::metrics::observe_database(&mut db);
    domain::db::migrate(&db)
        .await
        .context("running migrations")?;
    let demo = if settings.seed_demo {
        domain::seed::demo_tenant_if_empty(&db)
            .await
            .context("creating the demo tenant")?
    } else {
        None
    };
    let state = AppState::new(db, settings)?;
    if let Some(demo) = demo {
        // Shown once, on the terminal (stderr), never in the log stream (stdout).
        let mut out = std::io::stderr().lock();
        let _ = writeln!(
            out,
            "\nCreated demo tenant \"Demo\" with a simulator agent, its recent calls and a running campaign.\nIts ADMIN API key (shown only now):\n\n    {}\n",
            demo.key.key
        );
        drop(out);
        // The tenant and its key stand either way; the demo's activity is a nicety.
        if let Err(e) = domain::seed::demo_activity(&state.services, &demo).await {
            tracing::warn!(error = %e, "could not start the demo's sync and campaign");
        }
    }
    Ok(state)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    workers::shutdown_signal().await
}

/// Serves until `shutdown` resolves, draining in-flight requests; runs the worker
/// in-process when `RUN_WORKER` is on.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = state.settings.run_worker.then(|| {
        tokio::spawn(workers::runner(state.services.clone(), &state.settings).run(stop_rx))
    });
    let app = router(state);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down");
    })
    .await
    .context("serving HTTP")?;
    let _ = stop_tx.send(true);
    if let Some(w) = worker {
        let _ = w.await;
    }
    Ok(())
}
