//! Template campaigns: a campaign has a channel (CALL or WHATSAPP) and, for WhatsApp, the
//! template it sends and the CSV columns that fill its parameters; a queue item keeps its
//! message's Meta id; a message knows the item that sent it; the number's connection keeps
//! its messaging rate and the pacer's next free send time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Campaigns {
    Table,
    Channel,
    TemplateName,
    TemplateLanguage,
    TemplateParameters,
}

#[derive(DeriveIden, Clone, Copy)]
enum CampaignItems {
    Table,
    Wamid,
}

#[derive(DeriveIden, Clone, Copy)]
enum WhatsappMessages {
    Table,
    CampaignItemId,
}

#[derive(DeriveIden, Clone, Copy)]
enum WhatsappConnections {
    Table,
    MessagesPerSecond,
    NextSendAt,
    ThrottleLevel,
}

async fn add(
    manager: &SchemaManager<'_>,
    table: impl Iden + 'static + Clone,
    cols: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    // One column per statement: SQLite alters a table one column at a time.
    for col in cols {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .add_column(col)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

async fn drop(
    manager: &SchemaManager<'_>,
    table: impl Iden + 'static + Clone,
    cols: Vec<DynIden>,
) -> Result<(), DbErr> {
    for col in cols {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .drop_column(col)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        add(
            manager,
            Campaigns::Table,
            vec![
                string(Campaigns::Channel).default("CALL").to_owned(),
                string_null(Campaigns::TemplateName),
                string_null(Campaigns::TemplateLanguage),
                json_binary_null(Campaigns::TemplateParameters),
            ],
        )
        .await?;
        add(
            manager,
            CampaignItems::Table,
            vec![string_null(CampaignItems::Wamid)],
        )
        .await?;
        add(
            manager,
            WhatsappMessages::Table,
            vec![uuid_null(WhatsappMessages::CampaignItemId)],
        )
        .await?;
        add(
            manager,
            WhatsappConnections::Table,
            vec![
                integer(WhatsappConnections::MessagesPerSecond)
                    .default(80)
                    .to_owned(),
                timestamp_with_time_zone_null(WhatsappConnections::NextSendAt),
                integer(WhatsappConnections::ThrottleLevel)
                    .default(0)
                    .to_owned(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop(
            manager,
            WhatsappConnections::Table,
            vec![
                WhatsappConnections::MessagesPerSecond.into_iden(),
                WhatsappConnections::NextSendAt.into_iden(),
                WhatsappConnections::ThrottleLevel.into_iden(),
            ],
        )
        .await?;
        drop(
            manager,
            WhatsappMessages::Table,
            vec![WhatsappMessages::CampaignItemId.into_iden()],
        )
        .await?;
        drop(
            manager,
            CampaignItems::Table,
            vec![CampaignItems::Wamid.into_iden()],
        )
        .await?;
        drop(
            manager,
            Campaigns::Table,
            vec![
                Campaigns::Channel.into_iden(),
                Campaigns::TemplateName.into_iden(),
                Campaigns::TemplateLanguage.into_iden(),
                Campaigns::TemplateParameters.into_iden(),
            ],
        )
        .await?;
        Ok(())
    }
}
