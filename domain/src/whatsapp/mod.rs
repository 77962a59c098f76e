//! WhatsApp through Meta's Cloud API, one more channel next to calls: a lead's calls and
//! messages live in one history.
//!
//! - `connection`: the tenant's connection (ADMIN): ids, the access token and app secret
//!   encrypted at rest, the verify token kept as a hash, a random token in its webhook URL.
//! - `cloud`: Meta's Graph API (send a message, list templates) and its error envelope.
//! - `inbound`: the webhook: the verification handshake, the signature checked over the
//!   raw body before anything is parsed, then messages, statuses and template changes.
//! - `messages`: messages in and out, statuses that converge whatever their order, the
//!   24-hour customer-service window, free-form replies.
//! - `templates`: the account's templates, synced and kept current by webhooks.
//! - `pacer`: the per-number messaging rate template campaigns are sent under (the
//!   campaign engine sends them: `campaigns::messaging`).

pub(crate) mod cloud;
pub(crate) mod connection;
mod inbound;
pub(crate) mod messages;
pub(crate) mod pacer;
pub(crate) mod templates;

use std::sync::Arc;
use std::time::Duration;

pub use cloud::MetaError;
pub use connection::{
    ConnectWhatsApp, DEFAULT_RATE, MAX_RATE, WhatsAppConnection, connect, get, set_rate,
};
pub use inbound::{InboundError, Received, receive, verify_subscription};
pub use messages::{
    Direction, MessageStatus, TemplateSend, WINDOW_HOURS, messages_of, send_template, send_text,
    window_ends_at,
};
pub use templates::{list as templates, sync as sync_templates};

use crate::error::{DomainError, DomainResult};
use crate::http::{HttpClient, RetryPolicy};
use crate::net::OutboundPolicy;
use crate::secrets::Cipher;
use crate::settings::Settings;

/// Whether a WhatsApp campaign may send this template with this many parameter columns:
/// the tenant is connected, the template is APPROVED and takes exactly that many.
pub(crate) async fn check_campaign_template(
    db: &sea_orm::DatabaseConnection,
    tenant: uuid::Uuid,
    name: &str,
    language: &str,
    columns: usize,
) -> DomainResult<()> {
    connection::load(db, tenant).await?;
    let t = templates::approved(db, tenant, name, language, "template").await?;
    if t.parameter_count as usize != columns {
        return Err(DomainError::invalid(
            "template",
            format!(
                "the template takes {} parameters; {columns} parameter columns were named",
                t.parameter_count
            ),
        ));
    }
    Ok(())
}

/// What the WhatsApp channel shares at run time.
#[derive(Clone)]
pub struct WhatsApp {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    cipher: Arc<Cipher>,
    base_url: String,
    public_url: String,
}

impl WhatsApp {
    pub fn new(settings: &Settings, cipher: Arc<Cipher>) -> DomainResult<WhatsApp> {
        let policy = OutboundPolicy::new(settings.providers.outbound_allowlist.clone());
        let http = HttpClient::new(
            Duration::from_secs(15),
            RetryPolicy {
                cap: Duration::from_secs(10),
                max_tries: 3,
                ..RetryPolicy::default()
            },
            Some(policy.resolver()),
        )
        .map_err(|e| DomainError::Internal(format!("WhatsApp HTTP client: {e}")))?;
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.bind_addr));
        Ok(WhatsApp {
            inner: Arc::new(Inner {
                http,
                cipher,
                base_url: settings.providers.whatsapp_base_url.clone(),
                public_url,
            }),
        })
    }

    pub(crate) fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    pub(crate) fn cipher(&self) -> &Cipher {
        &self.inner.cipher
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The URL to give Meta as the callback (for both the handshake and events).
    pub fn webhook_url(&self, token: &str) -> String {
        format!("{}/webhooks/whatsapp/{token}", self.inner.public_url)
    }
}
