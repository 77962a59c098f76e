//! Tenancy in GraphQL: the caller's tenant, API keys, tenants and webhook tokens.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};
use domain::tenancy;

use super::context::{db, is_operator, scope};
use super::enums::Role;
use super::error::{FORBIDDEN, GqlResultExt, UNAUTHENTICATED, coded, parse_id};
use super::types::{CreateApiKeyPayload, CreateTenantPayload, Tenant};

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

/// Tenancy's part of the query root.
#[derive(Default)]
pub struct TenancyQuery;

#[Object]
impl TenancyQuery {
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
                    role: k.role.into(),
                    name: k.name,
                    prefix: k.key_prefix,
                    created_at: k.created_at,
                    revoked_at: k.revoked_at,
                })
            })
            .collect()
    }
}

/// Tenancy's part of the mutation root.
#[derive(Default)]
pub struct TenancyMutation;

#[Object]
impl TenancyMutation {
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
}
