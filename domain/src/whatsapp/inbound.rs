//! `GET|POST /webhooks/whatsapp/{token}`: Meta's verification handshake, and its events
//! (messages, statuses, template status changes), whose `X-Hub-Signature-256` (HMAC-SHA256
//! of the raw body with the app secret) is checked in constant time before anything is
//! parsed. Changes for another phone number of the same business account are ignored.

use entity::whatsapp_connection;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::Value;

use super::WhatsApp;
use super::connection::secret_context;
use super::messages::{apply_inbound, apply_statuses, fail_items, publish};
use super::templates::status_update;
use crate::phone::Region;
use crate::tenancy::{hash_key, secrets_match};

/// Entries and changes one event may carry (Meta batches a few).
const MAX_CHANGES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("unknown webhook token")]
    UnknownToken,
    #[error("the verify token does not match, or hub.mode is not subscribe")]
    Refused,
    #[error("missing X-Hub-Signature-256")]
    Unsigned,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("{0}")]
    Malformed(String),
    #[error("could not store the event; Meta will send it again")]
    Unavailable(String),
}

/// What an event did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub messages: usize,
    pub statuses: usize,
    pub templates: usize,
}

async fn connection(
    db: &DatabaseConnection,
    token: &str,
) -> Result<whatsapp_connection::Model, InboundError> {
    if token.is_empty() || token.len() > 200 {
        return Err(InboundError::UnknownToken);
    }
    whatsapp_connection::Entity::find()
        .filter(whatsapp_connection::Column::WebhookToken.eq(token))
        .one(db)
        .await
        .map_err(|e| InboundError::Unavailable(e.to_string()))?
        .ok_or(InboundError::UnknownToken)
}

/// The handshake: with `hub.mode=subscribe` and the right verify token, the challenge to
/// echo back as the body.
pub async fn verify_subscription(
    db: &DatabaseConnection,
    token: &str,
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
) -> Result<String, InboundError> {
    let conn = connection(db, token).await?;
    let (Some("subscribe"), Some(given), Some(challenge)) = (mode, verify_token, challenge) else {
        return Err(InboundError::Refused);
    };
    // Both sides hashed before the comparison, so it takes the same time wherever they differ.
    if !secrets_match(&hash_key(given), &conn.verify_token_hash) {
        return Err(InboundError::Refused);
    }
    if challenge.is_empty()
        || challenge.len() > 200
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(InboundError::Malformed(
            "hub.challenge is not a token".into(),
        ));
    }
    Ok(challenge.to_owned())
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` with `secret`.
pub(crate) fn signature_matches(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some(given) = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, body, &given).is_ok()
}

pub async fn receive(
    db: &DatabaseConnection,
    wa: &WhatsApp,
    events: &dyn crate::events::EventBus,
    token: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Received, InboundError> {
    let conn = connection(db, token).await?;
    let signature = signature.ok_or(InboundError::Unsigned)?;
    let secret = wa
        .cipher()
        .decrypt(&conn.app_secret_enc, &secret_context(conn.tenant_id))
        .map_err(|e| InboundError::Unavailable(e.to_string()))?;
    if !signature_matches(&secret, signature, body) {
        return Err(InboundError::BadSignature);
    }
    let event: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("malformed JSON: {e}")))?;
    if event["object"].as_str() != Some("whatsapp_business_account") {
        return Err(InboundError::Malformed(
            "object is not whatsapp_business_account".into(),
        ));
    }
    let changes: Vec<&Value> = event["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .collect();
    if changes.len() > MAX_CHANGES {
        return Err(InboundError::Malformed(format!(
            "at most {MAX_CHANGES} changes per event"
        )));
    }
    let tenant = entity::tenant::Entity::find_by_id(conn.tenant_id)
        .one(db)
        .await
        .map_err(|e| InboundError::Unavailable(e.to_string()))?
        .ok_or(InboundError::UnknownToken)?;
    let region = Region::parse(&tenant.default_region)
        .map_err(|e| InboundError::Unavailable(e.to_string()))?;
    let unavailable = |e: crate::error::DomainError| InboundError::Unavailable(e.to_string());
    let txn = crate::db::begin_write(db)
        .await
        .map_err(|e| InboundError::Unavailable(e.to_string()))?;
    let mut received = Received::default();
    let mut moved = Vec::new();
    let mut campaigns = Vec::new();
    for change in changes {
        let value = &change["value"];
        match change["field"].as_str() {
            Some("messages") => {
                let number = value["metadata"]["phone_number_id"].as_str();
                if number.is_some_and(|n| n != conn.phone_number_id) {
                    continue;
                }
                let new = apply_inbound(&txn, conn.tenant_id, region, value)
                    .await
                    .map_err(unavailable)?;
                received.messages += new.len();
                moved.extend(new);
                let changed = apply_statuses(&txn, conn.tenant_id, value)
                    .await
                    .map_err(unavailable)?;
                received.statuses += changed.len();
                campaigns.extend(
                    fail_items(&txn, conn.tenant_id, &changed)
                        .await
                        .map_err(unavailable)?,
                );
                moved.extend(changed);
            }
            Some("message_template_status_update") => {
                let updated = status_update(&txn, conn.tenant_id, value)
                    .await
                    .map_err(unavailable)?;
                received.templates += usize::from(updated);
            }
            _ => {}
        }
    }
    txn.commit()
        .await
        .map_err(|e| InboundError::Unavailable(e.to_string()))?;
    if received.messages > 0 {
        crate::jobs::wake(crate::jobs::Lane::Webhooks);
    }
    publish(events, &moved).await;
    campaigns.sort();
    campaigns.dedup();
    for campaign_id in campaigns {
        let progress = crate::events::Event::CampaignProgress {
            tenant_id: conn.tenant_id,
            campaign_id,
            at: chrono::Utc::now(),
        };
        if let Err(e) = events.publish(progress).await {
            tracing::warn!(error = %e, "could not publish campaign progress");
        }
    }
    Ok(received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_raw_body() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"app-secret");
        let good = format!("sha256={}", hex::encode(ring::hmac::sign(&key, body)));
        assert!(signature_matches("app-secret", &good, body));
        assert!(!signature_matches("other", &good, body));
        assert!(!signature_matches("app-secret", &good, b"{}"));
        assert!(!signature_matches("app-secret", "sha256=zz", body));
        assert!(!signature_matches("app-secret", "", body));
    }
}
