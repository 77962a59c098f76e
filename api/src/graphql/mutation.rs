//! Mutation root. Roles and tenancy are checked in `domain`, not here.

use async_graphql::Json;
use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use domain::calls;
use domain::{agents, credentials, customers, dnc, tenancy};

use super::context::{db, is_operator, scope, services};
use super::enums::{LeadStatus, Provider, Role};
use super::error::{FORBIDDEN, GqlResultExt, UNAUTHENTICATED, coded, parse_id};
use super::types::{Agent, Call, CreateApiKeyPayload, CreateTenantPayload, Customer, Tenant};

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

/// A new tenant.
#[derive(InputObject)]
pub struct CreateTenantInput {
    /// Display name.
    pub name: String,
    /// ISO country code used to read national-format phone numbers.
    #[graphql(default = "US")]
    pub default_region: String,
    /// IANA time zone.
    #[graphql(default = "UTC")]
    pub timezone: String,
    /// Most calls this tenant may have live at once (1 to 10000).
    #[graphql(default = 10)]
    pub concurrency_limit: i32,
}

/// A new API key for the caller's tenant.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for.
    pub name: String,
    /// What the key may do.
    pub role: Role,
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

/// A new customer.
#[derive(InputObject)]
pub struct CreateCustomerInput {
    /// Any common format; read in the tenant's default region and stored as E.164.
    pub phone_number: String,
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Lead status (default NEW).
    pub status: Option<LeadStatus>,
    /// Tags; trimmed, lower-cased, deduplicated.
    #[graphql(default)]
    pub tags: Vec<String>,
    /// Free-form notes.
    pub notes: Option<String>,
    /// Segment label.
    pub segment: Option<String>,
    /// Where the lead came from (default API).
    pub source: Option<String>,
    /// 0 to 100.
    pub lead_score: Option<f64>,
}

/// Changes to a customer; omitted fields stay as they are, null clears.
#[derive(InputObject)]
pub struct UpdateCustomerInput {
    /// New number, any format; a number another customer has is a CONFLICT.
    pub phone_number: Option<String>,
    /// Full name; null clears it.
    pub name: MaybeUndefined<String>,
    /// Email; null clears it.
    pub email: MaybeUndefined<String>,
    /// New lead status.
    pub status: Option<LeadStatus>,
    /// Replaces all tags.
    pub tags: Option<Vec<String>>,
    /// Notes; null clears them.
    pub notes: MaybeUndefined<String>,
    /// Segment; null clears it.
    pub segment: MaybeUndefined<String>,
    /// 0 to 100; null clears it.
    pub lead_score: MaybeUndefined<f64>,
}

