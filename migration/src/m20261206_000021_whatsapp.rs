//! WhatsApp (Meta Cloud API): a tenant's connection (secrets encrypted, a random webhook
//! token in its URL), its message templates, and every message in and out with its
//! delivery status, next to the customer's calls.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WhatsappConnections {
    Table,
    TenantId,
    PhoneNumberId,
    BusinessAccountId,
    AccessTokenEnc,
    AppSecretEnc,
    VerifyTokenHash,
    WebhookToken,
    BrokenReason,
    BrokenAt,
    TemplatesSyncedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WhatsappTemplates {
    Table,
    Id,
    TenantId,
    MetaId,
    Name,
    Language,
    Status,
    Category,
    ParameterCount,
    Components,
    RejectedReason,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WhatsappMessages {
    Table,
    Id,
    TenantId,
    CustomerId,
    Direction,
    Wamid,
    Kind,
    Body,
    Payload,
    Status,
    StatusRank,
    ErrorCode,
    ErrorTitle,
    TemplateName,
    SentAt,
    CreatedAt,
    UpdatedAt,
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
        manager
            .create_table(
                Table::create()
                    .table(WhatsappConnections::Table)
                    .col(pk_uuid(WhatsappConnections::TenantId))
                    .col(string(WhatsappConnections::PhoneNumberId))
                    .col(string(WhatsappConnections::BusinessAccountId))
                    .col(text(WhatsappConnections::AccessTokenEnc))
                    .col(text(WhatsappConnections::AppSecretEnc))
                    .col(string(WhatsappConnections::VerifyTokenHash))
                    .col(string(WhatsappConnections::WebhookToken).unique_key())
                    .col(text_null(WhatsappConnections::BrokenReason))
                    .col(timestamp_with_time_zone_null(WhatsappConnections::BrokenAt))
                    .col(timestamp_with_time_zone_null(
                        WhatsappConnections::TemplatesSyncedAt,
                    ))
                    .col(timestamp_with_time_zone(WhatsappConnections::CreatedAt))
                    .col(timestamp_with_time_zone(WhatsappConnections::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WhatsappConnections::Table, WhatsappConnections::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WhatsappTemplates::Table)
                    .col(pk_uuid(WhatsappTemplates::Id))
                    .col(uuid(WhatsappTemplates::TenantId))
                    .col(string_null(WhatsappTemplates::MetaId))
                    .col(string(WhatsappTemplates::Name))
                    .col(string(WhatsappTemplates::Language))
                    .col(string(WhatsappTemplates::Status))
                    .col(string_null(WhatsappTemplates::Category))
                    .col(integer(WhatsappTemplates::ParameterCount))
                    .col(json_binary_null(WhatsappTemplates::Components))
                    .col(text_null(WhatsappTemplates::RejectedReason))
                    .col(timestamp_with_time_zone(WhatsappTemplates::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WhatsappTemplates::Table, WhatsappTemplates::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_whatsapp_templates_name")
                    .table(WhatsappTemplates::Table)
                    .col(WhatsappTemplates::TenantId)
                    .col(WhatsappTemplates::Name)
                    .col(WhatsappTemplates::Language)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WhatsappMessages::Table)
                    .col(pk_uuid(WhatsappMessages::Id))
                    .col(uuid(WhatsappMessages::TenantId))
                    .col(uuid_null(WhatsappMessages::CustomerId))
                    .col(string(WhatsappMessages::Direction))
                    .col(string(WhatsappMessages::Wamid))
                    .col(string(WhatsappMessages::Kind))
                    .col(text_null(WhatsappMessages::Body))
                    .col(json_binary_null(WhatsappMessages::Payload))
                    .col(string(WhatsappMessages::Status))
                    .col(integer(WhatsappMessages::StatusRank))
                    .col(integer_null(WhatsappMessages::ErrorCode))
                    .col(text_null(WhatsappMessages::ErrorTitle))
                    .col(string_null(WhatsappMessages::TemplateName))
                    .col(timestamp_with_time_zone(WhatsappMessages::SentAt))
                    .col(timestamp_with_time_zone(WhatsappMessages::CreatedAt))
                    .col(timestamp_with_time_zone(WhatsappMessages::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WhatsappMessages::Table, WhatsappMessages::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(WhatsappMessages::Table, WhatsappMessages::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_whatsapp_messages_wamid")
                    .table(WhatsappMessages::Table)
                    .col(WhatsappMessages::TenantId)
                    .col(WhatsappMessages::Wamid)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_whatsapp_messages_customer")
                    .table(WhatsappMessages::Table)
                    .col(WhatsappMessages::CustomerId)
                    .col(WhatsappMessages::SentAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WhatsappMessages::Table.into_iden(),
            WhatsappTemplates::Table.into_iden(),
            WhatsappConnections::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
