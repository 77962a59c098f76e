//! Audit and repair: compare what the provider holds with the store, and fix what can
//! be fixed (missing executions ingested, stale calls re-fetched).

use chrono::{DateTime, Duration, Utc};
use entity::{call, customer, provider_credential};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::walk::{self, Step, Walker};
use crate::error::{DomainError, DomainResult};
use crate::phone::PhoneNumber;
use crate::providers::CallReport;
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{CallStatus, EventSource, Provider, Role};

/// How far back an audit looks when no `since` is given, and how far the reconciler looks.
const DEFAULT_LOOKBACK: Duration = Duration::days(7);
/// Longest window one audit may cover: it walks the provider inside one API request.
pub const MAX_AUDIT_DAYS: i64 = 31;
/// Most rows an audit lists per kind (the counts cover them all).
pub const LIST_LIMIT: usize = 100;
/// Reports held at once while comparing: the walk is compared page by page, never kept.
const CHUNK: usize = 500;

#[derive(Debug, Clone)]
pub struct Audit {
    pub provider: Provider,
    pub since: DateTime<Utc>,
    pub provider_call_count: i64,
    pub stored_call_count: i64,
    /// The first `LIST_LIMIT` missing execution ids; `missing_count` counts them all.
    pub missing_in_store: Vec<String>,
    pub missing_count: i64,
    pub stale_calls: Vec<call::Model>,
    pub stale_count: i64,
    pub orphaned_customers: Vec<customer::Model>,
    pub orphaned_count: i64,
}

/// One audit per tenant at a time in this process.
static RUNNING: crate::inflight::PerTenant = crate::inflight::PerTenant::new(1, "an audit");

/// Compares the provider's executions since `since` (those sync would store: a registered
/// agent and a customer number) with the store. MEMBER or above; at most
/// `MAX_AUDIT_DAYS` back, one audit per tenant at a time.
pub async fn audit(
    services: &Services,
    scope: &TenantScope,
    provider: Provider,
    since: Option<DateTime<Utc>>,
) -> DomainResult<Audit> {
    scope.require(Role::Member)?;
    let now = Utc::now();
    let since = since.unwrap_or(now - DEFAULT_LOOKBACK);
    crate::time::check_instant("since", since)?;
    if since >= now {
        return Err(DomainError::invalid("since", "must be in the past"));
    }
    if now - since > Duration::days(MAX_AUDIT_DAYS) {
        return Err(DomainError::invalid(
            "since",
            format!("an audit covers at most the last {MAX_AUDIT_DAYS} days"),
        ));
    }
    let _running = RUNNING.take(scope.tenant_id())?;
    Ok(find(services, scope.tenant_id(), provider, since, None)
        .await?
        .audit)
}

/// What an audit found; with `repair`, how many missing executions it ingested.
struct Found {
    audit: Audit,
    repaired: u64,
}

