//! The two-way CRM sync: one connection per tenant (Twenty), the link between a customer
//! and its CRM record with the values both sides last agreed on, and the outbox of
//! customers changed here that the next push sends. Sync runs gain a direction and the
//! counts a CRM run reports.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Direction,
    Created,
    Updated,
    Skipped,
    Conflicts,
}

#[derive(DeriveIden)]
enum CrmConnections {
    Table,
    TenantId,
    Provider,
    BaseUrl,
    ApiKeyEnc,
    WebhookSecretEnc,
    WebhookToken,
    FieldMapping,
    Overrides,
    PullCursor,
    FailingSince,
    FailingNotified,
    LastError,
    LastPullAt,
    LastPushAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CrmLinks {
    Table,
    CustomerId,
    TenantId,
    RemoteId,
    Base,
    RemoteUpdatedAt,
    RemoteDeletedAt,
    SyncedAt,
}

#[derive(DeriveIden)]
enum CrmOutbox {
    Table,
    CustomerId,
    TenantId,
    RemoteId,
    Deleted,
    ChangedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(SyncRuns::Table)
                    .add_column(string_null(SyncRuns::Direction))
                    .to_owned(),
            )
            .await?;
        for col in [
            SyncRuns::Created,
            SyncRuns::Updated,
            SyncRuns::Skipped,
            SyncRuns::Conflicts,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncRuns::Table)
                        .add_column(integer(col).default(0))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(CrmConnections::Table)
                    .col(uuid(CrmConnections::TenantId).primary_key())
                    .col(string(CrmConnections::Provider))
                    .col(string(CrmConnections::BaseUrl))
                    .col(text(CrmConnections::ApiKeyEnc))
                    .col(text(CrmConnections::WebhookSecretEnc))
                    .col(string_uniq(CrmConnections::WebhookToken))
                    .col(json_binary(CrmConnections::FieldMapping))
                    .col(json_binary(CrmConnections::Overrides))
                    .col(timestamp_with_time_zone_null(CrmConnections::PullCursor))
                    .col(timestamp_with_time_zone_null(CrmConnections::FailingSince))
                    .col(boolean(CrmConnections::FailingNotified).default(false))
                    .col(text_null(CrmConnections::LastError))
                    .col(timestamp_with_time_zone_null(CrmConnections::LastPullAt))
                    .col(timestamp_with_time_zone_null(CrmConnections::LastPushAt))
                    .col(timestamp_with_time_zone(CrmConnections::CreatedAt))
                    .col(timestamp_with_time_zone(CrmConnections::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_crm_connections_tenant")
                            .from(CrmConnections::Table, CrmConnections::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CrmLinks::Table)
                    .col(uuid(CrmLinks::CustomerId).primary_key())
                    .col(uuid(CrmLinks::TenantId))
                    .col(string(CrmLinks::RemoteId))
                    .col(json_binary(CrmLinks::Base))
                    .col(timestamp_with_time_zone_null(CrmLinks::RemoteUpdatedAt))
                    .col(timestamp_with_time_zone_null(CrmLinks::RemoteDeletedAt))
                    .col(timestamp_with_time_zone(CrmLinks::SyncedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_crm_links_customer")
                            .from(CrmLinks::Table, CrmLinks::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_crm_links_tenant")
                            .from(CrmLinks::Table, CrmLinks::TenantId)
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
                    .name("uq_crm_links_remote")
                    .table(CrmLinks::Table)
                    .col(CrmLinks::TenantId)
                    .col(CrmLinks::RemoteId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // No foreign key to customers: a deleted customer's row carries the CRM record to
        // delete there.
        manager
            .create_table(
                Table::create()
                    .table(CrmOutbox::Table)
                    .col(uuid(CrmOutbox::CustomerId).primary_key())
                    .col(uuid(CrmOutbox::TenantId))
                    .col(string_null(CrmOutbox::RemoteId))
                    .col(boolean(CrmOutbox::Deleted).default(false))
                    .col(timestamp_with_time_zone(CrmOutbox::ChangedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_crm_outbox_tenant")
                            .from(CrmOutbox::Table, CrmOutbox::TenantId)
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
                    .name("idx_crm_outbox_tenant")
                    .table(CrmOutbox::Table)
                    .col(CrmOutbox::TenantId)
                    .col(CrmOutbox::ChangedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            CrmOutbox::Table.into_iden(),
            CrmLinks::Table.into_iden(),
            CrmConnections::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        for col in [
            SyncRuns::Direction,
            SyncRuns::Created,
            SyncRuns::Updated,
            SyncRuns::Skipped,
            SyncRuns::Conflicts,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncRuns::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
