use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A message template of the tenant's WhatsApp Business account, as last synced or
/// reported by Meta. Only APPROVED ones can be sent.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "whatsapp_templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub meta_id: Option<String>,
    pub name: String,
    pub language: String,
    /// APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ...
    pub status: String,
    pub category: Option<String>,
    /// `{{n}}` placeholders in its components.
    pub parameter_count: i32,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub components: Option<Json>,
    #[sea_orm(column_type = "Text", nullable)]
    pub rejected_reason: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
