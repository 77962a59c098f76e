//! The job runner: one loop per lane claims due jobs as long as the lane has a free slot
//! (a finished job frees its slot at once), runs each in its own task with the kind's
//! timeout, and records the outcome. Alongside: heartbeats for the leases it holds, the
//! sweep that takes back expired leases, the periodic schedules, and on PostgreSQL a
//! listener that wakes lanes when another process enqueues a job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::jobs::queue::{self, Ending};
use domain::jobs::{JobRun, Lane, LeaseConfig, Outcome, Registry};
use entity::job;
use sea_orm::{DatabaseBackend, DatabaseConnection};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;
use uuid::Uuid;

/// The PostgreSQL channel the jobs table's trigger notifies (payload: the lane).
const NOTIFY_CHANNEL: &str = "switchboard_jobs";
/// How long shutdown waits for jobs in flight before leaving them to the lease sweep.
const DRAIN: Duration = Duration::from_secs(30);

/// What [`Runner::run_pending_jobs`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassStats {
    pub claimed: usize,
    pub succeeded: usize,
    pub failed: usize,
}

struct Inner<C> {
    db: DatabaseConnection,
    ctx: C,
    registry: Registry<C>,
    worker_id: String,
    lease: LeaseConfig,
    poll: Duration,
    slots: BTreeMap<Lane, Arc<Semaphore>>,
    capacity: BTreeMap<Lane, usize>,
    /// Jobs this process is running, for heartbeats.
    in_flight: Mutex<HashSet<Uuid>>,
    /// The tenant each lane served last, so claims take tenants in turn.
    cursors: Mutex<HashMap<Lane, String>>,
}

/// Runs jobs of the kinds in its registry. Cheap to clone.
pub struct Runner<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Runner<C> {
    fn clone(&self) -> Self {
        Runner {
            inner: self.inner.clone(),
        }
    }
}

/// How one run ended, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    Succeeded,
    Retried,
    Snoozed,
    Failed,
    /// The lease was lost; nothing was recorded.
    Lost,
}

impl Counted {
    fn label(self) -> &'static str {
        match self {
            Counted::Succeeded => "succeeded",
            Counted::Retried => "retried",
            Counted::Snoozed => "snoozed",
            Counted::Failed => "failed",
            Counted::Lost => "lost",
        }
    }
}

/// What a run's result means for one of the jobs it ran.
enum Decision {
    Record(Ending, Counted),
    /// Its last attempt failed: the kind's `gave_up`, then failed.
    GiveUp(String),
}

