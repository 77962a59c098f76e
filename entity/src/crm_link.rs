use sea_orm::entity::prelude::*;

/// A customer and its record in the tenant's CRM, with the values both sides last agreed
/// on per field (`base`): a field that differs from it changed on that side since.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: Uuid,
    pub tenant_id: Uuid,
    pub remote_id: String,
    /// `domain::crm::Values` as JSON.
    #[sea_orm(column_type = "JsonBinary")]
    pub base: Json,
    /// The record's `updatedAt` when last read: an older copy arriving later is stale.
    pub remote_updated_at: Option<DateTimeUtc>,
    /// Set when the record was deleted in the CRM: the customer stays here, unlinked in
    /// effect, and is not pushed (so not re-created there) until the record comes back.
    pub remote_deleted_at: Option<DateTimeUtc>,
    /// The values of a push on its way (`domain::crm::Values`): the CRM echoing them back
    /// before the push is recorded is not a change made there.
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub pending: Option<Json>,
    pub synced_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
