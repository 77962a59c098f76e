use crate::values::LeadStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub phone_number: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub status: LeadStatus,
    /// JSON array of tag strings (denormalised copy of `customer_tags`).
    #[sea_orm(column_type = "JsonBinary")]
    pub tags: Json,
    pub lead_score: Option<f64>,
    pub segment: Option<String>,
    /// Each scoring rule's part in `lead_score` (`domain::analysis::scoring`).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub score_explanation: Option<Json>,
    #[sea_orm(column_type = "Text", nullable)]
    pub notes: Option<String>,
    pub source: Option<String>,
    pub last_contacted_at: Option<DateTimeUtc>,
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
    #[sea_orm(has_many = "super::call::Entity")]
    Call,
    #[sea_orm(has_many = "super::customer_tag::Entity")]
    CustomerTag,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::call::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Call.def()
    }
}

impl Related<super::customer_tag::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CustomerTag.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
