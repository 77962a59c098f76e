//! The sync job: page the provider's executions window by window, route each one, and
//! ingest what is new; counts, progress events and the outcome go on the `SyncRun`.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Duration, Utc};
use entity::{agent, sync_cursor, sync_run, tenant};
use futures_util::StreamExt;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
    Statement,
};
use serde_json::json;
use uuid::Uuid;

use super::service::{AgentCount, TriggerSync, running};
use super::walk::{self, Account, Step, Walker};
use crate::db::param;
use crate::error::{DomainError, DomainResult};
use crate::events::Event;
use crate::phone::PhoneNumber;
use crate::providers::CallReport;
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{EventSource, Provider, SyncStatus, SyncTrigger};

pub const SYNC_JOB: &str = "sync_run";
pub const SCHEDULE_JOB: &str = "sync_schedule";

/// Executions of one page routed at once (each is its own short transaction).
const PAGE_CONCURRENCY: usize = 8;

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
    errors: Vec<String>,
    /// How many of `errors` are notes (skipped unknown agents), not failures.
    notes: usize,
    unknown_agents: HashSet<String>,
    by_agent: BTreeMap<Uuid, i64>,
    /// Dry runs: numbers that would become new customers, counted once each.
    would_create: HashSet<String>,
    newest: Option<chrono::DateTime<Utc>>,
}

/// Job: runs one sync to its end. Restartable: a run picked up again after a crash
/// starts counting afresh, and everything already ingested counts as a duplicate.
pub async fn run_sync(services: &Services, payload: serde_json::Value) -> Result<(), String> {
    let id: Uuid = payload
        .get("syncRunId")
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or("bad payload")?;
    let db = services.db();
    let Some(run) = sync_run::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    if run.status != SyncStatus::Running.as_str() {
        return Ok(());
    }
    let outcome = execute(services, &run).await;
    let (status, counts) = match outcome {
        // Skipped unknown agents are reported, not failures: only errors make it PARTIAL.
        Ok(c) if c.errors.len() == c.notes => (SyncStatus::Succeeded, c),
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
        .map_err(|e| e.to_string())?;
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
async fn execute(services: &Services, run: &sync_run::Model) -> Result<Counts, String> {
    let provider: Provider = run.provider.parse().map_err(|_| "unknown provider")?;
    let account = walk::open(services, run.tenant_id, provider).await?;
    let mut counts = Counts::default();
    let mut walker = Walker::new(&account, run.since, run.until);
    let mut page: Vec<CallReport> = Vec::new();
    while let Some(step) = walker.next().await {
        match step {
            Step::Report(report) => {
                counts.total += 1;
                if let Some(t) = report.started_at.or(report.occurred_at) {
                    counts.newest = Some(counts.newest.map_or(t, |n| n.max(t)));
                }
                page.push(*report);
            }
            Step::PageDone => {
                // A page's executions are independent: route several at once.
                let routed: Vec<DomainResult<Routed>> = futures_util::stream::iter(page.drain(..))
                    .map(|report| route(services, run, &account, report))
                    .buffer_unordered(PAGE_CONCURRENCY)
                    .collect()
                    .await;
                for r in routed {
                    match r {
                        Ok(routed) => tally(&mut counts, routed),
                        Err(e) => counts.errors.push(e.to_string()),
                    }
                }
                save(services, run, &counts, None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    counts.total += walker.unreadable;
    counts.errors.append(&mut walker.errors);
    if !counts.unknown_agents.is_empty() {
        let mut ids: Vec<&String> = counts.unknown_agents.iter().collect();
        ids.sort();
        let list: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
        // Informational: listed with the errors so admins can register these agents.
        counts.errors.push(format!(
            "calls of provider agents not registered here were skipped: {}",
            list.join(", ")
        ));
        counts.notes += 1;
    }
    Ok(counts)
}

/// What routing one execution did (or, in a dry run, would do).
enum Routed {
    UnknownAgent(Option<String>),
    NoPhone,
    Duplicate,
    Synced {
        agent: Uuid,
        customer: CustomerEffect,
    },
}

enum CustomerEffect {
    Created,
    /// An existing customer got a new call.
    Updated,
    Unchanged,
    /// Dry run: this number would become a customer (counted once per number).
    WouldCreate(String),
}

/// Routes one execution: skips it (unknown agent, no number, already stored), or ingests
/// it (a dry run only looks). Touches no counters, so a page's executions can be routed
/// concurrently.
async fn route(
    services: &Services,
    run: &sync_run::Model,
    account: &Account,
    report: CallReport,
) -> DomainResult<Routed> {
    let (tenant, region, registered) = (&account.tenant, account.region, &account.registered);
    let Some(agent) = report
        .provider_agent_id
        .as_ref()
        .and_then(|id| registered.get(id))
    else {
        return Ok(Routed::UnknownAgent(report.provider_agent_id.clone()));
    };
    let Some(phone) = report
        .customer_number()
        .and_then(|raw| PhoneNumber::parse(raw, region).ok())
    else {
        return Ok(Routed::NoPhone);
    };
    let db = services.db();
    let backend = db.get_database_backend();
    let p = |n| param(backend, n);
    let existing = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT status_rank FROM calls WHERE tenant_id = {} AND provider = {} AND provider_execution_id = {}",
                p(1),
                p(2),
                p(3)
            ),
            [
                tenant.id.into(),
                report.provider.as_str().into(),
                report.execution_id.clone().into(),
            ],
        ))
        .await?
        .map(|r| r.try_get::<i32>("", "status_rank"))
        .transpose()?;
    if existing.is_some_and(|rank| rank >= report.status.rank()) {
        return Ok(Routed::Duplicate);
    }
    let customer = if run.dry_run {
        let exists = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT id FROM customers WHERE tenant_id = {} AND phone_number = {}",
                    p(1),
                    p(2)
                ),
                [tenant.id.into(), phone.as_str().into()],
            ))
            .await?
            .is_some();
        match (exists, existing) {
            (false, _) => CustomerEffect::WouldCreate(phone.into_string()),
            (true, None) => CustomerEffect::Updated,
            (true, Some(_)) => CustomerEffect::Unchanged,
        }
    } else {
        let outcome = services
            .ingestor()
            .ingest(tenant, &report, EventSource::Sync)
            .await?;
        if outcome.customer_created {
            CustomerEffect::Created
        } else if outcome.created {
            CustomerEffect::Updated
        } else {
            CustomerEffect::Unchanged
        }
    };
    Ok(Routed::Synced {
        agent: agent.id,
        customer,
    })
}

