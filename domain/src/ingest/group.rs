//! Group commit for webhook reports. Reports that arrive while a shard's previous group is
//! being written wait, and are then applied together (tenants sharing transactions, see
//! below, through the same batch path as [`Ingestor::ingest_batch`]); each sender is
//! answered after that commit, so a report is still durable before its acknowledgement, at a fraction of
//! the statements.
//!
//! A lone report is written at once. While groups are being written, the next one gathers
//! until all of them have finished, it is full, or twice the typical group's duration has
//! passed (within [`MIN_PATIENCE`] and [`MAX_PATIENCE`]); then it is written, up to
//! [`GROUPS_IN_FLIGHT`] at once per shard. So under load one group is written while the
//! next gathers what arrives meanwhile (ending the gathering when any group finished
//! instead kept several small groups in flight: half the size, and a third more CPU per
//! report), and a slow group (a tenant with a large batch, a lock wait) delays the groups
//! behind it by that patience at most while a slot is free. [`GROUPS_IN_FLIGHT`] groups
//! stuck at once (say, a call's row held elsewhere for long, and its reports arriving
//! still) hold up the shard's other tenants until one of them ends.
//!
//! Order per call is kept: a report sent after another's acknowledgement is grouped after
//! it, a group holding two reports of one call applies them in arrival order
//! (`ingest_batch` splits repeated execution ids into successive transactions), and the
//! per-call locks order concurrent groups; reports sent concurrently have no order to keep
//! (the status guard makes any order converge). Tenants are spread over shards. The
//! tenants of one group share transactions of up to [`TENANTS_PER_TRANSACTION`] (many
//! tenants each reporting a little is the usual load, and a transaction of its own cost
//! each of them more than its statements), up to [`TENANTS_AT_ONCE`] side by side. A
//! shared transaction that fails, or waits too long for any one lock
//! ([`super::TOGETHER_LOCK_TIMEOUT`]), is given up and each tenant written alone (those
//! side by side as well); a
//! tenant's batch that fails is applied again report by report, so one bad report fails
//! only itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use entity::tenant;
use futures_util::StreamExt;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::{IngestOutcome, Ingestor, Known};
use crate::error::{DomainError, DomainResult};
use crate::providers::CallReport;
use crate::types::EventSource;

/// Writers, each serving the tenants whose id hashes to it.
const SHARDS: usize = 8;
/// Most reports one group applies.
const MAX_GROUP: usize = 64;
/// Groups one shard writes at once.
const GROUPS_IN_FLIGHT: usize = 4;
/// Transactions of one group written at once (a shared transaction given up writes its
/// tenants alone, as many again side by side).
const TENANTS_AT_ONCE: usize = 4;
/// Most tenants one transaction of a group writes.
const TENANTS_PER_TRANSACTION: usize = 8;
/// Bounds on how long a gathering group waits for a group being written to finish before
/// it is written alongside (twice the typical group's duration, within these).
const MIN_PATIENCE: Duration = Duration::from_millis(1);
const MAX_PATIENCE: Duration = Duration::from_millis(20);

struct Pending {
    tenant: Arc<tenant::Model>,
    report: CallReport,
    source: EventSource,
    done: oneshot::Sender<DomainResult<IngestOutcome>>,
}

/// The entry point: hands a report to its shard's writer and waits for its commit.
#[derive(Clone)]
pub struct GroupCommit {
    shards: Arc<Vec<mpsc::Sender<Pending>>>,
}

impl GroupCommit {
    /// Starts the writers; `capacity` bounds the reports waiting per shard (callers beyond
    /// it wait for room).
    pub fn start(ingestor: Ingestor, capacity: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                let (tx, rx) = mpsc::channel(capacity.max(1));
                tokio::spawn(write_groups(ingestor.clone(), rx));
                tx
            })
            .collect();
        GroupCommit {
            shards: Arc::new(shards),
        }
    }

    /// Applies `report` with whatever else its shard received meanwhile; returns once its
    /// group committed.
    pub async fn ingest(
        &self,
        tenant: Arc<tenant::Model>,
        report: CallReport,
        source: EventSource,
    ) -> DomainResult<IngestOutcome> {
        let shard = &self.shards[shard_of(&tenant)];
        let (done, answer) = oneshot::channel();
        shard
            .send(Pending {
                tenant,
                report,
                source,
                done,
            })
            .await
            .map_err(|_| DomainError::Internal("group commit stopped".into()))?;
        answer
            .await
            .map_err(|_| DomainError::Internal("group commit dropped a report".into()))?
    }
}

