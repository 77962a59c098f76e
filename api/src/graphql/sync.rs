//! Sync runs in the schema: the `SyncRun` type, its connection and `triggerSync`'s input.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::pagination::{Page, PageRequest, encode_cursor};
use domain::sync;
use entity::sync_run;

use super::context::{db, scope};
use super::enums::{Provider, SyncStatus, SyncTrigger};
use super::error::GqlResultExt;
use super::types::{Call, Customer, PageInfo, page_info};

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
    /// The provider synced.
    async fn provider(&self) -> async_graphql::Result<Provider> {
        Provider::from_db(&self.0.provider)
    }
    /// MANUAL (triggerSync) or SCHEDULED.
    async fn trigger(&self) -> async_graphql::Result<SyncTrigger> {
        SyncTrigger::from_db(&self.0.trigger)
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
    async fn status(&self) -> async_graphql::Result<SyncStatus> {
        SyncStatus::from_db(&self.0.status)
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

pub struct SyncRunConnection {
    page: Page<sync_run::Model>,
}

impl SyncRunConnection {
    pub async fn load(ctx: &Context<'_>, page: PageRequest) -> async_graphql::Result<Self> {
        let page = sync::list(db(ctx)?, scope(ctx)?, page).await.gql()?;
        Ok(SyncRunConnection { page })
    }
}

/// An edge in a sync run connection.
#[derive(SimpleObject)]
pub struct SyncRunEdge {
    /// Position of this row, for `after`.
    pub cursor: String,
    /// The run.
    pub node: SyncRun,
}

/// A page of sync runs, newest first.
#[Object]
impl SyncRunConnection {
    /// The rows of this page, each with its cursor.
    async fn edges(&self) -> Vec<SyncRunEdge> {
        self.page
            .items
            .iter()
            .map(|r| SyncRunEdge {
                cursor: encode_cursor(r.id),
                node: SyncRun(r.clone()),
            })
            .collect()
    }
    /// Whether more rows follow, and the cursor to ask for them.
    async fn page_info(&self) -> PageInfo {
        page_info(&self.page, |r| r.id)
    }
    /// Number of runs, over all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        sync::count(db(ctx)?, scope(ctx)?).await.gql()
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
