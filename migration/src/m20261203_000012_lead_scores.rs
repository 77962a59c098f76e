//! Lead scoring: each customer keeps the explanation of its computed score (which rule
//! gave how many points), and each tenant may replace the default scoring rules.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Customers {
    Table,
    ScoreExplanation,
}

#[derive(DeriveIden)]
enum AnalysisSettings {
    Table,
    ScoringRules,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Customers::Table)
                    .add_column(json_binary_null(Customers::ScoreExplanation))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AnalysisSettings::Table)
                    .add_column(json_binary_null(AnalysisSettings::ScoringRules))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AnalysisSettings::Table)
                    .drop_column(AnalysisSettings::ScoringRules)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Customers::Table)
                    .drop_column(Customers::ScoreExplanation)
                    .to_owned(),
            )
            .await
    }
}
