//! The worker: claims due jobs from the database queue and runs their handlers.
//!
//! Later capabilities (call dispatch, sync, analysis) register handlers by job kind;
//! the runner owns leasing, heartbeats, retries and returning dead workers' jobs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use domain::calls::lifecycle;
use domain::ingest;
use domain::queue::{self, LeaseConfig};
use domain::services::Services;
use domain::sync;
use entity::job;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use uuid::Uuid;

pub mod jobs;
pub mod metrics;

pub type JobFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Runs one kind of job. Handlers must be idempotent: a job may run again after a crash.
pub trait JobHandler: Send + Sync {
    fn run(&self, job: job::Model) -> JobFuture;
}

impl<F, Fut> JobHandler for F
where
    F: Fn(job::Model) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn run(&self, job: job::Model) -> JobFuture {
        Box::pin(self(job))
    }
}

#[derive(Clone)]
pub struct Runner {
    db: DatabaseConnection,
    worker_id: String,
    handlers: Arc<HashMap<String, Arc<dyn JobHandler>>>,
    lease: LeaseConfig,
    poll: Duration,
    batch: u64,
    /// Job kinds enqueued once per period across all workers.
    schedules: Arc<Vec<(String, Duration)>>,
}

/// What one pass over the queue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub claimed: usize,
    pub succeeded: usize,
    pub failed: usize,
}

impl Runner {
    pub fn new(db: DatabaseConnection, poll: Duration) -> Self {
        Runner {
            db,
            worker_id: format!("worker-{}", Uuid::new_v4().simple()),
            handlers: Arc::new(HashMap::new()),
            lease: LeaseConfig::default(),
            poll,
            batch: 16,
            schedules: Arc::default(),
        }
    }

    pub fn with_lease(mut self, lease: LeaseConfig) -> Self {
        self.lease = lease;
        self
    }

    /// Registers the handler for `kind`.
    pub fn handle(mut self, kind: &str, handler: impl JobHandler + 'static) -> Self {
        Arc::make_mut(&mut self.handlers).insert(kind.to_owned(), Arc::new(handler));
        self
    }

    /// Enqueues a `kind` job once every `period`; however many workers run, one job per
    /// period is created (its id is derived from the kind and the period's number).
    pub fn every(mut self, kind: &str, period: Duration) -> Self {
        Arc::make_mut(&mut self.schedules).push((kind.to_owned(), period));
        self
    }

