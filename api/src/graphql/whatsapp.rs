//! WhatsApp in GraphQL: the connection (ADMIN to connect), templates, messages and
//! free-form replies inside the 24-hour window.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::whatsapp;
use entity::{whatsapp_message, whatsapp_template};

use super::context::{db, scope, services};
use super::error::{GqlResultExt, parse_id};

/// The tenant's WhatsApp Cloud API connection. Secrets are never shown.
#[derive(SimpleObject)]
pub struct WhatsAppConnection {
    /// The number messages are sent from.
    pub phone_number_id: String,
    /// The WhatsApp Business account (templates live there).
    pub business_account_id: String,
    /// Give Meta this as the callback URL, with the verify token.
    pub webhook_url: String,
    /// Messages per second template campaigns send from this number at most (default 80,
    /// Meta's standard throughput; `setWhatsAppMessagingRate` changes it).
    pub messages_per_second: i32,
    /// Why Meta refuses the access token; null while it works. Connect again to clear it.
    pub broken_reason: Option<String>,
    /// Since when it is broken.
    pub broken_at: Option<DateTime<Utc>>,
    /// When templates were last read from Meta.
    pub templates_synced_at: Option<DateTime<Utc>>,
    /// When it was first connected.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<whatsapp::WhatsAppConnection> for WhatsAppConnection {
    fn from(c: whatsapp::WhatsAppConnection) -> Self {
        WhatsAppConnection {
            phone_number_id: c.phone_number_id,
            business_account_id: c.business_account_id,
            webhook_url: c.webhook_url,
            messages_per_second: c.messages_per_second,
            broken_reason: c.broken_reason,
            broken_at: c.broken_at,
            templates_synced_at: c.templates_synced_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A message template of the business account. Only APPROVED ones can be sent.
#[derive(SimpleObject)]
pub struct WhatsAppTemplate {
    /// Its name.
    pub name: String,
    /// Its language code (`en_US`).
    pub language: String,
    /// APPROVED, PENDING, REJECTED, PAUSED, DISABLED...
    pub status: String,
    /// MARKETING, UTILITY or AUTHENTICATION.
    pub category: Option<String>,
    /// How many `{{n}}` parameters a send must give.
    pub parameter_count: i32,
    /// Why Meta rejected or disabled it.
    pub rejected_reason: Option<String>,
    /// Its components as Meta lists them.
    pub components: Option<async_graphql::Json<serde_json::Value>>,
    /// When it was last read or reported.
    pub updated_at: DateTime<Utc>,
}

impl From<whatsapp_template::Model> for WhatsAppTemplate {
    fn from(t: whatsapp_template::Model) -> Self {
        WhatsAppTemplate {
            name: t.name,
            language: t.language,
            status: t.status,
            category: t.category,
            parameter_count: t.parameter_count,
            rejected_reason: t.rejected_reason,
            components: t.components.map(async_graphql::Json),
            updated_at: t.updated_at,
        }
    }
}

/// One WhatsApp message, in or out.
pub struct WhatsAppMessage(pub whatsapp_message::Model);

#[Object]
impl WhatsAppMessage {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Meta's message id (`wamid...`).
    async fn wamid(&self) -> &str {
        &self.0.wamid
    }
    /// The customer it was exchanged with (null when Meta named no number).
    async fn customer_id(&self) -> Option<ID> {
        self.0.customer_id.map(|id| ID(id.to_string()))
    }
    /// INBOUND or OUTBOUND.
    async fn direction(&self) -> &str {
        &self.0.direction
    }
    /// Meta's type: text, image, button, template...
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Its text (or caption, or button title); null for types shown as their kind only.
    async fn text(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    /// RECEIVED (inbound), ACCEPTED, SENT, DELIVERED, READ or FAILED; never goes back.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Meta's error code when it failed (131047: outside the 24-hour window; 131026:
    /// undeliverable).
    async fn error_code(&self) -> Option<i32> {
        self.0.error_code
    }
    /// Meta's explanation of the failure.
    async fn error_title(&self) -> Option<&str> {
        self.0.error_title.as_deref()
    }
    /// The template sent, for template messages.
    async fn template_name(&self) -> Option<&str> {
        self.0.template_name.as_deref()
    }
    /// When it was sent.
    async fn at(&self) -> DateTime<Utc> {
        self.0.sent_at
    }
    /// When its status last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// What `connectWhatsApp` needs from Meta's app dashboard.
#[derive(InputObject)]
pub struct ConnectWhatsAppInput {
    /// The phone number's id (sends go to `/{phoneNumberId}/messages`).
    pub phone_number_id: String,
    /// The WhatsApp Business account id (templates).
    pub business_account_id: String,
    /// A system user's access token; stored encrypted, never shown again.
    pub access_token: String,
    /// The app secret that signs webhooks; stored encrypted, never shown again.
    pub app_secret: String,
    /// The token Meta's verification request must carry; kept only as a hash.
    pub verify_token: String,
    /// Messages per second campaigns may send from this number, 1 to 1000 (default 80,
    /// or unchanged on a reconnect).
    pub messages_per_second: Option<i32>,
}

/// WhatsApp's part of the query root.
#[derive(Default)]
pub struct WhatsAppQuery;

#[Object]
impl WhatsAppQuery {
    /// The tenant's WhatsApp connection; null until `connectWhatsApp`.
    async fn whatsapp_connection(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<WhatsAppConnection>> {
        Ok(
            whatsapp::get(db(ctx)?, services(ctx)?.whatsapp(), scope(ctx)?)
                .await
                .gql()?
                .map(Into::into),
        )
    }

    /// The business account's message templates, as last synced.
    async fn whatsapp_templates(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WhatsAppTemplate>> {
        Ok(whatsapp::templates(db(ctx)?, scope(ctx)?)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// WhatsApp's part of the mutation root.
#[derive(Default)]
pub struct WhatsAppMutation;

#[Object]
impl WhatsAppMutation {
    /// Connects the tenant's WhatsApp number (ADMIN); listing its templates proves the
    /// token. Returns the webhook URL to give Meta.
    async fn connect_whats_app(
        &self,
        ctx: &Context<'_>,
        input: ConnectWhatsAppInput,
    ) -> async_graphql::Result<WhatsAppConnection> {
        Ok(whatsapp::connect(
            db(ctx)?,
            services(ctx)?.whatsapp(),
            scope(ctx)?,
            whatsapp::ConnectWhatsApp {
                phone_number_id: input.phone_number_id,
                business_account_id: input.business_account_id,
                access_token: input.access_token,
                app_secret: input.app_secret,
                verify_token: input.verify_token,
                messages_per_second: input.messages_per_second,
            },
        )
        .await
        .gql()?
        .into())
    }

    /// How many messages per second template campaigns send from the number (ADMIN), 1
    /// to 1000: at most the throughput Meta grants it.
    async fn set_whats_app_messaging_rate(
        &self,
        ctx: &Context<'_>,
        messages_per_second: i32,
    ) -> async_graphql::Result<WhatsAppConnection> {
        Ok(whatsapp::set_rate(
            db(ctx)?,
            services(ctx)?.whatsapp(),
            scope(ctx)?,
            messages_per_second,
        )
        .await
        .gql()?
        .into())
    }

    /// Reads the account's templates from Meta again (MEMBER).
    async fn sync_whats_app_templates(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WhatsAppTemplate>> {
        Ok(
            whatsapp::sync_templates(db(ctx)?, services(ctx)?.whatsapp(), scope(ctx)?)
                .await
                .gql()?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    /// An APPROVED template to the customer (MEMBER), inside or outside the 24-hour
    /// window, with exactly the parameters it takes (`{{1}}`, `{{2}}`... in order).
    async fn send_whats_app_template(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        name: String,
        #[graphql(default = "en_US")] language: String,
        #[graphql(default)] parameters: Vec<String>,
    ) -> async_graphql::Result<WhatsAppMessage> {
        let customer_id = parse_id("customerId", &customer_id)?;
        let services = services(ctx)?;
        Ok(WhatsAppMessage(
            whatsapp::send_template(
                db(ctx)?,
                services.whatsapp(),
                &**services.events(),
                scope(ctx)?,
                &whatsapp::TemplateSend {
                    customer_id,
                    name,
                    language,
                    parameters,
                },
            )
            .await
            .gql()?,
        ))
    }

    /// A free-form text to the customer (MEMBER), only within 24 hours of their last
    /// WhatsApp message; otherwise `BAD_USER_INPUT` saying when the window closed.
    async fn send_whats_app_message(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        text: String,
    ) -> async_graphql::Result<WhatsAppMessage> {
        let customer_id = parse_id("customerId", &customer_id)?;
        let services = services(ctx)?;
        Ok(WhatsAppMessage(
            whatsapp::send_text(
                db(ctx)?,
                services.whatsapp(),
                &**services.events(),
                scope(ctx)?,
                customer_id,
                &text,
            )
            .await
            .gql()?,
        ))
    }
}
