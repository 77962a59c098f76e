//! The GraphQL schema and its HTTP endpoint.

pub mod context;
pub mod enums;
pub mod error;
pub mod http;
pub mod loaders;
pub mod mutation;
pub mod parse_cache;
pub mod prefetch;
pub mod query;
pub mod subscription;
pub mod sync;
pub mod types;
pub mod ws;

use async_graphql::Schema;
use domain::settings::GraphqlLimits;
use sea_orm::DatabaseConnection;

pub type AppSchema = Schema<query::Query, mutation::Mutation, subscription::Subscription>;

/// Builds the schema with the edge limits of shared/reference/hardening.md.
pub fn build_schema(
    db: DatabaseConnection,
    auth: std::sync::Arc<domain::tenancy::Authenticator>,
    limits: &GraphqlLimits,
    services: domain::services::Services,
    hub: std::sync::Arc<domain::events::Hub>,
) -> AppSchema {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .data(db)
        .data(auth)
        .data(services)
        .data(hub)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives)
        .limit_recursive_depth(limits.max_recursive_depth)
        .finish()
}

/// The SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(query::Query, mutation::Mutation, subscription::Subscription)
        .finish()
        .sdl()
}
