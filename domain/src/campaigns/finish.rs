//! What a campaign call's ending does to its item (finished, retried later, skipped or
//! back in the queue when it was never dialled), and the circuit breaker that pauses a
//! campaign whose provider keeps failing.

use anyhow::Context;
use chrono::{Duration, Utc};
use entity::{call, campaign, campaign_item};
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::dispatch;
use super::jobs::DispatchCampaign;
use super::repo::{customers_by_phone, listed_numbers};
use super::service::{self, retry_delay_minutes, retry_on};
use crate::db::{Binder, Dialect};
use crate::jobs::{self, Job};
use crate::services::Services;
use crate::types::{CallStatus, CampaignStatus, LeadStatus, QueueItemStatus};

/// Placement failures where the provider may have the call: never dialled again.
pub const AMBIGUOUS_PLACEMENT: &str = "not sent again to avoid calling twice";

/// The breaker looks at this many of a campaign's latest dials...
const BREAKER_WINDOW: i64 = 20;
/// ...made within this many seconds...
const BREAKER_SECONDS: i64 = 120;
/// ...and trips when at least this many were made and half or more failed.
const BREAKER_MIN: i64 = 5;

pub(crate) async fn finish(
    services: &Services,
    item_id: Uuid,
    call_id: Uuid,
) -> anyhow::Result<()> {
    let db = services.db();
    let txn = crate::db::begin_write(db).await?;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "SELECT * FROM campaign_items WHERE id = {}{}",
        b.bind(item_id),
        Dialect::of(&txn).for_update()
    );
    let Some(item) = campaign_item::Entity::find()
        .from_raw_sql(b.statement(sql))
        .one(&txn)
        .await?
    else {
        return Ok(());
    };
    if item.call_id != Some(call_id)
        || !matches!(
            item.status,
            QueueItemStatus::Dispatching | QueueItemStatus::InProgress
        )
    {
        return Ok(());
    }
    let Some(call) = call::Entity::find_by_id(call_id).one(&txn).await? else {
        return Ok(());
    };
    if !call.status.is_terminal() {
        return Ok(());
    }
    let Some(c) = campaign::Entity::find_by_id(item.campaign_id)
        .one(&txn)
        .await?
    else {
        return Ok(());
    };
    let now = Utc::now();
    let placed = call.placing_since.is_some() || call.provider_execution_id.is_some();
    let listed = listed_numbers(&txn, c.tenant_id, &[item.phone_number.as_str()])
        .await?
        .contains(&item.phone_number);
    let customer_dnc = customers_by_phone(&txn, c.tenant_id, &[item.phone_number.as_str()])
        .await?
        .get(&item.phone_number)
        .is_some_and(|x| x.1 == LeadStatus::DoNotCall);
    let ambiguous = call
        .error_message
        .as_deref()
        .is_some_and(|e| e.contains(AMBIGUOUS_PLACEMENT));
    let (status, error, next, refund) = if call.status == CallStatus::Completed {
        (QueueItemStatus::Completed, None, None, false)
    } else if listed || customer_dnc {
        // The person asked not to be called: never again, whatever the call's ending.
        let why = if listed {
            "on the do-not-call list"
        } else {
            "customer marked DO_NOT_CALL"
        };
        (
            QueueItemStatus::Skipped,
            Some(why.to_owned()),
            None,
            !placed,
        )
    } else if !placed {
        // Never dialled (the campaign stopped first): not an attempt.
        if c.status == CampaignStatus::Canceled {
            (QueueItemStatus::Canceled, None, None, true)
        } else {
            (QueueItemStatus::Pending, None, Some(now), true)
        }
    } else {
        let error = call
            .error_message
            .clone()
            .map(|e| format!("{}: {e}", call.status))
            .unwrap_or_else(|| call.status.to_string());
        let retry = c.status != CampaignStatus::Canceled
            && !ambiguous
            && item.attempts < c.max_attempts
            && retry_on(&c).contains(&call.status);
        if retry {
            let at = now + Duration::minutes(retry_delay_minutes(&c, item.attempts));
            (QueueItemStatus::Pending, Some(error), Some(at), false)
        } else {
            (QueueItemStatus::Failed, Some(error), None, false)
        }
    };
    let error_kept = error.clone();
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE campaign_items SET status = {}, last_error = COALESCE({}, last_error), \
         next_attempt_at = COALESCE({}, next_attempt_at), attempts = attempts - {}, updated_at = {} WHERE id = {}",
        b.bind(status.as_str()),
        b.bind(error),
        b.bind(next),
        b.bind(i32::from(refund)),
        b.bind(now),
        b.bind(item.id)
    );
    txn.execute_raw(b.statement(sql)).await?;
    if status.is_finished() {
        let finished = campaign_item::Model {
            status,
            attempts: item.attempts - i32::from(refund),
            last_error: error_kept.or(item.last_error.clone()),
            updated_at: now,
            ..item.clone()
        };
        crate::outbound::record_events(
            &txn,
            vec![crate::outbound::NewEvent::new(
                c.tenant_id,
                crate::outbound::EventType::CampaignItemFinished,
                Some(c.id),
                serde_json::json!({
                    "item": crate::outbound::payloads::campaign_item(&finished),
                    "callStatus": call.status.as_str(),
                }),
            )],
        )
        .await?;
    }
    if c.status == CampaignStatus::Running {
        hurry(&txn, &c).await?;
    }
    txn.commit().await?;
    jobs::wake(DispatchCampaign::LANE);
    jobs::wake(crate::jobs::Lane::Webhooks);
    if c.status == CampaignStatus::Running {
        dispatch::complete(services, &c).await?;
    }
    service::publish_progress(services, c.tenant_id, c.id).await;
    Ok(())
}

