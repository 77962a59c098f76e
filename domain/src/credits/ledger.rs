//! The account and its ledger: reading them, and every change but a call's charge
//! (top-ups, adjustments, pricing, the alert threshold). Changes lock the account row,
//! write the entry and the new balance together, and tell integrators when the balance
//! crosses the tenant's threshold or can no longer pay for a call.

use chrono::Utc;
use entity::{credit_account, credit_entry, tenant};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::MAX_AMOUNT;
use super::account::{Account, Pricing};
use crate::db::{Binder, Dialect};
use crate::error::{DomainError, DomainResult};
use crate::jobs::{self, Lane};
use crate::outbound::{EventType, payloads};
use crate::pagination::{self, Page, PageRequest};
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::Role;

/// Who asks: the deployment's operator (`ADMIN_TOKEN`), who tops up and prices every
/// tenant, or a tenant's key, which sees its own account only.
#[derive(Clone, Copy)]
pub enum Actor<'a> {
    Operator,
    Tenant(&'a TenantScope),
}

impl Actor<'_> {
    /// The tenant the request is about. A tenant's key may name only its own tenant
    /// (another one does not exist for it); the operator must name one that exists.
    async fn tenant<C: ConnectionTrait>(
        &self,
        conn: &C,
        asked: Option<Uuid>,
    ) -> DomainResult<Uuid> {
        match (self, asked) {
            (Actor::Tenant(scope), None) => Ok(scope.tenant_id()),
            (Actor::Tenant(scope), Some(id)) if id == scope.tenant_id() => Ok(id),
            (Actor::Tenant(_), Some(_)) => Err(DomainError::not_found("tenant")),
            (Actor::Operator, None) => Err(DomainError::invalid("tenantId", "name the tenant")),
            (Actor::Operator, Some(id)) => {
                if tenant::Entity::find_by_id(id).one(conn).await?.is_none() {
                    return Err(DomainError::not_found("tenant"));
                }
                Ok(id)
            }
        }
    }

    fn require_operator(&self, what: &str) -> DomainResult<()> {
        match self {
            Actor::Operator => Ok(()),
            Actor::Tenant(_) => Err(DomainError::Forbidden(format!(
                "only the operator token may {what}"
            ))),
        }
    }
}

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    TopUp,
    CallCharge,
    Refund,
    Adjustment,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::TopUp => "TOP_UP",
            EntryKind::CallCharge => "CALL_CHARGE",
            EntryKind::Refund => "REFUND",
            EntryKind::Adjustment => "ADJUSTMENT",
        }
    }

    pub fn parse(s: &str) -> Option<EntryKind> {
        [
            EntryKind::TopUp,
            EntryKind::CallCharge,
            EntryKind::Refund,
            EntryKind::Adjustment,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Operator keys are stored under their own prefix, so they can never collide with the
/// keys of call charges.
const OPERATOR_KEY_PREFIX: &str = "op:";

/// The stored key of an operator's entry, with its prefix removed.
pub fn shown_key(stored: &str) -> &str {
    stored.strip_prefix(OPERATOR_KEY_PREFIX).unwrap_or(stored)
}

/// The tenant's account (a tenant never priced nor topped up reads as zero and unbilled).
pub async fn get_account(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    tenant_id: Option<Uuid>,
) -> DomainResult<Account> {
    let tenant_id = actor.tenant(db, tenant_id).await?;
    account_of(db, tenant_id).await
}

pub(crate) async fn account_of<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
) -> DomainResult<Account> {
    let model = credit_account::Entity::find_by_id(tenant_id)
        .one(conn)
        .await?;
    let (reserved, live_calls) = if model.as_ref().is_some_and(|m| m.metered) {
        held(conn, tenant_id).await?
    } else {
        (0, 0)
    };
    Ok(view(tenant_id, model.as_ref(), reserved, live_calls))
}

pub(crate) fn view(
    tenant_id: Uuid,
    model: Option<&credit_account::Model>,
    reserved: i64,
    live_calls: i64,
) -> Account {
    Account {
        tenant_id,
        balance: model.map_or(0, |m| m.balance),
        reserved,
        live_calls,
        pricing: model.filter(|m| m.metered).map(Pricing::of),
        low_threshold: model.and_then(|m| m.low_threshold),
    }
}

/// Credit held for the tenant's live calls, and how many calls hold it.
pub(crate) async fn held<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
) -> DomainResult<(i64, i64)> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS total, COUNT(*) AS n FROM credit_holds WHERE tenant_id = {}",
        b.bind(tenant_id)
    );
    let row = conn.query_one_raw(b.statement(sql)).await?;
    Ok(match row {
        Some(r) => (r.try_get("", "total")?, r.try_get("", "n")?),
        None => (0, 0),
    })
}

