//! The unique indexes that find a call by its provider execution id and a customer by its
//! number now lead with that key, and the tenant comes last.
//!
//! Led by the tenant, a key lookup (`tenant_id = $1 AND phone_number = $2`) competed with
//! every other tenant-led index: when the planner expected about one row for the tenant
//! (an empty table when the plan was cached, or statistics taken before the tenant's rows
//! arrived) the costs tied, and it could walk all of the tenant's rows with the key as a
//! filter, once per key. Key lookups now test the tenant outside the index (see
//! `domain::db::probe`), so this index is the only one that can serve them. Uniqueness,
//! and the `ON CONFLICT (tenant_id, …)` upserts that name these columns in any order, are
//! unchanged.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE UNIQUE INDEX uq_calls_execution_provider_tenant \
             ON calls (provider_execution_id, provider, tenant_id)",
            "DROP INDEX uq_calls_tenant_provider_execution",
            "CREATE UNIQUE INDEX uq_customers_phone_tenant ON customers (phone_number, tenant_id)",
            "DROP INDEX uq_customers_tenant_phone",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE UNIQUE INDEX uq_calls_tenant_provider_execution \
             ON calls (tenant_id, provider, provider_execution_id)",
            "DROP INDEX IF EXISTS uq_calls_execution_provider_tenant",
            "CREATE UNIQUE INDEX uq_customers_tenant_phone ON customers (tenant_id, phone_number)",
            "DROP INDEX IF EXISTS uq_customers_phone_tenant",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
