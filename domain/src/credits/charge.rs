//! A call's charge: written when the call ends, inside the transaction that ends it, and
//! re-priced when a later report changes its billed seconds, at the rate of its first
//! charge. Each call's entries carry its total (`due`) and billed seconds, so a repeat of
//! the same report changes nothing and a call is never charged twice. A charge never takes
//! the balance below zero: what the balance cannot pay stays recorded as due, and is not
//! collected later. Webhooks (unsigned) may raise a price, never lower it.
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
            .saturating_add(p.call_fee)
            .min(super::MAX_AMOUNT),
        seconds,
    )
}

/// What ended calls are billed on: the duration the provider reported (providers set start
/// and end times on calls that never connected, so those are not used).
fn duration_of(c: &call::Model) -> Option<f64> {
    c.duration_seconds
}

/// An ended call to settle, and whether a shorter duration may refund it. Reports that
/// reach us unsigned (webhooks) may raise a call's price but never lower it: a shorter
/// duration is believed when we fetched it from the provider (polls, syncs).
pub(crate) type Ended<'a> = (&'a call::Model, bool);

/// What settling did that the caller must act on after its commit.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Settled {
    /// Outbound events were recorded (`balance.*`).
    pub events: bool,
}

/// Gives back the reserves of the ended calls among `calls` and charges (or re-prices)
/// those that were dialled here, inside the caller's transaction. Calls we never dialled
/// cost no statement; a repeat of what is already charged takes no lock.
pub(crate) async fn settle<C: ConnectionTrait>(
    conn: &C,
    calls: &[Ended<'_>],
) -> DomainResult<Settled> {
    // A reserve is only ever taken by a call that holds a slot, so calls without one
    // (synced history, calls placed elsewhere, calls never dialled) have nothing here.
    let mut ended: Vec<Ended<'_>> = calls
        .iter()
        .copied()
        .filter(|(c, _)| c.status.is_terminal() && c.placing_since.is_some())
        .collect();
    if ended.is_empty() {
        return Ok(Settled::default());
    }
    ended.sort_by_key(|(c, _)| c.id);
    ended.dedup_by_key(|(c, _)| c.id);
    let tenants: Vec<Uuid> = sorted_tenants(&ended);
    let accounts = read_accounts(conn, &tenants, false).await?;
    if accounts.is_empty() {
        return Ok(Settled::default());
    }
    let ended: Vec<Ended<'_>> = ended
        .into_iter()
        .filter(|(c, _)| accounts.contains_key(&c.tenant_id))
        .collect();
    let mut b = Binder::new(conn.get_database_backend());
    let ids = b.list(ended.iter().map(|(c, _)| c.id.into()));
    conn.execute_raw(b.statement(format!("DELETE FROM credit_holds WHERE call_id IN ({ids})")))
        .await?;

    let billable: Vec<Ended<'_>> = ended
        .into_iter()
        .filter(|(c, _)| accounts.get(&c.tenant_id).is_some_and(|a| a.metered))
        .collect();
    if billable.is_empty() {
        return Ok(Settled::default());
    }
    // Most reports about ended calls repeat what is charged already: found without a lock.
    let history = charged(conn, &billable).await?;
    let balances: HashMap<Uuid, i64> = accounts.iter().map(|(t, a)| (*t, a.balance)).collect();
    if plan(&billable, &accounts, &history, balances).0.is_empty() {
        return Ok(Settled::default());
    }
    // Something changes: lock the accounts (in one order, so transactions charging the
    // same tenants cannot deadlock) and decide again on what is committed now.
    let tenants: Vec<Uuid> = sorted_tenants(&billable);
    let accounts = read_accounts(conn, &tenants, true).await?;
    let history = charged(conn, &billable).await?;
    let balances: HashMap<Uuid, i64> = accounts.iter().map(|(t, a)| (*t, a.balance)).collect();
    let (entries, balances) = plan(&billable, &accounts, &history, balances);
    if entries.is_empty() {
        return Ok(Settled::default());
    }
    let now = Utc::now();
    let mut b = Binder::new(conn.get_database_backend());
    let rows: Vec<String> = entries.iter().map(|e| b.row(e.values(now))).collect();
    let sql = format!(
        "INSERT INTO credit_entries (id, tenant_id, kind, amount, balance_after, idempotency_key, reason, \
         reference, call_id, actor, billed_seconds, due, provider_cost, created_at, rate_unit, rate_price, \
         rate_fee) VALUES {}",
        rows.join(", ")
    );
    conn.execute_raw(b.statement(sql)).await?;
    for e in &entries {
        metrics::counter!("credit_entries_total", "kind" => e.kind.as_str()).increment(1);
    }
    let mut settled = Settled::default();
    for (tenant_id, after) in balances {
        let Some(account) = accounts.get(&tenant_id) else {
            continue;
        };
        if after != account.balance {
            set_balance(conn, tenant_id, after).await?;
            settled.events |= alert(conn, account, account.balance, after).await?;
        }
    }
    Ok(settled)
}

fn sorted_tenants(calls: &[Ended<'_>]) -> Vec<Uuid> {
    let mut tenants: Vec<Uuid> = calls.iter().map(|(c, _)| c.tenant_id).collect();
    tenants.sort();
    tenants.dedup();
    tenants
}

async fn read_accounts<C: ConnectionTrait>(
    conn: &C,
    tenants: &[Uuid],
    lock: bool,
) -> DomainResult<HashMap<Uuid, credit_account::Model>> {
    let mut b = Binder::new(conn.get_database_backend());
    let list = b.list(tenants.iter().map(|t| (*t).into()));
    let sql = format!(
        "SELECT * FROM credit_accounts WHERE tenant_id IN ({list}) ORDER BY tenant_id{}",
        if lock {
            Dialect::of(conn).for_update()
        } else {
            ""
        }
    );
    Ok(credit_account::Entity::find()
        .from_raw_sql(b.statement(sql))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.tenant_id, a))
        .collect())
}

