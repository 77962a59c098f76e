//! Tenant credits in GraphQL: the account and its ledger (the tenant's keys for their own
//! tenant, the operator for any), top-ups, adjustments and pricing (the operator), and the
//! low-balance alert threshold (a tenant's ADMIN).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::credits::{self, Actor};
use domain::pagination::{Page, PageRequest};
use entity::credit_entry;
use uuid::Uuid;

use super::connection::{Connection, Listing, connection_object};
use super::context::{db, is_operator, scope, services};
use super::error::{GqlResultExt, parse_id};

/// The caller as `domain::credits` sees it: the operator, or a tenant's key.
fn actor<'a>(ctx: &Context<'a>) -> async_graphql::Result<Actor<'a>> {
    if is_operator(ctx) {
        return Ok(Actor::Operator);
    }
    Ok(Actor::Tenant(scope(ctx)?))
}

fn tenant_arg(id: Option<&ID>) -> async_graphql::Result<Option<Uuid>> {
    id.map(|id| parse_id("tenantId", id)).transpose()
}

/// How a call's duration is priced.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum BillingUnit {
    /// Every started minute.
    Minute,
    /// Every started second.
    Second,
}

impl From<BillingUnit> for credits::BillingUnit {
    fn from(u: BillingUnit) -> Self {
        match u {
            BillingUnit::Minute => credits::BillingUnit::Minute,
            BillingUnit::Second => credits::BillingUnit::Second,
        }
    }
}

impl From<credits::BillingUnit> for BillingUnit {
    fn from(u: credits::BillingUnit) -> Self {
        match u {
            credits::BillingUnit::Minute => BillingUnit::Minute,
            credits::BillingUnit::Second => BillingUnit::Second,
        }
    }
}

/// What a ledger entry records.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CreditEntryKind {
    /// Credit added by the operator.
    TopUp,
    /// A call's charge (or a correction upwards after a late report).
    CallCharge,
    /// Credit given back when a late report shortened a charged call.
    Refund,
    /// The operator's correction, either way.
    Adjustment,
}

/// What calls cost a tenant. Amounts are integer minor units (cents).
#[derive(SimpleObject)]
pub struct Pricing {
    /// MINUTE (per started minute) or SECOND.
    pub unit: BillingUnit,
    /// Price of one unit.
    pub unit_price: i64,
    /// Added to every call that connected.
    pub call_fee: i64,
    /// Balance that must remain after a call's reserve for the call to be dialled.
    pub minimum_balance: i64,
    /// Minutes of a call its reserve covers.
    pub reserve_minutes: i32,
    /// Credit held for each live call: `reserveMinutes` priced, plus `callFee`.
    pub reserve_per_call: i64,
    /// Available balance a call needs before it is dialled (reserve + minimum).
    pub needed_to_dial: i64,
}

/// A tenant's credit: what it has, what its live calls hold, what calls cost.
#[derive(SimpleObject)]
pub struct CreditAccount {
    /// The tenant.
    pub tenant_id: ID,
    /// In minor units; never below zero; the sum of the ledger.
    pub balance: i64,
    /// Held for live calls until they end and are charged.
    pub reserved: i64,
    /// `balance - reserved`.
    pub available: i64,
    /// Calls holding a reserve now.
    pub live_calls: i64,
    /// Whether a call may be dialled now.
    pub can_dial: bool,
    /// Null while the tenant is not billed (its calls are neither checked nor charged).
    pub pricing: Option<Pricing>,
    /// `balance.low` fires when the balance falls below this; null: no alert.
    pub low_balance_threshold: Option<i64>,
}

impl From<credits::Account> for CreditAccount {
    fn from(a: credits::Account) -> Self {
        CreditAccount {
            tenant_id: ID(a.tenant_id.to_string()),
            balance: a.balance,
            reserved: a.reserved,
            available: a.available(),
            live_calls: a.live_calls,
            can_dial: a.can_dial(),
            pricing: a.pricing.map(|p| Pricing {
                unit: p.unit.into(),
                unit_price: p.unit_price,
                call_fee: p.call_fee,
                minimum_balance: p.minimum_balance,
                reserve_minutes: p.reserve_minutes,
                reserve_per_call: p.reserve_per_call(),
                needed_to_dial: p.needed_to_dial(),
            }),
            low_balance_threshold: a.low_threshold,
        }
    }
}

/// One change of the balance. Entries are never edited or removed.
pub struct CreditEntry(pub credit_entry::Model);

