//! Tenants' provider credentials: written encrypted, read back only inside the process
//! that places or fetches calls, never through the API.

use chrono::Utc;
use entity::provider_credential;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::providers::ProviderAccount;
use crate::secrets::Cipher;
use crate::settings::{ProviderSettings, Secret};
use crate::tenancy::TenantScope;
use crate::types::{Provider, Role};

pub struct NewCredentials {
    pub provider: Provider,
    pub api_key: String,
    pub base_url: Option<String>,
    pub organization_id: Option<String>,
}

/// Associated data binding a ciphertext to its row.
fn context(tenant_id: Uuid, provider: Provider) -> String {
    format!("{tenant_id}/{provider}")
}

/// Stores (or replaces) the tenant's key for one provider. ADMIN only.
pub async fn set(
    db: &DatabaseConnection,
    cipher: &Cipher,
    settings: &ProviderSettings,
    scope: &TenantScope,
    input: NewCredentials,
) -> DomainResult<()> {
    scope.require(Role::Admin)?;
    if input.provider == Provider::Simulator {
        return Err(DomainError::invalid(
            "provider",
            "the simulator needs no credentials",
        ));
    }
    let key = input.api_key.trim();
    if key.is_empty() || key.len() > 500 || key.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "apiKey",
            "must be 1 to 500 printable characters",
        ));
    }
    let base_url = match input
        .base_url
        .map(|u| u.trim().trim_end_matches('/').to_owned())
    {
        None => None,
        Some(u) if u.is_empty() => None,
        Some(_) if !settings.allow_custom_base_url => {
            return Err(DomainError::invalid(
                "baseUrl",
                "custom base URLs are disabled on this server (ALLOW_PROVIDER_BASE_URL)",
            ));
        }
        Some(u) if (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= 500 => {
            crate::net::OutboundPolicy::new(settings.outbound_allowlist.clone())
                .check(&u)
                .await
                .map_err(|e| DomainError::invalid("baseUrl", e.to_string()))?;
            Some(u)
        }
        Some(_) => return Err(DomainError::invalid("baseUrl", "must be an http(s) URL")),
    };
    let organization_id = input
        .organization_id
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty());
    if input.provider == Provider::Teli && organization_id.is_none() {
        return Err(DomainError::invalid(
            "organizationId",
            "Teli lists calls per organization: organizationId is required",
        ));
    }
    let ciphertext = cipher
        .encrypt(key, &context(scope.tenant_id(), input.provider))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = Utc::now();
    provider_credential::Entity::insert(provider_credential::ActiveModel {
        tenant_id: Set(scope.tenant_id()),
        provider: Set(input.provider),
        ciphertext: Set(ciphertext),
        base_url: Set(base_url),
        organization_id: Set(organization_id),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            provider_credential::Column::TenantId,
            provider_credential::Column::Provider,
        ])
        .update_columns([
            provider_credential::Column::Ciphertext,
            provider_credential::Column::BaseUrl,
            provider_credential::Column::OrganizationId,
            provider_credential::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec(db)
    .await?;
    tracing::info!(tenant.id = %scope.tenant_id(), provider = %input.provider, "provider credentials set");
    Ok(())
}

/// The decrypted account for `tenant_id`, or `None` when none is stored.
pub async fn account<C: ConnectionTrait>(
    db: &C,
    cipher: &Cipher,
    settings: &ProviderSettings,
    tenant_id: Uuid,
    provider: Provider,
) -> DomainResult<Option<ProviderAccount>> {
    let Some(row) = provider_credential::Entity::find_by_id((tenant_id, provider))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let api_key = cipher
        .decrypt(&row.ciphertext, &context(tenant_id, provider))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let default_url = match provider {
        Provider::Bolna => settings.bolna_base_url.clone(),
        Provider::Teli => settings.teli_base_url.clone(),
        Provider::Simulator => String::new(),
    };
    Ok(Some(ProviderAccount {
        provider,
        api_key: Secret::new(api_key),
        custom_base_url: row.base_url.is_some(),
        base_url: row.base_url.unwrap_or(default_url),
        organization_id: row.organization_id,
    }))
}

/// Which providers a tenant has credentials for (never the keys).
pub async fn configured(
    db: &DatabaseConnection,
    scope: &TenantScope,
) -> DomainResult<Vec<Provider>> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let rows = provider_credential::Entity::find()
        .filter(provider_credential::Column::TenantId.eq(scope.tenant_id()))
        .all(db)
        .await?;
    Ok(rows.iter().map(|r| r.provider).collect())
}
