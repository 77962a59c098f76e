//! Live-call accounting: how many calls are out with a provider right now (being placed,
//! or placed and not yet final), and taking a slot under the system, tenant and campaign
//! caps in one atomic step. A call holds its slot from the claim until it reaches a
//! terminal status; nothing else releases it.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use uuid::Uuid;

use crate::db::{Binder, Dialect};
use crate::error::DomainResult;
use crate::types::{CallStatus, CampaignStatus};

/// The condition of a call holding a slot.
pub(crate) fn live_condition() -> String {
    format!(
        "status_rank < {} AND (placing_since IS NOT NULL OR provider_execution_id IS NOT NULL)",
        CallStatus::TERMINAL_RANK
    )
}

/// Calls being placed or placed and not final, for one tenant or (`None`) all of them.
pub async fn count_live<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Option<Uuid>,
) -> DomainResult<u64> {
    let mut b = Binder::new(conn.get_database_backend());
    let tenant = match tenant_id {
        Some(t) => format!(" AND tenant_id = {}", b.bind(t)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT COUNT(*) AS n FROM calls WHERE {}{tenant}",
        live_condition()
    );
    let stmt: Statement = b.statement(sql);
    let row = conn.query_one_raw(stmt).await?;
    Ok(row
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(0)
        .max(0) as u64)
}

/// Live calls in the deployment, of one tenant and of one campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    pub system: i64,
    pub tenant: i64,
    pub campaign: i64,
}

pub(crate) async fn counts<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    campaign_id: Option<Uuid>,
) -> DomainResult<LiveCounts> {
    let mut b = Binder::new(conn.get_database_backend());
    let tenant = b.bind(tenant_id);
    let campaign = b.bind(campaign_id);
    let sql = format!(
        "SELECT COUNT(*) AS s, \
         COALESCE(SUM(CASE WHEN tenant_id = {tenant} THEN 1 ELSE 0 END), 0) AS t, \
         COALESCE(SUM(CASE WHEN campaign_id = {campaign} THEN 1 ELSE 0 END), 0) AS c \
         FROM calls WHERE {}",
        live_condition()
    );
    let row = conn.query_one_raw(b.statement(sql)).await?;
    Ok(match row {
        Some(r) => LiveCounts {
            system: r.try_get("", "s")?,
            tenant: r.try_get("", "t")?,
            campaign: r.try_get("", "c")?,
        },
        None => LiveCounts::default(),
    })
}

/// What a claim for a slot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SlotClaim {
    /// The call holds a slot now (`placing_since` is set).
    Claimed,
    /// A cap is full: the call waits, queued.
    Full(&'static str),
    /// The call's campaign is not running: it must not be dialled now.
    CampaignStopped(CampaignStatus),
    /// Another worker claimed or placed the call first.
    Gone,
}

/// Takes a slot for `call_id` if the system cap, its tenant's `concurrencyLimit` and its
/// campaign's cap all have room, in one transaction serialised with every other claim.
pub(crate) async fn claim_slot(
    db: &DatabaseConnection,
    call_id: Uuid,
    system_cap: u32,
) -> DomainResult<SlotClaim> {
    if let Some(lock) = Dialect::of(db).slot_lock() {
        return claim_in_one_call(db, call_id, system_cap, lock).await;
    }
    let txn = crate::db::begin_write(db).await?;
    let found = claim_step_by_step(&txn, call_id, system_cap).await?;
    txn.commit().await?;
    Ok(found)
}

/// What the claim read: the call's caps and status, the live counts, and whether it took
/// the slot.
struct Claimed {
    tenant_cap: i32,
    campaign_cap: Option<i32>,
    campaign_status: Option<CampaignStatus>,
    live: LiveCounts,
    took: bool,
}

impl Claimed {
    fn verdict(self, system_cap: u32) -> SlotClaim {
        if self.took {
            return SlotClaim::Claimed;
        }
        if let Some(status) = self.campaign_status
            && status != CampaignStatus::Running
        {
            return SlotClaim::CampaignStopped(status);
        }
        if self.live.system >= i64::from(system_cap) {
            SlotClaim::Full("the system's concurrent-call limit")
        } else if self.live.tenant >= i64::from(self.tenant_cap) {
            SlotClaim::Full("the tenant's concurrency limit")
        } else if self
            .campaign_cap
            .is_some_and(|cap| self.live.campaign >= i64::from(cap))
        {
            SlotClaim::Full("the campaign's concurrency limit")
        } else {
            // Every cap had room yet the row did not move: someone else took the call.
            SlotClaim::Gone
        }
    }
}

