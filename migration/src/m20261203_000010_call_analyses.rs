//! Post-call analysis: one row per analysis of a call (a re-analysis adds a row and the
//! newest is current, so the history stays), and each tenant's analysis settings (its
//! custom extraction fields).

use sea_orm_migration::sea_orm::ConnectionTrait;
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
    Id,
}

#[derive(DeriveIden)]
enum CallAnalyses {
    Table,
    Id,
    TenantId,
    CallId,
    Current,
    Status,
    Sentiment,
    SentimentScore,
    Outcome,
    Summary,
    ExtractedData,
    Model,
    PromptTokens,
    CompletionTokens,
    LatencyMs,
    Error,
    CreatedAt,
    AnalyzedAt,
}

#[derive(DeriveIden)]
enum AnalysisSettings {
    Table,
    TenantId,
    Fields,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CallAnalyses::Table)
                    .col(pk_uuid(CallAnalyses::Id))
                    .col(uuid(CallAnalyses::TenantId))
                    .col(uuid(CallAnalyses::CallId))
                    .col(boolean(CallAnalyses::Current))
                    .col(string(CallAnalyses::Status))
                    .col(string_null(CallAnalyses::Sentiment))
                    .col(double_null(CallAnalyses::SentimentScore))
                    .col(string_null(CallAnalyses::Outcome))
                    .col(text_null(CallAnalyses::Summary))
                    .col(json_binary_null(CallAnalyses::ExtractedData))
                    .col(string_null(CallAnalyses::Model))
                    .col(integer_null(CallAnalyses::PromptTokens))
                    .col(integer_null(CallAnalyses::CompletionTokens))
                    .col(integer_null(CallAnalyses::LatencyMs))
                    .col(text_null(CallAnalyses::Error))
                    .col(timestamp_with_time_zone(CallAnalyses::CreatedAt))
                    .col(timestamp_with_time_zone_null(CallAnalyses::AnalyzedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_call_analyses_call")
                            .from(CallAnalyses::Table, CallAnalyses::CallId)
                            .to(Calls::Table, Calls::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_call_analyses_tenant")
                            .from(CallAnalyses::Table, CallAnalyses::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // At most one current analysis per call, on both databases (partial unique index).
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_call_analyses_current ON call_analyses (call_id) WHERE current",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_call_analyses_call")
                    .table(CallAnalyses::Table)
                    .col(CallAnalyses::CallId)
                    .col(CallAnalyses::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AnalysisSettings::Table)
                    .col(pk_uuid(AnalysisSettings::TenantId))
                    .col(json_binary(AnalysisSettings::Fields))
                    .col(timestamp_with_time_zone(AnalysisSettings::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_analysis_settings_tenant")
                            .from(AnalysisSettings::Table, AnalysisSettings::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AnalysisSettings::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(CallAnalyses::Table).to_owned())
            .await?;
        Ok(())
    }
}