fn shard_of(tenant: &tenant::Model) -> usize {
    (tenant.id.as_u128() % SHARDS as u128) as usize
}

/// One shard's writer: takes what is waiting (at least one report) and writes it in the
/// background, per tenant and source. A lone report is written at once; while earlier
/// groups are being written, the next one keeps gathering until they have all finished,
/// it is full, or about two typical group durations have passed (a slow group: then it is
/// written alongside).
async fn write_groups(ingestor: Ingestor, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    let finished = Arc::new(Notify::new());
    let typical = Arc::new(Typical::default());
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut waiting = vec![first];
        take_waiting(&mut rx, &mut waiting);
        if slots.available_permits() < GROUPS_IN_FLIGHT {
            let deadline = Instant::now() + typical.patience();
            while waiting.len() < MAX_GROUP && slots.available_permits() < GROUPS_IN_FLIGHT {
                tokio::select! {
                    // A group finished: the loop's condition looks again.
                    _ = finished.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                    more = rx.recv() => match more {
                        Some(p) => {
                            waiting.push(p);
                            take_waiting(&mut rx, &mut waiting);
                        }
                        None => break,
                    },
                }
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        take_waiting(&mut rx, &mut waiting);
        // Groups of one tenant and source, in arrival order.
        let mut groups: Vec<Vec<Pending>> = Vec::new();
        for p in waiting {
            match groups
                .iter_mut()
                .find(|g| g[0].tenant.id == p.tenant.id && g[0].source == p.source)
            {
                Some(g) => g.push(p),
                None => groups.push(vec![p]),
            }
        }
        let ingestor = ingestor.clone();
        let finished = finished.clone();
        let typical = typical.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            write(&ingestor, groups).await;
            typical.record(started.elapsed());
            drop(slot);
            finished.notify_one();
        });
    }
}

/// A moving average of how long a shard's groups take to write, in µs. Lost updates
/// between concurrent groups only blur it.
struct Typical(AtomicU64);

impl Default for Typical {
    fn default() -> Self {
        Typical(AtomicU64::new(MIN_PATIENCE.as_micros() as u64))
    }
}

impl Typical {
    fn record(&self, took: Duration) {
        let took = took.as_micros().min(u64::MAX as u128) as u64;
        let old = self.0.load(Ordering::Relaxed);
        self.0.store(old - old / 8 + took / 8, Ordering::Relaxed);
    }

    fn duration(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    /// How long a gathering group waits for the ones being written.
    fn patience(&self) -> Duration {
        (self.duration() * 2).clamp(MIN_PATIENCE, MAX_PATIENCE)
    }
}

/// Moves what is already waiting into `waiting`, up to [`MAX_GROUP`].
fn take_waiting(rx: &mut mpsc::Receiver<Pending>, waiting: &mut Vec<Pending>) {
    while waiting.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(p) => waiting.push(p),
            Err(_) => break,
        }
    }
}

/// One tenant's reports of one source in a group, with their senders' answers.
struct Batch {
    tenant: Arc<tenant::Model>,
    source: EventSource,
    reports: Vec<CallReport>,
    answers: Vec<oneshot::Sender<DomainResult<IngestOutcome>>>,
}

impl Batch {
    fn of(group: Vec<Pending>) -> Batch {
        let tenant = group[0].tenant.clone();
        let source = group[0].source;
        let (reports, answers) = group.into_iter().map(|p| (p.report, p.done)).unzip();
        Batch {
            tenant,
            source,
            reports,
            answers,
        }
    }
}

