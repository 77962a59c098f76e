use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A tenant's credit account (`domain::credits`): the balance in minor units (always the
/// sum of its ledger entries, never below zero), its pricing and its alert threshold.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "credit_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    pub balance: i64,
    /// Whether calls are priced, checked and charged (false: the tenant is not billed).
    pub metered: bool,
    /// `MINUTE` (per started minute) or `SECOND`.
    pub billing_unit: String,
    pub unit_price: i64,
    pub call_fee: i64,
    pub minimum_balance: i64,
    pub reserve_minutes: i32,
    pub low_threshold: Option<i64>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