/// PostgreSQL: lock, read the caps, count and take the slot in one call of the
/// `switchboard_claim_slot` function (see its migration), its own transaction, so the
/// lock is held for a single round trip.
async fn claim_in_one_call(
    db: &DatabaseConnection,
    call_id: Uuid,
    system_cap: u32,
    lock: i64,
) -> DomainResult<SlotClaim> {
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "SELECT * FROM switchboard_claim_slot({}, {}, {}, {}, {})",
        b.bind(call_id),
        b.bind(Utc::now()),
        b.bind(i64::from(system_cap)),
        b.bind(CallStatus::TERMINAL_RANK),
        b.bind(lock),
    );
    let Some(row) = db.query_one_raw(b.statement(sql)).await? else {
        return Ok(SlotClaim::Gone);
    };
    Ok(Claimed {
        tenant_cap: row.try_get("", "tenant_cap")?,
        campaign_cap: row.try_get("", "campaign_cap")?,
        campaign_status: row.try_get("", "campaign_status")?,
        live: LiveCounts {
            system: row.try_get("", "live_system")?,
            tenant: row.try_get("", "live_tenant")?,
            campaign: row.try_get("", "live_campaign")?,
        },
        took: row.try_get::<i64>("", "took")? == 1,
    }
    .verdict(system_cap))
}

/// SQLite (one writer at a time already): read, count, then take the slot.
async fn claim_step_by_step<C: ConnectionTrait>(
    conn: &C,
    call_id: Uuid,
    system_cap: u32,
) -> DomainResult<SlotClaim> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "SELECT c.tenant_id, c.campaign_id, t.concurrency_limit AS tenant_cap, \
         k.concurrency_limit AS campaign_cap, k.status AS campaign_status \
         FROM calls c JOIN tenants t ON t.id = c.tenant_id \
         LEFT JOIN campaigns k ON k.id = c.campaign_id \
         WHERE c.id = {} AND c.placing_since IS NULL AND c.provider_execution_id IS NULL",
        b.bind(call_id)
    );
    let Some(row) = conn.query_one_raw(b.statement(sql)).await? else {
        return Ok(SlotClaim::Gone);
    };
    let tenant_id: Uuid = row.try_get("", "tenant_id")?;
    let campaign_id: Option<Uuid> = row.try_get("", "campaign_id")?;
    let mut claimed = Claimed {
        tenant_cap: row.try_get("", "tenant_cap")?,
        campaign_cap: row.try_get("", "campaign_cap")?,
        campaign_status: row.try_get("", "campaign_status")?,
        live: counts(conn, tenant_id, campaign_id).await?,
        took: false,
    };
    let stopped = claimed
        .campaign_status
        .is_some_and(|s| s != CampaignStatus::Running);
    let room = claimed.live.system < i64::from(system_cap)
        && claimed.live.tenant < i64::from(claimed.tenant_cap)
        && claimed
            .campaign_cap
            .is_none_or(|cap| claimed.live.campaign < i64::from(cap));
    if !stopped && room {
        let mut b = Binder::new(conn.get_database_backend());
        let sql = format!(
            "UPDATE calls SET placing_since = {} WHERE id = {} AND placing_since IS NULL \
             AND provider_execution_id IS NULL",
            b.bind(Utc::now()),
            b.bind(call_id)
        );
        claimed.took = conn.execute_raw(b.statement(sql)).await?.rows_affected() == 1;
    }
    Ok(claimed.verdict(system_cap))
}

/// Gives a call's slot back when its provider refused it before taking it (rate limited,
/// unavailable): the call waits again, queued.
pub(crate) async fn release_unplaced(db: &DatabaseConnection, call_id: Uuid) -> DomainResult<()> {
    release_unplaced_many(db, &[call_id]).await
}

/// What a batch claim took: the calls that hold a slot now (in the order asked), and
/// whether the batch's campaign has stopped (its calls must not be dialled).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BatchClaim {
    pub claimed: Vec<Uuid>,
    pub stopped: Option<CampaignStatus>,
}