fn decide<C>(
    job: &job::Model,
    kind: &domain::jobs::Kind<C>,
    result: &Result<Outcome, String>,
    now: chrono::DateTime<Utc>,
) -> Decision {
    let last = job.attempts >= job.max_attempts;
    match result {
        Ok(Outcome::Done) => Decision::Record(Ending::Done, Counted::Succeeded),
        Ok(Outcome::Snooze(until)) => Decision::Record(
            Ending::Again {
                at: *until,
                spent: false,
                error: None,
            },
            Counted::Snoozed,
        ),
        Ok(Outcome::Fail(reason)) => {
            Decision::Record(Ending::Failed(reason.clone()), Counted::Failed)
        }
        Ok(Outcome::Retry {
            after,
            spend_attempt,
            reason,
        }) if !(*spend_attempt && last) => Decision::Record(
            Ending::Again {
                at: now + chrono::Duration::from_std(*after).unwrap_or_default(),
                spent: *spend_attempt,
                error: Some(reason.clone()),
            },
            Counted::Retried,
        ),
        Ok(Outcome::Retry { reason, .. }) => Decision::GiveUp(reason.clone()),
        Err(error) if last => Decision::GiveUp(error.clone()),
        Err(error) => {
            let delay = kind.retry_in(job.attempts);
            Decision::Record(
                Ending::Again {
                    at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                    spent: true,
                    error: Some(error.clone()),
                },
                Counted::Retried,
            )
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Runner<C> {
    /// A runner for `registry`'s kinds with `concurrency` slots per lane (lanes not named
    /// get 1) polling every `poll` when nothing wakes it.
    pub fn new(
        db: DatabaseConnection,
        ctx: C,
        registry: Registry<C>,
        poll: Duration,
        concurrency: &BTreeMap<Lane, usize>,
    ) -> Self {
        let capacity: BTreeMap<Lane, usize> = registry
            .lanes()
            .into_iter()
            .map(|lane| (lane, concurrency.get(&lane).copied().unwrap_or(1).max(1)))
            .collect();
        let slots = capacity
            .iter()
            .map(|(lane, n)| (*lane, Arc::new(Semaphore::new(*n))))
            .collect();
        Runner {
            inner: Arc::new(Inner {
                db,
                ctx,
                registry,
                worker_id: format!("worker-{}", Uuid::new_v4().simple()),
                lease: LeaseConfig::default(),
                poll,
                slots,
                capacity,
                in_flight: Mutex::new(HashSet::new()),
                cursors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Replaces the lease periods (before the runner is cloned or started).
    pub fn with_lease(mut self, lease: LeaseConfig) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.lease = lease,
            None => tracing::warn!("with_lease on a shared runner is ignored"),
        }
        self
    }

    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// Creates the scheduled jobs due in the current periods; however many workers run,
    /// one job per period is created (its id comes from the kind and the period's number).
    pub async fn enqueue_scheduled(&self) -> anyhow::Result<()> {
        let now = Utc::now();
        for s in self.inner.registry.schedules() {
            let secs = s.period.as_secs().max(1) as i64;
            let bucket = now.timestamp() / secs;
            // Due at the end of its period: "every 5 minutes" starts 5 minutes after boot.
            let due = chrono::DateTime::from_timestamp((bucket + 1) * secs, 0).unwrap_or(now);
            queue::enqueue_once(
                &self.inner.db,
                s.kind,
                s.lane,
                bucket,
                s.payload.clone(),
                due,
            )
            .await?;
        }
        Ok(())
    }

    /// Claims the next due job of `lane` (tenants in turn), with the due jobs of its kind
    /// and tenant a gathering kind runs with it.
    async fn claim(
        &self,
        lane: Lane,
        due_by: chrono::DateTime<Utc>,
    ) -> anyhow::Result<Option<Vec<job::Model>>> {
        let after = self
            .inner
            .cursors
            .lock()
            .ok()
            .and_then(|c| c.get(&lane).cloned());
        let db = &self.inner.db;
        let (worker, lease) = (&self.inner.worker_id, self.inner.lease.lease);
        let Some(first) =
            queue::claim_next(db, lane, worker, lease, after.as_deref(), due_by).await?
        else {
            return Ok(None);
        };
        // A job being retried runs alone (and only jobs never run are gathered): after a
        // gathered run fails, each job tries alone, so one bad job fails only itself.
        let gather = match self.inner.registry.get(&first.kind) {
            Some(kind) if first.attempts == 1 => kind.gather,
            _ => 1,
        };
        let more = if gather > 1 {
            match queue::claim_gathered(db, &first, worker, lease, gather - 1, due_by).await {
                Ok(more) => more,
                // The first job is claimed: it runs alone rather than waiting for its lease.
                Err(e) => {
                    tracing::warn!(%lane, error = %e, "gathering jobs to run together failed");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let mut claimed = Vec::with_capacity(1 + more.len());
        claimed.push(first);
        claimed.extend(more);
        if let Ok(mut c) = self.inner.cursors.lock() {
            c.insert(lane, claimed[0].tenant_key.clone());
        }
        if let Ok(mut f) = self.inner.in_flight.lock() {
            f.extend(claimed.iter().map(|j| j.id));
        }
        ::metrics::counter!("jobs_total", "kind" => self.label(&claimed[0].kind), "lane" => lane.as_str(), "outcome" => "claimed")
            .increment(claimed.len() as u64);
        Ok(Some(claimed))
    }

    /// The kind as a metric label: only registered kinds (kinds come from the database).
    fn label(&self, kind: &str) -> &'static str {
        self.inner
            .registry
            .get(kind)
            .map_or("unregistered", |k| k.kind)
    }

    /// Claims and runs every job that was due when the pass began, each lane up to its
    /// concurrency, and returns when all have finished. Tests call this directly.
    pub async fn run_pending_jobs(&self) -> anyhow::Result<PassStats> {
        // Jobs that come due during the pass (a retry whose jittered backoff drew ~0 ms, a
        // follow-up enqueued for "now") wait for the next pass, so a pass always ends.
        let started = Utc::now();
        let mut stats = PassStats::default();
        let mut tasks = Vec::new();
        let beat = self.spawn_heartbeat();
        let lanes: Vec<Lane> = self.inner.slots.keys().copied().collect();
        let mut open: HashSet<Lane> = lanes.iter().copied().collect();
        while !open.is_empty() {
            for lane in &lanes {
                if !open.contains(lane) {
                    continue;
                }
                let permit = self.inner.slots[lane].clone().acquire_owned().await?;
                match self.claim(*lane, started).await? {
                    Some(claimed) => {
                        stats.claimed += claimed.len();
                        let runner = self.clone();
                        tasks.push(tokio::spawn(async move {
                            let counted = runner.execute(claimed).await;
                            drop(permit);
                            counted
                        }));
                    }
                    None => {
                        open.remove(lane);
                    }
                }
            }
        }
        for task in tasks {
            match task.await {
                Ok(counted) => {
                    for c in counted {
                        match c {
                            Counted::Succeeded => stats.succeeded += 1,
                            _ => stats.failed += 1,
                        }
                    }
                }
                Err(_) => stats.failed += 1,
            }
        }
        beat.abort();
        Ok(stats)
    }

    /// Runs claimed jobs (one, or a gathering kind's several) to an outcome and records
    /// each job's.
    async fn execute(&self, claimed: Vec<job::Model>) -> Vec<Counted> {
        let Some(first) = claimed.first() else {
            return Vec::new();
        };
        let started = Instant::now();
        let lane = Lane::parse(&first.lane).unwrap_or(Lane::Maintenance);
        let label = self.label(&first.kind);
        let span = tracing::info_span!(
            "job",
            job.kind = %first.kind,
            job.id = %first.id,
            job.lane = %lane,
            tenant.id = %first.tenant_key,
            job.attempt = first.attempts,
            job.gathered = claimed.len(),
        );
        let counted = self.run_claimed(&claimed, lane).instrument(span).await;
        ::metrics::histogram!("job_duration_seconds", "kind" => label, "lane" => lane.as_str())
            .record(started.elapsed().as_secs_f64());
        for c in &counted {
            ::metrics::counter!("jobs_total", "kind" => label, "lane" => lane.as_str(), "outcome" => c.label())
                .increment(1);
        }
        if let Ok(mut f) = self.inner.in_flight.lock() {
            for job in &claimed {
                f.remove(&job.id);
            }
        }
        counted
    }

    /// Runs claimed jobs of one kind as one: merges their payloads, runs the kind once,
    /// and records each job's own ending.
    async fn run_claimed(&self, claimed: &[job::Model], lane: Lane) -> Vec<Counted> {
        let Some(first) = claimed.first() else {
            return Vec::new();
        };
        let Some(kind) = self.inner.registry.get(&first.kind) else {
            let error = format!("no handler for job kind {:?}", first.kind);
            tracing::warn!(%error, "job failed");
            return self.fail_all(claimed.iter(), &error).await;
        };
        let mut counted = Vec::with_capacity(claimed.len());
        let (members, payload) = self.merge(kind, claimed, &mut counted).await;
        let Some(lead) = members.first().copied() else {
            return counted;
        };
        let Some(payload) = payload else {
            // Never expected: the merged job did not serialise.
            let error = "the gathered jobs could not be merged";
            tracing::error!(%error, "job failed");
            counted.extend(self.fail_all(members.into_iter(), error).await);
            return counted;
        };
        let result = self.run_once(kind, lead, payload).await;
        match &result {
            Ok(Outcome::Fail(reason)) => tracing::warn!(error = %reason, "job failed for good"),
            Err(error) if members.iter().any(|j| j.attempts < j.max_attempts) => {
                tracing::warn!(%error, "job attempt failed; will retry")
            }
            _ => {}
        }
        let gathered = claimed.len() > 1;
        counted.extend(self.settle(&members, kind, &result, lane, gathered).await);
        counted
    }

    /// The jobs a run does the work of, and its payload: a lone job's own, or the kind's
    /// merge of several. A gathered job whose payload does not read as the kind fails
    /// alone (counted in `counted`).
    async fn merge<'a>(
        &self,
        kind: &domain::jobs::Kind<C>,
        claimed: &'a [job::Model],
        counted: &mut Vec<Counted>,
    ) -> (Vec<&'a job::Model>, Option<serde_json::Value>) {
        if let [only] = claimed {
            return (vec![only], Some(only.payload.clone()));
        }
        let merged = kind.merge(claimed.iter().map(|j| j.payload.clone()).collect());
        let mut bad = vec![None; claimed.len()];
        for (i, reason) in merged.unreadable {
            if let Some(slot) = bad.get_mut(i) {
                *slot = Some(reason);
            }
        }
        let mut members = Vec::with_capacity(claimed.len());
        for (job, bad) in claimed.iter().zip(bad) {
            match bad {
                Some(reason) => {
                    tracing::warn!(job.id = %job.id, error = %reason, "job failed for good");
                    let ending = Ending::Failed(reason);
                    counted.push(self.record(job, ending, Counted::Failed).await);
                }
                None => members.push(job),
            }
        }
        (members, merged.payload)
    }

    /// One run of `kind` on `payload`, as `lead`'s attempt, in its own task (so a panic is
    /// caught as a failed attempt) and bounded by the kind's timeout.
    async fn run_once(
        &self,
        kind: &domain::jobs::Kind<C>,
        lead: &job::Model,
        payload: serde_json::Value,
    ) -> Result<Outcome, String> {
        let run = JobRun {
            id: lead.id,
            attempt: lead.attempts,
            max_attempts: lead.max_attempts,
            worker: self.inner.worker_id.clone(),
        };
        let future = kind.run(self.inner.ctx.clone(), run, payload);
        let timeout = kind.timeout;
        let handle = tokio::spawn(tokio::time::timeout(timeout, future).in_current_span());
        match handle.await {
            Ok(Ok(Ok(outcome))) => Ok(outcome),
            Ok(Ok(Err(e))) => Err(format!("{e:#}")),
            Ok(Err(_)) => Err(format!("timed out after {} s", timeout.as_secs_f64())),
            Err(e) if e.is_panic() => Err(format!("panicked: {}", panic_message(e))),
            Err(_) => Err("cancelled".to_owned()),
        }
    }

    /// Records each member's ending after a run: a retry counts against the job's own
    /// attempts, a last attempt gives up with the job's own payload, and jobs run together
    /// that end done are recorded in one statement.
    async fn settle(
        &self,
        members: &[&job::Model],
        kind: &domain::jobs::Kind<C>,
        result: &Result<Outcome, String>,
        lane: Lane,
        gathered: bool,
    ) -> Vec<Counted> {
        let now = Utc::now();
        let mut counted = Vec::with_capacity(members.len());
        let mut done = Vec::new();
        for job in members {
            match decide(job, kind, result, now) {
                Decision::Record(Ending::Done, _) if gathered => done.push(job.id),
                Decision::Record(ending, c) => {
                    if let Ending::Again { at, .. } = &ending {
                        self.wake_at(lane, *at);
                    }
                    counted.push(self.record(job, ending, c).await);
                }
                Decision::GiveUp(error) => counted.push(self.give_up(job, kind, error).await),
            }
        }
        if !done.is_empty() {
            counted.extend(self.record_done(&done).await);
        }
        counted
    }

    /// Records `jobs` as failed with `error`.
    async fn fail_all<'a>(
        &self,
        jobs: impl Iterator<Item = &'a job::Model>,
        error: &str,
    ) -> Vec<Counted> {
        let mut counted = Vec::new();
        for job in jobs {
            let ending = Ending::Failed(error.to_owned());
            counted.push(self.record(job, ending, Counted::Failed).await);
        }
        counted
    }

    /// Records jobs run together as done.
    async fn record_done(&self, ids: &[Uuid]) -> Vec<Counted> {
        let worker = &self.inner.worker_id;
        let held = match queue::finish_many(&self.inner.db, worker, ids, Ending::Done).await {
            Ok(held) => held as usize,
            Err(e) => {
                tracing::error!(error = %e, "could not record the jobs' outcome");
                0
            }
        };
        if held < ids.len() {
            tracing::warn!(
                lost = ids.len() - held,
                "leases of gathered jobs were lost before their outcome was recorded"
            );
        }
        let mut counted = vec![Counted::Succeeded; held.min(ids.len())];
        counted.resize(ids.len(), Counted::Lost);
        counted
    }

    /// The last attempt failed: the kind's `gave_up` runs (bounded by its timeout, a panic
    /// caught), then the job ends failed with the error.
    async fn give_up(
        &self,
        job: &job::Model,
        kind: &domain::jobs::Kind<C>,
        error: String,
    ) -> Counted {
        tracing::warn!(%error, "job failed its last attempt");
        let cleanup = kind.gave_up(self.inner.ctx.clone(), job.payload.clone(), error.clone());
        let handle = tokio::spawn(tokio::time::timeout(kind.timeout, cleanup).in_current_span());
        match handle.await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %format!("{e:#}"), "the job's give-up step failed")
            }
            Ok(Err(_)) => tracing::error!("the job's give-up step timed out"),
            Err(_) => tracing::error!("the job's give-up step panicked"),
        }
        self.record(job, Ending::Failed(error), Counted::Failed)
            .await
    }

    async fn record(&self, job: &job::Model, ending: Ending, counted: Counted) -> Counted {
        let done = ending == Ending::Done;
        match queue::finish(&self.inner.db, &self.inner.worker_id, job.id, ending).await {
            Ok(true) => counted,
            // A job may finish itself in its own transaction (a queued report deletes its
            // row with the write it applies, so it is applied once).
            Ok(false) if done && self.finished_itself(job.id).await => counted,
            Ok(false) => {
                tracing::warn!("the job's lease was lost before its outcome was recorded");
                Counted::Lost
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record the job's outcome");
                Counted::Lost
            }
        }
    }

    async fn finished_itself(&self, id: Uuid) -> bool {
        match queue::get(&self.inner.db, id).await {
            Ok(None) => true,
            Ok(Some(j)) => j.status == domain::types::JobStatus::Done,
            Err(_) => false,
        }
    }

    /// Wakes `lane` at `at` when that is sooner than its next poll.
    fn wake_at(&self, lane: Lane, at: chrono::DateTime<Utc>) {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        if wait < self.inner.poll {
            domain::jobs::wake_at(lane, at);
        }
    }

    fn spawn_heartbeat(&self) -> tokio::task::JoinHandle<()> {
        let runner = self.clone();
        tokio::spawn(async move {
            let lease = runner.inner.lease;
            let mut tick = tokio::time::interval(lease.heartbeat);
            tick.tick().await;
            loop {
                tick.tick().await;
                let ids: Vec<Uuid> = runner
                    .inner
                    .in_flight
                    .lock()
                    .map(|f| f.iter().copied().collect())
                    .unwrap_or_default();
                if let Err(e) =
                    queue::heartbeat(&runner.inner.db, &runner.inner.worker_id, &ids, lease.lease)
                        .await
                {
                    tracing::warn!(error = %e, "job heartbeat failed");
                }
            }
        })
    }

    /// One lane: claim while a slot is free, wait for a wake-up or the poll otherwise.
    async fn lane_loop(self, lane: Lane, mut shutdown: watch::Receiver<bool>) {
        let slots = self.inner.slots[&lane].clone();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.changed() => break,
            };
            // Registered before the claim, so a wake-up while claiming is kept.
            let mut woken = std::pin::pin!(domain::jobs::waiter(lane));
            woken.as_mut().enable();
            match self.claim(lane, Utc::now()).await {
                Ok(Some(claimed)) => {
                    let runner = self.clone();
                    tokio::spawn(async move {
                        runner.execute(claimed).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%lane, error = %format!("{e:#}"), "claiming a job failed"),
            }
            drop(permit);
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(self.inner.poll) => {}
                _ = shutdown.changed() => break,
            }
        }
        // Let jobs in flight finish (their slots come back), up to the drain period.
        let all = self.inner.capacity[&lane] as u32;
        let _ = tokio::time::timeout(DRAIN, slots.acquire_many(all)).await;
    }

    /// Sweeps expired leases, purges old finished jobs and reports queue depth.
    async fn upkeep(&self) {
        let db = &self.inner.db;
        match queue::sweep_expired(db).await {
            Ok(s) if s.requeued + s.failed > 0 => {
                ::metrics::counter!("jobs_lease_expired_total", "outcome" => "requeued")
                    .increment(s.requeued);
                ::metrics::counter!("jobs_lease_expired_total", "outcome" => "failed")
                    .increment(s.failed);
                tracing::warn!(
                    requeued = s.requeued,
                    failed = s.failed,
                    "took back jobs with expired leases"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "lease sweep failed"),
        }
        if let Err(e) = queue::purge_finished(db, Duration::from_secs(86_400)).await {
            tracing::warn!(error = %e, "purging finished jobs failed");
        }
        match queue::depth(db).await {
            Ok(depths) => {
                let now = Utc::now();
                for lane in Lane::ALL {
                    let d = depths.iter().find(|d| d.lane == lane.as_str());
                    let due = d.map_or(0, |d| d.due);
                    let oldest = d
                        .and_then(|d| d.oldest_due)
                        .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
                    ::metrics::gauge!("jobs_due", "lane" => lane.as_str()).set(due as f64);
                    ::metrics::gauge!("jobs_oldest_due_seconds", "lane" => lane.as_str())
                        .set(oldest);
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the queue depth failed"),
        }
    }

    /// Runs until `shutdown` turns true, then lets jobs in flight finish.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        tracing::info!(
            worker.id = %self.inner.worker_id,
            kinds = self.inner.registry.kinds().count(),
            lanes = ?self.inner.capacity,
            "worker started"
        );
        let mut lanes = Vec::new();
        for lane in self.inner.slots.keys().copied() {
            lanes.push(tokio::spawn(self.clone().lane_loop(lane, shutdown.clone())));
        }
        let beat = self.spawn_heartbeat();
        let listener = (self.inner.db.get_database_backend() == DatabaseBackend::Postgres)
            .then(|| tokio::spawn(listen(self.inner.db.clone())));
        let mut stop = shutdown.clone();
        let mut sweep = tokio::time::interval(self.inner.lease.sweep);
        let mut schedule = tokio::time::interval(self.inner.poll);
        loop {
            tokio::select! {
                _ = stop.changed() => {}
                _ = sweep.tick() => self.upkeep().await,
                _ = schedule.tick() => {
                    if let Err(e) = self.enqueue_scheduled().await {
                        tracing::warn!(error = %format!("{e:#}"), "scheduling jobs failed");
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
        }
        for lane in lanes {
            let _ = lane.await;
        }
        beat.abort();
        if let Some(l) = listener {
            l.abort();
        }
        tracing::info!(worker.id = %self.inner.worker_id, "worker stopped");
    }
}

/// Wakes this process's lanes when the database says a job became due (PostgreSQL's
/// `NOTIFY` from the jobs table's trigger). Reconnects after errors; polling covers gaps.
async fn listen(db: DatabaseConnection) {
    use sea_orm::sqlx::postgres::PgListener;
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "could not listen for new jobs; polling only");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
            tracing::warn!(error = %e, "could not listen for new jobs; polling only");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        loop {
            match listener.recv().await {
                Ok(n) => heard(n.payload()),
                Err(e) => {
                    tracing::warn!(error = %e, "listening for new jobs failed; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            }
        }
    }
}

/// Wakes what a notification names: `lane` (a job due now) or `lane@<unix ms>` (a job
/// due then); anything else wakes every lane.
fn heard(payload: &str) {
    let (lane, due) = match payload.split_once('@') {
        Some((lane, ms)) => (
            lane,
            ms.parse()
                .ok()
                .and_then(chrono::DateTime::from_timestamp_millis),
        ),
        None => (payload, None),
    };
    match (Lane::parse(lane), due) {
        (Some(lane), Some(at)) => domain::jobs::wake_at(lane, at),
        (Some(lane), None) => domain::jobs::wake(lane),
        (None, _) => Lane::ALL.into_iter().for_each(domain::jobs::wake),
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
