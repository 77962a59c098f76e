//! Sync runs (pulling a provider's calls into the CRM) and per-tenant sync cursors.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Id,
    TenantId,
    Provider,
    Trigger,
    DryRun,
    Since,
    Until,
    Status,
    TotalCalls,
    SyncedCalls,
    NewCustomers,
    UpdatedCustomers,
    DuplicateCalls,
    SkippedUnknownAgent,
    SkippedNoPhone,
    Errors,
    CallsByAgent,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SyncCursors {
    Table,
    TenantId,
    Provider,
    SyncedUntil,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncRuns::Table)
                    .col(uuid(SyncRuns::Id).primary_key())
                    .col(uuid(SyncRuns::TenantId))
                    .col(string(SyncRuns::Provider))
                    .col(string(SyncRuns::Trigger))
                    .col(boolean(SyncRuns::DryRun))
                    .col(timestamp_with_time_zone(SyncRuns::Since))
                    .col(timestamp_with_time_zone(SyncRuns::Until))
                    .col(string(SyncRuns::Status))
                    .col(integer(SyncRuns::TotalCalls))
                    .col(integer(SyncRuns::SyncedCalls))
                    .col(integer(SyncRuns::NewCustomers))
                    .col(integer(SyncRuns::UpdatedCustomers))
                    .col(integer(SyncRuns::DuplicateCalls))
                    .col(integer(SyncRuns::SkippedUnknownAgent))
                    .col(integer(SyncRuns::SkippedNoPhone))
                    .col(json_binary(SyncRuns::Errors))
                    .col(json_binary(SyncRuns::CallsByAgent))
                    .col(timestamp_with_time_zone(SyncRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(SyncRuns::FinishedAt))
                    .col(timestamp_with_time_zone(SyncRuns::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sync_runs_tenant")
                            .from(SyncRuns::Table, SyncRuns::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sync_runs_tenant")
                    .table(SyncRuns::Table)
                    .col(SyncRuns::TenantId)
                    .col(SyncRuns::Id)
                    .to_owned(),
            )
            .await?;
        // At most one running sync per tenant and provider, whichever worker started it.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_sync_runs_running ON sync_runs (tenant_id, provider) \
                 WHERE status = 'RUNNING'",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SyncCursors::Table)
                    .col(uuid(SyncCursors::TenantId))
                    .col(string(SyncCursors::Provider))
                    .col(timestamp_with_time_zone(SyncCursors::SyncedUntil))
                    .col(timestamp_with_time_zone(SyncCursors::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(SyncCursors::TenantId)
                            .col(SyncCursors::Provider),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sync_cursors_tenant")
                            .from(SyncCursors::Table, SyncCursors::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncCursors::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SyncRuns::Table).to_owned())
            .await?;
        Ok(())
    }
}
