use crate::values::JobStatus;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A durable background job (see `domain::jobs`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    /// The runner lane that claims it (`domain::jobs::Lane`).
    pub lane: String,
    /// Whose job it is, for fair claiming within a lane ("" for the system's own).
    pub tenant_key: String,
    /// What it acts on (a call id, ...), so sweeps can ask whether a job still will.
    pub subject: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTimeUtc,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