#[Object]
impl CreditEntry {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What the entry records.
    async fn kind(&self) -> CreditEntryKind {
        match credits::EntryKind::parse(&self.0.kind) {
            Some(credits::EntryKind::TopUp) => CreditEntryKind::TopUp,
            Some(credits::EntryKind::CallCharge) => CreditEntryKind::CallCharge,
            Some(credits::EntryKind::Refund) => CreditEntryKind::Refund,
            _ => CreditEntryKind::Adjustment,
        }
    }
    /// Signed, in minor units: credits positive, charges negative.
    async fn amount(&self) -> i64 {
        self.0.amount
    }
    /// The balance right after this entry.
    async fn balance_after(&self) -> i64 {
        self.0.balance_after
    }
    /// Why the balance changed.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// The operator's reference (an invoice, a payment), or the call's id.
    async fn reference(&self) -> Option<&str> {
        self.0.reference.as_deref()
    }
    /// The key that makes the change happen once.
    async fn idempotency_key(&self) -> &str {
        credits::shown_key(&self.0.idempotency_key)
    }
    /// The call charged, for call entries.
    async fn call_id(&self) -> Option<ID> {
        self.0.call_id.map(|id| ID(id.to_string()))
    }
    /// Seconds billed, for call entries.
    async fn billed_seconds(&self) -> Option<i64> {
        self.0.billed_seconds
    }
    /// What the call costs in all as of this entry (more than collected when the balance
    /// could not pay all of it).
    async fn call_total(&self) -> Option<i64> {
        self.0.due
    }
    /// The provider's own cost of the call, for margins (in the provider's unit).
    async fn provider_cost(&self) -> Option<f64> {
        self.0.provider_cost
    }
    /// `operator`, or `system` for call charges.
    async fn actor(&self) -> Option<&str> {
        self.0.actor.as_deref()
    }
    /// When the balance changed (UTC).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Credit added to a tenant by the operator.
#[derive(InputObject)]
pub struct TopUpCreditsInput {
    /// The tenant.
    pub tenant_id: ID,
    /// Minor units, positive.
    pub amount: i64,
    /// An invoice or payment reference, kept on the entry.
    pub reference: Option<String>,
    /// The same key adds the credit once (a repeat returns the first entry).
    pub idempotency_key: Option<String>,
}

/// An operator's correction of a tenant's balance.
#[derive(InputObject)]
pub struct AdjustCreditsInput {
    /// The tenant.
    pub tenant_id: ID,
    /// Minor units, non-zero; negative takes credit away (never below zero).
    pub amount: i64,
    /// Why.
    pub reason: String,
    /// The same key applies the correction once.
    pub idempotency_key: Option<String>,
}

/// A tenant's pricing, set by the operator.
#[derive(InputObject)]
pub struct SetPricingInput {
    /// The tenant.
    pub tenant_id: ID,
    /// False stops billing the tenant (balance and ledger stay).
    #[graphql(default = true)]
    pub metered: bool,
    /// MINUTE (per started minute) or SECOND, with `unitPrice`.
    #[graphql(default_with = "BillingUnit::Minute")]
    pub unit: BillingUnit,
    /// Price of one `unit`, in minor units. Give this, `pricePerMinute` or `pricePerSecond`.
    pub unit_price: Option<i64>,
    /// Price of every started minute (the same as `unit: MINUTE, unitPrice`).
    pub price_per_minute: Option<i64>,
    /// Price of every started second (the same as `unit: SECOND, unitPrice`).
    pub price_per_second: Option<i64>,
    /// Added to every call that connected.
    #[graphql(default = 0)]
    pub call_fee: i64,
    /// Balance that must remain after a call's reserve for it to be dialled.
    #[graphql(default = 0)]
    pub minimum_balance: i64,
    /// Minutes of a call its reserve covers (1 to 240).
    #[graphql(default = 5)]
    pub reserve_minutes: i32,
}

/// A page of the ledger's rows.
pub struct LedgerListing {
    tenant_id: Option<Uuid>,
}

impl Listing for LedgerListing {
    type Row = credit_entry::Model;
    type Node = CreditEntry;

    fn id(row: &Self::Row) -> Uuid {
        row.id
    }

    fn node(&self, row: &Self::Row) -> CreditEntry {
        CreditEntry(row.clone())
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        Box::pin(credits::count_entries(
            db(ctx)?,
            actor(ctx)?,
            self.tenant_id,
        ))
        .await
        .gql()
    }
}

connection_object!(
    LedgerListing,
    "CreditEntryConnection",
    "A page of a tenant's ledger, newest first.",
    "Number of entries over all pages."
);

/// Credits' part of the query root.
#[derive(Default)]
pub struct CreditsQuery;

#[Object]
impl CreditsQuery {
    /// A tenant's credit account: the caller's own, or (operator) the one named.
    async fn credit_account(
        &self,
        ctx: &Context<'_>,
        tenant_id: Option<ID>,
    ) -> async_graphql::Result<CreditAccount> {
        let tenant_id = tenant_arg(tenant_id.as_ref())?;
        Ok(credits::get_account(db(ctx)?, actor(ctx)?, tenant_id)
            .await
            .gql()?
            .into())
    }

