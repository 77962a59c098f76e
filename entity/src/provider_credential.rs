use crate::values::Provider;
use sea_orm::entity::prelude::*;

/// A tenant's key for one provider, encrypted at rest (see `domain::secrets`).
/// Deliberately not `Serialize`: it must never be written out by accident.
#[derive(Clone, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: Provider,
    #[sea_orm(column_type = "Text")]
    pub ciphertext: String,
    pub base_url: Option<String>,
    pub organization_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderCredential")
            .field("tenant_id", &self.tenant_id)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
