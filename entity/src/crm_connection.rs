use crate::values::CrmProvider;
use sea_orm::entity::prelude::*;

/// A tenant's CRM (one per tenant): where it is, its key and webhook secret (encrypted),
/// the token in the URL its webhooks reach us on, the field mapping, and sync state.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    pub provider: CrmProvider,
    pub base_url: String,
    #[sea_orm(column_type = "Text")]
    pub api_key_enc: String,
    #[sea_orm(column_type = "Text")]
    pub webhook_secret_enc: String,
    #[sea_orm(unique)]
    pub webhook_token: String,
    /// `domain::crm::FieldMapping` as JSON.
    #[sea_orm(column_type = "JsonBinary")]
    pub field_mapping: Json,
    /// `domain::crm::Overrides` as JSON.
    #[sea_orm(column_type = "JsonBinary")]
    pub overrides: Json,
    /// The newest `updatedAt` a pull has applied: the next pull starts there.
    pub pull_cursor: Option<DateTimeUtc>,
    /// Since when every request to the CRM has failed (cleared by a success).
    pub failing_since: Option<DateTimeUtc>,
    /// Whether `crm.sync_failing` went out for this failure.
    pub failing_notified: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub last_pull_at: Option<DateTimeUtc>,
    pub last_push_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
