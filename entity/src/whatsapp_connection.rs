use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A tenant's WhatsApp Cloud API connection (`domain::whatsapp`): the ids it sends and
/// reads templates with, the access token and app secret encrypted at rest, the verify
/// token as a hash, and the random token of its webhook URL.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "whatsapp_connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    pub phone_number_id: String,
    pub business_account_id: String,
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub access_token_enc: String,
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub app_secret_enc: String,
    #[serde(skip)]
    pub verify_token_hash: String,
    #[serde(skip)]
    pub webhook_token: String,
    /// Why Meta refuses the token (set on an authentication error, cleared on reconnect).
    #[sea_orm(column_type = "Text", nullable)]
    pub broken_reason: Option<String>,
    pub broken_at: Option<DateTimeUtc>,
    pub templates_synced_at: Option<DateTimeUtc>,
    /// Messages this number may send per second (Meta's throughput for it, or lower).
    pub messages_per_second: i32,
    /// The pacer: the earliest time the next message may go out.
    pub next_send_at: Option<DateTimeUtc>,
    /// Rate-limit answers from Meta in a row (each doubles the pause).
    pub throttle_level: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
