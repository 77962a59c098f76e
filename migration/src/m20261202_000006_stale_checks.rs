//! When the stale-call sweep may look at a call again: a call whose refresh fails backs
//! off (its own next-check time) instead of being picked first on every pass.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Calls {
    Table,
    NextCheckAt,
    CheckFailures,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Calls::Table)
                    .add_column(timestamp_with_time_zone_null(Calls::NextCheckAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Calls::Table)
                    .add_column(integer(Calls::CheckFailures).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Calls::NextCheckAt, Calls::CheckFailures] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Calls::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
