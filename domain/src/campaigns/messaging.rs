//! One round of a running WhatsApp campaign, on the same queue as call campaigns. Due
//! items, as many as the number's messaging rate has slots for in the next second, are
//! claimed (DISPATCHING, one attempt spent) and each sent at its slot. Meta's answer
//! finishes the item with its message id, puts it back without spending the attempt (rate
//! limits, a refused token), or fails it with Meta's reason (template and recipient
//! errors). Do-not-contact and window rules are the call campaigns' (`dispatch::screen`);
//! delivery statuses that fail a message later fail its item (`whatsapp::messages`).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use entity::{campaign, campaign_item, whatsapp_connection, whatsapp_template};
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;
use uuid::Uuid;

use super::dispatch::{complete, due_items, pause_for, screen};
use super::service::{self, retry_delay_minutes};
use crate::db::Binder;
use crate::jobs::{self, Lane, Outcome};
use crate::outbound::{EventType, NewEvent, payloads};
use crate::services::Services;
use crate::types::QueueItemStatus;
use crate::whatsapp::cloud::{self, MetaError};
use crate::whatsapp::connection::access_token;
use crate::whatsapp::messages::{self, Sent};
use crate::whatsapp::{pacer, templates};

/// Items one round claims at most.
const ROUND: usize = 200;
/// Sends in flight at once within a round.
const SENDS_AT_ONCE: usize = 32;
/// A claimed item with no answer recorded after this long belonged to a process that
/// stopped mid-send.
const STALE_MINUTES: i64 = 5;
/// The longest a dispatcher sleeps, so a changed campaign is seen within it.
const MAX_WAIT: StdDuration = StdDuration::from_secs(60);
/// How long a recipient waits after Meta's per-recipient limit (131056).
const PAIR_LIMIT_SECONDS: i64 = 60;
/// Template errors that every later send would meet too: the campaign pauses.
const TEMPLATE_WIDE: [i64; 3] = [132001, 132015, 132016];

/// What a round needs to send: the connection, its token and the template.
struct Ready {
    connection: whatsapp_connection::Model,
    token: String,
    template: whatsapp_template::Model,
    columns: Vec<String>,
}

pub(crate) async fn run(services: &Services, c: &campaign::Model) -> anyhow::Result<Outcome> {
    let Some(ready) = ready(services, c).await? else {
        return Ok(Outcome::Done);
    };
    fail_stale(services, c).await?;
    let now = Utc::now();
    let (claimed, full, first_free) = claim(services, c, now).await?;
    let count = claimed.len();
    if count > 0 {
        let stop = send_round(services, c, &ready, claimed).await?;
        service::publish_progress(services, c.tenant_id, c.id).await;
        if let Some(reason) = stop {
            pause_for(services, c, &reason).await?;
            return Ok(Outcome::Done);
        }
    }
    let stats = service::stats(services.db(), c.id).await?;
    if stats.active() == 0 {
        complete(services, c).await?;
        return Ok(Outcome::Done);
    }
    let at = if full {
        // The rate is the limit: the next slot is about free by now.
        first_free.unwrap_or_else(Utc::now)
    } else {
        let due = next_due(services, c.id).await?;
        let mut at =
            due.unwrap_or_else(|| Utc::now() + Duration::from_std(MAX_WAIT).unwrap_or_default());
        if let Some(free) = first_free {
            at = at.max(free);
        }
        at
    };
    let now = Utc::now();
    let at = at
        .max(now + Duration::milliseconds(if count > 0 || full { 0 } else { 200 }))
        .min(now + Duration::from_std(MAX_WAIT).unwrap_or_default());
    Ok(Outcome::Snooze(at))
}

