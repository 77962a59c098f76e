//! The embedded default's demo data: one tenant with a simulator agent.

use sea_orm::DatabaseConnection;

use crate::agents::{self, NewAgent};
use crate::error::DomainResult;
use crate::tenancy::{self, IssuedKey, NewTenant, TenantScope};
use crate::types::Provider;

/// Creates the demo tenant when the database has no tenant at all. Returns its key, which
/// the caller shows once; `None` when tenants already exist.
pub async fn demo_tenant_if_empty(db: &DatabaseConnection) -> DomainResult<Option<IssuedKey>> {
    if tenancy::count_tenants(db).await? > 0 {
        return Ok(None);
    }
    let (tenant, key) = tenancy::create_tenant(
        db,
        NewTenant {
            name: "Demo".into(),
            default_region: "US".into(),
            timezone: "UTC".into(),
            concurrency_limit: 10,
        },
    )
    .await?;
    let scope = TenantScope::system(&tenant)?;
    agents::create(
        db,
        &scope,
        NewAgent {
            name: "Demo simulator agent".into(),
            provider: Provider::Simulator,
            provider_agent_id: None,
            business_name: Some("Switchboard Demo".into()),
        },
    )
    .await?;
    Ok(Some(key))
}
