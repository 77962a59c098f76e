//! Group commit for webhook reports. Reports that arrive while a shard's previous group is
//! being written wait, and are then applied together as one batch (one transaction per
//! tenant and provider, through [`Ingestor::ingest_batch`]); each sender is answered after
//! that commit, so a report is still durable before its acknowledgement, at a fraction of
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
//! (the status guard makes any order converge). A group that fails is applied again report
//! by report, so one bad report fails only itself. Tenants are spread over shards, and the
//! tenants of one group are written side by side.

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
/// Tenants of one group written at once (each in its own transaction).
const TENANTS_AT_ONCE: usize = 4;
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
            // Tenants side by side, so one tenant's slow transaction does not hold up the
            // others of its group.
            futures_util::stream::iter(groups)
                .for_each_concurrent(TENANTS_AT_ONCE, |group| apply(&ingestor, group))
                .await;
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

async fn apply(ingestor: &Ingestor, group: Vec<Pending>) {
    let tenant = group[0].tenant.clone();
    let source = group[0].source;
    let (reports, answers): (Vec<CallReport>, Vec<_>) =
        group.into_iter().map(|p| (p.report, p.done)).unzip();
    metrics::histogram!("webhook_group_reports").record(reports.len() as f64);
    match ingestor
        .ingest_batch(&tenant, &reports, None, source, Known::Merge)
        .await
    {
        Ok(outcomes) => {
            for (done, outcome) in answers.into_iter().zip(outcomes) {
                let _ = done.send(
                    outcome
                        .ok_or_else(|| DomainError::Internal("the report was not applied".into())),
                );
            }
        }
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
    use sea_orm::{ConnectionTrait, TransactionTrait};

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
        let ingestor = Ingestor::new(
            db.clone(),
            Arc::new(InProcessBus::new()),
            FollowUps::default(),
        );
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
