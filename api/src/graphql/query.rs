//! Query root. Resolvers parse arguments and call `domain`; nothing else.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use domain::pagination::PageRequest;
use domain::{agents, calls, customers, tenancy};

use domain::calls::CallParent;

use super::context::{db, scope};
use super::enums::{CallStatus, LeadStatus, Role};
use super::error::{GqlResultExt, parse_id};
use super::prefetch;
use super::types::{Agent, Call, CallConnection, Customer, CustomerConnection, Tenant};

/// Narrows `customers`.
#[derive(InputObject, Default)]
pub struct CustomerFilter {
    /// Only customers with this lead status.
    pub status: Option<LeadStatus>,
    /// Case-insensitive part of the name, or a phone number in any format.
    pub search: Option<String>,
    /// Only customers with this tag (case-insensitive).
    pub tag: Option<String>,
}

/// Narrows `calls`.
#[derive(InputObject, Default)]
pub struct CallFilter {
    /// Only calls with this status.
    pub status: Option<CallStatus>,
    /// Only this agent's calls.
    pub agent_id: Option<ID>,
    /// Only this campaign's calls.
    pub campaign_id: Option<ID>,
    /// Only this customer's calls.
    pub customer_id: Option<ID>,
    /// Calls created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Calls created before this instant.
    pub until: Option<DateTime<Utc>>,
    /// true: only calls reported for a provider agent no agent here matches (any role:
    /// they are listed in plain `calls` too).
    pub unmatched: Option<bool>,
}

/// An API key's public description (the secret is never readable).
#[derive(async_graphql::SimpleObject)]
pub struct ApiKey {
    /// Opaque identifier.
    pub id: ID,
    /// What the key is for.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; null while it works.
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct Query;

#[Object]
impl Query {
    /// The caller's tenant.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Tenant> {
        // Read together with the key (one joined statement, cached with it).
        Ok(Tenant(scope(ctx)?.tenant().clone()))
    }

    /// The tenant's API keys (ADMIN only).
    async fn api_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiKey>> {
        let keys = tenancy::list_api_keys(db(ctx)?, scope(ctx)?).await.gql()?;
        keys.into_iter()
            .map(|k| {
                Ok(ApiKey {
                    id: ID(k.id.to_string()),
                    role: Role::from_db(&k.role)?,
                    name: k.name,
                    prefix: k.key_prefix,
                    created_at: k.created_at,
                    revoked_at: k.revoked_at,
                })
            })
            .collect()
    }

    /// Every agent of the tenant.
    #[graphql(complexity = "100 * child_complexity")]
    async fn agents(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Agent>> {
        let rows = agents::list(db(ctx)?, scope(ctx)?).await.gql()?;
        let ids: Vec<uuid::Uuid> = rows.iter().map(|a| a.id).collect();
        prefetch::calls_below(
            ctx,
            &ctx.look_ahead().field("calls"),
            CallParent::Agent,
            &ids,
        )
        .await?;
        Ok(rows.into_iter().map(Agent::new).collect())
    }

    /// One agent, or null if it does not exist in this tenant.
    async fn agent(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Agent>> {
        let id = parse_id("id", &id)?;
        Ok(agents::find(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(Agent::new))
    }

    /// Customers, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn customers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        filter: Option<CustomerFilter>,
    ) -> async_graphql::Result<CustomerConnection> {
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        let f = filter.unwrap_or_default();
        let filter = customers::CustomerFilter {
            status: f.status.map(Into::into),
            search: f.search,
            tag: f.tag.map(|t| t.trim().to_lowercase()),
        };
        CustomerConnection::load(ctx, filter, page).await
    }

    /// One customer, or null if it does not exist in this tenant.
    async fn customer(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Customer>> {
        let id = parse_id("id", &id)?;
        Ok(customers::find(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(Customer::new))
    }

    /// The customer with this number, in any format (read in the tenant's default region).
    async fn customer_by_phone(
        &self,
        ctx: &Context<'_>,
        phone: String,
    ) -> async_graphql::Result<Option<Customer>> {
        Ok(customers::by_phone(db(ctx)?, scope(ctx)?, &phone)
            .await
            .gql()?
            .map(Customer::new))
    }

    /// Calls, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn calls(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        filter: Option<CallFilter>,
    ) -> async_graphql::Result<CallConnection> {
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        let f = filter.unwrap_or_default();
        let opt_id = |field, v: &Option<ID>| v.as_ref().map(|id| parse_id(field, id)).transpose();
        let filter = calls::CallFilter {
            status: f.status.map(Into::into),
            agent_id: opt_id("agentId", &f.agent_id)?,
            campaign_id: opt_id("campaignId", &f.campaign_id)?,
            customer_id: opt_id("customerId", &f.customer_id)?,
            since: f.since,
            until: f.until,
            unmatched: f.unmatched,
        };
        CallConnection::top_level(ctx, filter, page).await
    }

    /// One call, or null if it does not exist in this tenant.
    async fn call(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Call>> {
        let id = parse_id("id", &id)?;
        Ok(calls::find(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(Call::new))
    }

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
        domain::sync::audit(services, scope(ctx)?, provider.into(), since)
            .await
            .map(super::sync::SyncAudit::from_domain)
            .gql()
    }
}
