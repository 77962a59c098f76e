//! What an analysis does to the CRM, in the transaction that stores it: the outcome moves
//! the customer's lead status, and a request not to be called puts the number on the
//! tenant's do-not-call list and cancels its pending campaign items.
//!
//! Precedence: the newest evidence wins. An analysis sets the status outright unless a
//! newer call of the same customer already says where the lead stands (its own analysis,
//! or the provider's extracted intent); then it only moves the status forward along the
//! funnel. Against the provider's extraction of the same call, the analysis wins (it is
//! applied after it). DO_NOT_CALL is never left, and a request not to be called always
//! counts, however old.

use chrono::Utc;
use entity::call;
use sea_orm::ConnectionTrait;

use super::scores::HistoryCall;
use crate::db::Binder;
use crate::error::DomainResult;
use crate::ingest::lead::funnel_rank;
use crate::types::{CallDirection, CallOutcome, LeadStatus};

/// The lead status an outcome implies, if it implies one.
pub fn lead_status_of(outcome: CallOutcome) -> Option<LeadStatus> {
    match outcome {
        CallOutcome::AppointmentBooked => Some(LeadStatus::Booked),
        CallOutcome::Interested => Some(LeadStatus::Interested),
        CallOutcome::CallbackRequested => Some(LeadStatus::Callback),
        CallOutcome::NotInterested => Some(LeadStatus::NotInterested),
        CallOutcome::DoNotCall => Some(LeadStatus::DoNotCall),
        CallOutcome::Voicemail
        | CallOutcome::NoAnswer
        | CallOutcome::WrongNumber
        | CallOutcome::Other => None,
    }
}

/// The status a customer at `current` moves to on this evidence: `newest` when no newer
/// call says otherwise.
pub fn next_status(current: LeadStatus, target: LeadStatus, newest: bool) -> LeadStatus {
    if current == LeadStatus::DoNotCall || target == LeadStatus::DoNotCall {
        return LeadStatus::DoNotCall;
    }
    if newest || funnel_rank(target) > funnel_rank(current) {
        target
    } else {
        current
    }
}

/// The customer's end of `call`.
pub(crate) fn customer_phone(call: &call::Model) -> Option<&str> {
    match call.direction {
        CallDirection::Outbound => call.to_number.as_deref(),
        CallDirection::Inbound => call.from_number.as_deref(),
    }
}

/// Whether a call of the same customer made after `call` already says where the lead
/// stands (`history`: the customer's newest calls, this batch's analyses included).
pub(crate) fn newer_evidence(history: &[HistoryCall], call: &call::Model) -> bool {
    history
        .iter()
        .filter(|h| h.created_at > call.created_at && h.id != call.id)
        .any(|h| h.provider_intent || h.scored.outcome.and_then(lead_status_of).is_some())
}

/// Puts the number on the tenant's do-not-call list and cancels its pending campaign
/// items (calls in flight finish).
pub(crate) async fn do_not_call<C: ConnectionTrait>(
    conn: &C,
    call: &call::Model,
    phone: &str,
) -> DomainResult<()> {
    let now = Utc::now();
    let reason = format!("asked not to be called during call {}", call.id);
    crate::dnc::list_number(conn, call.tenant_id, phone, Some(reason)).await?;
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "UPDATE campaign_items SET status = 'CANCELED', last_error = {}, updated_at = {} \
         WHERE phone_number = {} AND status = 'PENDING' \
         AND campaign_id IN (SELECT id FROM campaigns WHERE tenant_id = {})",
        b.bind("the person asked not to be called"),
        b.bind(now),
        b.bind(phone),
        b.bind(call.tenant_id)
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_evidence_sets_older_only_moves_forward_and_dnc_stays() {
        use LeadStatus::*;
        assert_eq!(next_status(Booked, NotInterested, true), NotInterested);
        assert_eq!(next_status(Booked, NotInterested, false), Booked);
        assert_eq!(next_status(Contacted, Interested, false), Interested);
        assert_eq!(next_status(DoNotCall, Booked, true), DoNotCall);
        assert_eq!(next_status(Booked, DoNotCall, false), DoNotCall);
        assert_eq!(lead_status_of(CallOutcome::Voicemail), None);
        assert_eq!(
            lead_status_of(CallOutcome::CallbackRequested),
            Some(Callback)
        );
    }
}
