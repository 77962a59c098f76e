//! One round of a running WhatsApp campaign, on the same queue as call campaigns. Due
//! items, as many as the number's messaging rate has slots for in the next second, are
//! claimed (DISPATCHING, one attempt spent) and each sent at its slot. Meta's answer
//! finishes the item with its message id, puts it back without spending the attempt (rate
//! limits, a refused token), or fails it with Meta's reason (template and recipient
//! errors). Do-not-contact and window rules are the call campaigns' (`dispatch::screen`);
//! delivery statuses that fail a message later fail its item (`whatsapp::messages`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use entity::{campaign, campaign_item, whatsapp_connection, whatsapp_template};
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::json;
use uuid::Uuid;

use super::dispatch::{complete, due_items, next_due, pause_for, screen};
use super::service::{self, retry_delay_minutes};
use crate::db::Binder;
use crate::jobs::{self, Lane, Outcome};
use crate::outbound::{EventType, NewEvent, payloads};
use crate::services::Services;
use crate::types::{CampaignStatus, QueueItemStatus};
use crate::whatsapp::cloud::{self, MetaError};
use crate::whatsapp::connection::access_token;
use crate::whatsapp::messages::{self, Sent};
use crate::whatsapp::{pacer, templates};

/// Items one round claims at most.
const ROUND: usize = 200;
/// Sends in flight at once within a round (a round of 200 sends that all time out still
/// ends well within the job's time limit).
const SENDS_AT_ONCE: usize = 64;
/// A claimed item with no answer recorded after this long belonged to a process that
/// stopped mid-send.
const STALE_MINUTES: i64 = 5;
/// The longest a dispatcher sleeps, so a changed campaign is seen within it.
const MAX_WAIT: StdDuration = StdDuration::from_secs(60);
/// How long a recipient waits after Meta's per-recipient limit (131056).
const PAIR_LIMIT_SECONDS: i64 = 60;

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
        let due = next_due(services.db(), c.id).await?;
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
    // Under the campaign's row lock: once a pause or cancel commits, no round claims more
    // (a round already claimed, at most a second of sends, still goes out).
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "SELECT status FROM campaigns WHERE id = {}{}",
        b.bind(c.id),
        crate::db::Dialect::of(&txn).for_no_key_update()
    );
    let running = match txn.query_one_raw(b.statement(sql)).await? {
        Some(row) => row.try_get::<String>("", "status")? == CampaignStatus::Running.as_str(),
        None => false,
    };
    if !running {
        return Ok((Vec::new(), false, None));
    }
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

/// What a send came to, before Meta's answer is judged.
enum Answer {
    Meta(Result<String, MetaError>),
    /// The row cannot fill the template (no request was made).
    Unsendable(String),
    /// The round stopped before this send (the campaign must pause): not sent.
    Halted,
}

/// What becomes of an item after its send.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Meta took it: the item completes with the message's id.
    Sent(String),
    /// The item fails with this reason.
    Failed(String),
    /// Back to the queue after `after`, spending the attempt or not; `stop` pauses the
    /// campaign (with the reason given).
    Again {
        after: Duration,
        reason: String,
        spend: bool,
        stop: Option<String>,
    },
    /// Meta says the number is over its rate: the number's sends pause (longer each time
    /// in a row) and the item waits for them, without spending the attempt.
    Throttled(String),
    /// The token is refused: the connection is broken, the item waits unspent, the
    /// campaign pauses.
    Broken(String),
}

/// Meta's codes for problems of the whole account: every send would meet them.
const ACCOUNT_WIDE: [i64; 4] = [368, 131031, 131042, 133010];
/// Meta's codes for the template itself (parameter count, missing, paused, disabled).
const TEMPLATE_WIDE: [i64; 4] = [132000, 132001, 132015, 132016];
/// Meta's codes for its own passing trouble.
const TRANSIENT: [i64; 4] = [1, 2, 131000, 131016];

