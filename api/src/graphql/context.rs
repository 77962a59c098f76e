//! What a resolver can read from the request: the database, who is calling, the loaders.

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, HashMapCache};
use domain::tenancy::TenantScope;
use sea_orm::DatabaseConnection;

use super::error::{INTERNAL, UNAUTHENTICATED, coded};
use super::loaders::Loaders;

/// The caller, resolved once per HTTP request from its bearer token.
#[derive(Clone)]
pub enum Caller {
    Anonymous,
    /// The key could not be checked (database down): answered as INTERNAL, not as a bad key.
    Unverifiable,
    /// The operator (`ADMIN_TOKEN`): may only create tenants.
    Operator,
    Tenant {
        scope: TenantScope,
        loaders: std::sync::Arc<DataLoader<Loaders, HashMapCache>>,
    },
}

impl Caller {
    pub fn tenant(db: DatabaseConnection, scope: TenantScope) -> Self {
        // Cached: connections prefetch what their nodes will ask for (see `prefetch`), so
        // the statement count does not depend on how resolution is scheduled.
        let loaders = DataLoader::with_cache(
            Loaders {
                db,
                scope: scope.clone(),
            },
            tokio::spawn,
            HashMapCache::default(),
        );
        Caller::Tenant {
            scope,
            loaders: std::sync::Arc::new(loaders),
        }
    }

    /// For a long-lived subscription: loaders batch but do not cache, so every event
    /// resolves nested fields afresh.
    pub fn subscriber(db: DatabaseConnection, scope: TenantScope) -> Self {
        let caller = Self::tenant(db, scope);
        if let Caller::Tenant { loaders, .. } = &caller {
            loaders.enable_all_cache(false);
        }
        caller
    }
}

pub fn services<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a domain::services::Services> {
    ctx.data::<domain::services::Services>()
        .map_err(|_| coded(INTERNAL, "internal error"))
}

pub fn db<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a DatabaseConnection> {
    ctx.data::<DatabaseConnection>()
        .map_err(|_| coded(INTERNAL, "internal error"))
}

fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    ctx.data::<Caller>().unwrap_or(&Caller::Anonymous)
}

/// The tenant scope, or `UNAUTHENTICATED`.
pub fn scope<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a TenantScope> {
    match caller(ctx) {
        Caller::Tenant { scope, .. } => Ok(scope),
        _ => Err(coded(UNAUTHENTICATED, "a valid API key is required")),
    }
}

pub fn loaders<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<&'a DataLoader<Loaders, HashMapCache>> {
    match caller(ctx) {
        Caller::Tenant { loaders, .. } => Ok(loaders),
        _ => Err(coded(UNAUTHENTICATED, "a valid API key is required")),
    }
}

pub fn is_operator(ctx: &Context<'_>) -> bool {
    matches!(caller(ctx), Caller::Operator)
}