/// The tenant's entries, newest first.
pub async fn entries(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    tenant_id: Option<Uuid>,
    page: PageRequest,
) -> DomainResult<Page<credit_entry::Model>> {
    let tenant_id = actor.tenant(db, tenant_id).await?;
    let query = credit_entry::Entity::find().filter(credit_entry::Column::TenantId.eq(tenant_id));
    pagination::fetch(db, query, credit_entry::Column::Id, page).await
}

pub async fn count_entries(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    tenant_id: Option<Uuid>,
) -> DomainResult<u64> {
    let tenant_id = actor.tenant(db, tenant_id).await?;
    Ok(credit_entry::Entity::find()
        .filter(credit_entry::Column::TenantId.eq(tenant_id))
        .count(db)
        .await?)
}

/// Creates the tenant's account if it has none, then locks it for the transaction.
pub(crate) async fn lock_account<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
) -> DomainResult<credit_account::Model> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "INSERT INTO credit_accounts (tenant_id, balance, metered, billing_unit, unit_price, call_fee, \
         minimum_balance, reserve_minutes, updated_at) VALUES ({}, 0, {}, 'MINUTE', 0, 0, 0, 5, {}) \
         ON CONFLICT (tenant_id) DO NOTHING",
        b.bind(tenant_id),
        b.bind(false),
        b.bind(Utc::now()),
    );
    conn.execute_raw(b.statement(sql)).await?;
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "SELECT * FROM credit_accounts WHERE tenant_id = {}{}",
        b.bind(tenant_id),
        Dialect::of(conn).for_update()
    );
    credit_account::Entity::find()
        .from_raw_sql(b.statement(sql))
        .one(conn)
        .await?
        .ok_or_else(|| DomainError::Internal("the credit account vanished".into()))
}

/// Writes the account's new balance.
pub(crate) async fn set_balance<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    balance: i64,
) -> DomainResult<()> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE credit_accounts SET balance = {}, updated_at = {} WHERE tenant_id = {}",
        b.bind(balance),
        b.bind(Utc::now()),
        b.bind(tenant_id)
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// Records `balance.low` when the balance falls below the tenant's threshold and
/// `balance.depleted` when it can no longer pay for a call. True when one was recorded.
pub(crate) async fn alert<C: ConnectionTrait>(
    conn: &C,
    account: &credit_account::Model,
    before: i64,
    after: i64,
) -> DomainResult<bool> {
    let mut events = Vec::new();
    let tenant_id = account.tenant_id;
    if let Some(t) = account.low_threshold
        && before >= t
        && after < t
    {
        events.push(payloads::tenant_event(
            tenant_id,
            EventType::BalanceLow,
            json!({ "tenantId": tenant_id, "balance": after, "threshold": t }),
        ));
    }
    if account.metered {
        let needed = Pricing::of(account).needed_to_dial();
        let covers = |b: i64| b > 0 && b >= needed;
        if covers(before) && !covers(after) {
            events.push(payloads::tenant_event(
                tenant_id,
                EventType::BalanceDepleted,
                json!({ "tenantId": tenant_id, "balance": after, "neededPerCall": needed }),
            ));
        }
    }
    crate::outbound::record_events(conn, events).await
}

/// A top-up by the operator.
#[derive(Debug, Clone)]
pub struct TopUp {
    pub tenant_id: Uuid,
    pub amount: i64,
    pub reference: Option<String>,
    pub idempotency_key: Option<String>,
}