/// Walks the provider since `since`, comparing a chunk of reports at a time with the
/// store; with `repair` (the tenant), each missing report is ingested as it is found.
async fn find(
    services: &Services,
    tenant_id: uuid::Uuid,
    provider: Provider,
    since: DateTime<Utc>,
    repair: Option<&entity::tenant::Model>,
) -> DomainResult<Found> {
    let db = services.db();
    let account = std::sync::Arc::new(
        walk::open(services, tenant_id, provider)
            .await
            .map_err(|e| DomainError::invalid("provider", e))?,
    );
    let mut tally = Tally::default();
    let mut pending: Vec<CallReport> = Vec::with_capacity(CHUNK);
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
                pending.push(*report);
                if pending.len() >= CHUNK {
                    tally
                        .compare(services, tenant_id, provider, &mut pending, repair)
                        .await?;
                }
            }
        }
    }
    tally
        .compare(services, tenant_id, provider, &mut pending, repair)
        .await?;
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
    let cutoff =
        Utc::now() - Duration::seconds(services.providers().settings().stale_call_seconds as i64);
    let stale = call::Entity::find()
        .filter(call::Column::TenantId.eq(tenant_id))
        .filter(call::Column::Provider.eq(provider))
        .filter(Expr::cust(format!(
            "status_rank < {}",
            CallStatus::TERMINAL_RANK
        )))
        .filter(call::Column::UpdatedAt.lt(cutoff));
    let stale_count = stale.clone().count(db).await? as i64;
    let stale_calls = stale
        .order_by_asc(call::Column::UpdatedAt)
        .limit(LIST_LIMIT as u64)
        .all(db)
        .await?;
    let orphaned = customer::Entity::find()
        .filter(customer::Column::TenantId.eq(tenant_id))
        .filter(customer::Column::Source.eq(EventSource::Sync.as_str()))
        .filter(Expr::cust(
            "NOT EXISTS (SELECT 1 FROM calls WHERE calls.customer_id = customers.id)",
        ));
    let orphaned_count = orphaned.clone().count(db).await? as i64;
    let orphaned_customers = orphaned.limit(LIST_LIMIT as u64).all(db).await?;
    Ok(Found {
        audit: Audit {
            provider,
            since,
            provider_call_count: tally.stored + tally.missing,
            stored_call_count: tally.stored,
            missing_in_store: tally.missing_ids,
            missing_count: tally.missing,
            stale_calls,
            stale_count,
            orphaned_customers,
            orphaned_count,
        },
        repaired: tally.repaired,
    })
}

#[derive(Default)]
struct Tally {
    stored: i64,
    missing: i64,
    missing_ids: Vec<String>,
    repaired: u64,
}

impl Tally {
    /// Compares (and empties) `pending` with the store.
    async fn compare(
        &mut self,
        services: &Services,
        tenant_id: uuid::Uuid,
        provider: Provider,
        pending: &mut Vec<CallReport>,
        repair: Option<&entity::tenant::Model>,
    ) -> DomainResult<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = pending.iter().map(|r| r.execution_id.as_str()).collect();
        let found =
            crate::ingest::lookup(services.db(), tenant_id, provider, &[], &refs, &[], false)
                .await?;
        for report in pending.drain(..) {
            if found.calls.contains_key(&report.execution_id) {
                self.stored += 1;
                continue;
            }
            self.missing += 1;
            if self.missing_ids.len() < LIST_LIMIT {
                self.missing_ids.push(report.execution_id.clone());
            }
            if let Some(tenant) = repair {
                match services
                    .ingestor()
                    .ingest(tenant, &report, EventSource::Sync)
                    .await
                {
                    Ok(_) => self.repaired += 1,
                    Err(e) => {
                        tracing::warn!(execution.id = %report.execution_id, error = %e, "could not ingest a missing execution")
                    }
                }
            }
        }
        Ok(())
    }
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
        let provider = cred.provider;
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
    let tenant = entity::tenant::Entity::find_by_id(tenant_id)
        .one(services.db())
        .await?
        .ok_or(DomainError::not_found("tenant"))?;
    let found = find(services, tenant_id, provider, since, Some(&tenant)).await?;
    let mut r = Reconciled {
        missing: found.audit.missing_count as u64,
        stale: found.audit.stale_calls.len() as u64,
        repaired: found.repaired,
    };
    for call in &found.audit.stale_calls {
        match crate::calls::refresh(services, call, EventSource::Poll).await {
            Ok(status) if status.is_terminal() => r.repaired += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(call.id = %call.id, error = %e, "could not refresh a stale call")
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audit_per_tenant_at_a_time() {
        let tenant = uuid::Uuid::now_v7();
        let first = RUNNING.take(tenant).unwrap();
        assert!(matches!(
            RUNNING.take(tenant),
            Err(DomainError::Conflict { .. })
        ));
        let other = RUNNING.take(uuid::Uuid::now_v7());
        assert!(other.is_ok());
        drop(first);
        assert!(RUNNING.take(tenant).is_ok());
    }
}
