use crate::values::{CallDirection, CallStatus, Provider};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "calls")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    /// The campaign recipient this call is an attempt for.
    pub campaign_item_id: Option<Uuid>,
    pub provider: Provider,
    pub provider_execution_id: Option<String>,
    /// When a worker began sending the call to its provider (set once, so a retried
    /// placement job never sends it twice). Set with no execution id: being placed.
    pub placing_since: Option<DateTimeUtc>,
    pub provider_call_id: Option<String>,
    pub direction: CallDirection,
    pub status: CallStatus,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub started_at: Option<DateTimeUtc>,
    pub ended_at: Option<DateTimeUtc>,
    pub duration_seconds: Option<f64>,
    pub cost: Option<f64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub transcript: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub summary: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub recording_url: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub extracted_data: Option<Json>,
    pub hangup_reason: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub raw_payload: Option<Json>,
    /// The provider's agent id as reported; kept when no agent here matches it.
    pub provider_agent_id: Option<String>,
    /// Lifecycle position of `status` (see `CallStatus::rank`).
    pub status_rank: i32,
    pub idempotency_key: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub variables: Option<Json>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
    #[sea_orm(
        belongs_to = "super::agent::Entity",
        from = "Column::AgentId",
        to = "super::agent::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    Agent,
    #[sea_orm(
        belongs_to = "super::customer::Entity",
        from = "Column::CustomerId",
        to = "super::customer::Column::Id",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    Customer,
    #[sea_orm(has_many = "super::call_event::Entity")]
    CallEvent,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agent.def()
    }
}

impl Related<super::customer::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Customer.def()
    }
}

impl Related<super::call_event::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CallEvent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
