use crate::values::QueueItemStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One recipient of a campaign: its number, its row's variables, and where it stands.
/// Each attempt is its own call (`call_id` is the latest).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "campaign_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub campaign_id: Uuid,
    pub customer_id: Option<Uuid>,
    /// E.164.
    pub phone_number: String,
    /// The row's line in the imported file (the header is line 1).
    pub line: i32,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub variables: Option<Json>,
    /// The row's own `timezone` column, when it named a valid zone.
    pub timezone: Option<String>,
    pub status: QueueItemStatus,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub next_attempt_at: DateTimeUtc,
    pub call_id: Option<Uuid>,
    /// WhatsApp campaigns: Meta's id of the message sent.
    pub wamid: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::campaign::Entity",
        from = "Column::CampaignId",
        to = "super::campaign::Column::Id",
        on_update = "NoAction",
        on_delete = "Cascade"
    )]
    Campaign,
}

impl Related<super::campaign::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Campaign.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
