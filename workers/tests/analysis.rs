//! Analysing many calls at once (`domain::analysis::batch`) against analysing them one by
//! one as they were made: the same customers' statuses, scores and do-not-call entries.
//! HTTP cannot choose which calls share a batch; this can.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use common::settings;
use domain::analysis::batch::analyse_many;
use domain::analysis::service::{Ran, analyse};
use domain::events::InProcessBus;
use domain::providers::CallReport;
use domain::services::Services;
use domain::testdb::{Backend, TestDb};
use domain::types::{AnalysisStatus, CallStatus, EventSource, LeadStatus, Provider};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

const BOOKED: &str = "assistant: Can I schedule a demo for you tomorrow at 4 pm?\nuser: Sure, go ahead.\nassistant: Done, your demo is scheduled for tomorrow 4 pm. You will get an email.\nuser: Great, thank you so much.";
const NOT_INTERESTED: &str = "assistant: Hi, this is Karan from BrightSolar. Are you looking to install rooftop solar?\nuser: No, I'm not interested.\nassistant: No problem, thank you for your time.";
const DNC: &str = "assistant: Hi, this is Ravi from QuickLoans.\nuser: Please don't call me again. Remove my number from your list.\nassistant: Sorry for the trouble, we will remove it.";
const SHORT: &str = "user: hello?";

/// Completed calls to `phone` with these transcripts, an hour apart (oldest first), each
/// ingested in its own transaction; their ids in that order.
async fn calls_of(
    services: &Services,
    tenant: &entity::tenant::Model,
    phone: &str,
    transcripts: &[&str],
) -> Vec<Uuid> {
    let start = Utc::now() - Duration::hours(10);
    let mut ids = Vec::new();
    for (i, text) in transcripts.iter().enumerate() {
        let mut r = CallReport::new(
            Provider::Bolna,
            format!("exec-{phone}-{i}"),
            CallStatus::Completed,
        );
        r.to_number = Some(phone.into());
        r.transcript = Some((*text).into());
        r.started_at = Some(start + Duration::hours(i as i64));
        r.occurred_at = r.started_at;
        let done = services
            .ingestor()
            .ingest(tenant, &r, EventSource::Webhook)
            .await
            .unwrap();
        ids.push(done.call_id);
    }
    ids
}

async fn customer(db: &sea_orm::DatabaseConnection, phone: &str) -> entity::customer::Model {
    entity::customer::Entity::find()
        .filter(entity::customer::Column::PhoneNumber.eq(phone))
        .one(db)
        .await
        .unwrap()
        .unwrap()
}

async fn batch_matches_one_by_one(backend: Backend) {
    let Some(testdb) = TestDb::create(backend).await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let settings = settings(&testdb.url);
    let db = domain::db::open(&settings.database).await.unwrap();
    let (tenant, _) = domain::tenancy::create_tenant(
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
    let services = Services::with_parts(
        db.clone(),
        &settings,
        Arc::new(InProcessBus::new()),
        Default::default(),
    )
    .unwrap();

    // The same story told to two numbers: booked, then not interested, then a call too
    // short to analyse. The newest evidence (not interested) wins, in a batch as one by
    // one.
    let story = [BOOKED, NOT_INTERESTED, SHORT];
    let batched = calls_of(&services, &tenant, "+919800000001", &story).await;
    let one_by_one = calls_of(&services, &tenant, "+919800000002", &story).await;
    // Asked not to be called, then booked: do-not-call stays, in a batch too.
    let dnc = calls_of(&services, &tenant, "+919800000004", &[DNC, BOOKED]).await;
    // Another tenant's call in the batch is not touched.
    let (other, _) = domain::tenancy::create_tenant(
        &db,
        domain::tenancy::NewTenant {
            name: "Other".into(),
            default_region: "IN".into(),
            timezone: "Asia/Kolkata".into(),
            concurrency_limit: 10,
        },
    )
    .await
    .unwrap();
    let foreign = calls_of(&services, &other, "+919800000005", &[BOOKED]).await;

    let mut ids: Vec<Uuid> = batched
        .iter()
        .chain(&dnc)
        .chain(&foreign)
        .copied()
        .collect();
    ids.reverse();
    let batch = analyse_many(&services, tenant.id, &ids, false)
        .await
        .unwrap();
    assert!(batch.failed.is_empty());
    let ran = |id: &Uuid| batch.ran.iter().find(|(c, _)| c == id).map(|(_, r)| *r);
    assert_eq!(ran(&batched[0]), Some(Ran::Analysed));
    assert_eq!(ran(&batched[2]), Some(Ran::Skipped));
    assert_eq!(
        ran(&foreign[0]),
        Some(Ran::AlreadyDone),
        "not this tenant's"
    );
    for id in &one_by_one {
        analyse(&services, tenant.id, *id, false).await.unwrap();
    }

    let a = customer(&db, "+919800000001").await;
    let f = customer(&db, "+919800000002").await;
    assert_eq!(a.status, LeadStatus::NotInterested, "{a:?}");
    assert_eq!(f.status, a.status, "{f:?}");
    assert_eq!(f.segment, a.segment, "{f:?}");
    // Scores fade with the age of the calls: equal to the hundredth.
    let (x, y) = (a.lead_score.unwrap(), f.lead_score.unwrap());
    assert!((x - y).abs() < 0.02, "{x} against {y}");
    assert!(a.lead_score.is_some() && a.score_explanation.is_some());
    let d = customer(&db, "+919800000004").await;
    assert_eq!(d.status, LeadStatus::DoNotCall);
    assert_eq!(d.lead_score, Some(0.0));
    let listed = entity::do_not_call::Entity::find()
        .filter(entity::do_not_call::Column::PhoneNumber.eq("+919800000004"))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(listed, 1);
    let untouched = customer(&db, "+919800000005").await;
    assert_eq!(untouched.lead_score, None, "the other tenant's customer");

    // Once each, however often asked; a re-analysis keeps the earlier one as history.
    let again = analyse_many(&services, tenant.id, &batched, false)
        .await
        .unwrap();
    assert!(again.ran.iter().all(|(_, r)| *r == Ran::AlreadyDone));
    let redo = analyse_many(&services, tenant.id, &batched, true)
        .await
        .unwrap();
    assert_eq!(redo.ran.len(), 3);
    for id in &batched {
        let rows = entity::call_analysis::Entity::find()
            .filter(entity::call_analysis::Column::CallId.eq(*id))
            .all(&db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "one current, one history");
        assert_eq!(rows.iter().filter(|r| r.current).count(), 1);
    }
    let skipped = entity::call_analysis::Entity::find()
        .filter(entity::call_analysis::Column::CallId.eq(batched[2]))
        .filter(entity::call_analysis::Column::Current.eq(true))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(skipped.status, AnalysisStatus::Skipped);
    assert_eq!(customer(&db, "+919800000001").await.status, a.status);
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_matches_one_by_one_sqlite() {
    batch_matches_one_by_one(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_matches_one_by_one_postgres() {
    batch_matches_one_by_one(Backend::Postgres).await;
}