/// Judges one answer. `attempts` counts this one.
fn judge(answer: Answer, attempts: i32, max_attempts: i32) -> Verdict {
    let retry = |reason: String| {
        if attempts < max_attempts {
            Verdict::Again {
                after: Duration::zero(),
                reason,
                spend: true,
                stop: None,
            }
        } else {
            Verdict::Failed(reason)
        }
    };
    let free = |reason: String, stop: Option<String>| Verdict::Again {
        after: Duration::zero(),
        reason,
        spend: false,
        stop,
    };
    match answer {
        Answer::Halted => free("not sent: the campaign paused".into(), None),
        Answer::Unsendable(reason) => Verdict::Failed(reason),
        Answer::Meta(Ok(wamid)) => Verdict::Sent(wamid),
        Answer::Meta(Err(MetaError::RateLimited {
            code: 131056,
            message,
        })) => Verdict::Again {
            after: Duration::seconds(PAIR_LIMIT_SECONDS),
            reason: format!("Meta limits messages to this recipient (code 131056): {message}"),
            spend: false,
            stop: None,
        },
        Answer::Meta(Err(MetaError::RateLimited { code, message })) => Verdict::Throttled(format!(
            "Meta is rate limiting the number (code {code}): {message}"
        )),
        Answer::Meta(Err(MetaError::Auth { code, message })) => Verdict::Broken(format!(
            "Meta refused the WhatsApp access token (code {code}): {message}"
        )),
        Answer::Meta(Err(e @ MetaError::WindowClosed { .. })) => Verdict::Failed(e.to_string()),
        Answer::Meta(Err(MetaError::Refused { code, message })) => {
            let said = format!("Meta refused the message (code {code}): {message}");
            if ACCOUNT_WIDE.contains(&code) {
                let stop = format!("the WhatsApp account cannot send (code {code}): {message}");
                free(said, Some(stop))
            } else if TEMPLATE_WIDE.contains(&code) {
                let stop = format!("the template cannot be sent (code {code}): {message}");
                free(said, Some(stop))
            } else if TRANSIENT.contains(&code) {
                retry(said)
            } else {
                Verdict::Failed(said)
            }
        }
        Answer::Meta(Err(MetaError::Unavailable(message))) if nothing_taken(&message) => {
            retry(format!("Meta could not be reached: {message}"))
        }
        Answer::Meta(Err(MetaError::Unavailable(message))) => Verdict::Failed(format!(
            "no clear answer from Meta ({message}); not sent again to avoid a duplicate message"
        )),
    }
}

/// What a round learnt so far.
#[derive(Default)]
struct Round {
    /// Why the campaign must pause, once something says so.
    stop: Option<String>,
    /// Why the connection is broken, once Meta refused the token.
    broken: Option<String>,
    /// The number's pause after a rate limit (taken once per round).
    throttle: Option<Duration>,
    sent: bool,
}

/// Sends the claimed items at their slots and records each answer as it comes, in its own
/// transaction. The reason the campaign must pause, if one; once there is one, the sends
/// not yet made are not made.
async fn send_round(
    services: &Services,
    c: &campaign::Model,
    ready: &Ready,
    claimed: Claimed,
) -> anyhow::Result<Option<String>> {
    let wa = services.whatsapp();
    let halt = AtomicBool::new(false);
    let halt = &halt;
    let mut answers = futures_util::stream::iter(claimed)
        .map(|(item, customer, at)| async move {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let answer = if halt.load(Ordering::SeqCst) {
                Answer::Halted
            } else {
                match parameters_of(&ready.columns, &item) {
                    Err(e) => Answer::Unsendable(e),
                    Ok(params) => {
                        let to: String = item
                            .phone_number
                            .chars()
                            .filter(char::is_ascii_digit)
                            .collect();
                        let message = messages::template_message(&ready.template, &params);
                        Answer::Meta(
                            cloud::send(
                                wa,
                                &ready.connection.phone_number_id,
                                &ready.token,
                                &to,
                                message,
                            )
                            .await,
                        )
                    }
                }
            };
            (item, customer, answer)
        })
        .buffer_unordered(SENDS_AT_ONCE);
    let mut round = Round::default();
    while let Some((item, customer, answer)) = answers.next().await {
        let verdict = judge(answer, item.attempts, c.max_attempts);
        record(services, c, ready, &mut round, item, customer, verdict).await?;
        if round.stop.is_some() {
            halt.store(true, Ordering::SeqCst);
        }
    }
    if round.sent && round.throttle.is_none() {
        pacer::cleared(services.db(), c.tenant_id).await?;
    }
    if let Some(reason) = &round.broken {
        messages::mark_broken(services.db(), c.tenant_id, reason).await?;
    }
    Ok(round.stop)
}

