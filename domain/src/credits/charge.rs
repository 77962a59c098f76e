//! A call's charge: written when the call ends, inside the transaction that ends it, and
//! corrected (charged more, or refunded) when a later report changes its duration. Each
//! call's entries carry what the call costs in all (`due`), so a repeat of the same report
//! changes nothing and a call is never charged twice. A charge never takes the balance
//! below zero: what the balance cannot pay stays recorded as due but uncollected.
//!
//! Only calls Switchboard dialled (they held a slot) are charged; calls a provider reports
//! that were placed elsewhere, and history brought in by a sync, are not.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{call, credit_account};
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::account::{BillingUnit, Pricing};
use super::ledger::{EntryKind, alert, set_balance};
use crate::db::{Binder, Dialect};
use crate::error::DomainResult;

/// The longest call that is priced as reported (a week); longer reports are priced as a week.
const LONGEST_SECONDS: i64 = 7 * 24 * 3600;

/// What a call of `duration` seconds costs, and the seconds billed. A call that did not
/// connect (no duration) costs nothing.
pub fn price(p: &Pricing, duration: Option<f64>) -> (i64, i64) {
    let seconds = match duration {
        Some(d) if d.is_finite() && d > 0.0 => (d.ceil() as i64).min(LONGEST_SECONDS),
        _ => return (0, 0),
    };
    let units = match p.unit {
        BillingUnit::Minute => (seconds + 59) / 60,
        BillingUnit::Second => seconds,
    };
    (
        units
            .saturating_mul(p.unit_price)
            .saturating_add(p.call_fee),
        seconds,
    )
}

/// The call's duration: as reported, or from its start and end.
fn duration_of(c: &call::Model) -> Option<f64> {
    c.duration_seconds
        .or_else(|| match (c.started_at, c.ended_at) {
            (Some(s), Some(e)) if e > s => Some((e - s).num_milliseconds() as f64 / 1000.0),
            _ => None,
        })
}

/// Gives back the reserves of the ended calls among `calls` and charges (or corrects the
/// charge of) those that were dialled here, inside the caller's transaction. True when an
/// outbound event was recorded.
pub(crate) async fn settle<C: ConnectionTrait>(
    conn: &C,
    calls: &[&call::Model],
) -> DomainResult<bool> {
    let ended: Vec<&call::Model> = calls
        .iter()
        .copied()
        .filter(|c| c.status.is_terminal())
        .collect();
    if ended.is_empty() {
        return Ok(false);
    }
    let mut tenants: Vec<Uuid> = ended.iter().map(|c| c.tenant_id).collect();
    tenants.sort();
    tenants.dedup();
    // Locked in one order, so two transactions charging the same tenants cannot deadlock.
    let mut b = Binder::new(conn.get_database_backend());
    let list = b.list(tenants.iter().map(|t| (*t).into()));
    let sql = format!(
        "SELECT * FROM credit_accounts WHERE tenant_id IN ({list}) ORDER BY tenant_id{}",
        Dialect::of(conn).for_update()
    );
    let accounts: HashMap<Uuid, credit_account::Model> = credit_account::Entity::find()
        .from_raw_sql(b.statement(sql))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.tenant_id, a))
        .collect();
    if accounts.is_empty() {
        return Ok(false);
    }
    let ended: Vec<&call::Model> = ended
        .into_iter()
        .filter(|c| accounts.contains_key(&c.tenant_id))
        .collect();
    let mut b = Binder::new(conn.get_database_backend());
    let ids = b.list(ended.iter().map(|c| c.id.into()));
    conn.execute_raw(b.statement(format!("DELETE FROM credit_holds WHERE call_id IN ({ids})")))
        .await?;

    let mut billable: Vec<&call::Model> = ended
        .into_iter()
        .filter(|c| c.placing_since.is_some() && accounts[&c.tenant_id].metered)
        .collect();
    if billable.is_empty() {
        return Ok(false);
    }
    billable.sort_by_key(|c| c.id);
    billable.dedup_by_key(|c| c.id);
    let history = charged(conn, &billable).await?;
    let now = Utc::now();
    let mut balances: HashMap<Uuid, i64> = accounts.iter().map(|(t, a)| (*t, a.balance)).collect();
    let mut b = Binder::new(conn.get_database_backend());
    let mut rows = Vec::new();
    for c in &billable {
        let account = &accounts[&c.tenant_id];
        let (due, seconds) = price(&Pricing::of(account), duration_of(c));
        let past = history.get(&c.id);
        let (collected, last_due, n) = past.map_or((0, 0, 0), |h| (h.collected, h.due, h.entries));
        if due == last_due && (n > 0 || due == 0) {
            continue;
        }
        let Some(balance) = balances.get_mut(&c.tenant_id) else {
            continue;
        };
        // Collect what is due as far as the balance allows; give back what was over.
        let target = due.min(collected + *balance);
        let delta = target - collected;
        *balance -= delta;
        let (kind, reason) = if delta < 0 {
            (EntryKind::Refund, "call re-priced: its duration changed")
        } else if target < due {
            (
                EntryKind::CallCharge,
                "call charge (the balance could not pay all of it)",
            )
        } else if n > 0 {
            (
                EntryKind::CallCharge,
                "call re-priced: its duration changed",
            )
        } else {
            (EntryKind::CallCharge, "call charge")
        };
        rows.push(b.row(entry_values(
            c, kind, -delta, *balance, n, reason, due, seconds, now,
        )));
    }
    if rows.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "INSERT INTO credit_entries (id, tenant_id, kind, amount, balance_after, idempotency_key, reason, \
         reference, call_id, actor, billed_seconds, due, provider_cost, created_at) VALUES {}",
        rows.join(", ")
    );
    conn.execute_raw(b.statement(sql)).await?;
    let mut alerted = false;
    for (tenant_id, after) in balances {
        let account = &accounts[&tenant_id];
        if after != account.balance {
            set_balance(conn, tenant_id, after).await?;
            alerted |= alert(conn, account, account.balance, after).await?;
        }
    }
    Ok(alerted)
}

