//! Core schema: tenants, API keys, agents, customers, customer tags, calls
//! and call events.
//!
//! Foreign keys are declared inline in `CREATE TABLE` (SQLite cannot add
//! them afterwards), and composite keys/indexes use portable SQL only.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    DefaultRegion,
    Timezone,
    ConcurrencyLimit,
    WebhookToken,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Role,
    KeyHash,
    KeyPrefix,
    CreatedAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    TenantId,
    Name,
    Provider,
    ProviderAgentId,
    BusinessName,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    TenantId,
    PhoneNumber,
    Name,
    Email,
    Status,
    Tags,
    LeadScore,
    Segment,
    Notes,
    Source,
    LastContactedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CustomerTags {
    Table,
    TenantId,
    CustomerId,
    Tag,
}

#[derive(DeriveIden)]
enum Calls {
    Table,
    Id,
    TenantId,
    AgentId,
    CustomerId,
    CampaignId,
    Provider,
    ProviderExecutionId,
    ProviderCallId,
    Direction,
    Status,
    FromNumber,
    ToNumber,
    StartedAt,
    EndedAt,
    DurationSeconds,
    Cost,
    Transcript,
    Summary,
    RecordingUrl,
    ExtractedData,
    HangupReason,
    RawPayload,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CallEvents {
    Table,
    Id,
    TenantId,
    CallId,
    Status,
    Source,
    At,
    Payload,
}

/// `FOREIGN KEY (<table>.tenant_id) REFERENCES tenants(id) ON DELETE CASCADE`.
fn tenant_fk<T, C>(name: &str, table: T, column: C) -> ForeignKeyCreateStatement
where
    T: IntoIden,
    C: IntoIden,
{
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .on_update(ForeignKeyAction::NoAction)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // tenants
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(pk_uuid(Tenants::Id))
                    .col(string(Tenants::Name))
                    .col(string(Tenants::DefaultRegion))
                    .col(string(Tenants::Timezone))
                    .col(integer(Tenants::ConcurrencyLimit))
                    .col(string_uniq(Tenants::WebhookToken))
                    .col(timestamp_with_time_zone(Tenants::CreatedAt))
                    .col(timestamp_with_time_zone(Tenants::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // api_keys
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(pk_uuid(ApiKeys::Id))
                    .col(uuid(ApiKeys::TenantId))
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Role))
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(string(ApiKeys::KeyPrefix))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .foreign_key(&mut tenant_fk(
                        "fk_api_keys_tenant",
                        ApiKeys::Table,
                        ApiKeys::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_tenant")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::Id)
                    .to_owned(),
            )
            .await?;

        // agents
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(pk_uuid(Agents::Id))
                    .col(uuid(Agents::TenantId))
                    .col(string(Agents::Name))
                    .col(string(Agents::Provider))
                    .col(string(Agents::ProviderAgentId))
                    .col(string_null(Agents::BusinessName))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .col(timestamp_with_time_zone(Agents::UpdatedAt))
                    .foreign_key(&mut tenant_fk(
                        "fk_agents_tenant",
                        Agents::Table,
                        Agents::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_agents_tenant_provider_agent")
                    .table(Agents::Table)
                    .col(Agents::TenantId)
                    .col(Agents::Provider)
                    .col(Agents::ProviderAgentId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_agents_tenant")
                    .table(Agents::Table)
                    .col(Agents::TenantId)
                    .col(Agents::Id)
                    .to_owned(),
            )
            .await?;

        // customers
        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(pk_uuid(Customers::Id))
                    .col(uuid(Customers::TenantId))
                    .col(string(Customers::PhoneNumber))
                    .col(string_null(Customers::Name))
                    .col(string_null(Customers::Email))
                    .col(string(Customers::Status))
                    .col(json_binary(Customers::Tags))
                    .col(double_null(Customers::LeadScore))
                    .col(string_null(Customers::Segment))
                    .col(text_null(Customers::Notes))
                    .col(string_null(Customers::Source))
                    .col(timestamp_with_time_zone_null(Customers::LastContactedAt))
                    .col(timestamp_with_time_zone(Customers::CreatedAt))
                    .col(timestamp_with_time_zone(Customers::UpdatedAt))
                    .foreign_key(&mut tenant_fk(
                        "fk_customers_tenant",
                        Customers::Table,
                        Customers::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_customers_tenant_phone")
                    .table(Customers::Table)
                    .col(Customers::TenantId)
                    .col(Customers::PhoneNumber)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_customers_tenant_id")
                    .table(Customers::Table)
                    .col(Customers::TenantId)
                    .col(Customers::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_customers_tenant_status")
                    .table(Customers::Table)
                    .col(Customers::TenantId)
                    .col(Customers::Status)
                    .col(Customers::Id)
                    .to_owned(),
            )
            .await?;

        // customer_tags
        manager
            .create_table(
                Table::create()
                    .table(CustomerTags::Table)
                    .col(uuid(CustomerTags::TenantId))
                    .col(uuid(CustomerTags::CustomerId))
                    .col(string(CustomerTags::Tag))
                    .primary_key(
                        Index::create()
                            .name("pk_customer_tags")
                            .col(CustomerTags::CustomerId)
                            .col(CustomerTags::Tag),
                    )
                    .foreign_key(&mut tenant_fk(
                        "fk_customer_tags_tenant",
                        CustomerTags::Table,
                        CustomerTags::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_customer_tags_customer")
                            .from(CustomerTags::Table, CustomerTags::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_customer_tags_lookup")
                    .table(CustomerTags::Table)
                    .col(CustomerTags::TenantId)
                    .col(CustomerTags::Tag)
                    .col(CustomerTags::CustomerId)
                    .to_owned(),
            )
            .await?;

        // calls
        manager
            .create_table(
                Table::create()
                    .table(Calls::Table)
                    .col(pk_uuid(Calls::Id))
                    .col(uuid(Calls::TenantId))
                    .col(uuid_null(Calls::AgentId))
                    .col(uuid_null(Calls::CustomerId))
                    .col(uuid_null(Calls::CampaignId))
                    .col(string(Calls::Provider))
                    .col(string_null(Calls::ProviderExecutionId))
                    .col(string_null(Calls::ProviderCallId))
                    .col(string(Calls::Direction))
                    .col(string(Calls::Status))
                    .col(string_null(Calls::FromNumber))
                    .col(string_null(Calls::ToNumber))
                    .col(timestamp_with_time_zone_null(Calls::StartedAt))
                    .col(timestamp_with_time_zone_null(Calls::EndedAt))
                    .col(double_null(Calls::DurationSeconds))
                    .col(double_null(Calls::Cost))
                    .col(text_null(Calls::Transcript))
                    .col(text_null(Calls::Summary))
                    .col(text_null(Calls::RecordingUrl))
                    .col(json_binary_null(Calls::ExtractedData))
                    .col(string_null(Calls::HangupReason))
                    .col(json_binary_null(Calls::RawPayload))
                    .col(timestamp_with_time_zone(Calls::CreatedAt))
                    .col(timestamp_with_time_zone(Calls::UpdatedAt))
                    .foreign_key(&mut tenant_fk(
                        "fk_calls_tenant",
                        Calls::Table,
                        Calls::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_calls_agent")
                            .from(Calls::Table, Calls::AgentId)
                            .to(Agents::Table, Agents::Id)
                            .on_delete(ForeignKeyAction::SetNull)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_calls_customer")
                            .from(Calls::Table, Calls::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::SetNull)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
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
        for (name, cols) in [
            ("idx_calls_tenant_id", vec![Calls::TenantId, Calls::Id]),
            (
                "idx_calls_tenant_customer",
                vec![Calls::TenantId, Calls::CustomerId, Calls::Id],
            ),
            (
                "idx_calls_tenant_agent",
                vec![Calls::TenantId, Calls::AgentId, Calls::Id],
            ),
            (
                "idx_calls_tenant_status",
                vec![Calls::TenantId, Calls::Status, Calls::Id],
            ),
            (
                "idx_calls_tenant_created",
                vec![Calls::TenantId, Calls::CreatedAt],
            ),
            // calls(filter: {campaignId}) and campaign progress.
            (
                "idx_calls_tenant_campaign",
                vec![Calls::TenantId, Calls::CampaignId, Calls::Id],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Calls::Table);
            for col in cols {
                index.col(col);
            }
            manager.create_index(index).await?;
        }

        // call_events
        manager
            .create_table(
                Table::create()
                    .table(CallEvents::Table)
                    .col(pk_uuid(CallEvents::Id))
                    .col(uuid(CallEvents::TenantId))
                    .col(uuid(CallEvents::CallId))
                    .col(string(CallEvents::Status))
                    .col(string(CallEvents::Source))
                    .col(timestamp_with_time_zone(CallEvents::At))
                    .col(json_binary_null(CallEvents::Payload))
                    .foreign_key(&mut tenant_fk(
                        "fk_call_events_tenant",
                        CallEvents::Table,
                        CallEvents::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_call_events_call")
                            .from(CallEvents::Table, CallEvents::CallId)
                            .to(Calls::Table, Calls::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_call_events_call")
                    .table(CallEvents::Table)
                    .col(CallEvents::CallId)
                    .col(CallEvents::At)
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Reverse dependency order; indexes are dropped with their tables.
        manager
            .drop_table(Table::drop().table(CallEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Calls::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(CustomerTags::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Customers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Agents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Tenants::Table).to_owned())
            .await?;
        Ok(())
    }
}
