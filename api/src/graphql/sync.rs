//! Sync runs in the schema: the `SyncRun` type, its connection and `triggerSync`'s input.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::pagination::PageRequest;
use domain::sync;
use entity::sync_run;

use super::connection::{Connection, Listing, connection_object};
use super::context::{db, scope};
use super::enums::{CrmProvider, CrmSyncDirection, Provider, SyncStatus, SyncTrigger};
use super::error::{GqlResultExt, parse_id};
use super::types::{Call, Customer};

/// What to sync.
#[derive(InputObject)]
pub struct TriggerSyncInput {
    /// The provider to pull calls from.
    pub provider: Provider,
    /// Start of the window (default: where the last successful run ended, or 30 days ago).
    pub since: Option<DateTime<Utc>>,
    /// End of the window (default: now).
    pub until: Option<DateTime<Utc>>,
    /// Walk everything and count, writing nothing but the run itself.
    #[graphql(default = false)]
    pub dry_run: bool,
}

/// Synced calls of one agent in a run.
#[derive(SimpleObject)]
pub struct AgentCount {
    /// The agent here.
    pub agent_id: ID,
    /// The agent's business name here (never a name the provider extracted).
    pub agent_name: String,
    /// Calls synced for it.
    pub count: i64,
}

/// One pull of a provider's calls into the CRM, with what it found.
pub struct SyncRun(pub sync_run::Model);

#[Object]
impl SyncRun {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The provider whose calls were synced; null for a CRM run (see `crm`).
    async fn provider(&self) -> Option<Provider> {
        self.0.provider.call_provider().map(Into::into)
    }
    /// The CRM a CRM run exchanged people with; null for a calls sync.
    async fn crm(&self) -> Option<CrmProvider> {
        (self.0.provider == entity::values::SyncSource::Twenty).then_some(CrmProvider::Twenty)
    }
    /// A CRM run's direction; null for a calls sync.
    async fn direction(&self) -> Option<CrmSyncDirection> {
        self.0.direction.map(Into::into)
    }
    /// CRM runs: customers created here (pull) plus people created in the CRM (push).
    async fn created(&self) -> i32 {
        self.0.created
    }
    /// CRM runs: customers updated here plus people updated (or deleted) in the CRM.
    async fn updated(&self) -> i32 {
        self.0.updated
    }
    /// CRM runs: records with nothing to change, older than what was applied, or unusable
    /// (see `skippedNoPhone` and `errors`).
    async fn skipped(&self) -> i32 {
        self.0.skipped
    }
    /// CRM runs: fields both sides had changed, settled by an override or the later change.
    async fn conflicts(&self) -> i32 {
        self.0.conflicts
    }
    /// MANUAL (triggerSync) or SCHEDULED.
    async fn trigger(&self) -> SyncTrigger {
        self.0.trigger.into()
    }
    /// Whether it only counted.
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    /// Start of the window.
    async fn since(&self) -> DateTime<Utc> {
        self.0.since
    }
    /// End of the window.
    async fn until(&self) -> DateTime<Utc> {
        self.0.until
    }
    /// RUNNING, then SUCCEEDED, PARTIAL (some pages failed; see errors) or FAILED.
    async fn status(&self) -> SyncStatus {
        self.0.status.into()
    }
    /// Executions the provider returned (each counted once).
    async fn total_calls(&self) -> i32 {
        self.0.total_calls
    }
    /// Calls stored or moved forward by this run.
    async fn synced_calls(&self) -> i32 {
        self.0.synced_calls
    }
    /// Customers created.
    async fn new_customers(&self) -> i32 {
        self.0.new_customers
    }
    /// Existing customers that got a new call.
    async fn updated_customers(&self) -> i32 {
        self.0.updated_customers
    }
    /// Calls already stored with the same or a later status.
    async fn duplicate_calls(&self) -> i32 {
        self.0.duplicate_calls
    }
    /// Calls of provider agents not registered here (their ids are listed in errors).
    async fn skipped_unknown_agent(&self) -> i32 {
        self.0.skipped_unknown_agent
    }
    /// Calls without a usable customer number.
    async fn skipped_no_phone(&self) -> i32 {
        self.0.skipped_no_phone
    }
    /// What went wrong, one line each.
    async fn errors(&self) -> Vec<String> {
        serde_json::from_value(self.0.errors.clone()).unwrap_or_default()
    }
    /// Synced calls per agent.
    async fn calls_by_agent(&self) -> Vec<AgentCount> {
        let counts: Vec<sync::AgentCount> =
            serde_json::from_value(self.0.calls_by_agent.clone()).unwrap_or_default();
        counts
            .into_iter()
            .map(|c| AgentCount {
                agent_id: ID(c.agent_id.to_string()),
                agent_name: c.agent_name,
                count: c.count,
            })
            .collect()
    }
    /// When it started.
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }
    /// When it ended; null while running.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// The tenant's sync runs, newest first.
pub struct SyncRunListing;

