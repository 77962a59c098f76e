use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a tenant wants its events sent (`domain::outbound`), with the signing secret
/// encrypted at rest and, after a rotation, the previous one until it expires.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// JSON array of event type filters (`call.completed`, `call.*`, `*`).
    #[sea_orm(column_type = "JsonBinary")]
    pub events: Json,
    #[sea_orm(column_type = "Text")]
    #[serde(skip)]
    pub secret_enc: String,
    #[sea_orm(column_type = "Text", nullable)]
    #[serde(skip)]
    pub previous_secret_enc: Option<String>,
    pub previous_expires_at: Option<DateTimeUtc>,
    pub enabled: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed (cleared by a success).
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
