//! SeaORM entities for the Switchboard core schema.
//!
//! Plain data mappings only. Enum-like columns are stored as text and typed here
//! (`values`), so a model read from the database already holds its enums.

pub mod agent;
pub mod analysis_setting;
pub mod api_key;
pub mod call;
pub mod call_analysis;
pub mod call_event;
pub mod campaign;
pub mod campaign_item;
pub mod credit_account;
pub mod credit_entry;
pub mod credit_hold;
pub mod crm_connection;
pub mod crm_link;
pub mod crm_outbox;
pub mod customer;
pub mod customer_tag;
pub mod do_not_call;
pub mod job;
pub mod provider_credential;
pub mod sync_cursor;
pub mod sync_run;
pub mod task;
pub mod tenant;
pub mod values;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod whatsapp_connection;
pub mod whatsapp_message;
pub mod whatsapp_template;

pub mod prelude {
    pub use super::agent::Entity as Agent;
    pub use super::api_key::Entity as ApiKey;
    pub use super::call::Entity as Call;
    pub use super::call_event::Entity as CallEvent;
    pub use super::campaign::Entity as Campaign;
    pub use super::campaign_item::Entity as CampaignItem;
    pub use super::customer::Entity as Customer;
    pub use super::customer_tag::Entity as CustomerTag;
    pub use super::do_not_call::Entity as DoNotCall;
    pub use super::job::Entity as Job;
    pub use super::provider_credential::Entity as ProviderCredential;
    pub use super::sync_cursor::Entity as SyncCursor;
    pub use super::sync_run::Entity as SyncRun;
    pub use super::tenant::Entity as Tenant;
}
