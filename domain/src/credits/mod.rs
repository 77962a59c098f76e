//! Tenant credits: a balance that calls spend, checked before every dial.
//!
//! - `ledger`: the account, its entries (top-ups, call charges, refunds, adjustments) and
//!   the operator's and tenant's changes to them. Every change is an entry written with
//!   the balance under the account's row lock, so the balance is always the sum of the
//!   entries and never goes below zero.
//! - `reserve`: credit held for each live call, taken just before a call is dialled and
//!   given back when it ends, so N calls at once cannot spend more than the balance.
//! - `charge`: a call's charge when it ends (and again when a late report changes its
//!   duration), inside the transaction that moves the call.
//!
//! A tenant is billed only once the operator sets its pricing (`metered`): until then its
//! calls are neither checked nor charged.

mod account;
mod charge;
mod ledger;
mod reserve;

pub use account::{Account, BillingUnit, Pricing};
pub use charge::price;
pub(crate) use charge::{Ended, settle};
pub use ledger::{
    Actor, Adjust, EntryKind, SetPricing, TopUp, Usage, adjust, count_entries, entries,
    get_account, set_low_threshold, set_pricing, shown_key, top_up, usage,
};
pub(crate) use ledger::{held, lock_account, view};
pub use reserve::{check_can_dial, sweep_holds};
pub(crate) use reserve::{dial_room, release, reserve};

/// Amounts are minor units (cents); no balance, price or top-up may exceed this, so sums
/// stay exact in JavaScript clients too.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Why a call was not dialled for want of credit.
pub const BALANCE_REASON: &str = "the tenant's balance cannot cover this call";

/// `Campaign.pausedReason` of a campaign paused for want of credit.
pub const PAUSED_FOR_BALANCE: &str = "balance";