fn tally(counts: &mut Counts, routed: Routed) {
    match routed {
        Routed::UnknownAgent(id) => {
            counts.unknown_agent += 1;
            if let Some(id) = id {
                counts.unknown_agents.insert(id);
            }
        }
        Routed::NoPhone => counts.no_phone += 1,
        Routed::Duplicate => counts.duplicates += 1,
        Routed::Synced { agent, customer } => {
            counts.synced += 1;
            *counts.by_agent.entry(agent).or_default() += 1;
            match customer {
                CustomerEffect::Created => counts.new_customers += 1,
                CustomerEffect::Updated => counts.updated_customers += 1,
                CustomerEffect::Unchanged => {}
                CustomerEffect::WouldCreate(phone) => {
                    if counts.would_create.insert(phone) {
                        counts.new_customers += 1;
                    }
                }
            }
        }
    }
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
    active.errors = Set(json!(counts.errors));
    active.calls_by_agent = Set(json!(by_agent));
    active.updated_at = Set(now);
    if let Some(s) = status {
        active.status = Set(s.as_str().to_owned());
        active.finished_at = Set(Some(now));
    }
    let saved = active.update(db).await?;
    let event = Event::SyncRunUpdated {
        tenant_id: saved.tenant_id,
        sync_run_id: saved.id,
        at: now,
        run: Some(Box::new(saved.clone())),
    };
    if let Err(e) = services.events().publish(event).await {
        tracing::warn!(error = %e, "could not publish sync progress");
    }
    Ok(saved)
}

/// Scheduled runs start where the last successful one ended, minus the overlap.
async fn advance_cursor(
    services: &Services,
    run: &sync_run::Model,
    newest: Option<chrono::DateTime<Utc>>,
) -> DomainResult<()> {
    let until = newest.map_or(run.until, |n| n.min(run.until)) - OVERLAP;
    let until = until.max(run.since);
    sync_cursor::Entity::insert(sync_cursor::ActiveModel {
        tenant_id: Set(run.tenant_id),
        provider: Set(run.provider.clone()),
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

/// Job: a scheduled sync for every tenant with credentials, per provider.
pub async fn schedule_syncs(services: &Services) -> Result<u64, DomainError> {
    use entity::provider_credential;
    let db = services.db();
    let creds = provider_credential::Entity::find().all(db).await?;
    let mut started = 0;
    for cred in creds {
        let Ok(provider) = cred.provider.parse::<Provider>() else {
            continue;
        };
        let Some(tenant) = tenant::Entity::find_by_id(cred.tenant_id).one(db).await? else {
            continue;
        };
        if running(db, tenant.id, provider).await?.is_some() {
            continue;
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
        started += 1;
    }
    Ok(started)
}
