//! Group commit for webhook reports. Reports that arrive while a tenant's previous group is
//! being written wait, and are then applied together as one batch (one transaction per
//! provider, through [`Ingestor::ingest_batch`]); each sender is answered after that commit,
//! so a report is still durable before its acknowledgement, at a fraction of the statements.
//!
//! A shard writes up to [`GROUPS_IN_FLIGHT`] groups at once; while they are all busy, new
//! reports gather into the next group, so groups grow with the load and a lone report is
//! written at once. Order per call is kept: a report sent after another's acknowledgement
//! is grouped after it, a group holding two reports of one call applies them in arrival
//! order (`ingest_batch` splits repeated execution ids into successive transactions), and
//! the per-call locks order concurrent groups; reports sent concurrently have no order to
//! keep (the status guard makes any order converge). A group that fails is applied again
//! report by report, so one bad report fails only itself. Tenants are spread over shards,
//! so a slow tenant holds up only the tenants of its shard.

use std::sync::Arc;

use entity::tenant;
use tokio::sync::{Semaphore, mpsc, oneshot};

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

/// One shard's writer: waits for a free slot, takes what is waiting (at least one report),
/// applies it per tenant and source in the background, repeats.
async fn write_groups(ingestor: Ingestor, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut waiting = vec![first];
        while waiting.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => waiting.push(p),
                Err(_) => break,
            }
        }
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
        tokio::spawn(async move {
            for group in groups {
                apply(&ingestor, group).await;
            }
            drop(slot);
        });
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