pub type SyncRunConnection = Connection<SyncRunListing>;

impl Listing for SyncRunListing {
    type Row = sync_run::Model;
    type Node = SyncRun;

    fn id(row: &Self::Row) -> uuid::Uuid {
        row.id
    }

    fn node(&self, row: &Self::Row) -> SyncRun {
        SyncRun(row.clone())
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        sync::count(db(ctx)?, scope(ctx)?).await.gql()
    }
}

connection_object!(
    SyncRunListing,
    "SyncRunConnection",
    "A page of sync runs, newest first.",
    "Number of runs, over all pages."
);

impl Connection<SyncRunListing> {
    pub async fn load(ctx: &Context<'_>, page: PageRequest) -> async_graphql::Result<Self> {
        let page = sync::list(db(ctx)?, scope(ctx)?, page).await.gql()?;
        Ok(Connection::new(page, SyncRunListing))
    }
}

/// What the provider holds against what is stored (see `syncAudit`).
#[derive(SimpleObject)]
pub struct SyncAudit {
    /// The provider compared.
    pub provider: Provider,
    /// Start of the window compared (to now).
    pub since: DateTime<Utc>,
    /// Executions the provider has that sync would store (a registered agent, a number).
    pub provider_call_count: i64,
    /// How many of those are stored.
    pub stored_call_count: i64,
    /// Execution ids the provider has and the store does not (the first 100; see
    /// `missingCount`).
    pub missing_in_store: Vec<String>,
    /// How many executions are missing here, over all of them.
    pub missing_count: i64,
    /// Calls non-terminal for longer than `STALE_CALL_SECONDS` (the first 100).
    pub stale_calls: Vec<Call>,
    /// How many calls are stale.
    pub stale_count: i64,
    /// Customers created by sync that have no call left (the first 100).
    pub orphaned_customers: Vec<Customer>,
    /// How many such customers there are.
    pub orphaned_count: i64,
}

impl SyncAudit {
    pub fn from_domain(a: sync::Audit) -> Self {
        SyncAudit {
            provider: a.provider.into(),
            since: a.since,
            provider_call_count: a.provider_call_count,
            stored_call_count: a.stored_call_count,
            missing_in_store: a.missing_in_store,
            missing_count: a.missing_count,
            stale_count: a.stale_count,
            orphaned_count: a.orphaned_count,
            stale_calls: a.stale_calls.into_iter().map(Call::new).collect(),
            orphaned_customers: a
                .orphaned_customers
                .into_iter()
                .map(Customer::new)
                .collect(),
        }
    }
}

/// Sync's part of the query root.
#[derive(Default)]
pub struct SyncQuery;

#[Object]
impl SyncQuery {
    /// This tenant's sync runs, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<super::sync::SyncRunConnection> {
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        super::sync::SyncRunConnection::load(ctx, page).await
    }

    /// One sync run, or null if it does not exist in this tenant.
    async fn sync_run(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<super::sync::SyncRun>> {
        let id = parse_id("id", &id)?;
        Ok(domain::sync::get(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(super::sync::SyncRun))
    }

    /// Compares the provider's executions since `since` (default 7 days) with the store:
    /// what is missing here, calls stuck non-terminal, customers sync created that have no
    /// call left. Reads the provider's whole listing, so it takes a while: at most the
    /// last 31 days (`BAD_USER_INPUT` beyond), one audit per tenant at a time (`CONFLICT`).
    async fn sync_audit(
        &self,
        ctx: &Context<'_>,
        provider: super::enums::Provider,
        since: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<super::sync::SyncAudit> {
        let services = super::context::services(ctx)?;
        // Boxed: its future is several kilobytes, and the query root's future, allocated
        // for every root field of every query, is as large as its largest resolver's.
        Box::pin(domain::sync::audit(
            services,
            scope(ctx)?,
            provider.into(),
            since,
        ))
        .await
        .map(super::sync::SyncAudit::from_domain)
        .gql()
    }
}

/// Sync's part of the mutation root.
#[derive(Default)]
pub struct SyncMutation;

#[Object]
impl SyncMutation {
    /// Starts pulling the provider's calls into the CRM and returns the run at once
    /// (RUNNING); follow it with `syncRun` or `syncRunUpdated`. If a sync of this provider
    /// is already running for the tenant, that run is returned.
    async fn trigger_sync(
        &self,
        ctx: &Context<'_>,
        input: super::sync::TriggerSyncInput,
    ) -> async_graphql::Result<super::sync::SyncRun> {
        domain::sync::trigger(
            db(ctx)?,
            scope(ctx)?,
            domain::sync::TriggerSync {
                provider: input.provider.into(),
                since: input.since,
                until: input.until,
                dry_run: input.dry_run,
            },
            domain::sync::SyncTrigger::Manual,
        )
        .await
        .map(super::sync::SyncRun)
        .gql()
    }
}

/// Rows of this list always take the derived resolver (see `plain`).
impl super::plain::PlainFields for SyncRun {}