/// Makes the campaign's dispatcher run now (a slot freed), starting one if none is queued.
pub(crate) async fn hurry<C: ConnectionTrait>(conn: &C, c: &campaign::Model) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE jobs SET run_at = {} WHERE kind = {} AND subject = {} AND status = 'pending' AND run_at > {}",
        b.bind(now),
        b.bind(DispatchCampaign::KIND),
        b.bind(c.id.to_string()),
        b.bind(now)
    );
    conn.execute_raw(b.statement(sql)).await?;
    if !jobs::queue::has_live(conn, DispatchCampaign::KIND, c.id).await? {
        jobs::enqueue(
            conn,
            &DispatchCampaign {
                tenant_id: c.tenant_id,
                campaign_id: c.id,
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// Records one dial of a campaign call; after a provider failure, pauses the campaign if
/// half or more of its latest dials failed.
pub(crate) async fn record_dial(
    services: &Services,
    campaign_id: Uuid,
    failed: bool,
    error: &str,
) -> anyhow::Result<()> {
    record_dials(services, campaign_id, &[(failed, error.to_owned())]).await
}

/// Records several dial results of one campaign (`(failed, error)` each) in one statement,
/// then checks the breaker once if any failed.
pub(crate) async fn record_dials(
    services: &Services,
    campaign_id: Uuid,
    dials: &[(bool, String)],
) -> anyhow::Result<()> {
    if dials.is_empty() {
        return Ok(());
    }
    let db = services.db();
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    let rows: Vec<String> = dials
        .iter()
        .map(|(failed, _)| {
            format!(
                "({}, {}, {}, {})",
                b.bind(Uuid::now_v7()),
                b.bind(campaign_id),
                b.bind(now),
                b.bind(*failed)
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO campaign_dials (id, campaign_id, at, failed) VALUES {}",
        rows.join(", ")
    );
    db.execute_raw(b.statement(sql))
        .await
        .context("recording dials")?;
    let failed = dials.iter().any(|(f, _)| *f);
    let error = dials
        .iter()
        .rev()
        .find(|(f, _)| *f)
        .map_or("", |(_, e)| e.as_str());
    let since = now - Duration::seconds(BREAKER_SECONDS);
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "DELETE FROM campaign_dials WHERE campaign_id = {} AND at < {}",
        b.bind(campaign_id),
        b.bind(since - Duration::seconds(BREAKER_SECONDS))
    );
    db.execute_raw(b.statement(sql)).await?;
    if !failed {
        return Ok(());
    }
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN failed THEN 1 ELSE 0 END), 0) AS f FROM \
         (SELECT failed FROM campaign_dials WHERE campaign_id = {} AND at >= {} ORDER BY at DESC LIMIT {}) d",
        b.bind(campaign_id),
        b.bind(since),
        BREAKER_WINDOW
    );
    let Some(row) = db.query_one_raw(b.statement(sql)).await? else {
        return Ok(());
    };
    let (n, f): (i64, i64) = (row.try_get("", "n")?, row.try_get("", "f")?);
    if n >= BREAKER_MIN && f * 2 >= n {
        let Some(c) = campaign::Entity::find_by_id(campaign_id).one(db).await? else {
            return Ok(());
        };
        let reason = format!(
            "circuit breaker: {f} of the last {n} dials within {} minutes failed at the provider (last: {})",
            BREAKER_SECONDS / 60,
            error.chars().take(300).collect::<String>()
        );
        dispatch::pause_for(services, &c, &reason).await?;
    }
    Ok(())
}