/// The connection, token and template, or `None` once the campaign paused itself for
/// want of one of them.
async fn ready(services: &Services, c: &campaign::Model) -> anyhow::Result<Option<Ready>> {
    let db = services.db();
    let (Some(name), Some(language)) = (&c.template_name, &c.template_language) else {
        pause_for(services, c, "the campaign names no template").await?;
        return Ok(None);
    };
    let Some(connection) = whatsapp_connection::Entity::find_by_id(c.tenant_id)
        .one(db)
        .await?
    else {
        pause_for(services, c, "WhatsApp is not connected (connectWhatsApp)").await?;
        return Ok(None);
    };
    if let Some(reason) = &connection.broken_reason {
        let reason = format!("the WhatsApp connection is broken: {reason}");
        pause_for(services, c, &reason).await?;
        return Ok(None);
    }
    let template = match templates::approved(db, c.tenant_id, name, language, "template").await {
        Ok(t) => t,
        Err(crate::error::DomainError::InvalidInput { message, .. }) => {
            pause_for(
                services,
                c,
                &format!("template {name} ({language}): {message}"),
            )
            .await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let columns: Vec<String> = c
        .template_parameters
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if template.parameter_count as usize != columns.len() {
        let reason = format!(
            "template {name} ({language}) now takes {} parameters; the campaign fills {}",
            template.parameter_count,
            columns.len()
        );
        pause_for(services, c, &reason).await?;
        return Ok(None);
    }
    let token = access_token(services.whatsapp(), &connection)?;
    Ok(Some(Ready {
        connection,
        token,
        template,
        columns,
    }))
}

/// Items a stopped process claimed and never recorded an answer for: the message may
/// have gone out, so it is not sent again.
async fn fail_stale(services: &Services, c: &campaign::Model) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut b = Binder::new(services.db().get_database_backend());
    let sql = format!(
        "UPDATE campaign_items SET status = 'FAILED', last_error = {}, updated_at = {} \
         WHERE campaign_id = {} AND status = 'DISPATCHING' AND wamid IS NULL AND updated_at < {}",
        b.bind("the send was interrupted; not sent again to avoid a duplicate message"),
        b.bind(now),
        b.bind(c.id),
        b.bind(now - Duration::minutes(STALE_MINUTES))
    );
    services.db().execute_raw(b.statement(sql)).await?;
    Ok(())
}

type Claimed = Vec<(campaign_item::Model, Option<Uuid>, DateTime<Utc>)>;

/// Claims due items for the slots free in the next second, booking one slot each. Also
/// whether the rate (not the queue) was the limit, and when the next slot is free.
async fn claim(
    services: &Services,
    c: &campaign::Model,
    now: DateTime<Utc>,
) -> anyhow::Result<(Claimed, bool, Option<DateTime<Utc>>)> {
    let txn = crate::db::begin_write(services.db()).await?;
    let Some(connection) = pacer::lock(&txn, c.tenant_id).await? else {
        return Ok((Vec::new(), false, None));
    };
    let (room, first_free) = pacer::room(&connection, now);
    let room = room.min(ROUND);
    if room == 0 {
        txn.commit().await?;
        return Ok((Vec::new(), true, Some(first_free)));
    }
    let items = due_items(&txn, c, room as i64, now).await?;
    let chosen = screen(&txn, c, items, room as i64, now).await?;
    let times = pacer::book(&txn, &connection, chosen.len(), now).await?;
    if !chosen.is_empty() {
        let mut b = Binder::new(txn.get_database_backend());
        let ids = b.list(chosen.iter().map(|(i, _)| i.id.into()));
        let sql = format!(
            "UPDATE campaign_items SET status = 'DISPATCHING', attempts = attempts + 1, updated_at = {} WHERE id IN ({ids})",
            b.bind(now)
        );
        txn.execute_raw(b.statement(sql)).await?;
    }
    txn.commit().await?;
    let full = chosen.len() == room;
    let next = times.last().map(|t| *t + Duration::milliseconds(1));
    let claimed = chosen
        .into_iter()
        .zip(times)
        .map(|((item, customer), at)| {
            let attempts = item.attempts + 1;
            (campaign_item::Model { attempts, ..item }, customer, at)
        })
        .collect();
    Ok((claimed, full, next))
}

/// The template's parameters from the item's row, in order.
fn parameters_of(columns: &[String], item: &campaign_item::Model) -> Result<Vec<String>, String> {
    columns
        .iter()
        .map(|col| {
            item.variables
                .as_ref()
                .and_then(|v| v.get(col))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("the row has no value for the parameter column {col:?}"))
        })
        .collect()
}

/// What became of one item's send.
enum Result1 {
    Sent(String),
    Failed(String),
    Again {
        at: DateTime<Utc>,
        reason: String,
        spend: bool,
    },
}

