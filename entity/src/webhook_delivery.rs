use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::values::{DeliveryStatus, DeliveryTrigger};

/// One event to one endpoint: its retry state and how it ended.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint_id: Uuid,
    /// The event's id (`evt_…`), sent as `webhook-id`.
    pub event_id: String,
    pub event_type: String,
    /// The call or customer the event is about: its deliveries to one endpoint go in order.
    pub subject: Option<Uuid>,
    pub status: DeliveryStatus,
    pub trigger: DeliveryTrigger,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    /// A worker is sending it until then.
    pub lease_until: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
