//! One dispatch round of a running campaign: as many due items as the caps have room for
//! become queued calls (with their placement jobs, in the same transaction); items outside
//! their calling window wait for it to open; items whose number may no longer be called
//! are skipped. Placement (`calls::place`) takes the slot atomically, so a round that
//! over-estimates room only leaves a call waiting, never dials over a cap.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use entity::{agent, call, campaign, campaign_item};
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::repo::{customers_by_phone, listed_numbers};
use super::service::{self, window_of};
use super::window::{parse_zone, zones_of_number};
use crate::calls::jobs::PlaceCalls;
use crate::calls::live;
use crate::calls::transition::{self, AfterCommit};
use crate::db::{Binder, Dialect};
use crate::jobs::{self, Job, Lane, Outcome};
use crate::outbound::{EventType, payloads};
use crate::services::Services;
use crate::types::{CallDirection, CallStatus, CampaignStatus, EventSource, LeadStatus};

/// Items one round turns into calls at most.
const ROUND: i64 = 200;
/// How long a round waits when the caps are full (a call ending hurries it).
const FULL_WAIT: Duration = Duration::from_millis(1000);
/// The longest a dispatcher sleeps, so a changed campaign is seen within it.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn run(services: &Services, campaign_id: Uuid) -> anyhow::Result<Outcome> {
    let db = services.db();
    let Some(c) = campaign::Entity::find_by_id(campaign_id)
        .one(db)
        .await
        .context("loading the campaign")?
    else {
        return Ok(Outcome::Done);
    };
    if c.status != CampaignStatus::Running {
        return Ok(Outcome::Done);
    }
    if service::Channel::of(&c) == service::Channel::WhatsApp {
        return super::messaging::run(services, &c).await;
    }
    let agent = match c.agent_id {
        Some(id) => agent::Entity::find_by_id(id).one(db).await?,
        None => None,
    };
    let Some(agent) = agent else {
        pause_for(services, &c, "the campaign's agent was deleted").await?;
        return Ok(Outcome::Done);
    };
    let now = Utc::now();
    // The tenant's credit is a cap too: with nothing left and no live call to give a
    // reserve back, only a top-up helps, so the tenant's campaigns pause until one.
    let credit = crate::credits::dial_room(db, c.tenant_id).await?;
    if let Some(credit) = credit
        && credit.calls == 0
    {
        if credit.live == 0 {
            super::balance::pause_all(services, c.tenant_id).await?;
        }
        // Paused, this job ends at its next run; otherwise live calls will give credit
        // back, or a top-up came in meanwhile (a top-up right after the pause hurries this
        // job rather than starting a second one, so it must not end here).
        return Ok(Outcome::Snooze(
            now + chrono::Duration::from_std(FULL_WAIT).unwrap_or_default(),
        ));
    }
    let room = room(services, &c)
        .await?
        .min(credit.map_or(i64::MAX, |r| r.calls));
    let mut dialled = 0;
    if room > 0 {
        dialled = dispatch_round(services, &c, &agent, room, now).await?;
    }
    let stats = service::stats(db, c.id).await?;
    if stats.active() == 0 {
        complete(services, &c).await?;
        return Ok(Outcome::Done);
    }
    if dialled > 0 {
        service::publish_progress(services, c.tenant_id, c.id).await;
    }
    let wait = if dialled as i64 == ROUND {
        // A full round: there may be more room (and items) at once.
        Duration::ZERO
    } else if room == 0 || dialled as i64 == room {
        FULL_WAIT
    } else {
        next_due(db, c.id)
            .await?
            .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(MAX_WAIT)
            .clamp(Duration::from_millis(200), MAX_WAIT)
    };
    Ok(Outcome::Snooze(
        Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default(),
    ))
}

/// How many more calls this campaign may start now under its own, its tenant's and the
/// system's caps.
async fn room(services: &Services, c: &campaign::Model) -> anyhow::Result<i64> {
    let db = services.db();
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "SELECT COUNT(*) AS n FROM campaign_items WHERE campaign_id = {} AND status IN ('DISPATCHING', 'IN_PROGRESS')",
        b.bind(c.id)
    );
    let in_flight: i64 = db
        .query_one_raw(b.statement(sql))
        .await?
        .map(|r| r.try_get("", "n"))
        .transpose()?
        .unwrap_or(0);
    let tenant_cap = entity::tenant::Entity::find_by_id(c.tenant_id)
        .one(db)
        .await?
        .map_or(0, |t| t.concurrency_limit);
    let counts = live::counts(db, c.tenant_id, Some(c.id)).await?;
    let system = i64::from(services.providers().settings().system_concurrent_calls);
    Ok((i64::from(c.concurrency_limit) - in_flight)
        .min(i64::from(tenant_cap) - counts.tenant)
        .min(system - counts.system)
        .clamp(0, ROUND))
}

