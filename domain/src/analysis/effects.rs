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
use entity::{call, call_analysis};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::db::Binder;
use crate::error::DomainResult;
use crate::ingest::lead::{funnel_rank, intent_of};
use crate::types::{AnalysisStatus, CallDirection, CallOutcome, LeadStatus};

/// Newer calls of a customer looked at for evidence (a lead rarely has more).
const NEWER_CALLS: u64 = 50;

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

/// Applies `outcome` of `call`'s analysis to its customer, inside the caller's transaction.
pub(crate) async fn apply<C: ConnectionTrait>(
    conn: &C,
    call: &call::Model,
    outcome: CallOutcome,
) -> DomainResult<()> {
    let Some(target) = lead_status_of(outcome) else {
        return Ok(());
    };
    // The customer's end of the call.
    let phone = match call.direction {
        CallDirection::Outbound => call.to_number.as_deref(),
        CallDirection::Inbound => call.from_number.as_deref(),
    };
    if target == LeadStatus::DoNotCall
        && let Some(phone) = phone
    {
        do_not_call(conn, call, phone).await?;
    }
    let Some(customer_id) = call.customer_id else {
        return Ok(());
    };
    let Some(customer) = entity::customer::Entity::find_by_id(customer_id)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    let newest = !newer_evidence(conn, call).await?;
    let next = next_status(customer.status, target, newest);
    if next != customer.status {
        let mut b = Binder::new(conn.get_database_backend());
        let sql = format!(
            "UPDATE customers SET status = {}, updated_at = {} WHERE id = {} AND status <> 'DO_NOT_CALL'",
            b.bind(next.as_str()),
            b.bind(Utc::now()),
            b.bind(customer_id)
        );
        conn.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// Whether a call of the same customer made after `call` already says where the lead
/// stands.
async fn newer_evidence<C: ConnectionTrait>(conn: &C, call: &call::Model) -> DomainResult<bool> {
    let Some(customer_id) = call.customer_id else {
        return Ok(false);
    };
    // Only the id and the provider's extraction: not the calls' transcripts.
    let newer: Vec<(uuid::Uuid, Option<serde_json::Value>)> = call::Entity::find()
        .select_only()
        .column(call::Column::Id)
        .column(call::Column::ExtractedData)
        .filter(call::Column::TenantId.eq(call.tenant_id))
        .filter(call::Column::CustomerId.eq(customer_id))
        .filter(call::Column::CreatedAt.gt(call.created_at))
        .filter(call::Column::Id.ne(call.id))
        .order_by_desc(call::Column::CreatedAt)
        .limit(NEWER_CALLS)
        .into_tuple()
        .all(conn)
        .await?;
    if newer
        .iter()
        .any(|(_, extracted)| extracted.as_ref().and_then(intent_of).is_some())
    {
        return Ok(true);
    }
    if newer.is_empty() {
        return Ok(false);
    }
    let analysed = call_analysis::Entity::find()
        .filter(call_analysis::Column::CallId.is_in(newer.iter().map(|c| c.0)))
        .filter(call_analysis::Column::Current.eq(true))
        .filter(call_analysis::Column::Status.eq(AnalysisStatus::Done))
        .all(conn)
        .await?;
    Ok(analysed
        .iter()
        .any(|a| a.outcome.and_then(lead_status_of).is_some()))
}

/// Puts the number on the tenant's do-not-call list and cancels its pending campaign
/// items (calls in flight finish).
async fn do_not_call<C: ConnectionTrait>(
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
