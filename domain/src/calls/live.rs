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
    let txn = crate::db::begin_write(db).await?;
    let dialect = Dialect::of(&txn);
    if let Some(lock) = dialect.slot_lock() {
        txn.query_one_raw(Statement::from_string(txn.get_database_backend(), lock))
            .await?;
    }
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "SELECT c.tenant_id, c.campaign_id, t.concurrency_limit AS tenant_cap, \
         k.concurrency_limit AS campaign_cap, k.status AS campaign_status \
         FROM calls c JOIN tenants t ON t.id = c.tenant_id \
         LEFT JOIN campaigns k ON k.id = c.campaign_id \
         WHERE c.id = {} AND c.placing_since IS NULL AND c.provider_execution_id IS NULL",
        b.bind(call_id)
    );
    let Some(row) = txn.query_one_raw(b.statement(sql)).await? else {
        return Ok(SlotClaim::Gone);
    };
    let tenant_id: Uuid = row.try_get("", "tenant_id")?;
    let campaign_id: Option<Uuid> = row.try_get("", "campaign_id")?;
    let tenant_cap: i32 = row.try_get("", "tenant_cap")?;
    let campaign_cap: Option<i32> = row.try_get("", "campaign_cap")?;
    let campaign_status: Option<CampaignStatus> = row.try_get("", "campaign_status")?;
    if let Some(status) = campaign_status
        && status != CampaignStatus::Running
    {
        return Ok(SlotClaim::CampaignStopped(status));
    }
    let live = counts(&txn, tenant_id, campaign_id).await?;
    let full = if live.system >= i64::from(system_cap) {
        Some("the system's concurrent-call limit")
    } else if live.tenant >= i64::from(tenant_cap) {
        Some("the tenant's concurrency limit")
    } else if campaign_cap.is_some_and(|cap| live.campaign >= i64::from(cap)) {
        Some("the campaign's concurrency limit")
    } else {
        None
    };
    if let Some(which) = full {
        return Ok(SlotClaim::Full(which));
    }
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE calls SET placing_since = {} WHERE id = {} AND placing_since IS NULL \
         AND provider_execution_id IS NULL",
        b.bind(Utc::now()),
        b.bind(call_id)
    );
    let claimed = txn.execute_raw(b.statement(sql)).await?.rows_affected();
    txn.commit().await?;
    Ok(if claimed == 1 {
        SlotClaim::Claimed
    } else {
        SlotClaim::Gone
    })
}

/// Gives a call's slot back when its provider refused it before taking it (rate limited,
/// unavailable): the call waits again, queued.
pub(crate) async fn release_unplaced(db: &DatabaseConnection, call_id: Uuid) -> DomainResult<()> {
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "UPDATE calls SET placing_since = NULL WHERE id = {} AND provider_execution_id IS NULL",
        b.bind(call_id)
    );
    db.execute_raw(b.statement(sql)).await?;
    Ok(())
}
