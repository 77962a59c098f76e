//! Calls in GraphQL: reading them, and `startCall`.

use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::{DateTime, Utc};
use domain::calls;
use domain::pagination::PageRequest;

use super::context::{db, scope, services};
use super::enums::CallStatus;
use super::error::{GqlResultExt, parse_id};
use super::plain::Plain;
use super::types::{Call, CallConnection};

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

impl CallFilter {
    /// The domain's filter, its ids parsed.
    pub fn into_domain(self) -> async_graphql::Result<calls::CallFilter> {
        let opt_id = |field, v: &Option<ID>| v.as_ref().map(|id| parse_id(field, id)).transpose();
        Ok(calls::CallFilter {
            status: self.status.map(Into::into),
            agent_id: opt_id("agentId", &self.agent_id)?,
            campaign_id: opt_id("campaignId", &self.campaign_id)?,
            customer_id: opt_id("customerId", &self.customer_id)?,
            since: self.since,
            until: self.until,
            unmatched: self.unmatched,
        })
    }
}

/// A call to place now.
#[derive(InputObject)]
pub struct StartCallInput {
    /// The agent that makes the call.
    pub agent_id: ID,
    /// The customer to call; their number is used when `phoneNumber` is omitted.
    pub customer_id: Option<ID>,
    /// Any format, read in the tenant's default region.
    pub phone_number: Option<String>,
    /// Values for the agent's prompt variables (a JSON object).
    pub variables: Option<Json<serde_json::Value>>,
    /// Retrying with the same key returns the same call instead of placing another.
    pub idempotency_key: Option<String>,
}

/// Calls's part of the query root.
#[derive(Default)]
pub struct CallsQuery;

#[Object]
impl CallsQuery {
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
        let filter = filter.unwrap_or_default().into_domain()?;
        CallConnection::top_level(ctx, filter, page).await
    }

    /// One call, or null if it does not exist in this tenant.
    async fn call(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Plain<Call>>> {
        let id = parse_id("id", &id)?;
        Ok(calls::find(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(|c| Plain(Call::new(c))))
    }
}

/// Calls's part of the mutation root.
#[derive(Default)]
pub struct CallsMutation;

#[Object]
impl CallsMutation {
    /// Queues a call and returns it at once (status QUEUED); a worker places it and its
    /// progress arrives through `callUpdated`. A provider refusal ends it FAILED with the
    /// reason in `errorMessage`.
    async fn start_call(
        &self,
        ctx: &Context<'_>,
        input: StartCallInput,
    ) -> async_graphql::Result<Call> {
        let opt_id = |field, v: &Option<ID>| v.as_ref().map(|id| parse_id(field, id)).transpose();
        let start = calls::StartCall {
            agent_id: parse_id("agentId", &input.agent_id)?,
            customer_id: opt_id("customerId", &input.customer_id)?,
            phone_number: input.phone_number,
            variables: input.variables.map(|j| j.0),
            idempotency_key: input.idempotency_key,
        };
        calls::start_call(services(ctx)?, scope(ctx)?, start)
            .await
            .map(Call::new)
            .gql()
    }
}
