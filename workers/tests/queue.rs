//! The job runner against real databases: runs, retries, gives up, never double-claims,
//! and hands back only jobs whose lease expired.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use domain::queue::{self, LeaseConfig};
use domain::settings::{DatabaseSettings, Secret};
use domain::testdb::{Backend, TestDb};
use sea_orm::DatabaseConnection;
use serde_json::json;
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

async fn runs_retries_and_gives_up(db: DatabaseConnection) {
    let ok_runs = Arc::new(AtomicUsize::new(0));
    let flaky_runs = Arc::new(AtomicUsize::new(0));
    let (ok_c, flaky_c) = (ok_runs.clone(), flaky_runs.clone());
    let runner = Runner::new(db.clone(), Duration::from_millis(10))
        .handle("ok", move |_job| {
            let c = ok_c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .handle("always_fails", move |_job| {
            let c = flaky_c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Err("provider said no".to_owned())
            }
        });

    let ok = queue::enqueue(&db, "ok", json!({ "n": 1 }), Utc::now(), 3)
        .await
        .unwrap();
    let bad = queue::enqueue(&db, "always_fails", json!({}), Utc::now(), 2)
        .await
        .unwrap();
    let unknown = queue::enqueue(&db, "nobody_handles_this", json!({}), Utc::now(), 1)
        .await
        .unwrap();
    let later = queue::enqueue(
        &db,
        "ok",
        json!({}),
        Utc::now() + chrono::Duration::hours(1),
        1,
    )
    .await
    .unwrap();

    let stats = runner.run_pending_jobs().await.unwrap();
    assert_eq!(stats.claimed, 3);
    assert_eq!(stats.succeeded, 1);
    assert_eq!(ok_runs.load(Ordering::SeqCst), 1);
    assert_eq!(queue::get(&db, ok).await.unwrap().unwrap().status, "done");
    assert_eq!(
        queue::get(&db, later).await.unwrap().unwrap().status,
        "pending",
        "not due yet"
    );
    let u = queue::get(&db, unknown).await.unwrap().unwrap();
    assert_eq!(u.status, "failed");
    assert!(u.last_error.unwrap().contains("no handler"));

    // The failing job went back with a backoff; make it due and run it out of attempts.
    let b = queue::get(&db, bad).await.unwrap().unwrap();
    assert_eq!((b.status.as_str(), b.attempts), ("pending", 1));
    assert_eq!(b.last_error.as_deref(), Some("provider said no"));
    make_due(&db, bad).await;
    runner.run_pending_jobs().await.unwrap();
    let b = queue::get(&db, bad).await.unwrap().unwrap();
    assert_eq!((b.status.as_str(), b.attempts), ("failed", 2));
    assert_eq!(flaky_runs.load(Ordering::SeqCst), 2);
    assert_eq!(runner.run_pending_jobs().await.unwrap().claimed, 0);
}
on_both!(runs_retries_and_gives_up);

async fn make_due(db: &DatabaseConnection, id: uuid::Uuid) {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let job = queue::get(db, id).await.unwrap().unwrap();
    let mut a = job.into_active_model();
    a.run_at = Set(Utc::now() - chrono::Duration::seconds(1));
    a.update(db).await.unwrap();
}

/// Two runners racing over the same queue run every job exactly once.
async fn no_double_claims(db: DatabaseConnection) {
    let runs = Arc::new(AtomicUsize::new(0));
    let make = |runs: Arc<AtomicUsize>| {
        Runner::new(db.clone(), Duration::from_millis(10)).handle(
            "count",
            move |job: entity::job::Model| {
                let runs = runs.clone();
                async move {
                    assert!(job.attempts == 1, "job ran twice");
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    Ok(())
                }
            },
        )
    };
    for i in 0..60 {
        queue::enqueue(&db, "count", json!({ "i": i }), Utc::now(), 1)
            .await
            .unwrap();
    }
    let (a, b) = (make(runs.clone()), make(runs.clone()));
    let (ra, rb) = tokio::join!(a.run_pending_jobs(), b.run_pending_jobs());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.claimed + rb.claimed, 60);
    assert_eq!(runs.load(Ordering::SeqCst), 60);
}
on_both!(no_double_claims);

/// A live worker's jobs are never swept; a dead worker's are, once the lease runs out.
async fn leases(db: DatabaseConnection) {
    let id = queue::enqueue(&db, "slow", json!({}), Utc::now(), 3)
        .await
        .unwrap();
    let claimed = queue::claim(&db, "dead-worker", 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        queue::sweep_expired(&db).await.unwrap(),
        0,
        "lease still valid"
    );
    // A heartbeat keeps it alive past its first deadline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        queue::heartbeat(&db, "dead-worker", &[id], Duration::from_millis(300))
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        queue::sweep_expired(&db).await.unwrap(),
        0,
        "heartbeat extended the lease"
    );
    // Then the worker dies: no more heartbeats.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(queue::sweep_expired(&db).await.unwrap(), 1);
    let job = queue::get(&db, id).await.unwrap().unwrap();
    assert_eq!(job.status, "pending");
    // The dead worker can no longer complete it; a live one can.
    assert!(!queue::complete(&db, "dead-worker", id).await.unwrap());
    let runner = Runner::new(db.clone(), Duration::from_millis(10))
        .with_lease(LeaseConfig::default())
        .handle("slow", |_job| async { Ok(()) });
    assert_eq!(runner.run_pending_jobs().await.unwrap().succeeded, 1);
    assert_eq!(queue::get(&db, id).await.unwrap().unwrap().status, "done");
}
on_both!(leases);

/// The polling loop runs due jobs and stops on shutdown.
async fn loop_runs_and_stops(db: DatabaseConnection) {
    let runs = Arc::new(AtomicUsize::new(0));
    let c = runs.clone();
    let runner = Runner::new(db.clone(), Duration::from_millis(20)).handle("tick", move |_job| {
        let c = c.clone();
        async move {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    });
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(runner.run(rx));
    queue::enqueue(&db, "tick", json!({}), Utc::now(), 1)
        .await
        .unwrap();
    for _ in 0..200 {
        if runs.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
}
on_both!(loop_runs_and_stops);
