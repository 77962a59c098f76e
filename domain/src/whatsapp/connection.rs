//! The tenant's WhatsApp connection (ADMIN): connect (after one read proves the token and
//! the business account), read. The access token and app secret are encrypted at rest and
//! never read back through the API; the verify token is kept only as a hash.

use chrono::{DateTime, Utc};
use entity::whatsapp_connection;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use uuid::Uuid;

use super::cloud::{MetaError, list_templates};
use super::{WhatsApp, templates};
use crate::error::{DomainError, DomainResult};
use crate::tenancy::{TenantScope, hash_key};
use crate::types::Role;

pub struct ConnectWhatsApp {
    pub phone_number_id: String,
    pub business_account_id: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    /// Messages per second this number may send (default [`DEFAULT_RATE`], Meta's
    /// standard throughput); campaigns are paced to it.
    pub messages_per_second: Option<i32>,
}

/// Meta's standard throughput for a business number, in messages per second.
pub const DEFAULT_RATE: i32 = 80;
/// The most a number may be set to send per second (Meta's highest tier).
pub const MAX_RATE: i32 = 1000;

/// A connection as the API shows it: never a secret.
#[derive(Debug, Clone)]
pub struct WhatsAppConnection {
    pub phone_number_id: String,
    pub business_account_id: String,
    /// Give Meta this as the callback URL (with the verify token).
    pub webhook_url: String,
    /// Messages per second campaigns send from this number at most.
    pub messages_per_second: i32,
    /// Why Meta refuses the token, until the next connect.
    pub broken_reason: Option<String>,
    pub broken_at: Option<DateTime<Utc>>,
    pub templates_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) fn token_context(tenant: Uuid) -> String {
    format!("whatsapp/{tenant}/access_token")
}

pub(crate) fn secret_context(tenant: Uuid) -> String {
    format!("whatsapp/{tenant}/app_secret")
}

fn id_field(field: &'static str, v: &str) -> DomainResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(field, "must be Meta's numeric id"));
    }
    Ok(v.to_owned())
}

fn secret_field(field: &'static str, v: &str, max: usize) -> DomainResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > max || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(DomainError::invalid(
            field,
            format!("must be 1 to {max} printable characters without spaces"),
        ));
    }
    Ok(v.to_owned())
}

