//! The sync job: page the provider's executions window by window, route each one, and
//! ingest what is new; counts, progress events and the outcome go on the `SyncRun`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;

use chrono::{Duration, Utc};
use entity::{agent, sync_cursor, sync_run, tenant};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use super::service::{AgentCount, TriggerSync, running};
use super::walk::{self, Account, Step, Walker};
use crate::error::{DomainError, DomainResult};
use crate::ingest::{self, Known};
use crate::phone::PhoneNumber;
use crate::providers::CallReport;
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{EventSource, Provider, SyncStatus, SyncTrigger};

/// Pages the provider is walked ahead of the writer.
const FETCH_AHEAD: usize = 8;

/// Executions written in one transaction at most (pages that arrived while the previous
/// batch was written are taken together).
const MAX_BATCH: usize = 500;

/// Batches written at once (each its own transaction; customers and calls are written in
/// key order, so two batches cannot deadlock on each other).
const WRITERS: usize = 2;

/// Progress is saved and published at most this often (and at the end).
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The cursor stays this far behind the newest synced call: late rows and clock skew.
const OVERLAP: Duration = Duration::minutes(30);

#[derive(Default)]
struct Counts {
    total: i32,
    synced: i32,
    new_customers: i32,
    updated_customers: i32,
    duplicates: i32,
    unknown_agent: i32,
    no_phone: i32,
    /// The first `MAX_RUN_ERRORS` errors; `errors_dropped` counts the rest.
    errors: Vec<String>,
    errors_dropped: usize,
    /// How many of `errors` are notes (skipped unknown agents), not failures.
    notes: usize,
    unknown_agents: HashSet<String>,
    by_agent: BTreeMap<Uuid, i64>,
    /// Dry runs: numbers that would become new customers, counted once each.
    would_create: HashSet<String>,
    newest: Option<chrono::DateTime<Utc>>,
}

/// Errors a run keeps (and rewrites and broadcasts with its progress); the rest are counted.
const MAX_RUN_ERRORS: usize = 100;
/// Unknown agent ids listed in a run's note.
const MAX_LISTED_AGENTS: usize = 50;

impl Counts {
    fn push_error(&mut self, e: String) {
        if self.errors.len() < MAX_RUN_ERRORS {
            self.errors.push(e);
        } else {
            self.errors_dropped += 1;
        }
    }

    /// The errors as stored: the first ones, then how many more there were.
    fn stored_errors(&self) -> Vec<String> {
        let mut out = self.errors.clone();
        if self.errors_dropped > 0 {
            out.push(format!("... and {} more errors", self.errors_dropped));
        }
        out
    }

    /// Adds a batch's counts to the run's.
    fn absorb(&mut self, batch: Counts) {
        self.synced += batch.synced;
        self.new_customers += batch.new_customers;
        self.updated_customers += batch.updated_customers;
        self.duplicates += batch.duplicates;
        self.unknown_agent += batch.unknown_agent;
        self.no_phone += batch.no_phone;
        for e in batch.errors {
            self.push_error(e);
        }
        self.errors_dropped += batch.errors_dropped;
        self.notes += batch.notes;
        self.unknown_agents.extend(batch.unknown_agents);
        for (agent, n) in batch.by_agent {
            *self.by_agent.entry(agent).or_default() += n;
        }
        // Dry runs: a number counts as a new customer once per run.
        for phone in batch.would_create {
            if self.would_create.insert(phone) {
                self.new_customers += 1;
            }
        }
    }
}

/// Runs one sync to its end (the `SyncRun` job). Restartable: a run picked up again
/// after a crash starts counting afresh, and everything already ingested counts as a
/// duplicate.
pub(crate) async fn run_sync(services: &Services, id: Uuid) -> anyhow::Result<()> {
    use anyhow::Context;
    let db = services.db();
    let Some(run) = sync_run::Entity::find_by_id(id)
        .one(db)
        .await
        .context("loading the sync run")?
    else {
        return Ok(());
    };
    if run.status != SyncStatus::Running {
        return Ok(());
    }
    let outcome = execute(services, &run).await;
    let (status, counts) = match outcome {
        // Skipped unknown agents are reported, not failures: only errors make it PARTIAL.
        Ok(c) if c.errors.len() + c.errors_dropped == c.notes => (SyncStatus::Succeeded, c),
        Ok(c) => (SyncStatus::Partial, c),
        Err(message) => {
            let c = Counts {
                errors: vec![message],
                ..Default::default()
            };
            (SyncStatus::Failed, c)
        }
    };
    let finished = save(services, &run, &counts, Some(status))
        .await
        .context("saving the sync run's outcome")?;
    if status == SyncStatus::Succeeded
        && !run.dry_run
        && let Err(e) = advance_cursor(services, &finished, counts.newest).await
    {
        tracing::warn!(error = %e, "could not move the sync cursor");
    }
    metrics::counter!("sync_runs_total", "status" => status.as_str()).increment(1);
    Ok(())
}