/// An operator's correction, up or down (never below zero).
#[derive(Debug, Clone)]
pub struct Adjust {
    pub tenant_id: Uuid,
    pub amount: i64,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

fn clean_text(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> DomainResult<Option<String>> {
    match value.map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if v.chars().count() > max => Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(v) if v.chars().any(char::is_control) => Err(DomainError::invalid(
            field,
            "must not contain control characters",
        )),
        Some(v) => Ok(Some(v)),
    }
}

/// Adds credit. The same idempotency key returns the first entry and adds nothing; with
/// another amount it is a `CONFLICT`. Campaigns paused for want of credit resume.
pub async fn top_up(
    services: &Services,
    actor: Actor<'_>,
    input: TopUp,
) -> DomainResult<(credit_entry::Model, bool)> {
    actor.require_operator("top up credits")?;
    if input.amount <= 0 || input.amount > MAX_AMOUNT {
        return Err(DomainError::invalid(
            "amount",
            format!("must be a positive number of minor units, at most {MAX_AMOUNT}"),
        ));
    }
    let reference = clean_text("reference", input.reference, 500)?;
    let key = clean_text("idempotencyKey", input.idempotency_key, 200)?;
    change(
        services,
        input.tenant_id,
        EntryKind::TopUp,
        input.amount,
        key,
        Some("top-up".to_owned()),
        reference,
    )
    .await
}

/// Corrects the balance by `amount` (negative to take credit away, never below zero).
pub async fn adjust(
    services: &Services,
    actor: Actor<'_>,
    input: Adjust,
) -> DomainResult<(credit_entry::Model, bool)> {
    actor.require_operator("adjust credits")?;
    if input.amount == 0 || input.amount.unsigned_abs() > MAX_AMOUNT as u64 {
        return Err(DomainError::invalid(
            "amount",
            format!("must be non-zero and at most {MAX_AMOUNT} either way"),
        ));
    }
    let reason = clean_text("reason", Some(input.reason), 500)?
        .ok_or_else(|| DomainError::invalid("reason", "say why the balance changes"))?;
    let key = clean_text("idempotencyKey", input.idempotency_key, 200)?;
    change(
        services,
        input.tenant_id,
        EntryKind::Adjustment,
        input.amount,
        key,
        Some(reason),
        None,
    )
    .await
}

/// One operator entry: locks the account, checks the key, writes entry and balance,
/// alerts, and resumes campaigns paused for want of credit when the balance rose.
async fn change(
    services: &Services,
    tenant_id: Uuid,
    kind: EntryKind,
    amount: i64,
    key: Option<String>,
    reason: Option<String>,
    reference: Option<String>,
) -> DomainResult<(credit_entry::Model, bool)> {
    let db = services.db();
    let tenant_id = Actor::Operator.tenant(db, Some(tenant_id)).await?;
    let stored_key = format!(
        "{OPERATOR_KEY_PREFIX}{}",
        key.unwrap_or_else(|| Uuid::now_v7().to_string())
    );
    let txn = crate::db::begin_write(db).await?;
    let account = lock_account(&txn, tenant_id).await?;
    if let Some(existing) = credit_entry::Entity::find()
        .filter(credit_entry::Column::TenantId.eq(tenant_id))
        .filter(credit_entry::Column::IdempotencyKey.eq(stored_key.as_str()))
        .one(&txn)
        .await?
    {
        txn.rollback().await?;
        if existing.kind == kind.as_str() && existing.amount == amount {
            return Ok((existing, true));
        }
        return Err(DomainError::conflict(
            "idempotencyKey",
            "this idempotency key was used for another change",
        ));
    }
    let before = account.balance;
    let after = before + amount;
    if after < 0 {
        return Err(DomainError::invalid(
            "amount",
            format!("the balance is {before}; it cannot go below zero"),
        ));
    }
    if after > MAX_AMOUNT {
        return Err(DomainError::invalid(
            "amount",
            format!("the balance may not exceed {MAX_AMOUNT}"),
        ));
    }
    let entry = credit_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        kind: Set(kind.as_str().to_owned()),
        amount: Set(amount),
        balance_after: Set(after),
        idempotency_key: Set(stored_key),
        reason: Set(reason),
        reference: Set(reference),
        call_id: Set(None),
        actor: Set(Some("operator".to_owned())),
        billed_seconds: Set(None),
        due: Set(None),
        provider_cost: Set(None),
        created_at: Set(Utc::now()),
        rate_unit: Set(None),
        rate_price: Set(None),
        rate_fee: Set(None),
    }
    .insert(&txn)
    .await?;
    set_balance(&txn, tenant_id, after).await?;
    let mut alerted = alert(&txn, &account, before, after).await?;
    let mut resumed = Vec::new();
    if amount > 0 {
        let mut now = account.clone();
        now.balance = after;
        let (reserved, live) = held(&txn, tenant_id).await?;
        if view(tenant_id, Some(&now), reserved, live).can_dial() {
            resumed = crate::campaigns::balance::resume_all(&txn, tenant_id).await?;
            alerted |= !resumed.is_empty();
        }
    }
    txn.commit().await?;
    if alerted {
        jobs::wake(Lane::Webhooks);
    }
    crate::campaigns::balance::after_resume(services, tenant_id, &resumed).await;
    metrics::counter!("credit_entries_total", "kind" => kind.as_str()).increment(1);
    tracing::info!(tenant.id = %tenant_id, kind = kind.as_str(), amount, balance = after, "credit changed");
    Ok((entry, false))
}

