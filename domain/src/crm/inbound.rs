//! Twenty's webhooks: `person.created|updated|deleted` (single `record`, or batched
//! `items[].record`), verified against the connection's secret before anything is read,
//! then applied like a pulled page. Twenty never retries, so an answer other than 2xx
//! loses nothing the next pull will not find.

use entity::crm_connection;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::Value;

use super::Crm;
use super::apply::{Context, apply};
use super::connection::webhook_secret;
use super::twenty::{Person, read_person, verify};

/// Records one webhook may carry.
const MAX_RECORDS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("unknown webhook token")]
    UnknownToken,
    #[error("missing X-Twenty-Webhook-Signature or X-Twenty-Webhook-Timestamp")]
    Unsigned,
    #[error("the signature does not match, or the timestamp is more than 5 minutes off")]
    BadSignature,
    #[error("{0}")]
    Malformed(String),
    #[error("could not apply the event; it will be picked up by the next pull")]
    Unavailable(String),
}

/// What a webhook did.
#[derive(Debug, Default)]
pub struct Received {
    pub applied: usize,
    pub ignored: bool,
}

pub async fn receive(
    db: &DatabaseConnection,
    crm: &Crm,
    token: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Received, InboundError> {
    if token.is_empty() || token.len() > 200 {
        return Err(InboundError::UnknownToken);
    }
    let conn = crm_connection::Entity::find()
        .filter(crm_connection::Column::WebhookToken.eq(token))
        .one(db)
        .await
        .map_err(|e| InboundError::Unavailable(e.to_string()))?
        .ok_or(InboundError::UnknownToken)?;
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(InboundError::Unsigned);
    };
    let secret =
        webhook_secret(crm, &conn).map_err(|e| InboundError::Unavailable(e.to_string()))?;
    if !verify(
        &secret,
        ts,
        sig,
        body,
        chrono::Utc::now().timestamp_millis(),
    ) {
        return Err(InboundError::BadSignature);
    }
    let event: Value = serde_json::from_slice(body)
        .map_err(|e| InboundError::Malformed(format!("malformed JSON: {e}")))?;
    let name = event["eventName"]
        .as_str()
        .ok_or_else(|| InboundError::Malformed("eventName is missing".into()))?;
    let (object, verb) = name.split_once('.').unwrap_or((name, ""));
    let object = event["objectMetadata"]["nameSingular"]
        .as_str()
        .unwrap_or(object);
    if object != "person" {
        return Ok(Received {
            ignored: true,
            ..Received::default()
        });
    }
    let deleted = match verb {
        "created" | "updated" | "upserted" | "restored" => false,
        "deleted" | "destroyed" => true,
        _ => {
            return Ok(Received {
                ignored: true,
                ..Received::default()
            });
        }
    };
    let mut records: Vec<&Value> = Vec::new();
    if event["record"].is_object() {
        records.push(&event["record"]);
    }
    if let Some(items) = event["items"].as_array() {
        if items.len() > MAX_RECORDS {
            return Err(InboundError::Malformed(format!(
                "at most {MAX_RECORDS} records per event"
            )));
        }
        records.extend(items.iter().map(|i| &i["record"]).filter(|r| r.is_object()));
    }
    let ctx = Context::load(db, &conn)
        .await
        .map_err(|e| InboundError::Unavailable(e.to_string()))?;
    let people: Vec<Person> = records
        .into_iter()
        .filter_map(|r| read_person(r, &ctx.mapping, ctx.region))
        .map(|mut p| {
            p.deleted |= deleted;
            p
        })
        .collect();
    let n = people.len();
    apply(db, &ctx, people)
        .await
        .map_err(|e| InboundError::Unavailable(e.to_string()))?;
    Ok(Received {
        applied: n,
        ignored: false,
    })
}