/// Writes a group: tenants whose reports fit one statement (one provider, no execution id
/// twice) share transactions of up to [`TENANTS_PER_TRANSACTION`], the others have their
/// own; up to [`TENANTS_AT_ONCE`] transactions side by side.
async fn write(ingestor: &Ingestor, groups: Vec<Vec<Pending>>) {
    let mut together = Vec::new();
    let mut units: Vec<Vec<Batch>> = Vec::new();
    for group in groups {
        let batch = Batch::of(group);
        metrics::histogram!("webhook_group_reports").record(batch.reports.len() as f64);
        if super::distinct_groups(&batch.reports).len() == 1 {
            together.push(batch);
        } else {
            units.push(vec![batch]);
        }
    }
    while !together.is_empty() {
        let rest = together.split_off(together.len().min(TENANTS_PER_TRANSACTION));
        units.push(std::mem::replace(&mut together, rest));
    }
    futures_util::stream::iter(units)
        .for_each_concurrent(TENANTS_AT_ONCE, |mut unit| async move {
            match unit.pop() {
                Some(only) if unit.is_empty() => apply(ingestor, only).await,
                Some(last) => {
                    unit.push(last);
                    apply_together(ingestor, unit).await;
                }
                None => {}
            }
        })
        .await;
}

/// Several tenants' batches in one transaction; if that fails (a lock held too long, a
/// bad report), each tenant is written alone, as if it had come alone.
async fn apply_together(ingestor: &Ingestor, batches: Vec<Batch>) {
    let parts: Vec<(&tenant::Model, &[CallReport], EventSource)> = batches
        .iter()
        .map(|b| (&*b.tenant, b.reports.as_slice(), b.source))
        .collect();
    let result = ingestor.ingest_together(&parts).await;
    drop(parts);
    match result {
        Ok(outcomes) => {
            for (batch, outcomes) in batches.into_iter().zip(outcomes) {
                answer(batch.answers, outcomes);
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, tenants = batches.len(), "tenants written together failed; writing each alone");
            metrics::counter!("webhook_groups_split_total").increment(1);
            futures_util::stream::iter(batches)
                .for_each_concurrent(TENANTS_AT_ONCE, |batch| apply(ingestor, batch))
                .await;
        }
    }
}

fn answer(
    answers: Vec<oneshot::Sender<DomainResult<IngestOutcome>>>,
    outcomes: Vec<Option<IngestOutcome>>,
) {
    for (done, outcome) in answers.into_iter().zip(outcomes) {
        let _ = done.send(
            outcome.ok_or_else(|| DomainError::Internal("the report was not applied".into())),
        );
    }
}

