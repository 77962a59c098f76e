//! A call's first charge keeps the pricing it was charged at, so a later report that
//! changes the call's duration re-prices it at the same rate, whatever the tenant's
//! pricing has become since.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CreditEntries {
    Table,
    RateUnit,
    RatePrice,
    RateFee,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        for col in [
            string_null(CreditEntries::RateUnit),
            big_integer_null(CreditEntries::RatePrice),
            big_integer_null(CreditEntries::RateFee),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CreditEntries::Table)
                        .add_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [
            CreditEntries::RateUnit,
            CreditEntries::RatePrice,
            CreditEntries::RateFee,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CreditEntries::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
