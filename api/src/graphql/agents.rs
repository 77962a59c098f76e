//! Agents in GraphQL, and the provider credentials they place calls with.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use domain::calls::CallParent;
use domain::{agents, credentials};

use super::context::{db, scope, services};
use super::enums::Provider;
use super::error::{GqlResultExt, parse_id};
use super::input::patch;
use super::prefetch;
use super::types::Agent;

/// A tenant's key for one provider. Stored encrypted; never readable back.
#[derive(InputObject)]
pub struct ProviderCredentialsInput {
    /// BOLNA or TELI (the simulator needs none).
    pub provider: Provider,
    /// The provider API key.
    pub api_key: String,
    /// A custom endpoint (self-hosted gateways, tests); refused unless the server sets
    /// `ALLOW_PROVIDER_BASE_URL`.
    pub base_url: Option<String>,
    /// Teli's organization id (required for Teli).
    pub organization_id: Option<String>,
}

/// A new agent.
#[derive(InputObject)]
pub struct CreateAgentInput {
    /// Display name.
    pub name: String,
    /// Which provider runs the agent.
    pub provider: Provider,
    /// The agent's id at the provider; generated for SIMULATOR when omitted.
    pub provider_agent_id: Option<String>,
    /// Business the agent speaks for.
    pub business_name: Option<String>,
}

/// Changes to an agent; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateAgentInput {
    /// New display name.
    pub name: Option<String>,
    /// New provider agent id.
    pub provider_agent_id: Option<String>,
    /// null clears it.
    pub business_name: MaybeUndefined<String>,
}

/// Agents's part of the query root.
#[derive(Default)]
pub struct AgentsQuery;

#[Object]
impl AgentsQuery {
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
}

/// Agents's part of the mutation root.
#[derive(Default)]
pub struct AgentsMutation;

#[Object]
impl AgentsMutation {
    /// Registers an agent configured at a provider.
    async fn create_agent(
        &self,
        ctx: &Context<'_>,
        input: CreateAgentInput,
    ) -> async_graphql::Result<Agent> {
        let new = agents::NewAgent {
            name: input.name,
            provider: input.provider.into(),
            provider_agent_id: input.provider_agent_id,
            business_name: input.business_name,
        };
        agents::create(db(ctx)?, scope(ctx)?, new)
            .await
            .map(Agent::new)
            .gql()
    }

    /// Changes an agent; omitted fields stay as they are.
    async fn update_agent(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAgentInput,
    ) -> async_graphql::Result<Agent> {
        let id = parse_id("id", &id)?;
        let p = agents::AgentPatch {
            name: input.name,
            provider_agent_id: input.provider_agent_id,
            business_name: patch(input.business_name),
        };
        agents::update(db(ctx)?, scope(ctx)?, id, p)
            .await
            .map(Agent::new)
            .gql()
    }

    /// Deletes an agent; its calls are kept without an agent.
    async fn delete_agent(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let id = parse_id("id", &id)?;
        agents::delete(db(ctx)?, scope(ctx)?, id).await.gql()
    }

    /// Stores the tenant's key for a provider, encrypted at rest (ADMIN). It is never
    /// returned by any query.
    async fn set_provider_credentials(
        &self,
        ctx: &Context<'_>,
        input: ProviderCredentialsInput,
    ) -> async_graphql::Result<bool> {
        let services = services(ctx)?;
        let registry = services.providers();
        credentials::set(
            db(ctx)?,
            registry.cipher(),
            registry.settings(),
            scope(ctx)?,
            credentials::NewCredentials {
                provider: input.provider.into(),
                api_key: input.api_key,
                base_url: input.base_url,
                organization_id: input.organization_id,
            },
        )
        .await
        .gql()?;
        Ok(true)
    }
}