    /// A tenant's ledger, newest first: the caller's own, or (operator) the one named.
    async fn credit_ledger(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        tenant_id: Option<ID>,
    ) -> async_graphql::Result<Connection<LedgerListing>> {
        let tenant_id = tenant_arg(tenant_id.as_ref())?;
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        let rows: Page<credit_entry::Model> =
            credits::entries(db(ctx)?, actor(ctx)?, tenant_id, page)
                .await
                .gql()?;
        Ok(Connection::new(rows, LedgerListing { tenant_id }))
    }

    /// Call charges over `[since, until)` against the provider's cost, for margins: the
    /// caller's own tenant, or (operator) the one named.
    async fn credit_usage(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        tenant_id: Option<ID>,
    ) -> async_graphql::Result<CreditUsage> {
        let tenant_id = tenant_arg(tenant_id.as_ref())?;
        let u = credits::usage(db(ctx)?, actor(ctx)?, tenant_id, since, until)
            .await
            .gql()?;
        Ok(CreditUsage {
            calls: u.calls,
            charged: u.charged,
            provider_cost: u.provider_cost,
        })
    }
}

/// What a tenant's calls cost over a period, beside what its provider charged.
#[derive(SimpleObject)]
pub struct CreditUsage {
    /// Calls charged or re-priced in the period.
    pub calls: i64,
    /// Taken from the balance for them, net of refunds (minor units).
    pub charged: i64,
    /// The provider's own cost of those calls, as it reported it (its unit).
    pub provider_cost: f64,
}

/// Credits' part of the mutation root.
#[derive(Default)]
pub struct CreditsMutation;

#[Object]
impl CreditsMutation {
    /// Adds credit to a tenant (operator). Campaigns paused for want of credit resume.
    async fn top_up_credits(
        &self,
        ctx: &Context<'_>,
        input: TopUpCreditsInput,
    ) -> async_graphql::Result<CreditEntry> {
        let actor = actor(ctx)?;
        let tenant_id = parse_id("tenantId", &input.tenant_id)?;
        let (entry, _) = credits::top_up(
            services(ctx)?,
            actor,
            credits::TopUp {
                tenant_id,
                amount: input.amount,
                reference: input.reference,
                idempotency_key: input.idempotency_key,
            },
        )
        .await
        .gql()?;
        Ok(CreditEntry(entry))
    }

    /// Corrects a tenant's balance either way (operator); never below zero.
    async fn adjust_credits(
        &self,
        ctx: &Context<'_>,
        input: AdjustCreditsInput,
    ) -> async_graphql::Result<CreditEntry> {
        let actor = actor(ctx)?;
        let tenant_id = parse_id("tenantId", &input.tenant_id)?;
        let (entry, _) = credits::adjust(
            services(ctx)?,
            actor,
            credits::Adjust {
                tenant_id,
                amount: input.amount,
                reason: input.reason,
                idempotency_key: input.idempotency_key,
            },
        )
        .await
        .gql()?;
        Ok(CreditEntry(entry))
    }

    /// Sets a tenant's pricing (operator); from then on its calls are checked and charged.
    async fn set_pricing(
        &self,
        ctx: &Context<'_>,
        input: SetPricingInput,
    ) -> async_graphql::Result<CreditAccount> {
        let actor = actor(ctx)?;
        let tenant_id = parse_id("tenantId", &input.tenant_id)?;
        let (unit, unit_price) = match (
            input.unit_price,
            input.price_per_minute,
            input.price_per_second,
        ) {
            (Some(p), None, None) => (input.unit.into(), p),
            (None, Some(p), None) => (credits::BillingUnit::Minute, p),
            (None, None, Some(p)) => (credits::BillingUnit::Second, p),
            _ => {
                return Err(super::error::to_gql(&domain::DomainError::invalid(
                    "unitPrice",
                    "give exactly one of unitPrice, pricePerMinute and pricePerSecond",
                )));
            }
        };
        let account = credits::set_pricing(
            services(ctx)?,
            actor,
            credits::SetPricing {
                tenant_id,
                metered: input.metered,
                pricing: credits::Pricing {
                    unit,
                    unit_price,
                    call_fee: input.call_fee,
                    minimum_balance: input.minimum_balance,
                    reserve_minutes: input.reserve_minutes,
                },
            },
        )
        .await
        .gql()?;
        Ok(account.into())
    }

    /// The balance below which `balance.low` fires (ADMIN); null turns it off.
    async fn set_low_balance_threshold(
        &self,
        ctx: &Context<'_>,
        threshold: Option<i64>,
    ) -> async_graphql::Result<CreditAccount> {
        let account = credits::set_low_threshold(db(ctx)?, scope(ctx)?, threshold)
            .await
            .gql()?;
        Ok(account.into())
    }
}

/// Rows of this list always take the derived resolver (see `plain`).
impl super::plain::PlainFields for CreditEntry {}