/// Connects (or reconnects) the tenant's WhatsApp number. Listing the account's templates
/// proves the token and the business account id, and stores them.
pub async fn connect(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    scope: &TenantScope,
    input: ConnectWhatsApp,
) -> DomainResult<WhatsAppConnection> {
    scope.require(Role::Admin)?;
    let tenant = scope.tenant_id();
    let phone_number_id = id_field("phoneNumberId", &input.phone_number_id)?;
    let business_account_id = id_field("businessAccountId", &input.business_account_id)?;
    let token = secret_field("accessToken", &input.access_token, 4000)?;
    let secret = secret_field("appSecret", &input.app_secret, 200)?;
    let verify = secret_field("verifyToken", &input.verify_token, 200)?;
    let input_rate = input.messages_per_second;
    if let Some(r) = input_rate
        && !(1..=MAX_RATE).contains(&r)
    {
        return Err(DomainError::invalid(
            "messagesPerSecond",
            format!("must be 1 to {MAX_RATE}"),
        ));
    }
    let listed = match list_templates(wa, &business_account_id, &token).await {
        Ok(t) => t,
        Err(MetaError::Auth { message, .. }) => {
            return Err(DomainError::invalid(
                "accessToken",
                format!("Meta refused the token: {message}"),
            ));
        }
        Err(e) => {
            return Err(DomainError::invalid(
                "businessAccountId",
                format!("could not list the account's templates: {e}"),
            ));
        }
    };
    let token_enc = wa
        .cipher()
        .encrypt(&token, &token_context(tenant))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let secret_enc = wa
        .cipher()
        .encrypt(&secret, &secret_context(tenant))
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let existing = whatsapp_connection::Entity::find_by_id(tenant)
        .one(&txn)
        .await?;
    let model = match existing {
        Some(old) => {
            let mut a: whatsapp_connection::ActiveModel = old.into();
            a.phone_number_id = Set(phone_number_id);
            a.business_account_id = Set(business_account_id);
            a.access_token_enc = Set(token_enc);
            a.app_secret_enc = Set(secret_enc);
            a.verify_token_hash = Set(hash_key(&verify));
            a.broken_reason = Set(None);
            a.broken_at = Set(None);
            a.templates_synced_at = Set(Some(now));
            if let Some(r) = input_rate {
                a.messages_per_second = Set(r);
            }
            a.throttle_level = Set(0);
            a.updated_at = Set(now);
            a.update(&txn).await?
        }
        None => {
            whatsapp_connection::ActiveModel {
                tenant_id: Set(tenant),
                phone_number_id: Set(phone_number_id),
                business_account_id: Set(business_account_id),
                access_token_enc: Set(token_enc),
                app_secret_enc: Set(secret_enc),
                verify_token_hash: Set(hash_key(&verify)),
                webhook_token: Set(crate::tenancy::random_token(24)?),
                broken_reason: Set(None),
                broken_at: Set(None),
                templates_synced_at: Set(Some(now)),
                messages_per_second: Set(input_rate.unwrap_or(DEFAULT_RATE)),
                next_send_at: Set(None),
                throttle_level: Set(0),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?
        }
    };
    templates::store(&txn, tenant, &listed).await?;
    txn.commit().await?;
    tracing::info!(tenant.id = %tenant, templates = listed.len(), "WhatsApp connected");
    Ok(view(wa, model))
}

/// Sets how many messages per second campaigns send from the tenant's number (ADMIN).
pub async fn set_rate(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    scope: &TenantScope,
    messages_per_second: i32,
) -> DomainResult<WhatsAppConnection> {
    scope.require(Role::Admin)?;
    if !(1..=MAX_RATE).contains(&messages_per_second) {
        return Err(DomainError::invalid(
            "messagesPerSecond",
            format!("must be 1 to {MAX_RATE}"),
        ));
    }
    let mut a: whatsapp_connection::ActiveModel = load(db, scope.tenant_id()).await?.into();
    a.messages_per_second = Set(messages_per_second);
    a.updated_at = Set(Utc::now());
    Ok(view(wa, a.update(db).await?))
}

/// The tenant's connection, if any (any role: nothing secret is shown).
pub async fn get(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    scope: &TenantScope,
) -> DomainResult<Option<WhatsAppConnection>> {
    Ok(whatsapp_connection::Entity::find_by_id(scope.tenant_id())
        .one(db)
        .await?
        .map(|m| view(wa, m)))
}

pub(crate) async fn load<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
) -> DomainResult<whatsapp_connection::Model> {
    whatsapp_connection::Entity::find_by_id(tenant)
        .one(conn)
        .await?
        .ok_or_else(|| DomainError::invalid("whatsapp", "connect WhatsApp first (connectWhatsApp)"))
}

/// The access token, decrypted.
pub(crate) fn access_token(wa: &WhatsApp, m: &whatsapp_connection::Model) -> DomainResult<String> {
    wa.cipher()
        .decrypt(&m.access_token_enc, &token_context(m.tenant_id))
        .map_err(|e| DomainError::Internal(e.to_string()))
}

fn view(wa: &WhatsApp, m: whatsapp_connection::Model) -> WhatsAppConnection {
    WhatsAppConnection {
        webhook_url: wa.webhook_url(&m.webhook_token),
        phone_number_id: m.phone_number_id,
        business_account_id: m.business_account_id,
        broken_reason: m.broken_reason,
        messages_per_second: m.messages_per_second,
        broken_at: m.broken_at,
        templates_synced_at: m.templates_synced_at,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}
