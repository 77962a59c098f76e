use crate::values::{CrmDirection, SyncSource, SyncStatus, SyncTrigger};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One pull of a provider's calls into the CRM (see `domain::sync`), or one exchange of
/// people with the tenant's CRM (see `domain::crm`), with its counts.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The call provider, or the CRM (`TWENTY`).
    pub provider: SyncSource,
    /// CRM runs only.
    pub direction: Option<CrmDirection>,
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
    /// CRM runs: records created, updated, skipped and conflicts resolved.
    pub created: i32,
    pub updated: i32,
    pub skipped: i32,
    pub conflicts: i32,
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