fn patch<T>(v: MaybeUndefined<T>) -> Option<Option<T>> {
    match v {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates a tenant and its first ADMIN key. Needs the operator's `ADMIN_TOKEN`.
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        input: CreateTenantInput,
    ) -> async_graphql::Result<CreateTenantPayload> {
        if !is_operator(ctx) {
            return Err(if scope(ctx).is_ok() {
                coded(FORBIDDEN, "only the operator token may create tenants")
            } else {
                coded(UNAUTHENTICATED, "the operator token is required")
            });
        }
        let (tenant, key) = tenancy::create_tenant(
            db(ctx)?,
            tenancy::NewTenant {
                name: input.name,
                default_region: input.default_region,
                timezone: input.timezone,
                concurrency_limit: input.concurrency_limit,
            },
        )
        .await
        .gql()?;
        Ok(CreateTenantPayload {
            tenant: Tenant(tenant),
            api_key: key.key,
        })
    }

    /// Issues another key for this tenant (ADMIN). The key is shown once.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> async_graphql::Result<CreateApiKeyPayload> {
        let key = tenancy::create_api_key(db(ctx)?, scope(ctx)?, &input.name, input.role.into())
            .await
            .gql()?;
        Ok(CreateApiKeyPayload {
            id: ID(key.id.to_string()),
            api_key: key.key,
            role: key.role.into(),
        })
    }

    /// Revokes a key of this tenant (ADMIN); it stops working at once.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let id = parse_id("id", &id)?;
        let revoked = tenancy::revoke_api_key(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?;
        if let Ok(auth) = ctx.data::<std::sync::Arc<tenancy::Authenticator>>() {
            auth.forget_all();
        }
        Ok(revoked)
    }

    /// Replaces this tenant's provider webhook token (ADMIN) and returns the new one. The
    /// old token stops at once on this replica and within 5 s on others; update the
    /// webhook URL at the provider right after.
    async fn rotate_webhook_token(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let token = tenancy::rotate_webhook_token(db(ctx)?, scope(ctx)?)
            .await
            .gql()?;
        if let Ok(webhooks) = ctx.data::<std::sync::Arc<crate::webhooks::WebhookState>>() {
            webhooks.forget_tokens();
        }
        if let Ok(auth) = ctx.data::<std::sync::Arc<tenancy::Authenticator>>() {
            // Scopes carry the tenant row (and with it the token): read it afresh.
            auth.forget_all();
        }
        Ok(token)
    }

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

    /// Adds a customer. A number already in the CRM (in any format) is a CONFLICT.
    async fn create_customer(
        &self,
        ctx: &Context<'_>,
        input: CreateCustomerInput,
    ) -> async_graphql::Result<Customer> {
        let new = customers::NewCustomer {
            phone_number: input.phone_number,
            name: input.name,
            email: input.email,
            status: input.status.map(Into::into),
            tags: input.tags,
            notes: input.notes,
            segment: input.segment,
            source: input.source,
            lead_score: input.lead_score,
        };
        customers::create(db(ctx)?, scope(ctx)?, new)
            .await
            .map(Customer::new)
            .gql()
    }

    /// Changes a customer; omitted fields stay as they are, null clears.
    async fn update_customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCustomerInput,
    ) -> async_graphql::Result<Customer> {
        let id = parse_id("id", &id)?;
        let p = customers::CustomerPatch {
            phone_number: input.phone_number,
            name: patch(input.name),
            email: patch(input.email),
            status: input.status.map(Into::into),
            tags: input.tags,
            notes: patch(input.notes),
            segment: patch(input.segment),
            lead_score: patch(input.lead_score),
        };
        customers::update(db(ctx)?, scope(ctx)?, id, p)
            .await
            .map(Customer::new)
            .gql()
    }

    /// Deletes a customer; their calls are kept without a customer.
    async fn delete_customer(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let id = parse_id("id", &id)?;
        customers::delete(db(ctx)?, scope(ctx)?, id).await.gql()
    }

    /// Moves the duplicate's calls and interactions to the primary, fills the primary's empty
    /// fields from it, and deletes the duplicate.
    async fn merge_customers(
        &self,
        ctx: &Context<'_>,
        primary_id: ID,
        duplicate_id: ID,
    ) -> async_graphql::Result<Customer> {
        let primary = parse_id("primaryId", &primary_id)?;
        let duplicate = parse_id("duplicateId", &duplicate_id)?;
        customers::merge(db(ctx)?, scope(ctx)?, primary, duplicate)
            .await
            .map(Customer::new)
            .gql()
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

    /// Puts a number on the tenant's do-not-call list; calls to it are refused.
    async fn add_do_not_call(
        &self,
        ctx: &Context<'_>,
        phone_number: String,
        reason: Option<String>,
    ) -> async_graphql::Result<bool> {
        dnc::add(db(ctx)?, scope(ctx)?, &phone_number, reason)
            .await
            .gql()
    }

    /// Takes a number off the do-not-call list; false when it was not on it.
    async fn remove_do_not_call(
        &self,
        ctx: &Context<'_>,
        phone_number: String,
    ) -> async_graphql::Result<bool> {
        dnc::remove(db(ctx)?, scope(ctx)?, &phone_number)
            .await
            .gql()
    }

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