/// Sends the claimed items at their slots and records what Meta answered. The reason
/// the campaign must pause, if one.
async fn send_round(
    services: &Services,
    c: &campaign::Model,
    ready: &Ready,
    claimed: Claimed,
) -> anyhow::Result<Option<String>> {
    let wa = services.whatsapp();
    let answers: Vec<_> = futures_util::stream::iter(claimed)
        .map(|(item, customer, at)| async move {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let answer = match parameters_of(&ready.columns, &item) {
                Err(e) => Err(MetaError::Refused {
                    code: 132000,
                    message: e,
                }),
                Ok(params) => {
                    let to: String = item
                        .phone_number
                        .chars()
                        .filter(char::is_ascii_digit)
                        .collect();
                    let message = messages::template_message(&ready.template, &params);
                    cloud::send(
                        wa,
                        &ready.connection.phone_number_id,
                        &ready.token,
                        &to,
                        message,
                    )
                    .await
                }
            };
            (item, customer, answer)
        })
        .buffer_unordered(SENDS_AT_ONCE)
        .collect()
        .await;

    let now = Utc::now();
    let tenant = c.tenant_id;
    let mut stop = None;
    let mut broken = None;
    let txn = crate::db::begin_write(services.db()).await?;
    let mut throttle: Option<Duration> = None;
    let mut any_sent = false;
    let mut stored = Vec::new();
    let mut events = Vec::new();
    for (item, customer, answer) in answers {
        let outcome = match answer {
            Ok(wamid) => Result1::Sent(wamid),
            Err(MetaError::RateLimited { code, message }) if code == 131056 => Result1::Again {
                at: now + Duration::seconds(PAIR_LIMIT_SECONDS),
                reason: format!("Meta limits messages to this recipient (code {code}): {message}"),
                spend: false,
            },
            Err(MetaError::RateLimited { code, message }) => {
                let pause = match throttle {
                    Some(p) => p,
                    None => {
                        let p = pacer::throttled(&txn, tenant, now).await?;
                        throttle = Some(p);
                        p
                    }
                };
                Result1::Again {
                    at: now + pause,
                    reason: format!("Meta is rate limiting the number (code {code}): {message}"),
                    spend: false,
                }
            }
            Err(MetaError::Auth { code, message }) => {
                broken.get_or_insert_with(|| message.clone());
                stop.get_or_insert_with(|| {
                    format!("Meta refused the WhatsApp access token (code {code}): {message}")
                });
                Result1::Again {
                    at: now,
                    reason: format!("Meta refused the access token (code {code})"),
                    spend: false,
                }
            }
            Err(e @ MetaError::WindowClosed { .. }) => Result1::Failed(e.to_string()),
            Err(MetaError::Refused { code, message }) => {
                if TEMPLATE_WIDE.contains(&code) {
                    stop.get_or_insert_with(|| {
                        format!("the template cannot be sent (code {code}): {message}")
                    });
                }
                Result1::Failed(format!("Meta refused the message (code {code}): {message}"))
            }
            Err(MetaError::Unavailable(message)) if nothing_taken(&message) => {
                if item.attempts < c.max_attempts {
                    Result1::Again {
                        at: now + Duration::minutes(retry_delay_minutes(c, item.attempts)),
                        reason: format!("Meta could not be reached: {message}"),
                        spend: true,
                    }
                } else {
                    Result1::Failed(format!("Meta could not be reached: {message}"))
                }
            }
            Err(MetaError::Unavailable(message)) => Result1::Failed(format!(
                "no clear answer from Meta ({message}); not sent again to avoid a duplicate message"
            )),
        };
        match outcome {
            Result1::Sent(wamid) => {
                any_sent = true;
                let sent = Sent {
                    tenant,
                    customer_id: customer.or(item.customer_id),
                    wamid: wamid.clone(),
                    kind: "template",
                    body: None,
                    template_name: Some(ready.template.name.clone()),
                    campaign_item_id: Some(item.id),
                };
                let message = messages::record_sent(&txn, sent, now).await?;
                // A failure status can beat the answer to the send.
                let (status, error) = if message.status == "FAILED" {
                    (
                        QueueItemStatus::Failed,
                        Some(messages::failure_reason(&message)),
                    )
                } else {
                    (QueueItemStatus::Completed, None)
                };
                let item = finish_item(&txn, item, status, error, Some(wamid), now).await?;
                events.push(finished_event(c, &item, &message.status));
                stored.push(message);
            }
            Result1::Failed(reason) => {
                let item =
                    finish_item(&txn, item, QueueItemStatus::Failed, Some(reason), None, now)
                        .await?;
                events.push(finished_event(c, &item, "NOT_SENT"));
            }
            Result1::Again { at, reason, spend } => {
                let mut b = Binder::new(txn.get_database_backend());
                let sql = format!(
                    "UPDATE campaign_items SET status = 'PENDING', attempts = attempts - {}, last_error = {}, \
                     next_attempt_at = {}, updated_at = {} WHERE id = {} AND status = 'DISPATCHING'",
                    b.bind(i32::from(!spend)),
                    b.bind(reason),
                    b.bind(at),
                    b.bind(now),
                    b.bind(item.id)
                );
                txn.execute_raw(b.statement(sql)).await?;
            }
        }
    }
    if any_sent && throttle.is_none() {
        pacer::cleared(&txn, tenant).await?;
    }
    let any_event = !events.is_empty();
    crate::outbound::record_events(&txn, events).await?;
    txn.commit().await?;
    if any_event {
        jobs::wake(Lane::Webhooks);
    }
    messages::publish(&**services.events(), &stored).await;
    if let Some(reason) = broken {
        messages::mark_broken(services.db(), tenant, &reason).await?;
    }
    Ok(stop)
}