/// Records one item's verdict in its own transaction.
async fn record(
    services: &Services,
    c: &campaign::Model,
    ready: &Ready,
    round: &mut Round,
    item: campaign_item::Model,
    customer: Option<Uuid>,
    verdict: Verdict,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let tenant = c.tenant_id;
    // Judged into what the queue does: the item's next step.
    let verdict = match verdict {
        Verdict::Throttled(reason) => {
            let after = match round.throttle {
                Some(p) => p,
                None => {
                    let txn = crate::db::begin_write(services.db()).await?;
                    let (pause, maxed) = pacer::throttled(&txn, tenant, now).await?;
                    txn.commit().await?;
                    if maxed {
                        round.stop.get_or_insert_with(|| {
                            format!("{reason}; still limited after the longest pause, resume later")
                        });
                    }
                    round.throttle = Some(pause);
                    pause
                }
            };
            Verdict::Again {
                after,
                reason,
                spend: false,
                stop: None,
            }
        }
        Verdict::Broken(reason) => {
            round.broken.get_or_insert_with(|| reason.clone());
            round.stop.get_or_insert_with(|| reason.clone());
            Verdict::Again {
                after: Duration::zero(),
                reason,
                spend: false,
                stop: None,
            }
        }
        other => other,
    };
    let txn = crate::db::begin_write(services.db()).await?;
    let mut event = None;
    let mut stored = None;
    match verdict {
        Verdict::Sent(wamid) => {
            round.sent = true;
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
            event = Some(finished_event(c, &item, &message.status));
            stored = Some(message);
        }
        Verdict::Failed(reason) => {
            let item =
                finish_item(&txn, item, QueueItemStatus::Failed, Some(reason), None, now).await?;
            event = Some(finished_event(c, &item, "NOT_SENT"));
        }
        Verdict::Again {
            after,
            reason,
            spend,
            stop,
        } => {
            if let Some(stop) = stop {
                round.stop.get_or_insert(stop);
            }
            let after = if spend && after.is_zero() {
                Duration::minutes(retry_delay_minutes(c, item.attempts))
            } else {
                after
            };
            // Back to the queue, unless the campaign was canceled meanwhile.
            let mut b = Binder::new(txn.get_database_backend());
            let sql = format!(
                "UPDATE campaign_items SET status = CASE WHEN EXISTS (SELECT 1 FROM campaigns WHERE id = {} \
                 AND status = 'CANCELED') THEN 'CANCELED' ELSE 'PENDING' END, attempts = attempts - {}, \
                 last_error = {}, next_attempt_at = {}, updated_at = {} WHERE id = {} AND status = 'DISPATCHING'",
                b.bind(c.id),
                b.bind(i32::from(!spend)),
                b.bind(reason),
                b.bind(now + after),
                b.bind(now),
                b.bind(item.id)
            );
            txn.execute_raw(b.statement(sql)).await?;
        }
        Verdict::Throttled(_) | Verdict::Broken(_) => {}
    }
    let any_event = event.is_some();
    crate::outbound::record_events(&txn, event.into_iter().collect()).await?;
    txn.commit().await?;
    if any_event {
        jobs::wake(Lane::Webhooks);
    }
    if let Some(m) = stored {
        messages::publish(&**services.events(), std::slice::from_ref(&m)).await;
    }
    Ok(())
}

/// Whether an unreachable Meta certainly took nothing: no connection was made, or Meta
/// itself answered an error (a gateway's 502 or 504 may hide a message it took).
fn nothing_taken(message: &str) -> bool {
    message.starts_with("could not connect") || message == "HTTP 500" || message == "HTTP 503"
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
        assert!(!nothing_taken("HTTP 504"));
    }

    fn refused(code: i64) -> Answer {
        Answer::Meta(Err(MetaError::from_code(code, "m".into())))
    }

    #[test]
    fn answers_are_judged_by_meta_code() {
        assert_eq!(
            judge(Answer::Meta(Ok("w".into())), 1, 1),
            Verdict::Sent("w".into())
        );
        // Throughput: the number pauses, the attempt is not spent.
        for code in [4, 80007, 130429, 131048] {
            assert!(matches!(judge(refused(code), 1, 1), Verdict::Throttled(_)));
        }
        assert!(matches!(
            judge(refused(131056), 1, 1),
            Verdict::Again {
                spend: false,
                stop: None,
                ..
            }
        ));
        assert!(matches!(judge(refused(190), 1, 1), Verdict::Broken(_)));
        // The template or the account: back unspent, the campaign pauses.
        for code in [132000, 132001, 132015, 132016, 368, 131031, 131042, 133010] {
            assert!(matches!(
                judge(refused(code), 1, 3),
                Verdict::Again {
                    spend: false,
                    stop: Some(_),
                    ..
                }
            ));
        }
        // The recipient or the row: the item fails with the reason.
        for code in [131026, 131009, 131008, 100, 131030, 131047] {
            assert!(
                matches!(judge(refused(code), 1, 3), Verdict::Failed(r) if r.contains(&code.to_string()) || code == 131047)
            );
        }
        // Meta's passing trouble: retried while attempts last.
        assert!(matches!(
            judge(refused(131000), 1, 2),
            Verdict::Again { spend: true, .. }
        ));
        assert!(matches!(judge(refused(131000), 2, 2), Verdict::Failed(_)));
        let unclear = Answer::Meta(Err(MetaError::Unavailable("timed out".into())));
        assert!(matches!(judge(unclear, 1, 3), Verdict::Failed(r) if r.contains("duplicate")));
        assert!(matches!(
            judge(Answer::Halted, 1, 1),
            Verdict::Again {
                spend: false,
                stop: None,
                ..
            }
        ));
    }
}