/// The operator's pricing of a tenant.
#[derive(Debug, Clone)]
pub struct SetPricing {
    pub tenant_id: Uuid,
    /// False stops billing the tenant (its balance and ledger stay).
    pub metered: bool,
    pub pricing: Pricing,
}

/// Sets (or, with `metered: false`, lifts) a tenant's pricing. Applies to calls charged
/// from now on; campaigns paused for want of credit resume if the new pricing lets them.
pub async fn set_pricing(
    services: &Services,
    actor: Actor<'_>,
    input: SetPricing,
) -> DomainResult<Account> {
    actor.require_operator("set pricing")?;
    let p = input.pricing;
    for (field, value) in [
        ("unitPrice", p.unit_price),
        ("callFee", p.call_fee),
        ("minimumBalance", p.minimum_balance),
    ] {
        if !(0..=MAX_AMOUNT).contains(&value) {
            return Err(DomainError::invalid(
                field,
                format!("must be between 0 and {MAX_AMOUNT}"),
            ));
        }
    }
    if !(1..=240).contains(&p.reserve_minutes) {
        return Err(DomainError::invalid(
            "reserveMinutes",
            "must be between 1 and 240",
        ));
    }
    if p.needed_to_dial() > MAX_AMOUNT {
        return Err(DomainError::invalid(
            "unitPrice",
            format!(
                "a call's reserve (reserveMinutes priced, plus callFee) and minimumBalance may not exceed {MAX_AMOUNT} together"
            ),
        ));
    }
    let db = services.db();
    let tenant_id = Actor::Operator.tenant(db, Some(input.tenant_id)).await?;
    let txn = crate::db::begin_write(db).await?;
    let mut account = lock_account(&txn, tenant_id).await?;
    let needed_before = account
        .metered
        .then(|| Pricing::of(&account).needed_to_dial());
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE credit_accounts SET metered = {}, billing_unit = {}, unit_price = {}, call_fee = {}, \
         minimum_balance = {}, reserve_minutes = {}, updated_at = {} WHERE tenant_id = {}",
        b.bind(input.metered),
        b.bind(p.unit.as_str()),
        b.bind(p.unit_price),
        b.bind(p.call_fee),
        b.bind(p.minimum_balance),
        b.bind(p.reserve_minutes),
        b.bind(Utc::now()),
        b.bind(tenant_id),
    );
    txn.execute_raw(b.statement(sql)).await?;
    account.metered = input.metered;
    account.billing_unit = p.unit.as_str().to_owned();
    account.unit_price = p.unit_price;
    account.call_fee = p.call_fee;
    account.minimum_balance = p.minimum_balance;
    account.reserve_minutes = p.reserve_minutes;
    let (reserved, live) = held(&txn, tenant_id).await?;
    let now = view(tenant_id, Some(&account), reserved, live);
    let resumed = if now.can_dial() {
        crate::campaigns::balance::resume_all(&txn, tenant_id).await?
    } else {
        Vec::new()
    };
    // A price the balance can no longer pay for is a depletion too.
    let covers =
        |needed: Option<i64>| needed.is_none_or(|n| account.balance > 0 && account.balance >= n);
    let needed_after = input.metered.then(|| p.needed_to_dial());
    // Billing that begins on an empty balance is not a depletion: nothing was spent.
    let depleted = needed_before.is_some() && covers(needed_before) && !covers(needed_after);
    if depleted {
        crate::outbound::record_events(
            &txn,
            vec![payloads::tenant_event(
                tenant_id,
                EventType::BalanceDepleted,
                json!({ "tenantId": tenant_id, "balance": account.balance, "neededPerCall": needed_after }),
            )],
        )
        .await?;
    }
    txn.commit().await?;
    if depleted {
        jobs::wake(Lane::Webhooks);
    }
    crate::campaigns::balance::after_resume(services, tenant_id, &resumed).await;
    Ok(now)
}

