use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A tenant's analysis settings: its custom extraction fields (`domain::analysis::fields`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "analysis_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub fields: Json,
    /// The tenant's lead-scoring rules; the defaults when null.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub scoring_rules: Option<Json>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
