use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// One change of a tenant's balance (`domain::credits`): a top-up, a call's charge, a
/// refund or an operator's adjustment. Entries are never changed or deleted.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "credit_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `TOP_UP`, `CALL_CHARGE`, `REFUND` or `ADJUSTMENT`.
    pub kind: String,
    /// Signed, in minor units: credits are positive, charges negative.
    pub amount: i64,
    pub balance_after: i64,
    pub idempotency_key: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reference: Option<String>,
    pub call_id: Option<Uuid>,
    /// Who made the change: `operator`, or `system` for call charges.
    pub actor: Option<String>,
    pub billed_seconds: Option<i64>,
    /// For call entries: what the call costs in all as of this entry.
    pub due: Option<i64>,
    /// For call entries: the provider's own cost of the call, for margins.
    pub provider_cost: Option<f64>,
    pub created_at: DateTimeUtc,
    /// For call entries: the pricing the call is charged at (its first charge's).
    pub rate_unit: Option<String>,
    pub rate_price: Option<i64>,
    pub rate_fee: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
