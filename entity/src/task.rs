use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::values::TaskStatus;

/// A background task a user started and may watch (`domain::tasks`): what it is, how far
/// it got, how it ended. The durable jobs that do the work report into it.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// e.g. `reanalyze_calls`.
    pub kind: String,
    pub status: TaskStatus,
    pub total: i64,
    pub done: i64,
    pub failed: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// What the task was asked (its filter), for the record.
    #[sea_orm(column_type = "JsonBinary")]
    pub params: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
