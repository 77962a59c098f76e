use crate::values::CampaignStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A list of recipients dialled by one agent under a concurrency cap, in each recipient's
/// calling window, with retries (see `domain::campaigns`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub name: String,
    pub status: CampaignStatus,
    pub concurrency_limit: i32,
    pub max_attempts: i32,
    /// Minutes to wait before each retry, as a JSON array (the last repeats).
    #[sea_orm(column_type = "JsonBinary")]
    pub retry_delays: Json,
    /// Call statuses that are retried, as a JSON array of strings.
    #[sea_orm(column_type = "JsonBinary")]
    pub retry_on: Json,
    /// `{start, end, days}` in each recipient's local time; null: any time.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub calling_window: Option<Json>,
    /// The zone used for recipients whose number and row say nothing of theirs.
    pub timezone: String,
    /// CALL (an agent phones each recipient) or WHATSAPP (an approved template is sent).
    pub channel: String,
    /// WhatsApp campaigns: the template's name and language.
    pub template_name: Option<String>,
    pub template_language: Option<String>,
    /// WhatsApp campaigns: the CSV columns that fill the template's parameters, in order.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub template_parameters: Option<Json>,
    #[sea_orm(column_type = "Text", nullable)]
    pub paused_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Tenant,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