/// The tenant's `balance.low` threshold (ADMIN); `None` turns the alert off.
pub async fn set_low_threshold(
    db: &DatabaseConnection,
    scope: &TenantScope,
    threshold: Option<i64>,
) -> DomainResult<Account> {
    scope.require(Role::Admin)?;
    if let Some(t) = threshold
        && !(0..=MAX_AMOUNT).contains(&t)
    {
        return Err(DomainError::invalid(
            "threshold",
            format!("must be between 0 and {MAX_AMOUNT}"),
        ));
    }
    let tenant_id = scope.tenant_id();
    let txn = crate::db::begin_write(db).await?;
    lock_account(&txn, tenant_id).await?;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE credit_accounts SET low_threshold = {}, updated_at = {} WHERE tenant_id = {}",
        b.bind(threshold),
        b.bind(Utc::now()),
        b.bind(tenant_id)
    );
    txn.execute_raw(b.statement(sql)).await?;
    let account = account_of(&txn, tenant_id).await?;
    txn.commit().await?;
    Ok(account)
}

/// What a tenant's calls cost over a period, against what its provider charged for them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Calls charged (or re-priced) in the period.
    pub calls: i64,
    /// Taken from the balance for them, net of refunds, in minor units.
    pub charged: i64,
    /// The provider's own cost of those calls, as it reported it.
    pub provider_cost: f64,
}

/// Call charges whose entries fall in `[since, until)`, for margin reports.
pub async fn usage(
    db: &DatabaseConnection,
    actor: Actor<'_>,
    tenant_id: Option<Uuid>,
    since: Option<chrono::DateTime<Utc>>,
    until: Option<chrono::DateTime<Utc>>,
) -> DomainResult<Usage> {
    let tenant_id = actor.tenant(db, tenant_id).await?;
    let mut b = Binder::new(db.get_database_backend());
    let mut filter = format!("tenant_id = {} AND call_id IS NOT NULL", b.bind(tenant_id));
    if let Some(s) = since {
        filter.push_str(&format!(" AND created_at >= {}", b.bind(s)));
    }
    if let Some(u) = until {
        filter.push_str(&format!(" AND created_at < {}", b.bind(u)));
    }
    // A call re-priced has several entries: it counts once, at its latest provider cost.
    let sql = format!(
        "SELECT COUNT(CASE WHEN rn = 1 THEN 1 END) AS calls, CAST(COALESCE(SUM(-amount), 0) AS BIGINT) AS charged, \
         CAST(COALESCE(SUM(CASE WHEN rn = 1 THEN provider_cost END), 0) AS DOUBLE PRECISION) AS cost FROM \
         (SELECT amount, provider_cost, ROW_NUMBER() OVER (PARTITION BY call_id ORDER BY id DESC) AS rn \
          FROM credit_entries WHERE {filter}) entries"
    );
    let Some(row) = db.query_one_raw(b.statement(sql)).await? else {
        return Ok(Usage::default());
    };
    Ok(Usage {
        calls: row.try_get("", "calls")?,
        charged: row.try_get("", "charged")?,
        provider_cost: row.try_get("", "cost")?,
    })
}