/// Takes slots for as many of `call_ids` as the system, tenant and campaign caps have room
/// for, in the order given, in one step serialised with every other claim. The calls must
/// be of one tenant and one campaign (or all ad hoc); others are left unclaimed.
pub(crate) async fn claim_slots(
    db: &DatabaseConnection,
    call_ids: &[Uuid],
    system_cap: u32,
) -> DomainResult<BatchClaim> {
    if call_ids.is_empty() {
        return Ok(BatchClaim::default());
    }
    if let Some(lock) = Dialect::of(db).slot_lock() {
        // One text parameter cast to an array: one statement shape whatever the batch size.
        let array = format!(
            "{{{}}}",
            call_ids
                .iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut b = Binder::new(db.get_database_backend());
        let sql = format!(
            "SELECT call_id, campaign_status FROM switchboard_claim_slots(CAST({} AS uuid[]), {}, {}, {}, {})",
            b.bind(array),
            b.bind(Utc::now()),
            b.bind(i64::from(system_cap)),
            b.bind(CallStatus::TERMINAL_RANK),
            b.bind(lock),
        );
        let rows = db.query_all_raw(b.statement(sql)).await?;
        let mut found = BatchClaim::default();
        for row in rows {
            if let Some(id) = row.try_get::<Option<Uuid>>("", "call_id")? {
                found.claimed.push(id);
            }
            if let Some(status) = row.try_get::<Option<CampaignStatus>>("", "campaign_status")?
                && status != CampaignStatus::Running
            {
                found.stopped = Some(status);
            }
        }
        return Ok(found);
    }
    let txn = crate::db::begin_write(db).await?;
    let found = claim_many_step_by_step(&txn, call_ids, system_cap).await?;
    txn.commit().await?;
    Ok(found)
}

/// SQLite: the batch claim as separate statements in the caller's (single-writer)
/// transaction.
async fn claim_many_step_by_step<C: ConnectionTrait>(
    conn: &C,
    call_ids: &[Uuid],
    system_cap: u32,
) -> DomainResult<BatchClaim> {
    let mut b = Binder::new(conn.get_database_backend());
    let ids = b.list(call_ids.iter().map(|id| (*id).into()));
    let sql = format!(
        "SELECT c.id, c.tenant_id, c.campaign_id, t.concurrency_limit AS tenant_cap, \
         k.concurrency_limit AS campaign_cap, k.status AS campaign_status \
         FROM calls c JOIN tenants t ON t.id = c.tenant_id \
         LEFT JOIN campaigns k ON k.id = c.campaign_id \
         WHERE c.id IN ({ids}) AND c.placing_since IS NULL AND c.provider_execution_id IS NULL"
    );
    let rows = conn.query_all_raw(b.statement(sql)).await?;
    let mut open = std::collections::HashMap::new();
    for row in &rows {
        let id: Uuid = row.try_get("", "id")?;
        open.insert(id, row);
    }
    let Some(first) = call_ids.iter().find_map(|id| open.get(id)) else {
        return Ok(BatchClaim::default());
    };
    let tenant_id: Uuid = first.try_get("", "tenant_id")?;
    let campaign_id: Option<Uuid> = first.try_get("", "campaign_id")?;
    let tenant_cap: i32 = first.try_get("", "tenant_cap")?;
    let campaign_cap: Option<i32> = first.try_get("", "campaign_cap")?;
    let status: Option<CampaignStatus> = first.try_get("", "campaign_status")?;
    if let Some(s) = status
        && s != CampaignStatus::Running
    {
        return Ok(BatchClaim {
            claimed: Vec::new(),
            stopped: Some(s),
        });
    }
    let live = counts(conn, tenant_id, campaign_id).await?;
    let room = (i64::from(system_cap) - live.system)
        .min(i64::from(tenant_cap) - live.tenant)
        .min(campaign_cap.map_or(i64::MAX, |cap| i64::from(cap) - live.campaign))
        .max(0);
    let mut chosen = Vec::new();
    for id in call_ids {
        if chosen.len() as i64 >= room {
            break;
        }
        let Some(row) = open.get(id) else { continue };
        let same = row.try_get::<Uuid>("", "tenant_id")? == tenant_id
            && row.try_get::<Option<Uuid>>("", "campaign_id")? == campaign_id;
        if same && !chosen.contains(id) {
            chosen.push(*id);
        }
    }
    if !chosen.is_empty() {
        let mut b = Binder::new(conn.get_database_backend());
        let now = b.bind(Utc::now());
        let ids = b.list(chosen.iter().map(|id| (*id).into()));
        let sql = format!(
            "UPDATE calls SET placing_since = {now} WHERE id IN ({ids}) AND placing_since IS NULL \
             AND provider_execution_id IS NULL"
        );
        conn.execute_raw(b.statement(sql)).await?;
    }
    Ok(BatchClaim {
        claimed: chosen,
        stopped: None,
    })
}

/// Gives back the slots of calls their provider refused before taking them.
pub(crate) async fn release_unplaced_many(
    db: &DatabaseConnection,
    call_ids: &[Uuid],
) -> DomainResult<()> {
    if call_ids.is_empty() {
        return Ok(());
    }
    let mut b = Binder::new(db.get_database_backend());
    let ids = b.list(call_ids.iter().map(|id| (*id).into()));
    let sql = format!(
        "UPDATE calls SET placing_since = NULL WHERE id IN ({ids}) AND provider_execution_id IS NULL"
    );
    db.execute_raw(b.statement(sql)).await?;
    Ok(())
}
