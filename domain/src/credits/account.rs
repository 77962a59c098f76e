//! The account as the rest of the product sees it: balance, pricing and what one call
//! needs before it may be dialled.

use std::str::FromStr;

use entity::credit_account;
use uuid::Uuid;

/// How a call's duration is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingUnit {
    /// Every started minute.
    Minute,
    /// Every started second.
    Second,
}

impl BillingUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            BillingUnit::Minute => "MINUTE",
            BillingUnit::Second => "SECOND",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            BillingUnit::Minute => 60,
            BillingUnit::Second => 1,
        }
    }
}

impl FromStr for BillingUnit {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "MINUTE" => Ok(BillingUnit::Minute),
            "SECOND" => Ok(BillingUnit::Second),
            _ => Err(()),
        }
    }
}

/// What calls cost a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pricing {
    pub unit: BillingUnit,
    /// Per unit, in minor units.
    pub unit_price: i64,
    /// Added to every call that connected.
    pub call_fee: i64,
    /// The balance that must remain after a call's reserve for it to be dialled.
    pub minimum_balance: i64,
    /// How many minutes of a call its reserve covers.
    pub reserve_minutes: i32,
}

impl Pricing {
    /// Credit held for one live call.
    pub fn reserve_per_call(&self) -> i64 {
        let units = i64::from(self.reserve_minutes) * 60 / self.unit.seconds();
        units
            .saturating_mul(self.unit_price)
            .saturating_add(self.call_fee)
    }

    /// The available balance a call needs before it is dialled.
    pub fn needed_to_dial(&self) -> i64 {
        self.reserve_per_call().saturating_add(self.minimum_balance)
    }

    pub(crate) fn of(m: &credit_account::Model) -> Pricing {
        Pricing {
            unit: m.billing_unit.parse().unwrap_or(BillingUnit::Minute),
            unit_price: m.unit_price,
            call_fee: m.call_fee,
            minimum_balance: m.minimum_balance,
            reserve_minutes: m.reserve_minutes,
        }
    }
}

/// A tenant's credit account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub tenant_id: Uuid,
    /// In minor units, never below zero: the sum of the ledger's entries.
    pub balance: i64,
    /// Held for live calls.
    pub reserved: i64,
    /// Calls holding a reserve now.
    pub live_calls: i64,
    /// `None` while the tenant is not billed.
    pub pricing: Option<Pricing>,
    pub low_threshold: Option<i64>,
}

impl Account {
    /// What the tenant may still commit to new calls.
    pub fn available(&self) -> i64 {
        self.balance - self.reserved
    }

    /// Whether a call may be dialled now.
    pub fn can_dial(&self) -> bool {
        self.pricing
            .is_none_or(|p| self.available() >= p.needed_to_dial())
    }
}
