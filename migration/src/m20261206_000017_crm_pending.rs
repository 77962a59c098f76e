//! CRM links remember the values of a push on its way, so the CRM echoing them back
//! before the push is recorded is not taken for a change made there.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CrmLinks {
    Table,
    Pending,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(CrmLinks::Table)
                    .add_column(json_binary_null(CrmLinks::Pending))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(CrmLinks::Table)
                    .drop_column(CrmLinks::Pending)
                    .to_owned(),
            )
            .await
    }
}