pub(crate) async fn next_due<C: ConnectionTrait>(
    conn: &C,
    campaign_id: Uuid,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "SELECT MIN(next_attempt_at) AS at FROM campaign_items WHERE campaign_id = {} AND status = 'PENDING'",
        b.bind(campaign_id)
    );
    Ok(conn
        .query_one_raw(b.statement(sql))
        .await?
        .and_then(|r| r.try_get::<Option<DateTime<Utc>>>("", "at").ok().flatten()))
}

async fn dispatch_round(
    services: &Services,
    c: &campaign::Model,
    agent: &agent::Model,
    room: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let db = services.db();
    let txn = crate::db::begin_write(db).await?;
    let items = due_items(&txn, c, room, now).await?;
    if items.is_empty() {
        return Ok(0);
    }
    let to_dial = screen(&txn, c, items, room, now).await?;
    let dialled = to_dial.len();
    let after = queue_calls(&txn, services, c, agent, &to_dial, now).await?;
    txn.commit().await?;
    if dialled > 0 {
        jobs::wake(PlaceCalls::LANE);
    }
    after.run(&**services.events()).await;
    Ok(dialled)
}

/// Due PENDING items, oldest first, locked for this round (others skip them). Items
/// outside their window are moved to its opening, so a round looks at a few more than it
/// may take.
pub(crate) async fn due_items<C: ConnectionTrait>(
    txn: &C,
    c: &campaign::Model,
    room: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<campaign_item::Model>> {
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "SELECT * FROM campaign_items WHERE campaign_id = {} AND status = 'PENDING' AND next_attempt_at <= {} \
         ORDER BY next_attempt_at, id LIMIT {}{}",
        b.bind(c.id),
        b.bind(now),
        room * 2,
        Dialect::of(txn).skip_locked()
    );
    campaign_item::Entity::find()
        .from_raw_sql(b.statement(sql))
        .all(txn)
        .await
        .context("claiming due items")
}

