//! The job runner against real databases, without HTTP: outcomes and retries, lanes that
//! do not block each other, fairness across tenants, snoozes, timeouts, panics, expired
//! leases with two workers, exactly-once completion, waking, and kinds whose due jobs run
//! together.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::jobs::{self, Gather, Job, JobRun, Lane, LeaseConfig, Outcome, Registry, queue};
use domain::settings::{DatabaseSettings, Secret};
use domain::testdb::{Backend, TestDb};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use workers::Runner;

async fn setup(backend: Backend) -> Option<(TestDb, DatabaseConnection)> {
    let testdb = TestDb::create(backend).await?;
    let db = domain::db::connect(&DatabaseSettings {
        url: Secret::new(testdb.url.clone()),
        max_connections: 8,
    })
    .await
    .unwrap();
    domain::db::migrate(&db).await.unwrap();
    Some((testdb, db))
}

macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some((_t, db)) = super::setup(domain::testdb::Backend::Sqlite).await {
                    super::$name(db).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match super::setup(domain::testdb::Backend::Postgres).await {
                    Some((_t, db)) => super::$name(db).await,
                    None => eprintln!("skipped: TEST_DATABASE_URL is not set"),
                }
            }
        }
    };
}

/// What the test jobs share: counters and the order they ran in.
#[derive(Clone, Default)]
struct Ctx {
    runs: Arc<AtomicUsize>,
    gave_up: Arc<AtomicUsize>,
    order: Arc<Mutex<Vec<String>>>,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Ctx {
    fn ran(&self, what: &str) {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.order.lock().unwrap().push(what.to_owned());
        self.times.lock().unwrap().push(Instant::now());
    }
    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// Succeeds; records its tenant's label and which attempt it was.
#[derive(Serialize, Deserialize, Default)]
struct Ok_ {
    tenant: Option<Uuid>,
    label: String,
    #[serde(default)]
    sleep_ms: u64,
}
impl Job for Ok_ {
    type Context = Ctx;
    const KIND: &'static str = "test_ok";
    const LANE: Lane = Lane::Calls;
    fn tenant(&self) -> Option<Uuid> {
        self.tenant
    }
    async fn run(self, ctx: &Ctx, run: &JobRun) -> anyhow::Result<Outcome> {
        assert_eq!(run.attempt, 1, "job ran twice");
        ctx.ran(&self.label);
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        Ok(Outcome::Done)
    }
}

#[derive(Serialize, Deserialize)]
struct AlwaysFails {}
impl Job for AlwaysFails {
    type Context = Ctx;
    const KIND: &'static str = "test_always_fails";
    const LANE: Lane = Lane::Calls;
    const MAX_ATTEMPTS: i32 = 2;
    async fn run(self, ctx: &Ctx, _run: &JobRun) -> anyhow::Result<Outcome> {
        ctx.ran("fails");
        anyhow::bail!("provider said no")
    }
    async fn gave_up(self, ctx: &Ctx, _error: &str) -> anyhow::Result<()> {
        ctx.gave_up.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Sleeps on the sync lane.
#[derive(Serialize, Deserialize)]
struct SlowSync {
    ms: u64,
}
impl Job for SlowSync {
    type Context = Ctx;
    const KIND: &'static str = "test_slow_sync";
    const LANE: Lane = Lane::Sync;
    async fn run(self, ctx: &Ctx, _run: &JobRun) -> anyhow::Result<Outcome> {
        ctx.ran("slow");
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(Outcome::Done)
    }
}

/// Snoozes once, then asks for a retry without spending an attempt, then succeeds.
#[derive(Serialize, Deserialize)]
struct Patient {}
impl Job for Patient {
    type Context = Ctx;
    const KIND: &'static str = "test_patient";
    const LANE: Lane = Lane::Calls;
    const MAX_ATTEMPTS: i32 = 1;
    async fn run(self, ctx: &Ctx, _run: &JobRun) -> anyhow::Result<Outcome> {
        ctx.ran("patient");
        Ok(match ctx.runs() {
            1 => Outcome::Snooze(Utc::now() + chrono::Duration::milliseconds(300)),
            2 | 3 => Outcome::Retry {
                after: Duration::ZERO,
                spend_attempt: false,
                reason: "asked to wait".into(),
            },
            _ => Outcome::Done,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Hangs {}
impl Job for Hangs {
    type Context = Ctx;
    const KIND: &'static str = "test_hangs";
    const LANE: Lane = Lane::Calls;
    const MAX_ATTEMPTS: i32 = 2;
    const TIMEOUT: Duration = Duration::from_millis(200);
    fn retry_in(_attempt: i32) -> Duration {
        Duration::ZERO
    }
    async fn run(self, ctx: &Ctx, _run: &JobRun) -> anyhow::Result<Outcome> {
        ctx.ran("hangs");
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(Outcome::Done)
    }
    async fn gave_up(self, ctx: &Ctx, error: &str) -> anyhow::Result<()> {
        assert!(error.contains("timed out"), "{error}");
        ctx.gave_up.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Panics {}
impl Job for Panics {
    type Context = Ctx;
    const KIND: &'static str = "test_panics";
    const LANE: Lane = Lane::Calls;
    const MAX_ATTEMPTS: i32 = 2;
    fn retry_in(_attempt: i32) -> Duration {
        Duration::ZERO
    }
    async fn run(self, ctx: &Ctx, _run: &JobRun) -> anyhow::Result<Outcome> {
        ctx.ran("panics");
        panic!("boom");
    }
    async fn gave_up(self, ctx: &Ctx, _error: &str) -> anyhow::Result<()> {
        ctx.gave_up.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Runs gathered: records the labels of each run's jobs; fails when any of them says so.
#[derive(Serialize, Deserialize)]
struct Batchable {
    tenant: Uuid,
    labels: Vec<String>,
    #[serde(default)]
    fail: bool,
}
impl Job for Batchable {
    type Context = Ctx;
    const KIND: &'static str = "test_batchable";
    const LANE: Lane = Lane::Analysis;
    const MAX_ATTEMPTS: i32 = 2;
    fn retry_in(_attempt: i32) -> Duration {
        Duration::ZERO
    }
    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant)
    }
    async fn run(self, ctx: &Ctx, _run: &JobRun) -> anyhow::Result<Outcome> {
        ctx.ran(&format!("{}:{}", self.tenant, self.labels.join(",")));
        anyhow::ensure!(!self.fail, "one of them failed");
        Ok(Outcome::Done)
    }
    async fn gave_up(self, ctx: &Ctx, _error: &str) -> anyhow::Result<()> {
        assert_eq!(self.labels.len(), 1, "gave_up gets its own job's payload");
        ctx.gave_up.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
impl Gather for Batchable {
    fn gather(jobs: Vec<Self>) -> Self {
        let mut all = Batchable {
            tenant: jobs[0].tenant,
            labels: Vec::new(),
            fail: false,
        };
        for job in jobs {
            all.labels.extend(job.labels);
            all.fail |= job.fail;
        }
        all
    }
}

/// Jobs a gathering kind runs together at most.
const GATHER: usize = 3;

fn registry() -> Registry<Ctx> {
    Registry::new()
        .register_gathering::<Batchable>(GATHER)
        .register::<Ok_>()
        .register::<AlwaysFails>()
        .register::<SlowSync>()
        .register::<Patient>()
        .register::<Hangs>()
        .register::<Panics>()
}

fn runner(db: &DatabaseConnection, ctx: &Ctx, per_lane: usize, poll: Duration) -> Runner<Ctx> {
    let concurrency: BTreeMap<Lane, usize> = Lane::ALL.into_iter().map(|l| (l, per_lane)).collect();
    Runner::new(db.clone(), ctx.clone(), registry(), poll, &concurrency)
}

async fn make_due(db: &DatabaseConnection, id: Uuid) {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let job = queue::get(db, id).await.unwrap().unwrap();
    let mut a = job.into_active_model();
    a.run_at = Set(Utc::now() - chrono::Duration::seconds(1));
    a.update(db).await.unwrap();
}

async fn status(db: &DatabaseConnection, id: Uuid) -> (String, i32, Option<String>) {
    let j = queue::get(db, id).await.unwrap().unwrap();
    (j.status.to_string(), j.attempts, j.last_error)
}

async fn wait_until(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn runs_retries_and_gives_up(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let runner = runner(&db, &ctx, 4, Duration::from_millis(10));
    let now = Utc::now();
    let ok = jobs::enqueue(&db, &Ok_::default(), now).await.unwrap();
    let bad = jobs::enqueue(&db, &AlwaysFails {}, now).await.unwrap();
    let unknown = queue::enqueue(&db, "nobody_handles_this", json!({}), now, 1)
        .await
        .unwrap();
    let later = jobs::enqueue(&db, &Ok_::default(), now + chrono::Duration::hours(1))
        .await
        .unwrap();
    let garbled = queue::insert(
        &db,
        queue::NewJob {
            kind: AlwaysFails::KIND,
            lane: Lane::Calls,
            tenant_key: String::new(),
            subject: None,
            payload: json!("not an object"),
            run_at: now,
            max_attempts: 5,
        },
    )
    .await
    .unwrap();

    let stats = runner.run_pending_jobs().await.unwrap();
    assert_eq!(stats.claimed, 4);
    assert_eq!(stats.succeeded, 1);
    assert_eq!(status(&db, ok).await.0, "done");
    assert_eq!(status(&db, later).await.0, "pending", "not due yet");
    let (s, _, e) = status(&db, unknown).await;
    assert_eq!(s, "failed");
    assert!(e.unwrap().contains("no handler"));
    // A payload that does not read as its kind fails at once, whatever its attempts.
    let (s, attempts, e) = status(&db, garbled).await;
    assert_eq!((s.as_str(), attempts), ("failed", 1));
    assert!(e.unwrap().contains("unreadable"));

    // The failing job went back with a backoff; make it due and run it out of attempts.
    let (s, attempts, e) = status(&db, bad).await;
    assert_eq!((s.as_str(), attempts), ("pending", 1));
    assert_eq!(e.as_deref(), Some("provider said no"));
    assert_eq!(ctx.gave_up.load(Ordering::SeqCst), 0);
    make_due(&db, bad).await;
    runner.run_pending_jobs().await.unwrap();
    let (s, attempts, _) = status(&db, bad).await;
    assert_eq!((s.as_str(), attempts), ("failed", 2));
    assert_eq!(ctx.gave_up.load(Ordering::SeqCst), 1, "gave_up runs once");
    assert_eq!(runner.run_pending_jobs().await.unwrap().claimed, 0);
}
on_both!(runs_retries_and_gives_up);

/// Two runners racing over the same queue run every job exactly once.
async fn no_double_claims(db: DatabaseConnection) {
    let ctx = Ctx::default();
    for i in 0..60 {
        let job = Ok_ {
            tenant: Some(Uuid::from_u128(i % 7)),
            label: i.to_string(),
            sleep_ms: 2,
        };
        jobs::enqueue(&db, &job, Utc::now()).await.unwrap();
    }
    let a = runner(&db, &ctx, 4, Duration::from_millis(10));
    let b = runner(&db, &ctx, 4, Duration::from_millis(10));
    let (ra, rb) = tokio::join!(a.run_pending_jobs(), b.run_pending_jobs());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.claimed + rb.claimed, 60);
    assert_eq!(ctx.runs(), 60);
    let mut seen = ctx.order.lock().unwrap().clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 60, "every job once");
}
on_both!(no_double_claims);

/// Two running workers (their loops, not a test pass) complete each of many jobs once.
async fn exactly_once_with_two_loops(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let a = tokio::spawn(runner(&db, &ctx, 3, Duration::from_millis(20)).run(rx.clone()));
    let b = tokio::spawn(runner(&db, &ctx, 3, Duration::from_millis(20)).run(rx));
    for i in 0..100u128 {
        let job = Ok_ {
            tenant: Some(Uuid::from_u128(i % 5)),
            label: i.to_string(),
            sleep_ms: 1,
        };
        jobs::enqueue(&db, &job, Utc::now()).await.unwrap();
    }
    wait_until("100 runs", Duration::from_secs(30), async || {
        ctx.runs() >= 100
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ctx.runs(), 100);
    tx.send(true).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    let claimed = queue::claim(&db, "checker", 10, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(claimed.is_empty(), "nothing left");
}
on_both!(exactly_once_with_two_loops);

/// A live worker's jobs are never swept; a dead worker's are, once the lease runs out,
/// and the attempt it spent counts: a job that keeps killing its worker ends failed.
async fn leases(db: DatabaseConnection) {
    let id = jobs::enqueue(&db, &Ok_::default(), Utc::now())
        .await
        .unwrap();
    let short = Duration::from_millis(300);
    let claimed = queue::claim(&db, "dead-worker", 10, short).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        queue::sweep_expired(&db).await.unwrap(),
        queue::Swept::default(),
        "lease still valid"
    );
    // A heartbeat keeps it alive past its first deadline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        queue::heartbeat(&db, "dead-worker", &[id], short)
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        queue::sweep_expired(&db).await.unwrap(),
        queue::Swept::default(),
        "heartbeat extended the lease"
    );
    // Then the worker dies: no more heartbeats.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let swept = queue::sweep_expired(&db).await.unwrap();
    assert_eq!((swept.requeued, swept.failed), (1, 0));
    let (s, attempts, e) = status(&db, id).await;
    assert_eq!((s.as_str(), attempts), ("pending", 1));
    assert!(e.unwrap().contains("lease expired"));
    // The dead worker can no longer complete it; a live one can.
    assert!(!queue::complete(&db, "dead-worker", id).await.unwrap());
    let live = runner(&db, &Ctx::default(), 1, Duration::from_millis(10))
        .with_lease(LeaseConfig::default());
    let claimed = queue::claim(&db, live.worker_id(), 10, short)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 2);
    assert!(queue::complete(&db, live.worker_id(), id).await.unwrap());
    assert_eq!(status(&db, id).await.0, "done");

    // A job whose every run kills its worker: after its last attempt it ends failed.
    let deadly = jobs::enqueue(&db, &AlwaysFails {}, Utc::now())
        .await
        .unwrap();
    for round in 1..=2 {
        let claimed = queue::claim(&db, "doomed-worker", 10, Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "round {round}");
        tokio::time::sleep(Duration::from_millis(80)).await;
        let swept = queue::sweep_expired(&db).await.unwrap();
        assert_eq!(swept.requeued + swept.failed, 1);
    }
    let (s, attempts, _) = status(&db, deadly).await;
    assert_eq!(
        (s.as_str(), attempts),
        ("failed", 2),
        "not re-queued forever"
    );
    assert!(
        queue::claim(&db, "anyone", 10, short)
            .await
            .unwrap()
            .is_empty()
    );
}
on_both!(leases);

/// A slow job on one lane does not hold up another lane's job.
async fn lanes_do_not_block_each_other(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(runner(&db, &ctx, 1, Duration::from_millis(20)).run(rx));
    for _ in 0..3 {
        jobs::enqueue(&db, &SlowSync { ms: 3_000 }, Utc::now())
            .await
            .unwrap();
    }
    wait_until(
        "the slow sync to start",
        Duration::from_secs(5),
        async || ctx.runs() >= 1,
    )
    .await;
    let started = Instant::now();
    let quick = jobs::enqueue(
        &db,
        &Ok_ {
            label: "quick".into(),
            ..Default::default()
        },
        Utc::now(),
    )
    .await
    .unwrap();
    jobs::wake(Lane::Calls);
    wait_until("the call job", Duration::from_secs(2), async || {
        status(&db, quick).await.0 == "done"
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        ctx.order
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == "slow")
            .count(),
        1,
        "the sync lane still runs one at a time"
    );
    tx.send(true).unwrap();
    handle.await.unwrap();
}
on_both!(lanes_do_not_block_each_other);

/// A tenant with many due jobs does not starve a tenant with one: claims take tenants
/// in turn.
async fn claims_are_fair_across_tenants(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let (busy, quiet) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let earlier = Utc::now() - chrono::Duration::seconds(10);
    let rows: Vec<queue::NewJob> = (0..500)
        .map(|i| {
            let job = Ok_ {
                tenant: Some(busy),
                label: format!("busy-{i}"),
                sleep_ms: 0,
            };
            jobs::new_job(&job, earlier).unwrap()
        })
        .collect();
    queue::insert_many(&db, rows).await.unwrap();
    let lonely = Ok_ {
        tenant: Some(quiet),
        label: "quiet".into(),
        sleep_ms: 0,
    };
    jobs::enqueue(&db, &lonely, Utc::now()).await.unwrap();
    let runner = runner(&db, &ctx, 1, Duration::from_millis(10));
    runner.run_pending_jobs().await.unwrap();
    let order = ctx.order.lock().unwrap().clone();
    assert_eq!(order.len(), 501);
    let at = order.iter().position(|l| l == "quiet").unwrap();
    assert!(
        at <= 1,
        "the quiet tenant's job ran {at}th, behind the busy tenant's backlog"
    );
}
on_both!(claims_are_fair_across_tenants);

/// Snoozing and retrying without spending an attempt: a job with one attempt survives
/// a snooze and two retries, and runs again no sooner than it asked.
async fn snooze_and_free_retries(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let id = jobs::enqueue(&db, &Patient {}, Utc::now()).await.unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(runner(&db, &ctx, 2, Duration::from_secs(5)).run(rx));
    jobs::wake(Lane::Calls);
    wait_until("the job to finish", Duration::from_secs(10), async || {
        status(&db, id).await.0 == "done"
    })
    .await;
    let (_, attempts, _) = status(&db, id).await;
    assert_eq!(attempts, 1, "snoozes and free retries spend nothing");
    assert_eq!(ctx.runs(), 4);
    let times = ctx.times.lock().unwrap().clone();
    assert!(
        times[1] - times[0] >= Duration::from_millis(290),
        "woke early"
    );
    assert!(
        times[1] - times[0] < Duration::from_secs(3),
        "the snooze waited for the poll"
    );
    tx.send(true).unwrap();
    handle.await.unwrap();
}
on_both!(snooze_and_free_retries);

/// A run past its kind's timeout is stopped and counts as a failed attempt; after the
/// last one the job ends failed with the error and `gave_up` runs.
async fn timeouts(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let id = jobs::enqueue(&db, &Hangs {}, Utc::now()).await.unwrap();
    let runner = runner(&db, &ctx, 1, Duration::from_millis(10));
    let started = Instant::now();
    runner.run_pending_jobs().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let (s, attempts, e) = status(&db, id).await;
    assert_eq!((s.as_str(), attempts), ("pending", 1));
    assert!(e.unwrap().contains("timed out"));
    make_due(&db, id).await;
    runner.run_pending_jobs().await.unwrap();
    let (s, attempts, e) = status(&db, id).await;
    assert_eq!((s.as_str(), attempts), ("failed", 2));
    assert!(e.unwrap().contains("timed out"));
    assert_eq!(ctx.gave_up.load(Ordering::SeqCst), 1);
}
on_both!(timeouts);

/// A job that panics spends an attempt and ends failed after its last one, with the
/// panic's message kept; before, it came back forever.
async fn panics(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let id = jobs::enqueue(&db, &Panics {}, Utc::now()).await.unwrap();
    let runner = runner(&db, &ctx, 1, Duration::from_millis(10));
    runner.run_pending_jobs().await.unwrap();
    let (s, attempts, e) = status(&db, id).await;
    assert_eq!((s.as_str(), attempts), ("pending", 1));
    assert!(e.unwrap().contains("panicked: boom"));
    make_due(&db, id).await;
    runner.run_pending_jobs().await.unwrap();
    let (s, attempts, _) = status(&db, id).await;
    assert_eq!((s.as_str(), attempts), ("failed", 2));
    assert_eq!(ctx.gave_up.load(Ordering::SeqCst), 1);
    assert_eq!(runner.run_pending_jobs().await.unwrap().claimed, 0);
    assert_eq!(ctx.runs(), 2);
}
on_both!(panics);

/// An idle worker starts a job enqueued for now within milliseconds when woken in the
/// same process; on PostgreSQL a job inserted by another process wakes it through
/// `LISTEN/NOTIFY`. The poll period is far longer than either wait.
async fn waking(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(runner(&db, &ctx, 2, Duration::from_secs(30)).run(rx));
    // Let the loops reach their wait (and the listener its LISTEN).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    jobs::enqueue(
        &db,
        &Ok_ {
            label: "woken".into(),
            ..Default::default()
        },
        Utc::now(),
    )
    .await
    .unwrap();
    jobs::wake(Lane::Calls);
    wait_until("the woken job", Duration::from_secs(5), async || {
        ctx.runs() >= 1
    })
    .await;
    let woken = started.elapsed();
    assert!(woken < Duration::from_millis(500), "took {woken:?}");
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // As another process would: an insert with no in-process wake, so only the
        // database's notification can start it before the poll.
        let started = Instant::now();
        jobs::enqueue(
            &db,
            &Ok_ {
                label: "notified".into(),
                ..Default::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
        wait_until("the notified job", Duration::from_secs(10), async || {
            ctx.runs() >= 2
        })
        .await;
        let notified = started.elapsed();
        assert!(notified < Duration::from_secs(2), "took {notified:?}");
        // A job due a moment from now: the notification names its time, and the loop
        // wakes then, not at once (finding nothing) and then at the poll.
        let started = Instant::now();
        jobs::enqueue(
            &db,
            &Ok_ {
                label: "due soon".into(),
                ..Default::default()
            },
            Utc::now() + chrono::Duration::milliseconds(400),
        )
        .await
        .unwrap();
        wait_until("the job due soon", Duration::from_secs(10), async || {
            ctx.runs() >= 3
        })
        .await;
        let due = started.elapsed();
        assert!(
            due >= Duration::from_millis(390) && due < Duration::from_secs(3),
            "took {due:?}"
        );
    }
    tx.send(true).unwrap();
    handle.await.unwrap();
}
on_both!(waking);

fn batchable(tenant: u128, label: &str, fail: bool) -> Batchable {
    Batchable {
        tenant: Uuid::from_u128(tenant),
        labels: vec![label.to_owned()],
        fail,
    }
}

/// Inserts `job` due `ms` milliseconds after `t0` (negative: before), with its attempts.
async fn insert_at(
    db: &DatabaseConnection,
    job: &Batchable,
    t0: chrono::DateTime<Utc>,
    ms: i64,
    max_attempts: i32,
) -> Uuid {
    let mut new = jobs::new_job(job, t0 + chrono::Duration::milliseconds(ms)).unwrap();
    new.max_attempts = max_attempts;
    queue::insert(db, new).await.unwrap()
}

/// A gathering kind's due jobs of one tenant run together, a few at a time, in due order;
/// never with another tenant's or with jobs not yet due. A payload that does not read
/// fails alone.
async fn gathers_one_tenants_due_jobs(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let runner = runner(&db, &ctx, 1, Duration::from_millis(10));
    let t0 = Utc::now();
    let mut a = Vec::new();
    for i in 0..5 {
        a.push(
            insert_at(
                &db,
                &batchable(1, &format!("a{i}"), false),
                t0,
                -5000 + i * 10,
                2,
            )
            .await,
        );
    }
    let b = insert_at(&db, &batchable(2, "b0", false), t0, -4000, 2).await;
    let later = insert_at(&db, &batchable(1, "later", false), t0, 3_600_000, 2).await;
    let mut garbled = jobs::new_job(&batchable(1, "x", false), Utc::now()).unwrap();
    garbled.payload = json!({"tenant": "not a uuid"});
    garbled.run_at = t0 - chrono::Duration::milliseconds(4985);
    let garbled = queue::insert(&db, garbled).await.unwrap();

    let stats = runner.run_pending_jobs().await.unwrap();
    assert_eq!(stats.claimed, 7);
    assert_eq!((stats.succeeded, stats.failed), (6, 1));
    let runs = ctx.order.lock().unwrap().clone();
    let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
    // a0, a1 and the garbled one are claimed together (the garbled one fails alone), then
    // a2..a4; tenant 2's job runs by itself.
    let mut expected = vec![
        format!("{t1}:a0,a1"),
        format!("{t1}:a2,a3,a4"),
        format!("{t2}:b0"),
    ];
    let mut got = runs.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "runs: {runs:?}");
    for id in a.iter().chain([&b]) {
        assert_eq!(status(&db, *id).await, ("done".to_owned(), 1, None));
    }
    assert_eq!(status(&db, later).await.0, "pending", "not due yet");
    let (s, attempts, e) = status(&db, garbled).await;
    assert_eq!((s.as_str(), attempts), ("failed", 1));
    assert!(e.unwrap().contains("unreadable"));
    assert_eq!(runner.run_pending_jobs().await.unwrap().claimed, 0);
}
on_both!(gathers_one_tenants_due_jobs);

/// A gathered run that fails is each job's failed attempt; then each job is retried
/// alone, so the one that fails gives up alone (with its own payload) and the others
/// succeed.
async fn a_failed_gathered_run_counts_for_each_job(db: DatabaseConnection) {
    let ctx = Ctx::default();
    let runner = runner(&db, &ctx, 1, Duration::from_millis(10));
    let t0 = Utc::now();
    let fails = insert_at(&db, &batchable(1, "fails", true), t0, -300, 2).await;
    let fine = insert_at(&db, &batchable(1, "fine", false), t0, -200, 2).await;
    let patient = insert_at(&db, &batchable(1, "patient", false), t0, -100, 3).await;

    let stats = runner.run_pending_jobs().await.unwrap();
    assert_eq!((stats.claimed, stats.succeeded), (3, 0));
    for id in [fails, fine, patient] {
        let (s, attempts, e) = status(&db, id).await;
        assert_eq!((s.as_str(), attempts), ("pending", 1));
        assert_eq!(e.as_deref(), Some("one of them failed"));
    }
    assert_eq!(ctx.gave_up.load(Ordering::SeqCst), 0);

    let stats = runner.run_pending_jobs().await.unwrap();
    assert_eq!((stats.claimed, stats.succeeded, stats.failed), (3, 2, 1));
    assert_eq!(
        ctx.gave_up.load(Ordering::SeqCst),
        1,
        "only the bad one gave up"
    );
    assert_eq!(status(&db, fails).await.0, "failed");
    assert_eq!(
        status(&db, fine).await,
        ("done".to_owned(), 2, Some("one of them failed".to_owned()))
    );
    assert_eq!(status(&db, patient).await.0, "done");
    let mut runs = ctx.order.lock().unwrap().clone();
    let t1 = Uuid::from_u128(1);
    assert_eq!(runs.remove(0), format!("{t1}:fails,fine,patient"));
    runs.sort();
    assert_eq!(
        runs,
        ["fails", "fine", "patient"].map(|l| format!("{t1}:{l}")),
        "retried one by one"
    );
}
on_both!(a_failed_gathered_run_counts_for_each_job);
