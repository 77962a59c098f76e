//! Deleting a customer or an agent sets `calls.customer_id` / `calls.agent_id` to null through
//! their foreign keys, which looks calls up by that column alone. The indexes led by `tenant_id`
//! could not serve that lookup, so every delete or merge scanned the whole calls table. Led by the
//! parent instead, the same indexes still serve the tenant-scoped reads (a customer's or an
//! agent's calls newest first; ids are unique across tenants) and the write cost stays the same.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX idx_calls_customer ON calls (customer_id, id)",
            "CREATE INDEX idx_calls_agent ON calls (agent_id, id)",
            "DROP INDEX idx_calls_tenant_customer",
            "DROP INDEX idx_calls_tenant_agent",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE INDEX idx_calls_tenant_customer ON calls (tenant_id, customer_id, id)",
            "CREATE INDEX idx_calls_tenant_agent ON calls (tenant_id, agent_id, id)",
            "DROP INDEX IF EXISTS idx_calls_customer",
            "DROP INDEX IF EXISTS idx_calls_agent",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