/// Of `items`, those that may be contacted now (at most `room`), with their customer. The
/// others are skipped (the number or the customer asked not to be contacted) or moved to
/// their window's next opening, in the caller's transaction.
pub(crate) async fn screen<C: ConnectionTrait>(
    txn: &C,
    c: &campaign::Model,
    items: Vec<campaign_item::Model>,
    room: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(campaign_item::Model, Option<Uuid>)>> {
    let phones: Vec<&str> = items.iter().map(|i| i.phone_number.as_str()).collect();
    let listed = listed_numbers(txn, c.tenant_id, &phones).await?;
    let customers = customers_by_phone(txn, c.tenant_id, &phones).await?;
    let window = window_of(c);
    let fallback = parse_zone(&c.timezone).unwrap_or(chrono_tz::UTC);
    let mut to_dial = Vec::new();
    for item in items {
        let skip = if listed.contains(&item.phone_number) {
            Some("on the do-not-call list")
        } else if customers
            .get(&item.phone_number)
            .is_some_and(|x| x.1 == LeadStatus::DoNotCall)
        {
            Some("customer marked DO_NOT_CALL")
        } else {
            None
        };
        if let Some(reason) = skip {
            set_item(txn, item.id, "SKIPPED", Some(reason), None, now).await?;
            continue;
        }
        if let Some(w) = &window {
            let mut zones = item
                .timezone
                .as_deref()
                .and_then(parse_zone)
                .map(|z| vec![z])
                .unwrap_or_else(|| zones_of_number(&item.phone_number));
            if zones.is_empty() {
                zones.push(fallback);
            }
            if !w.open(&zones, now) {
                match w.next_open(&zones, now) {
                    Some(at) => set_next(txn, item.id, at, now).await?,
                    None => {
                        set_item(
                            txn,
                            item.id,
                            "SKIPPED",
                            Some("the number's time zones are never all inside the calling window"),
                            None,
                            now,
                        )
                        .await?
                    }
                }
                continue;
            }
        }
        if to_dial.len() as i64 >= room {
            break;
        }
        let customer = customers.get(&item.phone_number).map(|x| x.0);
        to_dial.push((item, customer));
    }
    Ok(to_dial)
}

async fn set_item<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    status: &str,
    error: Option<&str>,
    call_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE campaign_items SET status = {}, last_error = COALESCE({}, last_error), call_id = COALESCE({}, call_id), updated_at = {} WHERE id = {}",
        b.bind(status),
        b.bind(error.map(str::to_owned)),
        b.bind(call_id),
        b.bind(now),
        b.bind(id)
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

async fn set_next<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE campaign_items SET next_attempt_at = {}, updated_at = {} WHERE id = {}",
        b.bind(at),
        b.bind(now),
        b.bind(id)
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// Each item's next attempt: a QUEUED call with its placement job, the item DISPATCHING;
/// a handful of statements for the whole round, whatever its size.
async fn queue_calls<C: ConnectionTrait>(
    conn: &C,
    services: &Services,
    c: &campaign::Model,
    agent: &agent::Model,
    items: &[(campaign_item::Model, Option<Uuid>)],
    now: DateTime<Utc>,
) -> anyhow::Result<AfterCommit> {
    if items.is_empty() {
        return Ok(AfterCommit::default());
    }
    let models: Vec<call::Model> = items
        .iter()
        .map(|(item, customer_id)| call::Model {
            id: Uuid::now_v7(),
            tenant_id: c.tenant_id,
            agent_id: Some(agent.id),
            customer_id: customer_id.or(item.customer_id),
            campaign_id: Some(c.id),
            campaign_item_id: Some(item.id),
            provider: agent.provider,
            provider_execution_id: None,
            placing_since: None,
            provider_call_id: None,
            direction: CallDirection::Outbound,
            status: CallStatus::Queued,
            from_number: None,
            to_number: Some(item.phone_number.clone()),
            started_at: None,
            ended_at: None,
            duration_seconds: None,
            cost: None,
            transcript: None,
            summary: None,
            recording_url: None,
            extracted_data: None,
            hangup_reason: None,
            raw_payload: None,
            provider_agent_id: Some(agent.provider_agent_id.clone()),
            status_rank: CallStatus::Queued.rank(),
            idempotency_key: None,
            error_message: None,
            variables: item.variables.clone(),
            created_at: now,
            updated_at: now,
        })
        .collect();
    call::Entity::insert_many(models.iter().cloned().map(call::ActiveModel::from))
        .exec_without_returning(conn)
        .await
        .context("creating the items' calls")?;
    let after = transition::created_many(
        conn,
        services.ingestor().follow_ups(),
        &models,
        EventSource::Api,
    )
    .await?;
    let ids: Vec<Uuid> = models.iter().map(|m| m.id).collect();
    let placements = PlaceCalls::batches(c.tenant_id, &ids)
        .iter()
        .map(|job| jobs::new_job(job, now))
        .collect::<Result<Vec<_>, _>>()?;
    jobs::queue::insert_many(conn, placements).await?;
    let mut b = Binder::new(conn.get_database_backend());
    let arms: Vec<String> = items
        .iter()
        .zip(&models)
        .map(|((item, _), m)| format!("WHEN {} THEN {}", b.bind(item.id), b.bind(m.id)))
        .collect();
    let ids = b.list(items.iter().map(|(item, _)| item.id.into()));
    let sql = format!(
        "UPDATE campaign_items SET status = 'DISPATCHING', attempts = attempts + 1, \
         call_id = CASE id {} END, updated_at = {} WHERE id IN ({ids})",
        arms.join(" "),
        b.bind(now),
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(after)
}

/// Marks a running campaign with no active item COMPLETED.
pub(crate) async fn complete(services: &Services, c: &campaign::Model) -> anyhow::Result<()> {
    let now = Utc::now();
    let txn = crate::db::begin_write(services.db()).await?;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE campaigns SET status = 'COMPLETED', finished_at = {}, updated_at = {} WHERE id = {} AND status = 'RUNNING' \
         AND NOT EXISTS (SELECT 1 FROM campaign_items WHERE campaign_id = {} AND status IN ('PENDING', 'DISPATCHING', 'IN_PROGRESS'))",
        b.bind(now),
        b.bind(now),
        b.bind(c.id),
        b.bind(c.id)
    );
    let moved = txn.execute_raw(b.statement(sql)).await?.rows_affected();
    if moved > 0 {
        record_campaign_event(&txn, EventType::CampaignCompleted, c.id).await?;
    }
    txn.commit().await?;
    if moved > 0 {
        jobs::wake(Lane::Webhooks);
        tracing::info!(campaign.id = %c.id, "campaign completed");
        service::publish_progress(services, c.tenant_id, c.id).await;
    }
    Ok(())
}

/// Records a campaign event with the campaign as it now is, in the caller's transaction.
pub(crate) async fn record_campaign_event<C: ConnectionTrait>(
    conn: &C,
    kind: EventType,
    id: Uuid,
) -> anyhow::Result<()> {
    if let Some(model) = campaign::Entity::find_by_id(id).one(conn).await? {
        crate::outbound::record_events(conn, vec![payloads::campaign_event(kind, &model)]).await?;
    }
    Ok(())
}

/// Pauses a running campaign by itself, saying why.
pub(crate) async fn pause_for(
    services: &Services,
    c: &campaign::Model,
    reason: &str,
) -> anyhow::Result<bool> {
    let now = Utc::now();
    let txn = crate::db::begin_write(services.db()).await?;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE campaigns SET status = 'PAUSED', paused_reason = {}, updated_at = {} WHERE id = {} AND status = 'RUNNING'",
        b.bind(reason),
        b.bind(now),
        b.bind(c.id)
    );
    let moved = txn.execute_raw(b.statement(sql)).await?.rows_affected() > 0;
    if moved {
        record_campaign_event(&txn, EventType::CampaignPaused, c.id).await?;
    }
    txn.commit().await?;
    if moved {
        jobs::wake(Lane::Webhooks);
        tracing::warn!(campaign.id = %c.id, reason, "campaign paused itself");
        service::publish_progress(services, c.tenant_id, c.id).await;
    }
    Ok(moved)
}