    /// Creates the scheduled jobs due in the current periods.
    pub async fn enqueue_scheduled(&self) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        for (kind, period) in self.schedules.iter() {
            let secs = period.as_secs().max(1) as i64;
            let bucket = now.timestamp() / secs;
            // Due at the end of its period: "every 5 minutes" starts 5 minutes after boot.
            let due = chrono::DateTime::from_timestamp((bucket + 1) * secs, 0).unwrap_or(now);
            queue::enqueue_once(&self.db, kind, bucket, serde_json::json!({}), due).await?;
        }
        Ok(())
    }

    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Claims and runs every job that was due when the pass began, then returns. Tests call
    /// this directly.
    pub async fn run_pending_jobs(&self) -> anyhow::Result<PassStats> {
        // Jobs that come due during the pass (a retry whose jittered backoff drew ~0 ms, a
        // follow-up enqueued for "now") wait for the next pass, so a pass always ends.
        let started = chrono::Utc::now();
        let mut stats = PassStats::default();
        loop {
            let jobs = queue::claim_due_by(
                &self.db,
                &self.worker_id,
                self.batch,
                self.lease.lease,
                started,
            )
            .await?;
            if jobs.is_empty() {
                return Ok(stats);
            }
            stats.claimed += jobs.len();
            let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
            let beat = self.spawn_heartbeat(ids);
            let mut tasks = Vec::with_capacity(jobs.len());
            for job in jobs {
                let runner = self.clone();
                tasks.push(tokio::spawn(async move { runner.run_one(job).await }));
            }
            for task in tasks {
                match task.await {
                    Ok(true) => stats.succeeded += 1,
                    _ => stats.failed += 1,
                }
            }
            beat.abort();
        }
    }

    fn spawn_heartbeat(&self, ids: Vec<Uuid>) -> tokio::task::JoinHandle<()> {
        let (db, worker, lease) = (self.db.clone(), self.worker_id.clone(), self.lease);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease.heartbeat);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = queue::heartbeat(&db, &worker, &ids, lease.lease).await {
                    tracing::warn!(error = %e, "job heartbeat failed");
                }
            }
        })
    }

    async fn run_one(&self, job: job::Model) -> bool {
        let started = std::time::Instant::now();
        // Kinds come from the database: only registered ones become metric labels.
        let (label, outcome) = match self.handlers.get_key_value(&job.kind) {
            Some((kind, handler)) => (kind.clone(), handler.run(job.clone()).await),
            None => (
                "unregistered".to_owned(),
                Err(format!("no handler for job kind {:?}", job.kind)),
            ),
        };
        let result = if outcome.is_ok() { "ok" } else { "error" };
        ::metrics::histogram!("job_duration_seconds", "kind" => label.clone())
            .record(started.elapsed().as_secs_f64());
        ::metrics::counter!("jobs_total", "kind" => label, "outcome" => result).increment(1);
        let recorded = match &outcome {
            Ok(()) => queue::complete(&self.db, &self.worker_id, job.id).await,
            Err(message) => {
                tracing::warn!(job.id = %job.id, job.kind = %job.kind, error = %message, "job failed");
                queue::fail(&self.db, &self.worker_id, &job, message).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(job.id = %job.id, error = %e, "could not record job outcome");
        }
        outcome.is_ok()
    }

    /// Polls until `shutdown` turns true; sweeps expired leases on the way.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker.id = %self.worker_id, kinds = self.handlers.len(), "worker started");
        let mut sweep = tokio::time::interval(self.lease.sweep);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = sweep.tick() => {
                    match queue::sweep_expired(&self.db).await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(jobs = n, "returned jobs with expired leases to the queue"),
                        Err(e) => tracing::warn!(error = %e, "lease sweep failed"),
                    }
                    if let Err(e) = queue::purge_finished(&self.db, Duration::from_secs(86_400)).await {
                        tracing::warn!(error = %e, "purging finished jobs failed");
                    }
                }
                _ = tokio::time::sleep(self.poll) => {
                    if let Err(e) = self.enqueue_scheduled().await {
                        tracing::warn!(error = %e, "scheduling jobs failed");
                    }
                    if let Err(e) = self.run_pending_jobs().await {
                        tracing::warn!(error = %e, "job pass failed");
                    }
                }
            }
            if *shutdown.borrow() {
                break;
            }
        }
        tracing::info!(worker.id = %self.worker_id, "worker stopped");
    }
}

/// The worker as the `workers` binary and the embedded default run it: every job kind
/// of the product is registered here, so both get the same set.
pub fn runner(services: Services, settings: &domain::settings::Settings) -> Runner {
    let with = |f: fn(Services, job::Model) -> JobFuture| {
        let services = services.clone();
        move |job: job::Model| f(services.clone(), job)
    };
    Runner::new(
        services.db().clone(),
        Duration::from_millis(settings.worker_poll_ms),
    )
    .handle(ingest::INGEST_JOB, with(jobs::ingest_report))
    .handle(lifecycle::PLACE_CALL_JOB, with(jobs::place_call))
    .handle(lifecycle::FOLLOW_CALL_JOB, with(jobs::follow_call))
    .handle(
        lifecycle::SIMULATOR_REPORT_JOB,
        with(jobs::simulator_report),
    )
    .handle(lifecycle::STALE_CALLS_JOB, with(jobs::stale_calls))
    .handle(sync::SYNC_JOB, with(jobs::sync_run))
    .handle(sync::SCHEDULE_JOB, with(jobs::schedule_syncs))
    .handle(sync::RECONCILE_JOB, with(jobs::reconcile))
    .every(
        lifecycle::STALE_CALLS_JOB,
        Duration::from_secs(settings.providers.stale_call_seconds.clamp(10, 300)),
    )
    .every(
        sync::SCHEDULE_JOB,
        Duration::from_secs(settings.providers.sync_interval_seconds),
    )
    .every(
        sync::RECONCILE_JOB,
        Duration::from_secs(settings.providers.reconcile_interval_seconds),
    )
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
