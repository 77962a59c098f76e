//! The GraphQL schema and its HTTP endpoint.

pub mod agents;
pub mod analysis;
pub mod analytics;
pub mod calls;
pub mod campaigns;
pub mod connection;
pub mod context;
pub mod credits;
pub mod crm;
pub mod customers;
pub mod document;
pub mod enums;
pub mod error;
pub mod http;
pub mod input;
pub mod loaders;
pub mod parse_cache;
pub mod plain;
pub mod prefetch;
pub mod root;
pub mod scoring;
pub mod subscription;
pub mod sync;
pub mod tenancy;
pub mod types;
pub mod webhook_endpoints;
pub mod whatsapp;
pub mod ws;

use async_graphql::Schema;
use domain::settings::GraphqlLimits;
use sea_orm::DatabaseConnection;

pub type AppSchema = Schema<root::Query, root::Mutation, subscription::Subscription>;

/// What resolvers share, put into the schema's data.
#[derive(Clone)]
pub struct SchemaData {
    pub db: DatabaseConnection,
    pub auth: std::sync::Arc<domain::tenancy::Authenticator>,
    pub services: domain::services::Services,
    pub hub: std::sync::Arc<domain::events::Hub>,
    pub webhooks: std::sync::Arc<crate::webhooks::WebhookState>,
}

/// Builds the schema with the edge limits (`GraphqlLimits`: depth, complexity, aliases,
/// directives, introspection) from settings. `depth` is
/// `limits.max_depth` for every document but introspection-only ones (see `http`).
pub fn build_schema(data: SchemaData, limits: &GraphqlLimits, depth: usize) -> AppSchema {
    let builder = Schema::build(
        root::Query::default(),
        root::Mutation::default(),
        subscription::Subscription,
    )
    .data(data.db)
    .data(data.auth)
    .data(data.services)
    .data(data.hub)
    .data(data.webhooks)
    .limit_depth(depth)
    .limit_complexity(limits.max_complexity)
    .limit_directives(limits.max_directives)
    .limit_recursive_depth(limits.max_recursive_depth.max(depth + 4));
    if limits.introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        root::Query::default(),
        root::Mutation::default(),
        subscription::Subscription,
    )
    .finish()
    .sdl()
}