/// Everything but the final save. `Err` is a run that could not start (it ends FAILED).
///
/// A task walks the provider a few pages ahead while this one writes: pages that arrived
/// meanwhile are routed and ingested together, in one transaction of set-based statements.
async fn execute(services: &Services, run: &sync_run::Model) -> Result<Counts, String> {
    let provider = run
        .provider
        .call_provider()
        .ok_or_else(|| "not a calls sync run".to_owned())?;
    let account = Arc::new(walk::open(services, run.tenant_id, provider).await?);
    let (pages_tx, mut pages) = tokio::sync::mpsc::channel::<Vec<CallReport>>(FETCH_AHEAD);
    let walking = tokio::spawn({
        let mut walker = Walker::new(account.clone(), run.since, run.until);
        async move {
            let mut page = Vec::new();
            while let Some(step) = walker.next().await {
                match step {
                    Step::Report(report) => page.push(*report),
                    Step::PageDone => {
                        // The writer is gone (it failed): stop walking.
                        if pages_tx.send(std::mem::take(&mut page)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            walker
        }
    });
    let mut counts = Counts::default();
    let mut saved = Instant::now();
    // Batches are written WRITERS at a time, each in its own task and transaction.
    let mut writing = futures_util::stream::FuturesUnordered::new();
    let mut walked = false;
    loop {
        while !walked && writing.len() < WRITERS {
            let Some(mut batch) = pages.recv().await else {
                walked = true;
                break;
            };
            while batch.len() < MAX_BATCH
                && let Ok(more) = pages.try_recv()
            {
                batch.extend(more);
            }
            counts.total += batch.len() as i32;
            for report in &batch {
                if let Some(t) = report.started_at.or(report.occurred_at) {
                    counts.newest = Some(counts.newest.map_or(t, |n| n.max(t)));
                }
            }
            writing.push(tokio::spawn(route(
                services.clone(),
                run.dry_run,
                account.clone(),
                batch,
            )));
        }
        let Some(done) = writing.next().await else {
            break;
        };
        counts.absorb(done.map_err(|e| format!("writing a batch stopped: {e}"))?);
        if saved.elapsed() >= PROGRESS_EVERY {
            save(services, run, &counts, None)
                .await
                .map_err(|e| e.to_string())?;
            saved = Instant::now();
        }
    }
    let mut walker = walking
        .await
        .map_err(|e| format!("walking the provider stopped: {e}"))?;
    counts.total += walker.unreadable;
    for e in std::mem::take(&mut walker.errors) {
        counts.push_error(e);
    }
    counts.errors_dropped += walker.errors_dropped;
    if !counts.unknown_agents.is_empty() {
        let mut ids: Vec<&String> = counts.unknown_agents.iter().collect();
        ids.sort();
        let total = ids.len();
        let list: Vec<&str> = ids
            .iter()
            .take(MAX_LISTED_AGENTS)
            .map(|s| s.as_str())
            .collect();
        let more = if total > MAX_LISTED_AGENTS {
            format!(" and {} more", total - MAX_LISTED_AGENTS)
        } else {
            String::new()
        };
        // Informational: listed with the errors so admins can register these agents.
        // Pushed past the cap on purpose: it is the one note, and the status counts it.
        counts.errors.push(format!(
            "calls of provider agents not registered here were skipped: {}{more}",
            list.join(", ")
        ));
        counts.notes += 1;
    }
    Ok(counts)
}

/// Routes a batch of executions: skips those of unknown agents or without a number, and
/// ingests the rest (or, in a dry run, only looks at what ingesting would do). Calls
/// already stored at the same or a later status are duplicates. A batch that cannot be
/// written is listed in the errors; the run goes on. Returns the batch's own counts.
async fn route(
    services: Services,
    dry_run: bool,
    account: Arc<Account>,
    batch: Vec<CallReport>,
) -> Counts {
    let started = Instant::now();
    let size = batch.len();
    let mut counts = Counts::default();
    let mut reports: Vec<CallReport> = Vec::with_capacity(batch.len());
    let mut routes: Vec<(Uuid, PhoneNumber)> = Vec::with_capacity(batch.len());
    for report in batch {
        let Some(agent) = report
            .provider_agent_id
            .as_ref()
            .and_then(|id| account.registered.get(id))
            .map(|a| a.id)
        else {
            counts.unknown_agent += 1;
            if let Some(id) = report.provider_agent_id {
                counts.unknown_agents.insert(id);
            }
            continue;
        };
        let Some(phone) = report
            .customer_number()
            .and_then(|raw| PhoneNumber::parse(raw, account.region).ok())
        else {
            counts.no_phone += 1;
            continue;
        };
        reports.push(report);
        routes.push((agent, phone));
    }
    if reports.is_empty() {
        return counts;
    }
    let result = if dry_run {
        preview(&services, &account, &reports, &routes, &mut counts).await
    } else {
        ingest(&services, &account, &reports, &routes, &mut counts).await
    };
    let result = match result {
        // One bad row must cost one row, not the batch: apply them one by one.
        Err(e) if !dry_run && reports.len() > 1 => {
            tracing::warn!(error = %e, size = reports.len(), "sync batch failed; applying its reports one by one");
            for i in 0..reports.len() {
                if let Err(e) = ingest(
                    &services,
                    &account,
                    &reports[i..=i],
                    &routes[i..=i],
                    &mut counts,
                )
                .await
                {
                    counts.push_error(format!(
                        "execution {} could not be stored: {e}",
                        reports[i].execution_id
                    ));
                }
            }
            Ok(())
        }
        other => other,
    };
    if let Err(e) = result {
        let first = &reports[0].execution_id;
        let last = &reports[reports.len() - 1].execution_id;
        counts.push_error(format!(
            "{} executions ({first} .. {last}) could not be stored: {e}",
            reports.len()
        ));
    }
    tracing::debug!(
        size,
        ms = started.elapsed().as_millis() as u64,
        "sync batch routed"
    );
    counts
}

async fn ingest(
    services: &Services,
    account: &Account,
    reports: &[CallReport],
    routes: &[(Uuid, PhoneNumber)],
    counts: &mut Counts,
) -> DomainResult<()> {
    let phones: Vec<Option<PhoneNumber>> = routes.iter().map(|r| Some(r.1.clone())).collect();
    let outcomes = services
        .ingestor()
        .ingest_batch(
            &account.tenant,
            reports,
            Some(&phones),
            EventSource::Sync,
            Known::Skip,
        )
        .await?;
    for ((agent, _), outcome) in routes.iter().zip(outcomes) {
        let Some(outcome) = outcome else {
            counts.duplicates += 1;
            continue;
        };
        counts.synced += 1;
        *counts.by_agent.entry(*agent).or_default() += 1;
        if outcome.customer_created {
            counts.new_customers += 1;
        } else if outcome.created {
            counts.updated_customers += 1;
        }
    }
    Ok(())
}

/// A dry run's counts: what ingesting would do, from one read.
async fn preview(
    services: &Services,
    account: &Account,
    reports: &[CallReport],
    routes: &[(Uuid, PhoneNumber)],
    counts: &mut Counts,
) -> DomainResult<()> {
    let db = services.db();
    let tenant = account.tenant.id;
    let ids: Vec<&str> = reports.iter().map(|r| r.execution_id.as_str()).collect();
    let phones: Vec<&str> = routes.iter().map(|r| r.1.as_str()).collect();
    let provider = reports[0].provider;
    let found = ingest::lookup(db, tenant, provider, &[], &ids, &phones, false).await?;
    let (stored, customers) = (found.calls, found.customers);
    for (report, (agent, phone)) in reports.iter().zip(routes) {
        let previous = stored.get(&report.execution_id);
        if previous.is_some_and(|p| p.rank() >= report.status.rank()) {
            counts.duplicates += 1;
            continue;
        }
        counts.synced += 1;
        *counts.by_agent.entry(*agent).or_default() += 1;
        if !customers.contains_key(phone.as_str()) {
            // Would become a customer: counted once per number when merged.
            counts.would_create.insert(phone.as_str().to_owned());
        } else if previous.is_none() {
            counts.updated_customers += 1;
        }
    }
    Ok(())
}

/// Writes the counts (and the final status when given) and publishes the run.
async fn save(
    services: &Services,
    run: &sync_run::Model,
    counts: &Counts,
    status: Option<SyncStatus>,
) -> DomainResult<sync_run::Model> {
    let db = services.db();
    let agents: HashMap<Uuid, agent::Model> = agent::Entity::find()
        .filter(agent::Column::Id.is_in(counts.by_agent.keys().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let by_agent: Vec<AgentCount> = counts
        .by_agent
        .iter()
        .map(|(id, count)| AgentCount {
            agent_id: *id,
            // The business name we hold, never a name from extracted fields.
            agent_name: agents
                .get(id)
                .map(|a| a.business_name.clone().unwrap_or_else(|| a.name.clone()))
                .unwrap_or_default(),
            count: *count,
        })
        .collect();
    let now = Utc::now();
    let mut active = run.clone().into_active_model();
    active.total_calls = Set(counts.total);
    active.synced_calls = Set(counts.synced);
    active.new_customers = Set(counts.new_customers);
    active.updated_customers = Set(counts.updated_customers);
    active.duplicate_calls = Set(counts.duplicates);
    active.skipped_unknown_agent = Set(counts.unknown_agent);
    active.skipped_no_phone = Set(counts.no_phone);
    active.errors = Set(json!(counts.stored_errors()));
    active.calls_by_agent = Set(json!(by_agent));
    active.updated_at = Set(now);
    super::service::store(services, active, status, now).await
}

/// Scheduled runs start where the last successful one ended, minus the overlap.
async fn advance_cursor(
    services: &Services,
    run: &sync_run::Model,
    newest: Option<chrono::DateTime<Utc>>,
) -> DomainResult<()> {
    let until = newest.map_or(run.until, |n| n.min(run.until)) - OVERLAP;
    // Never ahead of now: a cursor in the future would make every later run empty.
    let until = until.max(run.since).min(Utc::now());
    let Some(provider) = run.provider.call_provider() else {
        return Ok(());
    };
    sync_cursor::Entity::insert(sync_cursor::ActiveModel {
        tenant_id: Set(run.tenant_id),
        provider: Set(provider),
        synced_until: Set(until),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([sync_cursor::Column::TenantId, sync_cursor::Column::Provider])
            .update_columns([
                sync_cursor::Column::SyncedUntil,
                sync_cursor::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec(services.db())
    .await?;
    Ok(())
}

/// A scheduled sync for every tenant with credentials, per provider. A tenant whose
/// sync cannot start is logged and counted (`sync_schedule_failures_total`); the others
/// still get theirs.
pub async fn schedule_syncs(services: &Services) -> Result<u64, DomainError> {
    use entity::provider_credential;
    let db = services.db();
    let creds = provider_credential::Entity::find().all(db).await?;
    let mut started = 0;
    for cred in creds {
        let provider = cred.provider;
        match schedule_one(services, cred.tenant_id, provider).await {
            Ok(true) => started += 1,
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("sync_schedule_failures_total").increment(1);
                tracing::warn!(tenant.id = %cred.tenant_id, %provider, error = %e, "could not start a scheduled sync");
            }
        }
    }
    Ok(started)
}

async fn schedule_one(
    services: &Services,
    tenant_id: uuid::Uuid,
    provider: Provider,
) -> Result<bool, DomainError> {
    let db = services.db();
    let Some(tenant) = tenant::Entity::find_by_id(tenant_id).one(db).await? else {
        return Ok(false);
    };
    if running(db, tenant.id, provider).await?.is_some() {
        return Ok(false);
    }
    let scope = TenantScope::system(&tenant)?;
    super::trigger(
        db,
        &scope,
        TriggerSync {
            provider,
            since: None,
            until: None,
            dry_run: false,
        },
        SyncTrigger::Scheduled,
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_keeps_its_first_errors_and_counts_the_rest() {
        let mut run = Counts::default();
        for batch in 0..30 {
            let mut counts = Counts::default();
            for i in 0..10 {
                counts.push_error(format!("batch {batch} error {i}"));
            }
            run.absorb(counts);
        }
        let stored = run.stored_errors();
        assert_eq!(stored.len(), MAX_RUN_ERRORS + 1);
        assert_eq!(stored.last().unwrap(), "... and 200 more errors");
        assert_eq!(run.errors.len() + run.errors_dropped, 300);
    }
}
