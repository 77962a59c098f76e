//! The `data` of each event: the changed thing as the API shows it (camelCase), without
//! the large or private parts (transcripts, raw provider payloads).

use chrono::{DateTime, SecondsFormat, Utc};
use entity::{call, call_analysis, campaign, campaign_item, customer, sync_run};
use serde_json::{Value, json};
use uuid::Uuid;

use super::record::NewEvent;
use super::types::EventType;
use crate::calls::transition::Transition;
use crate::types::CallStatus;

fn ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::from(t.to_rfc3339_opts(SecondsFormat::Millis, true))
    })
}

pub fn call(c: &call::Model) -> Value {
    json!({
        "id": c.id,
        "status": c.status.as_str(),
        "direction": c.direction.as_str(),
        "provider": c.provider.as_str(),
        "providerCallId": c.provider_call_id,
        "agentId": c.agent_id,
        "customerId": c.customer_id,
        "campaignId": c.campaign_id,
        "fromNumber": c.from_number,
        "toNumber": c.to_number,
        "startedAt": ts(c.started_at),
        "endedAt": ts(c.ended_at),
        "durationSeconds": c.duration_seconds,
        "hangupReason": c.hangup_reason,
        "createdAt": ts(Some(c.created_at)),
        "updatedAt": ts(Some(c.updated_at)),
    })
}

pub fn customer(c: &customer::Model) -> Value {
    json!({
        "id": c.id,
        "phoneNumber": c.phone_number,
        "name": c.name,
        "email": c.email,
        "status": c.status.as_str(),
        "tags": c.tags,
        "leadScore": c.lead_score,
        "segment": c.segment,
        "source": c.source,
        "lastContactedAt": ts(c.last_contacted_at),
        "createdAt": ts(Some(c.created_at)),
        "updatedAt": ts(Some(c.updated_at)),
    })
}

pub fn campaign(c: &campaign::Model) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "status": c.status.as_str(),
        "agentId": c.agent_id,
        "pausedReason": c.paused_reason,
        "startedAt": ts(c.started_at),
        "finishedAt": ts(c.finished_at),
        "updatedAt": ts(Some(c.updated_at)),
    })
}

pub fn campaign_item(i: &campaign_item::Model) -> Value {
    json!({
        "id": i.id,
        "campaignId": i.campaign_id,
        "customerId": i.customer_id,
        "phoneNumber": i.phone_number,
        "line": i.line,
        "status": i.status.as_str(),
        "attempts": i.attempts,
        "lastError": i.last_error,
        "callId": i.call_id,
        "wamid": i.wamid,
    })
}

pub fn sync_run(r: &sync_run::Model) -> Value {
    json!({
        "id": r.id,
        "provider": r.provider.as_str(),
        "trigger": r.trigger.as_str(),
        "dryRun": r.dry_run,
        "status": r.status.as_str(),
        "totalCalls": r.total_calls,
        "syncedCalls": r.synced_calls,
        "newCustomers": r.new_customers,
        "updatedCustomers": r.updated_customers,
        "duplicateCalls": r.duplicate_calls,
        "skippedUnknownAgent": r.skipped_unknown_agent,
        "skippedNoPhone": r.skipped_no_phone,
        "direction": r.direction.map(|d| d.as_str()),
        "created": r.created,
        "updated": r.updated,
        "skipped": r.skipped,
        "conflicts": r.conflicts,
        "errorCount": r.errors.as_array().map_or(0, Vec::len),
        "startedAt": ts(Some(r.started_at)),
        "finishedAt": ts(r.finished_at),
    })
}

pub fn analysis(a: &call_analysis::Model) -> Value {
    json!({
        "callId": a.call_id,
        "analysisId": a.id,
        "status": a.status.as_str(),
        "sentiment": a.sentiment.map(|s| s.as_str()),
        "sentimentScore": a.sentiment_score,
        "outcome": a.outcome.map(|o| o.as_str()),
        "summary": a.summary,
        "extractedData": a.extracted_data,
        "analyzedAt": ts(a.analyzed_at),
    })
}

/// `call.status_changed` for every transition, and `call.completed` when it completes.
pub(crate) fn call_transitions(changed: &[Transition]) -> Vec<NewEvent> {
    let mut out = Vec::new();
    for t in changed {
        let c = &t.call;
        out.push(NewEvent::new(
            c.tenant_id,
            EventType::CallStatusChanged,
            Some(c.id),
            json!({
                "call": call(c),
                "previousStatus": t.previous.map(|s| s.as_str()),
                "status": t.status.as_str(),
                "source": t.source.as_str(),
            }),
        ));
        if t.status == CallStatus::Completed && t.previous != Some(CallStatus::Completed) {
            let mut data = call(c);
            data["summary"] = json!(c.summary);
            data["recordingUrl"] = json!(c.recording_url);
            out.push(NewEvent::new(
                c.tenant_id,
                EventType::CallCompleted,
                Some(c.id),
                json!({ "call": data }),
            ));
        }
    }
    out
}

/// A customer event (`created` or `updated`), ordered with the customer's other events.
pub(crate) fn customer_event(kind: EventType, c: &customer::Model) -> NewEvent {
    NewEvent::new(
        c.tenant_id,
        kind,
        Some(c.id),
        json!({ "customer": customer(c) }),
    )
}

/// A campaign event, ordered with the campaign's other events.
pub(crate) fn campaign_event(kind: EventType, c: &campaign::Model) -> NewEvent {
    NewEvent::new(
        c.tenant_id,
        kind,
        Some(c.id),
        json!({ "campaign": campaign(c) }),
    )
}

pub(crate) fn tenant_event(tenant_id: Uuid, kind: EventType, data: Value) -> NewEvent {
    NewEvent::new(tenant_id, kind, None, data)
}
