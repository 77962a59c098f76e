use crate::values::{Provider, SyncStatus, SyncTrigger};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One pull of a provider's calls into the CRM, with its counts (see `domain::sync`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub provider: Provider,
    pub trigger: SyncTrigger,
    pub dry_run: bool,
    pub since: DateTimeUtc,
    pub until: DateTimeUtc,
    pub status: SyncStatus,
    pub total_calls: i32,
    pub synced_calls: i32,
    pub new_customers: i32,
    pub updated_customers: i32,
    pub duplicate_calls: i32,
    pub skipped_unknown_agent: i32,
    pub skipped_no_phone: i32,
    /// JSON array of strings.
    #[sea_orm(column_type = "JsonBinary")]
    pub errors: Json,
    /// JSON array of `{agentId, agentName, count}`.
    #[sea_orm(column_type = "JsonBinary")]
    pub calls_by_agent: Json,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
