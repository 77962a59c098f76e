//! Analytics reads a tenant's calls by when they happened (started, else recorded): an
//! index on that expression keeps the period's calls a range scan on both databases.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_calls_tenant_call_time ON calls (tenant_id, (COALESCE(started_at, created_at)))",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS idx_calls_tenant_call_time")
            .await?;
        Ok(())
    }
}
