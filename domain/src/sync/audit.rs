//! Audit and repair: compare what the provider holds with the store, and fix what can
//! be fixed (missing executions ingested, stale calls re-fetched).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{call, customer, provider_credential};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::walk::{self, Step, Walker};
use crate::calls::lifecycle;
use crate::error::{DomainError, DomainResult};
use crate::phone::PhoneNumber;
use crate::providers::CallReport;
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{CallStatus, EventSource, Provider, Role};

pub const RECONCILE_JOB: &str = "sync_reconcile";
/// How far back an audit looks when no `since` is given, and how far the reconciler looks.
const DEFAULT_LOOKBACK: Duration = Duration::days(7);
/// Most rows an audit lists per kind.
const LIST_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
pub struct Audit {
    pub provider: Provider,
    pub since: DateTime<Utc>,
    pub provider_call_count: i64,
    pub stored_call_count: i64,
    pub missing_in_store: Vec<String>,
    pub stale_calls: Vec<call::Model>,
    pub orphaned_customers: Vec<customer::Model>,
}

/// What an audit found, with the reports of the missing executions (to repair them).
struct Found {
    audit: Audit,
    missing: Vec<CallReport>,
}

/// Compares the provider's executions since `since` (those sync would store: a registered
/// agent and a customer number) with the store. MEMBER or above.
pub async fn audit(
    services: &Services,
    scope: &TenantScope,
    provider: Provider,
    since: Option<DateTime<Utc>>,
) -> DomainResult<Audit> {
    scope.require(Role::Member)?;
    let since = since.unwrap_or_else(|| Utc::now() - DEFAULT_LOOKBACK);
    if since >= Utc::now() {
        return Err(DomainError::invalid("since", "must be in the past"));
    }
    Ok(find(services, scope.tenant_id(), provider, since)
        .await?
        .audit)
}

async fn find(
    services: &Services,
    tenant_id: uuid::Uuid,
    provider: Provider,
    since: DateTime<Utc>,
) -> DomainResult<Found> {
    let db = services.db();
    let account = std::sync::Arc::new(
        walk::open(services, tenant_id, provider)
            .await
            .map_err(|e| DomainError::invalid("provider", e))?,
    );
    let mut expected: HashMap<String, CallReport> = HashMap::new();
    let mut walker = Walker::new(account.clone(), since, Utc::now());
    while let Some(step) = walker.next().await {
        if let Step::Report(report) = step {
            let registered = report
                .provider_agent_id
                .as_ref()
                .is_some_and(|a| account.registered.contains_key(a));
            let phone = report
                .customer_number()
                .is_some_and(|n| PhoneNumber::parse(n, account.region).is_ok());
            if registered && phone {
                expected.insert(report.execution_id.clone(), *report);
            }
        }
    }
    if !walker.errors.is_empty() {
        // An incomplete listing would report calls as missing that are not.
        return Err(DomainError::Conflict {
            field: None,
            message: format!(
                "the provider could not be read completely: {}",
                walker.errors.join("; ")
            ),
        });
    }
    let ids: Vec<String> = expected.keys().cloned().collect();
    let mut stored = 0i64;
    for chunk in ids.chunks(500) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let found = crate::ingest::lookup(db, tenant_id, provider, &[], &refs, &[]).await?;
        stored += found.calls.len() as i64;
        for id in found.calls.keys() {
            expected.remove(id);
        }
    }
    let mut missing: Vec<CallReport> = expected.into_values().collect();
    missing.sort_by(|a, b| a.execution_id.cmp(&b.execution_id));
    let cutoff =
        Utc::now() - Duration::seconds(services.providers().settings().stale_call_seconds as i64);
    let stale_calls = call::Entity::find()
        .filter(call::Column::TenantId.eq(tenant_id))
        .filter(call::Column::Provider.eq(provider.as_str()))
        .filter(Expr::cust(format!(
            "status_rank < {}",
            CallStatus::TERMINAL_RANK
        )))
        .filter(call::Column::UpdatedAt.lt(cutoff))
        .order_by_asc(call::Column::UpdatedAt)
        .limit(LIST_LIMIT as u64)
        .all(db)
        .await?;
    let orphaned_customers = customer::Entity::find()
        .filter(customer::Column::TenantId.eq(tenant_id))
        .filter(customer::Column::Source.eq(EventSource::Sync.as_str()))
        .filter(Expr::cust(
            "NOT EXISTS (SELECT 1 FROM calls WHERE calls.customer_id = customers.id)",
        ))
        .limit(LIST_LIMIT as u64)
        .all(db)
        .await?;
    Ok(Found {
        audit: Audit {
            provider,
            since,
            provider_call_count: stored + missing.len() as i64,
            stored_call_count: stored,
            missing_in_store: missing
                .iter()
                .take(LIST_LIMIT)
                .map(|r| r.execution_id.clone())
                .collect(),
            stale_calls,
            orphaned_customers,
        },
        missing,
    })
}

/// What one reconciler pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    pub missing: u64,
    pub stale: u64,
    pub repaired: u64,
}

/// Job: for every tenant with credentials, ingests executions missing from the store and
/// re-fetches stale calls. Counts go to `/metrics`.
pub async fn reconcile(services: &Services) -> DomainResult<Reconciled> {
    let creds = provider_credential::Entity::find()
        .all(services.db())
        .await?;
    let mut total = Reconciled::default();
    for cred in creds {
        let Ok(provider) = cred.provider.parse::<Provider>() else {
            continue;
        };
        match reconcile_one(
            services,
            cred.tenant_id,
            provider,
            Utc::now() - DEFAULT_LOOKBACK,
        )
        .await
        {
            Ok(r) => {
                total.missing += r.missing;
                total.stale += r.stale;
                total.repaired += r.repaired;
            }
            Err(e) => {
                tracing::warn!(tenant.id = %cred.tenant_id, %provider, error = %e, "reconciling failed")
            }
        }
    }
    metrics::counter!("reconcile_missing_total").increment(total.missing);
    metrics::counter!("reconcile_stale_total").increment(total.stale);
    metrics::counter!("reconcile_repaired_total").increment(total.repaired);
    metrics::gauge!("reconcile_last_missing").set(total.missing as f64);
    metrics::gauge!("reconcile_last_stale").set(total.stale as f64);
    Ok(total)
}

/// One tenant and provider, executions since `since`; public so tests and operators can
/// run it directly.
pub async fn reconcile_one(
    services: &Services,
    tenant_id: uuid::Uuid,
    provider: Provider,
    since: DateTime<Utc>,
) -> DomainResult<Reconciled> {
    let found = find(services, tenant_id, provider, since).await?;
    let mut r = Reconciled {
        missing: found.missing.len() as u64,
        stale: found.audit.stale_calls.len() as u64,
        repaired: 0,
    };
    let tenant = entity::tenant::Entity::find_by_id(tenant_id)
        .one(services.db())
        .await?
        .ok_or(DomainError::not_found("tenant"))?;
    for report in &found.missing {
        match services
            .ingestor()
            .ingest(&tenant, report, EventSource::Sync)
            .await
        {
            Ok(_) => r.repaired += 1,
            Err(e) => {
                tracing::warn!(execution.id = %report.execution_id, error = %e, "could not ingest a missing execution")
            }
        }
    }
    for call in &found.audit.stale_calls {
        match lifecycle::refresh(services, call, EventSource::Poll).await {
            Ok(status) if status.is_terminal() => r.repaired += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(call.id = %call.id, error = %e, "could not refresh a stale call")
            }
        }
    }
    Ok(r)
}