/// An entry about to be written for a call.
struct CallEntry<'a> {
    call: &'a call::Model,
    kind: EntryKind,
    amount: i64,
    balance_after: i64,
    seq: i64,
    reason: &'static str,
    due: i64,
    seconds: i64,
    rate: Pricing,
}

impl CallEntry<'_> {
    fn values(&self, now: DateTime<Utc>) -> Vec<sea_orm::Value> {
        let c = self.call;
        vec![
            Uuid::now_v7().into(),
            c.tenant_id.into(),
            self.kind.as_str().into(),
            self.amount.into(),
            self.balance_after.into(),
            format!("call:{}:{}", c.id, self.seq).into(),
            self.reason.into(),
            c.id.to_string().into(),
            c.id.into(),
            "system".into(),
            self.seconds.into(),
            self.due.into(),
            c.cost.into(),
            now.into(),
            self.rate.unit.as_str().into(),
            self.rate.unit_price.into(),
            self.rate.call_fee.into(),
        ]
    }
}

/// The entries the calls need given what is charged already, and the balances after them.
/// A call's price follows its billed seconds at the rate of its first charge; what the
/// balance cannot pay is not collected later, and a refund gives back at most what was
/// taken.
fn plan<'a>(
    calls: &[Ended<'a>],
    accounts: &HashMap<Uuid, credit_account::Model>,
    history: &HashMap<Uuid, Charged>,
    mut balances: HashMap<Uuid, i64>,
) -> (Vec<CallEntry<'a>>, HashMap<Uuid, i64>) {
    let mut out = Vec::new();
    for (c, may_refund) in calls {
        let Some(account) = accounts.get(&c.tenant_id).filter(|a| a.metered) else {
            continue;
        };
        let past = history.get(&c.id);
        let rate = past
            .and_then(|h| h.rate)
            .unwrap_or_else(|| Pricing::of(account));
        let (due, seconds) = price(&rate, duration_of(c));
        let (collected, last_due, last_seconds, n) =
            past.map_or((0, 0, 0, 0), |h| (h.collected, h.due, h.seconds, h.entries));
        if n > 0 && seconds == last_seconds {
            continue;
        }
        let Some(balance) = balances.get_mut(&c.tenant_id) else {
            continue;
        };
        let change = due - last_due;
        let (kind, amount, reason) = if change > 0 {
            let take = change.min(*balance);
            let reason = match (n, take < change) {
                (_, true) => "call charge (the balance could not pay all of it)",
                (0, false) => "call charge",
                (_, false) => "call re-priced: its duration changed",
            };
            (EntryKind::CallCharge, -take, reason)
        } else if change < 0 && *may_refund {
            let give = (-change).min(collected);
            (
                EntryKind::Refund,
                give,
                "call re-priced: its duration changed",
            )
        } else {
            continue;
        };
        *balance += amount;
        out.push(CallEntry {
            call: c,
            kind,
            amount,
            balance_after: *balance,
            seq: n,
            reason,
            due,
            seconds,
            rate,
        });
    }
    (out, balances)
}

/// What a call's entries so far add up to.
#[derive(Debug, Default)]
struct Charged {
    /// Taken from the balance, net of refunds.
    collected: i64,
    /// What the call cost in all, and the seconds billed, as of its latest entry.
    due: i64,
    seconds: i64,
    entries: i64,
    /// The pricing of its first charge.
    rate: Option<Pricing>,
}

async fn charged<C: ConnectionTrait>(
    conn: &C,
    calls: &[Ended<'_>],
) -> DomainResult<HashMap<Uuid, Charged>> {
    let mut b = Binder::new(conn.get_database_backend());
    let ids = b.list(calls.iter().map(|(c, _)| c.id.into()));
    // Entries of one call are written under its tenant's lock, one after another: their
    // times (then ids) give their order.
    let sql = format!(
        "SELECT call_id, amount, due, billed_seconds, rate_unit, rate_price, rate_fee FROM credit_entries \
         WHERE call_id IN ({ids}) ORDER BY created_at, id"
    );
    let mut out: HashMap<Uuid, Charged> = HashMap::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        let id: Uuid = row.try_get("", "call_id")?;
        let amount: i64 = row.try_get("", "amount")?;
        let due: Option<i64> = row.try_get("", "due")?;
        let seconds: Option<i64> = row.try_get("", "billed_seconds")?;
        let unit: Option<String> = row.try_get("", "rate_unit")?;
        let unit_price: Option<i64> = row.try_get("", "rate_price")?;
        let call_fee: Option<i64> = row.try_get("", "rate_fee")?;
        let h = out.entry(id).or_default();
        h.collected -= amount;
        h.due = due.unwrap_or(h.due);
        h.seconds = seconds.unwrap_or(h.seconds);
        h.entries += 1;
        if h.rate.is_none()
            && let (Some(unit), Some(unit_price), Some(call_fee)) = (unit, unit_price, call_fee)
        {
            h.rate = Some(Pricing {
                unit: unit.parse().unwrap_or(BillingUnit::Minute),
                unit_price,
                call_fee,
                minimum_balance: 0,
                reserve_minutes: 0,
            });
        }
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
        assert_eq!(price(&huge, Some(100.0)).0, crate::credits::MAX_AMOUNT);
    }

    #[test]
    fn reserve_covers_its_minutes_and_the_fee() {
        assert_eq!(pricing(BillingUnit::Minute, 100, 7).reserve_per_call(), 507);
        assert_eq!(pricing(BillingUnit::Second, 2, 0).reserve_per_call(), 600);
    }
}