async fn apply(ingestor: &Ingestor, batch: Batch) {
    let Batch {
        tenant,
        source,
        reports,
        answers,
    } = batch;
    match ingestor
        .ingest_batch(&tenant, &reports, None, source, Known::Merge)
        .await
    {
        Ok(outcomes) => answer(answers, outcomes),
        Err(e) if reports.len() == 1 => {
            if let Some(done) = answers.into_iter().next() {
                let _ = done.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, reports = reports.len(), "a group of reports failed; applying them one by one");
            for (report, done) in reports.iter().zip(answers) {
                let _ = done.send(ingestor.ingest(&tenant, report, source).await);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::transition::FollowUps;
    use crate::events::InProcessBus;
    use crate::testdb::{Backend, TestDb};
    use crate::types::{CallStatus, Provider};
    use sea_orm::{ConnectionTrait, EntityTrait, TransactionTrait};

    /// A group stuck behind a row lock (another process holding the call) does not hold up
    /// another tenant of the same shard: the next group waits for it only as long as its
    /// patience, then is written alongside.
    #[tokio::test]
    async fn a_stuck_group_does_not_hold_up_another_tenant() {
        let Some(test_db) = TestDb::create(Backend::Postgres).await else {
            return;
        };
        let db = sea_orm::Database::connect(test_db.url.as_str())
            .await
            .unwrap();
        let a = crate::testdb::tenant(&db, "Stuck").await;
        let mut b = crate::testdb::tenant(&db, "Other").await;
        while shard_of(&b) != shard_of(&a) {
            b = crate::testdb::tenant(&db, "Other").await;
        }
        let ingestor = ingestor_on(&db);
        let commit = GroupCommit::start(ingestor, 64);
        let (a, b) = (Arc::new(a), Arc::new(b));
        let report = |id: &str, status| CallReport::new(Provider::Bolna, id, status);
        commit
            .ingest(
                a.clone(),
                report("held", CallStatus::Initiated),
                EventSource::Webhook,
            )
            .await
            .unwrap();

        // Another connection holds the call's row until it rolls back.
        let holder = db.begin().await.unwrap();
        holder
            .execute_unprepared(&format!(
                "SELECT id FROM calls WHERE tenant_id = '{}' FOR UPDATE",
                a.id
            ))
            .await
            .unwrap();
        let stuck = tokio::spawn({
            let (commit, a) = (commit.clone(), a.clone());
            async move {
                commit
                    .ingest(a, report("held", CallStatus::Ringing), EventSource::Webhook)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!stuck.is_finished(), "the row lock should hold the group");

        let other = tokio::time::timeout(
            Duration::from_secs(5),
            commit.ingest(
                b.clone(),
                report("free", CallStatus::Initiated),
                EventSource::Webhook,
            ),
        )
        .await
        .expect("another tenant's report waited for the stuck group")
        .unwrap();
        assert!(other.created);
        assert!(!stuck.is_finished());

        holder.rollback().await.unwrap();
        let moved = tokio::time::timeout(Duration::from_secs(10), stuck)
            .await
            .expect("the stuck group went on once the lock was released")
            .unwrap()
            .unwrap();
        assert_eq!(moved.status, CallStatus::Ringing);
    }

    /// An ingestor on `db` with in-process events and no follow-ups.
    fn ingestor_on(db: &sea_orm::DatabaseConnection) -> Ingestor {
        Ingestor::new(
            db.clone(),
            Arc::new(InProcessBus::new()),
            FollowUps::default(),
        )
    }

    fn report_to(id: &str, status: CallStatus, number: &str) -> CallReport {
        let mut r = CallReport::new(Provider::Bolna, id, status);
        r.to_number = Some(number.into());
        r
    }

    async fn outbox_of(db: &sea_orm::DatabaseConnection, tenant: uuid::Uuid) -> usize {
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        entity::crm_outbox::Entity::find()
            .filter(entity::crm_outbox::Column::TenantId.eq(tenant))
            .count(db)
            .await
            .unwrap() as usize
    }

    /// Tenants written in one transaction get what each would have got alone: their own
    /// calls and customers, and (only the tenant with a CRM) their customers noted for it,
    /// when created and when changed.
    #[tokio::test]
    async fn tenants_written_together_get_what_each_would_alone() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(test_db) = TestDb::create(backend).await else {
                continue;
            };
            let db = sea_orm::Database::connect(test_db.url.as_str())
                .await
                .unwrap();
            let a = crate::testdb::tenant(&db, "With CRM").await;
            let b = crate::testdb::tenant(&db, "Without").await;
            let now = chrono::Utc::now();
            sea_orm::EntityTrait::insert(sea_orm::IntoActiveModel::into_active_model(
                entity::crm_connection::Model {
                    tenant_id: a.id,
                    provider: entity::values::CrmProvider::Twenty,
                    base_url: "http://crm.invalid".into(),
                    api_key_enc: "x".into(),
                    webhook_secret_enc: "x".into(),
                    webhook_token: format!("tok-{}", a.id),
                    field_mapping: serde_json::json!([]),
                    overrides: serde_json::json!([]),
                    pull_cursor: None,
                    failing_since: None,
                    failing_notified: false,
                    last_error: None,
                    last_pull_at: None,
                    last_push_at: None,
                    created_at: now,
                    updated_at: now,
                },
            ))
            .exec(&db)
            .await
            .unwrap();
            let ingestor = ingestor_on(&db);
            let first_a = [
                report_to("a-1", CallStatus::Initiated, "+919812345601"),
                report_to("a-2", CallStatus::Initiated, "+919812345602"),
            ];
            let first_b = [report_to("b-1", CallStatus::Ringing, "+919812345601")];
            // Given out of tenant order: the outcomes come back in the order asked.
            let out = ingestor
                .ingest_together(&[
                    (&b, &first_b[..], EventSource::Webhook),
                    (&a, &first_a[..], EventSource::Webhook),
                ])
                .await
                .unwrap();
            assert_eq!(out.len(), 2, "{backend:?}");
            assert_eq!(out[0].len(), 1);
            assert_eq!(out[1].len(), 2);
            let b1 = out[0][0].clone().unwrap();
            assert!(b1.created && b1.customer_created && b1.event_recorded);
            assert_eq!(b1.status, CallStatus::Ringing);
            let a1 = out[1][0].clone().unwrap();
            assert!(a1.created && a1.customer_created);
            // One number, two tenants: two customers.
            assert_ne!(a1.customer_id, b1.customer_id, "{backend:?}");
            assert_eq!(outbox_of(&db, a.id).await, 2, "{backend:?}");
            assert_eq!(outbox_of(&db, b.id).await, 0, "{backend:?}");

            // A later contact changes a's first customer: noted again.
            db.execute_unprepared("DELETE FROM crm_outbox")
                .await
                .unwrap();
            let mut later = report_to("a-3", CallStatus::Completed, "+919812345601");
            later.occurred_at = Some(chrono::Utc::now() + chrono::Duration::minutes(5));
            let again_b = [report_to("b-1", CallStatus::Completed, "+919812345601")];
            let out = ingestor
                .ingest_together(&[
                    (&a, std::slice::from_ref(&later), EventSource::Webhook),
                    (&b, &again_b[..], EventSource::Webhook),
                ])
                .await
                .unwrap();
            let a3 = out[0][0].clone().unwrap();
            assert!(a3.created && !a3.customer_created);
            assert_eq!(a3.customer_id, a1.customer_id);
            let b1 = out[1][0].clone().unwrap();
            assert!(!b1.created && b1.advanced);
            assert_eq!(b1.previous_status, Some(CallStatus::Ringing));
            assert_eq!(outbox_of(&db, a.id).await, 1, "{backend:?}");
            assert_eq!(outbox_of(&db, b.id).await, 0, "{backend:?}");
        }
    }

    /// A report that cannot be written (its tenant is gone) fails only itself: the
    /// other tenants of its group are written alone after the shared transaction fails.
    #[tokio::test]
    async fn a_bad_tenant_in_a_group_fails_only_its_own_reports() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(test_db) = TestDb::create(backend).await else {
                continue;
            };
            let db = sea_orm::Database::connect(test_db.url.as_str())
                .await
                .unwrap();
            let good = crate::testdb::tenant(&db, "Good").await;
            let mut gone = crate::testdb::tenant(&db, "Gone").await;
            gone.id = uuid::Uuid::new_v4();
            let ingestor = ingestor_on(&db);
            let (good, gone) = (Arc::new(good), Arc::new(gone));
            let mut answers = Vec::new();
            let mut group = Vec::new();
            for (tenant, id) in [(&gone, "x-1"), (&good, "g-1"), (&good, "g-2")] {
                let (done, answer) = oneshot::channel();
                group.push(vec![Pending {
                    tenant: tenant.clone(),
                    report: report_to(id, CallStatus::Initiated, "+919812345601"),
                    source: EventSource::Webhook,
                    done,
                }]);
                answers.push(answer);
            }
            // The two reports of `good` as one tenant batch, as the writer groups them.
            let second = group.pop().unwrap().pop().unwrap();
            group[1].push(second);
            write(&ingestor, group).await;
            let mut results = Vec::new();
            for answer in answers {
                results.push(answer.await.unwrap());
            }
            assert!(results[0].is_err(), "{backend:?}");
            assert!(results[1].as_ref().is_ok_and(|o| o.created), "{backend:?}");
            assert!(results[2].as_ref().is_ok_and(|o| o.created), "{backend:?}");
        }
    }

    /// Each sender of a group written together gets its own report's outcome, whatever
    /// the order the tenants are written in.
    #[tokio::test]
    async fn a_shared_group_answers_each_sender_with_its_own_call() {
        let test_db = TestDb::create(Backend::Sqlite).await.unwrap();
        let db = sea_orm::Database::connect(test_db.url.as_str())
            .await
            .unwrap();
        let ingestor = ingestor_on(&db);
        let mut tenants = Vec::new();
        for name in ["One", "Two", "Three"] {
            tenants.push(Arc::new(crate::testdb::tenant(&db, name).await));
        }
        let mut group = Vec::new();
        let mut answers = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            let (done, answer) = oneshot::channel();
            group.push(vec![Pending {
                tenant: tenant.clone(),
                report: report_to(&format!("t{i}"), CallStatus::Initiated, "+919812345601"),
                source: EventSource::Webhook,
                done,
            }]);
            answers.push((tenant.id, format!("t{i}"), answer));
        }
        write(&ingestor, group).await;
        for (tenant, execution, answer) in answers {
            let outcome = answer.await.unwrap().unwrap();
            let call = entity::call::Entity::find_by_id(outcome.call_id)
                .one(&db)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(call.tenant_id, tenant);
            assert_eq!(
                call.provider_execution_id.as_deref(),
                Some(execution.as_str())
            );
        }
    }

    /// A shared transaction does not wait without end for a call this process is writing
    /// already (another group stuck behind that call's row): it gives up, and each tenant
    /// is written alone.
    #[tokio::test]
    async fn a_shared_transaction_gives_up_on_a_call_being_written() {
        let test_db = TestDb::create(Backend::Sqlite).await.unwrap();
        let db = sea_orm::Database::connect(test_db.url.as_str())
            .await
            .unwrap();
        let a = crate::testdb::tenant(&db, "Stuck").await;
        let b = crate::testdb::tenant(&db, "Free").await;
        let ingestor = ingestor_on(&db);
        let stuck = report_to("stuck", CallStatus::Ringing, "+919812345601");
        let free = report_to("free", CallStatus::Initiated, "+919812345602");
        let _writing = ingestor
            .locks
            .lock(vec![super::super::locks::key(
                a.id,
                stuck.provider.as_str(),
                &stuck.execution_id,
            )])
            .await;
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            ingestor.ingest_together(&[
                (&a, std::slice::from_ref(&stuck), EventSource::Webhook),
                (&b, std::slice::from_ref(&free), EventSource::Webhook),
            ]),
        )
        .await
        .expect("the shared transaction waited for the call without end");
        assert!(result.is_err());
        assert!(
            entity::call::Entity::find()
                .all(&db)
                .await
                .unwrap()
                .is_empty(),
            "nothing written"
        );
    }

    /// A shared transaction waiting on a row held elsewhere gives up after its lock
    /// timeout, having written nothing, so the caller can write each tenant alone.
    #[tokio::test]
    async fn a_shared_transaction_gives_up_on_a_held_row() {
        let Some(test_db) = TestDb::create(Backend::Postgres).await else {
            return;
        };
        let db = sea_orm::Database::connect(test_db.url.as_str())
            .await
            .unwrap();
        let a = crate::testdb::tenant(&db, "Held").await;
        let b = crate::testdb::tenant(&db, "Free").await;
        let ingestor = ingestor_on(&db);
        let held = report_to("held", CallStatus::Initiated, "+919812345601");
        ingestor
            .ingest(&a, &held, EventSource::Webhook)
            .await
            .unwrap();
        let holder = db.begin().await.unwrap();
        holder
            .execute_unprepared(&format!(
                "SELECT id FROM calls WHERE tenant_id = '{}' FOR UPDATE",
                a.id
            ))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let ringing = report_to("held", CallStatus::Ringing, "+919812345601");
        let free = report_to("free", CallStatus::Initiated, "+919812345602");
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            ingestor.ingest_together(&[
                (&a, std::slice::from_ref(&ringing), EventSource::Webhook),
                (&b, std::slice::from_ref(&free), EventSource::Webhook),
            ]),
        )
        .await
        .expect("the shared transaction should give up on the held row");
        let waited = started.elapsed();
        assert!(result.is_err());
        assert!(waited >= crate::ingest::TOGETHER_LOCK_TIMEOUT, "{waited:?}");
        holder.rollback().await.unwrap();
        let calls = entity::call::Entity::find().all(&db).await.unwrap();
        assert_eq!(calls.len(), 1, "nothing of the failed transaction stays");
        assert_eq!(calls[0].status, CallStatus::Initiated);
    }

    #[test]
    fn patience_follows_the_typical_group_within_bounds() {
        let t = Typical::default();
        assert_eq!(t.patience(), MIN_PATIENCE * 2);
        for _ in 0..64 {
            t.record(Duration::from_millis(5));
        }
        let p = t.patience();
        assert!(
            p > Duration::from_millis(9) && p <= Duration::from_millis(10),
            "{p:?}"
        );
        for _ in 0..64 {
            t.record(Duration::from_secs(1));
        }
        assert_eq!(t.patience(), MAX_PATIENCE);
    }
}
