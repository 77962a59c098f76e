//! Switchboard's HTTP/GraphQL server as a library: `main.rs` and the tests both start it here.

pub mod app;
pub mod campaign_import;
pub mod console;
pub mod crm_webhooks;
pub mod graphiql;
pub mod graphql;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod webhooks;
pub mod whatsapp_webhooks;

pub use app::{AppState, router};
