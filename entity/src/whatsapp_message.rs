use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One WhatsApp message, in or out, keyed by Meta's id (`wamid`), with its delivery status
/// (the highest reported: a message never goes from read back to delivered).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "whatsapp_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub customer_id: Option<Uuid>,
    /// INBOUND or OUTBOUND.
    pub direction: String,
    pub wamid: String,
    /// text, image, template, ... (what Meta calls its type).
    pub kind: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub body: Option<String>,
    /// The message object as Meta sent it (inbound), for types we do not render.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub payload: Option<Json>,
    /// RECEIVED (inbound), ACCEPTED, SENT, DELIVERED, READ or FAILED.
    pub status: String,
    pub status_rank: i32,
    pub error_code: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_title: Option<String>,
    pub template_name: Option<String>,
    /// The campaign queue item that sent it, if a campaign did.
    pub campaign_item_id: Option<Uuid>,
    /// When it was sent (Meta's timestamp for inbound messages).
    pub sent_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