/// Whether an unreachable Meta certainly took nothing (no connection, or an error status).
fn nothing_taken(message: &str) -> bool {
    message.starts_with("HTTP ") || message.starts_with("could not connect")
}

async fn finish_item<C: ConnectionTrait>(
    txn: &C,
    item: campaign_item::Model,
    status: QueueItemStatus,
    error: Option<String>,
    wamid: Option<String>,
    now: DateTime<Utc>,
) -> anyhow::Result<campaign_item::Model> {
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE campaign_items SET status = {}, last_error = {}, wamid = COALESCE({}, wamid), updated_at = {} \
         WHERE id = {}",
        b.bind(status.as_str()),
        b.bind(error.clone()),
        b.bind(wamid.clone()),
        b.bind(now),
        b.bind(item.id)
    );
    txn.execute_raw(b.statement(sql)).await?;
    Ok(campaign_item::Model {
        status,
        last_error: error,
        wamid: wamid.or(item.wamid.clone()),
        updated_at: now,
        ..item
    })
}

fn finished_event(
    c: &campaign::Model,
    item: &campaign_item::Model,
    message_status: &str,
) -> NewEvent {
    NewEvent::new(
        c.tenant_id,
        EventType::CampaignItemFinished,
        Some(c.id),
        json!({
            "item": payloads::campaign_item(item),
            "messageStatus": message_status,
        }),
    )
}

async fn next_due(services: &Services, campaign_id: Uuid) -> anyhow::Result<Option<DateTime<Utc>>> {
    let db = services.db();
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "SELECT MIN(next_attempt_at) AS at FROM campaign_items WHERE campaign_id = {} AND status = 'PENDING'",
        b.bind(campaign_id)
    );
    Ok(db
        .query_one_raw(b.statement(sql))
        .await?
        .and_then(|r| r.try_get::<Option<DateTime<Utc>>>("", "at").ok().flatten()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_come_from_the_row_in_order() {
        let now = Utc::now();
        let item = campaign_item::Model {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            campaign_id: Uuid::nil(),
            customer_id: None,
            phone_number: "+12125550101".into(),
            line: 2,
            variables: Some(json!({"first_name": "Ada", "amount": "12"})),
            timezone: None,
            status: QueueItemStatus::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_at: now,
            call_id: None,
            wamid: None,
            created_at: now,
            updated_at: now,
        };
        let cols = vec!["amount".to_owned(), "first_name".to_owned()];
        assert_eq!(parameters_of(&cols, &item).unwrap(), ["12", "Ada"]);
        assert!(parameters_of(&["coupon".to_owned()], &item).is_err());
        assert!(nothing_taken("HTTP 503"));
        assert!(nothing_taken("could not connect: refused"));
        assert!(!nothing_taken("timed out: deadline"));
    }
}
