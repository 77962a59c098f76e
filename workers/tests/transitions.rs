//! The call-transition point's outbox: the follow-up jobs a transition asks for are
//! written in the transaction that moves the call, so a process killed right after the
//! commit (before it published anything) loses none of them.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::sync::Arc;

use common::settings;
use domain::calls::transition::{FollowUp, FollowUps, Transition};
use domain::events::{Event, EventBus, InProcessBus, PublishFuture};
use domain::jobs::Lane;
use domain::jobs::queue::NewJob;
use domain::providers::CallReport;
use domain::services::Services;
use domain::testdb::{Backend, TestDb};
use domain::types::{CallStatus, EventSource, Provider};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// Set in the child process: the database it works on.
const CHILD_DB: &str = "SB_TRANSITION_CHILD_DB";
const FOLLOW_UP_KIND: &str = "test_after_completed";

/// A follow-up that wants one job whenever a call completes.
struct OnCompleted;
impl FollowUp for OnCompleted {
    fn jobs(&self, t: &Transition) -> domain::DomainResult<Vec<NewJob>> {
        Ok(if t.status == CallStatus::Completed {
            vec![NewJob {
                kind: FOLLOW_UP_KIND,
                lane: Lane::Maintenance,
                tenant_key: t.call.tenant_id.to_string(),
                subject: Some(t.call.id.to_string()),
                payload: serde_json::json!({ "callId": t.call.id }),
                run_at: chrono::Utc::now(),
                max_attempts: 1,
            }]
        } else {
            Vec::new()
        })
    }
}

/// A bus whose first publish kills the process: publishing happens right after the
/// transition's commit, so the process dies between the commit and anything after it.
struct DiesOnPublish;
impl EventBus for DiesOnPublish {
    fn publish(&self, _event: Event) -> PublishFuture<'_> {
        std::process::abort()
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
        InProcessBus::new().subscribe()
    }
    fn is_connected(&self) -> bool {
        true
    }
}

/// The child: applies a completed report through the product's ingestion and dies when
/// it publishes.
async fn child(url: &str) {
    let settings = settings(url);
    let db = domain::db::open(&settings.database).await.unwrap();
    let tenant = entity::tenant::Entity::find()
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let services = Services::with_parts(db, &settings, Arc::new(DiesOnPublish), Default::default())
        .unwrap()
        .with_follow_ups(FollowUps::default().with(Arc::new(OnCompleted)));
    let mut report = CallReport::new(Provider::Bolna, "exec-killed", CallStatus::Completed);
    report.to_number = Some("+919812345678".into());
    report.transcript = Some("assistant: hello".into());
    services
        .ingestor()
        .ingest(&tenant, &report, EventSource::Webhook)
        .await
        .unwrap();
    unreachable!("the publish after commit should have killed the process");
}

async fn killed_after_commit(backend: Backend) {
    if let Ok(url) = std::env::var(CHILD_DB) {
        return child(&url).await;
    }
    let Some(testdb) = TestDb::create(backend).await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let settings = settings(&testdb.url);
    let db = domain::db::open(&settings.database).await.unwrap();
    domain::tenancy::create_tenant(
        &db,
        domain::tenancy::NewTenant {
            name: "Acme".into(),
            default_region: "IN".into(),
            timezone: "Asia/Kolkata".into(),
            concurrency_limit: 10,
        },
    )
    .await
    .unwrap();
    let test = match backend {
        Backend::Sqlite => "killed_after_commit_sqlite",
        Backend::Postgres => "killed_after_commit_postgres",
    };
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, &testdb.url)
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "the child should have been killed: {status}"
    );

    let call = entity::call::Entity::find()
        .filter(entity::call::Column::ProviderExecutionId.eq("exec-killed"))
        .one(&db)
        .await
        .unwrap()
        .expect("the committed call");
    assert_eq!(call.status, domain::types::CallStatus::Completed);
    let events = entity::call_event::Entity::find()
        .filter(entity::call_event::Column::CallId.eq(call.id))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "its event");
    let jobs = entity::job::Entity::find()
        .filter(entity::job::Column::Kind.eq(FOLLOW_UP_KIND))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "the follow-up job survived the crash");
    assert_eq!(
        jobs[0].subject.as_deref(),
        Some(call.id.to_string().as_str())
    );
    assert_eq!(jobs[0].status, domain::types::JobStatus::Pending);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_commit_sqlite() {
    killed_after_commit(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_commit_postgres() {
    killed_after_commit(Backend::Postgres).await;
}
