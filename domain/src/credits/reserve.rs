//! Credit held for live calls. A call takes its reserve just before it is dialled (once
//! it holds its slot), under the account's row lock, so calls dialled at the
//! same moment on several workers see each other's reserves and together never commit
//! more than the balance. The reserve goes when the call ends (`charge::settle`) or when
//! its provider refuses it before taking it (`release`).

use std::collections::HashSet;

use chrono::Utc;
use entity::credit_account;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use uuid::Uuid;

use super::BALANCE_REASON;
use super::account::Pricing;
use super::ledger::{account_of, held, lock_account};
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::types::CallStatus;

/// `startCall`'s check: a `BAD_USER_INPUT` on `balance` when the tenant's available credit
/// cannot cover a call's reserve and the minimum balance.
pub async fn check_can_dial(db: &DatabaseConnection, tenant_id: Uuid) -> DomainResult<()> {
    let account = account_of(db, tenant_id).await?;
    match account.pricing {
        Some(p) if !account.can_dial() => Err(DomainError::invalid(
            "balance",
            format!(
                "{BALANCE_REASON}: {} is available ({} balance, {} held for live calls) and a call needs {} \
                 (a reserve of {} and a minimum balance of {}); ask the operator for a top-up",
                account.available(),
                account.balance,
                account.reserved,
                p.needed_to_dial(),
                p.reserve_per_call(),
                p.minimum_balance
            ),
        )),
        _ => Ok(()),
    }
}

/// How many more calls the tenant's credit lets a dispatcher start; `None` when the
/// tenant is not billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DialRoom {
    pub calls: i64,
    /// Calls holding a reserve now (when none and `calls` is 0, only a top-up helps).
    pub live: i64,
}

pub(crate) async fn dial_room<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
) -> DomainResult<Option<DialRoom>> {
    let account = account_of(conn, tenant_id).await?;
    let Some(p) = account.pricing else {
        return Ok(None);
    };
    let spare = account.available() - p.minimum_balance;
    let per = p.reserve_per_call();
    let calls = if spare < 0 || (spare == 0 && per > 0) {
        0
    } else if per == 0 {
        i64::MAX
    } else {
        spare / per
    };
    Ok(Some(DialRoom {
        calls,
        live: account.live_calls,
    }))
}

/// Takes a reserve for each of `call_ids` (of `tenant_id`) that has none, in the order
/// given, while the credit lasts. Returns the calls left without one: they may not be
/// dialled. Calls of a tenant that is not billed all pass.
pub(crate) async fn reserve(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    call_ids: &[Uuid],
) -> DomainResult<Vec<Uuid>> {
    if call_ids.is_empty() {
        return Ok(Vec::new());
    }
    let metered = credit_account::Entity::find_by_id(tenant_id)
        .one(db)
        .await?
        .is_some_and(|a| a.metered);
    if !metered {
        return Ok(Vec::new());
    }
    let txn = crate::db::begin_write(db).await?;
    let account = lock_account(&txn, tenant_id).await?;
    if !account.metered {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    let p = Pricing::of(&account);
    let per = p.reserve_per_call();
    let mut b = Binder::new(txn.get_database_backend());
    let ids = b.list(call_ids.iter().map(|id| (*id).into()));
    let sql = format!("SELECT call_id FROM credit_holds WHERE call_id IN ({ids})");
    let mut holding = HashSet::new();
    for row in txn.query_all_raw(b.statement(sql)).await? {
        holding.insert(row.try_get::<Uuid>("", "call_id")?);
    }
    let (reserved, _) = held(&txn, tenant_id).await?;
    let mut spare = account.balance - reserved - p.minimum_balance;
    let mut take = Vec::new();
    let mut short = Vec::new();
    for id in call_ids {
        if holding.contains(id) || take.contains(id) {
            continue;
        }
        if spare >= per && (spare > 0 || per == 0) {
            spare -= per;
            take.push(*id);
        } else {
            short.push(*id);
        }
    }
    if !take.is_empty() {
        // Only for calls still live: one that ended meanwhile takes no reserve.
        let mut b = Binder::new(txn.get_database_backend());
        let per = b.bind(per);
        let now = b.bind(Utc::now());
        let tenant = b.bind(tenant_id);
        let ids = b.list(take.iter().map(|id| (*id).into()));
        let sql = format!(
            "INSERT INTO credit_holds (call_id, tenant_id, amount, created_at) \
             SELECT id, tenant_id, {per}, {now} FROM calls WHERE id IN ({ids}) AND tenant_id = {tenant} \
             AND status_rank < {} ON CONFLICT (call_id) DO NOTHING",
            CallStatus::TERMINAL_RANK
        );
        txn.execute_raw(b.statement(sql)).await?;
    }
    txn.commit().await?;
    metrics::counter!("calls_short_of_credit_total").increment(short.len() as u64);
    Ok(short)
}

/// Gives back the reserves of calls that wait again (their provider refused them before
/// taking them). Only the worker that claimed a call's slot takes its reserve, so this
/// cannot take another worker's.
pub(crate) async fn release(db: &DatabaseConnection, call_ids: &[Uuid]) -> DomainResult<()> {
    if call_ids.is_empty() {
        return Ok(());
    }
    let mut b = Binder::new(db.get_database_backend());
    let ids = b.list(call_ids.iter().map(|id| (*id).into()));
    db.execute_raw(b.statement(format!("DELETE FROM credit_holds WHERE call_id IN ({ids})")))
        .await?;
    Ok(())
}

/// Deletes reserves left behind by calls that ended or wait unclaimed (a process that died
/// between two steps); the stuck-call sweep runs it. The number deleted.
pub async fn sweep_holds(db: &DatabaseConnection) -> DomainResult<u64> {
    let sql = format!(
        "DELETE FROM credit_holds WHERE EXISTS (SELECT 1 FROM calls c WHERE c.id = credit_holds.call_id \
         AND (c.status_rank >= {} OR (c.placing_since IS NULL AND c.provider_execution_id IS NULL)))",
        CallStatus::TERMINAL_RANK
    );
    let b = Binder::new(db.get_database_backend());
    Ok(db.execute_raw(b.statement(sql)).await?.rows_affected())
}
