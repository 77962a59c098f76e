use sea_orm::entity::prelude::*;

/// A customer changed (or deleted) here since the last push to the tenant's CRM.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: Uuid,
    pub tenant_id: Uuid,
    /// For a deleted customer: the CRM record to delete.
    pub remote_id: Option<String>,
    pub deleted: bool,
    pub changed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