#[allow(clippy::too_many_arguments)]
fn entry_values(
    c: &call::Model,
    kind: EntryKind,
    amount: i64,
    balance_after: i64,
    n: i64,
    reason: &str,
    due: i64,
    seconds: i64,
    now: DateTime<Utc>,
) -> Vec<sea_orm::Value> {
    vec![
        Uuid::now_v7().into(),
        c.tenant_id.into(),
        kind.as_str().into(),
        amount.into(),
        balance_after.into(),
        format!("call:{}:{n}", c.id).into(),
        reason.into(),
        c.id.to_string().into(),
        c.id.into(),
        "system".into(),
        seconds.into(),
        due.into(),
        c.cost.into(),
        now.into(),
    ]
}

/// What a call's entries so far add up to.
#[derive(Debug, Default)]
struct Charged {
    /// Taken from the balance, net of refunds.
    collected: i64,
    /// What the call cost in all as of its latest entry.
    due: i64,
    entries: i64,
}

async fn charged<C: ConnectionTrait>(
    conn: &C,
    calls: &[&call::Model],
) -> DomainResult<HashMap<Uuid, Charged>> {
    let mut b = Binder::new(conn.get_database_backend());
    let ids = b.list(calls.iter().map(|c| c.id.into()));
    let sql = format!(
        "SELECT call_id, amount, due FROM credit_entries WHERE call_id IN ({ids}) ORDER BY id"
    );
    let mut out: HashMap<Uuid, Charged> = HashMap::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        let id: Uuid = row.try_get("", "call_id")?;
        let amount: i64 = row.try_get("", "amount")?;
        let due: Option<i64> = row.try_get("", "due")?;
        let h = out.entry(id).or_default();
        h.collected -= amount;
        h.due = due.unwrap_or(h.due);
        h.entries += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pricing(unit: BillingUnit, unit_price: i64, call_fee: i64) -> Pricing {
        Pricing {
            unit,
            unit_price,
            call_fee,
            minimum_balance: 0,
            reserve_minutes: 5,
        }
    }

    #[test]
    fn started_minutes_and_seconds() {
        let m = pricing(BillingUnit::Minute, 100, 7);
        assert_eq!(price(&m, Some(1.0)), (107, 1));
        assert_eq!(price(&m, Some(60.0)), (107, 60));
        assert_eq!(price(&m, Some(60.2)), (207, 61));
        let s = pricing(BillingUnit::Second, 2, 0);
        assert_eq!(price(&s, Some(90.5)), (182, 91));
    }

    #[test]
    fn unconnected_and_hostile_durations() {
        let m = pricing(BillingUnit::Minute, 100, 7);
        assert_eq!(price(&m, None), (0, 0));
        assert_eq!(price(&m, Some(0.0)), (0, 0));
        assert_eq!(price(&m, Some(-5.0)), (0, 0));
        assert_eq!(price(&m, Some(f64::NAN)), (0, 0));
        assert_eq!(price(&m, Some(f64::INFINITY)), (0, 0));
        let (due, seconds) = price(&m, Some(1e18));
        assert_eq!(seconds, LONGEST_SECONDS);
        assert_eq!(due, LONGEST_SECONDS / 60 * 100 + 7);
        let huge = pricing(BillingUnit::Second, i64::MAX / 2, i64::MAX / 2);
        assert_eq!(price(&huge, Some(100.0)).0, i64::MAX);
    }

    #[test]
    fn reserve_covers_its_minutes_and_the_fee() {
        assert_eq!(pricing(BillingUnit::Minute, 100, 7).reserve_per_call(), 507);
        assert_eq!(pricing(BillingUnit::Second, 2, 0).reserve_per_call(), 600);
    }
}
