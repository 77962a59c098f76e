//! Campaigns: their recipients (queue items) and the dial results the circuit breaker
//! reads; calls link to the recipient they are an attempt for; a partial index keeps the
//! live calls that concurrency caps count small to read.

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
enum Campaigns {
    Table,
    Id,
    TenantId,
    AgentId,
    Name,
    Status,
    ConcurrencyLimit,
    MaxAttempts,
    RetryDelays,
    RetryOn,
    CallingWindow,
    Timezone,
    PausedReason,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum CampaignItems {
    Table,
    Id,
    TenantId,
    CampaignId,
    CustomerId,
    PhoneNumber,
    Line,
    Variables,
    Timezone,
    Status,
    Attempts,
    LastError,
    NextAttemptAt,
    CallId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CampaignDials {
    Table,
    Id,
    CampaignId,
    At,
    Failed,
}

#[derive(DeriveIden)]
enum Calls {
    Table,
    CampaignItemId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .col(pk_uuid(Campaigns::Id))
                    .col(uuid(Campaigns::TenantId))
                    .col(uuid_null(Campaigns::AgentId))
                    .col(string(Campaigns::Name))
                    .col(string(Campaigns::Status))
                    .col(integer(Campaigns::ConcurrencyLimit))
                    .col(integer(Campaigns::MaxAttempts))
                    .col(json_binary(Campaigns::RetryDelays))
                    .col(json_binary(Campaigns::RetryOn))
                    .col(json_binary_null(Campaigns::CallingWindow))
                    .col(string(Campaigns::Timezone))
                    .col(text_null(Campaigns::PausedReason))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .col(timestamp_with_time_zone(Campaigns::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Campaigns::StartedAt))
                    .col(timestamp_with_time_zone_null(Campaigns::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_campaigns_tenant")
                            .from(Campaigns::Table, Campaigns::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_campaigns_tenant")
                    .table(Campaigns::Table)
                    .col(Campaigns::TenantId)
                    .col(Campaigns::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignItems::Table)
                    .col(pk_uuid(CampaignItems::Id))
                    .col(uuid(CampaignItems::TenantId))
                    .col(uuid(CampaignItems::CampaignId))
                    .col(uuid_null(CampaignItems::CustomerId))
                    .col(string(CampaignItems::PhoneNumber))
                    .col(integer(CampaignItems::Line))
                    .col(json_binary_null(CampaignItems::Variables))
                    .col(string_null(CampaignItems::Timezone))
                    .col(string(CampaignItems::Status))
                    .col(integer(CampaignItems::Attempts).default(0))
                    .col(text_null(CampaignItems::LastError))
                    .col(timestamp_with_time_zone(CampaignItems::NextAttemptAt))
                    .col(uuid_null(CampaignItems::CallId))
                    .col(timestamp_with_time_zone(CampaignItems::CreatedAt))
                    .col(timestamp_with_time_zone(CampaignItems::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_campaign_items_campaign")
                            .from(CampaignItems::Table, CampaignItems::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One item per number per campaign; the dispatcher's claim reads due items in order.
        manager
            .create_index(
                Index::create()
                    .name("uq_campaign_items_phone")
                    .table(CampaignItems::Table)
                    .col(CampaignItems::CampaignId)
                    .col(CampaignItems::PhoneNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_campaign_items_due")
                    .table(CampaignItems::Table)
                    .col(CampaignItems::CampaignId)
                    .col(CampaignItems::Status)
                    .col(CampaignItems::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CampaignDials::Table)
                    .col(pk_uuid(CampaignDials::Id))
                    .col(uuid(CampaignDials::CampaignId))
                    .col(timestamp_with_time_zone(CampaignDials::At))
                    .col(boolean(CampaignDials::Failed))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_campaign_dials_campaign")
                            .from(CampaignDials::Table, CampaignDials::CampaignId)
                            .to(Campaigns::Table, Campaigns::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_campaign_dials_recent")
                    .table(CampaignDials::Table)
                    .col(CampaignDials::CampaignId)
                    .col(CampaignDials::At)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Calls::Table)
                    .add_column(uuid_null(Calls::CampaignItemId))
                    .to_owned(),
            )
            .await?;
        // The calls holding a concurrency slot (being placed, or placed and not final):
        // what every dial counts, kept small by a partial index on both databases.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX idx_calls_live ON calls (tenant_id, campaign_id) \
                 WHERE status_rank < 8 AND (placing_since IS NOT NULL OR provider_execution_id IS NOT NULL)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS idx_calls_live")
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Calls::Table)
                    .drop_column(Calls::CampaignItemId)
                    .to_owned(),
            )
            .await?;
        for t in ["campaign_dials", "campaign_items", "campaigns"] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).to_owned())
                .await?;
        }
        Ok(())
    }
}
