//! Tenant credits: one account per tenant (balance, pricing, alert threshold), the ledger
//! every change of the balance is an entry of, and the reserves held for live calls.
//!
//! The balance is kept on the account row (locked by every change) and is always the sum
//! of the tenant's entries; a CHECK keeps it from ever going below zero. Reserves are rows
//! of their own, one per call, so a call deleted with its customer takes its reserve with it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CreditAccounts {
    Table,
    TenantId,
    Balance,
    Metered,
    BillingUnit,
    UnitPrice,
    CallFee,
    MinimumBalance,
    ReserveMinutes,
    LowThreshold,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CreditEntries {
    Table,
    Id,
    TenantId,
    Kind,
    Amount,
    BalanceAfter,
    IdempotencyKey,
    Reason,
    Reference,
    CallId,
    Actor,
    BilledSeconds,
    Due,
    ProviderCost,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CreditHolds {
    Table,
    CallId,
    TenantId,
    Amount,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Calls {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CreditAccounts::Table)
                    .col(pk_uuid(CreditAccounts::TenantId))
                    .col(
                        big_integer(CreditAccounts::Balance)
                            .default(0)
                            .check(Expr::col(CreditAccounts::Balance).gte(0)),
                    )
                    .col(boolean(CreditAccounts::Metered).default(false))
                    .col(string(CreditAccounts::BillingUnit).default("MINUTE"))
                    .col(big_integer(CreditAccounts::UnitPrice).default(0))
                    .col(big_integer(CreditAccounts::CallFee).default(0))
                    .col(big_integer(CreditAccounts::MinimumBalance).default(0))
                    .col(integer(CreditAccounts::ReserveMinutes).default(5))
                    .col(big_integer_null(CreditAccounts::LowThreshold))
                    .col(timestamp_with_time_zone(CreditAccounts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CreditAccounts::Table, CreditAccounts::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CreditEntries::Table)
                    .col(pk_uuid(CreditEntries::Id))
                    .col(uuid(CreditEntries::TenantId))
                    .col(string(CreditEntries::Kind))
                    .col(big_integer(CreditEntries::Amount))
                    .col(big_integer(CreditEntries::BalanceAfter))
                    .col(string(CreditEntries::IdempotencyKey))
                    .col(text_null(CreditEntries::Reason))
                    .col(text_null(CreditEntries::Reference))
                    .col(uuid_null(CreditEntries::CallId))
                    .col(string_null(CreditEntries::Actor))
                    .col(big_integer_null(CreditEntries::BilledSeconds))
                    .col(big_integer_null(CreditEntries::Due))
                    .col(double_null(CreditEntries::ProviderCost))
                    .col(timestamp_with_time_zone(CreditEntries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CreditEntries::Table, CreditEntries::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credit_entries_key")
                    .table(CreditEntries::Table)
                    .col(CreditEntries::TenantId)
                    .col(CreditEntries::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credit_entries_tenant")
                    .table(CreditEntries::Table)
                    .col(CreditEntries::TenantId)
                    .col(CreditEntries::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credit_entries_call")
                    .table(CreditEntries::Table)
                    .col(CreditEntries::CallId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CreditHolds::Table)
                    .col(pk_uuid(CreditHolds::CallId))
                    .col(uuid(CreditHolds::TenantId))
                    .col(big_integer(CreditHolds::Amount))
                    .col(timestamp_with_time_zone(CreditHolds::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CreditHolds::Table, CreditHolds::CallId)
                            .to(Calls::Table, Calls::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credit_holds_tenant")
                    .table(CreditHolds::Table)
                    .col(CreditHolds::TenantId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CreditHolds::Table.into_iden(),
            CreditEntries::Table.into_iden(),
            CreditAccounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
