//! Live calls: ingestion bookkeeping on calls, event dedupe, the do-not-call list and
//! encrypted provider credentials.
//!
//! SQLite adds one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Calls {
    Table,
    TenantId,
    Provider,
    ProviderExecutionId,
    ProviderAgentId,
    StatusRank,
    IdempotencyKey,
    ErrorMessage,
    Variables,
}

#[derive(DeriveIden)]
enum CallEvents {
    Table,
    CallId,
    Status,
}

#[derive(DeriveIden)]
enum DoNotCall {
    Table,
    TenantId,
    PhoneNumber,
    Reason,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProviderCredentials {
    Table,
    TenantId,
    Provider,
    Ciphertext,
    BaseUrl,
    OrganizationId,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            // The provider's agent id as reported, kept when no agent here matches it.
            string_null(Calls::ProviderAgentId),
            // Lifecycle position of `status`; the upsert only moves it forward.
            integer(Calls::StatusRank).default(0).to_owned(),
            string_null(Calls::IdempotencyKey),
            text_null(Calls::ErrorMessage),
            json_binary_null(Calls::Variables),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Calls::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }

        // Execution ids are unique per tenant: a report can never touch another tenant's call.
        manager
            .drop_index(
                Index::drop()
                    .name("uq_calls_provider_execution")
                    .table(Calls::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_calls_tenant_provider_execution")
                    .table(Calls::Table)
                    .col(Calls::TenantId)
                    .col(Calls::Provider)
                    .col(Calls::ProviderExecutionId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Partial indexes (same syntax on PostgreSQL and SQLite): most calls have no
        // idempotency key, and only live calls are ever stale, so rows outside these
        // predicates cost no index maintenance on every status update.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_calls_tenant_idempotency ON calls (tenant_id, idempotency_key) \
                 WHERE idempotency_key IS NOT NULL",
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_calls_live_updated ON calls (updated_at) WHERE status_rank < 8",
            )
            .await?;

        // One event per (call, status): a repeated report is a no-op.
        manager
            .create_index(
                Index::create()
                    .name("uq_call_events_call_status")
                    .table(CallEvents::Table)
                    .col(CallEvents::CallId)
                    .col(CallEvents::Status)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DoNotCall::Table)
                    .col(uuid(DoNotCall::TenantId))
                    .col(string(DoNotCall::PhoneNumber))
                    .col(text_null(DoNotCall::Reason))
                    .col(timestamp_with_time_zone(DoNotCall::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(DoNotCall::TenantId)
                            .col(DoNotCall::PhoneNumber),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_do_not_call_tenant")
                            .from(DoNotCall::Table, DoNotCall::TenantId)
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
                    .table(ProviderCredentials::Table)
                    .col(uuid(ProviderCredentials::TenantId))
                    .col(string(ProviderCredentials::Provider))
                    // nonce || AES-256-GCM(api key), hex.
                    .col(text(ProviderCredentials::Ciphertext))
                    .col(string_null(ProviderCredentials::BaseUrl))
                    .col(string_null(ProviderCredentials::OrganizationId))
                    .col(timestamp_with_time_zone(ProviderCredentials::CreatedAt))
                    .col(timestamp_with_time_zone(ProviderCredentials::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(ProviderCredentials::TenantId)
                            .col(ProviderCredentials::Provider),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_provider_credentials_tenant")
                            .from(ProviderCredentials::Table, ProviderCredentials::TenantId)
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
            .drop_table(Table::drop().table(ProviderCredentials::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DoNotCall::Table).to_owned())
            .await?;
        for (name, table) in [
            ("uq_call_events_call_status", CallEvents::Table.into_iden()),
            ("idx_calls_live_updated", Calls::Table.into_iden()),
            ("uq_calls_tenant_idempotency", Calls::Table.into_iden()),
            (
                "uq_calls_tenant_provider_execution",
                Calls::Table.into_iden(),
            ),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("uq_calls_provider_execution")
                    .table(Calls::Table)
                    .col(Calls::Provider)
                    .col(Calls::ProviderExecutionId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        for column in [
            Calls::Variables,
            Calls::ErrorMessage,
            Calls::IdempotencyKey,
            Calls::StatusRank,
            Calls::ProviderAgentId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Calls::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
