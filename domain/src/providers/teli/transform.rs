//! Teli call → [`CallReport`].

use chrono::{DateTime, TimeZone, Utc};

use super::dto::Call;
use crate::providers::report::non_empty;
use crate::providers::{CallReport, ProviderError};
use crate::types::{CallDirection, CallStatus, Provider};

fn from_ms(ms: Option<f64>) -> Option<DateTime<Utc>> {
    let ms = ms.filter(|m| m.is_finite() && *m > 0.0)?;
    Utc.timestamp_millis_opt(ms as i64).single()
}

/// Teli reports `registered | ongoing | ended | error | not_connected`; how an `ended`
/// call ended is in `disconnection_reason`, and it is final once analysed.
fn status_of(call: &Call) -> Option<CallStatus> {
    let reason = call
        .disconnection_reason
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let analysed = call.call_analysis.is_some() || call.call_analyzed_at.is_some();
    Some(
        match call
            .call_status
            .as_deref()?
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "registered" => CallStatus::Queued,
            "ongoing" => CallStatus::InProgress,
            "not_connected" => CallStatus::NoAnswer,
            "error" => CallStatus::Error,
            "ended" => match reason.as_str() {
                "dial_busy" => CallStatus::Busy,
                "dial_no_answer" => CallStatus::NoAnswer,
                "dial_failed" | "invalid_destination" => CallStatus::Failed,
                r if r.starts_with("error") => CallStatus::Error,
                _ if analysed => CallStatus::Completed,
                _ => CallStatus::CallDisconnected,
            },
            _ => return None,
        },
    )
}

/// Parses a call object: a list item, a `GET` detail, or a webhook's `call`.
pub fn parse_call(raw: serde_json::Value) -> Result<CallReport, ProviderError> {
    let call: Call = serde_json::from_value(raw.clone())
        .map_err(|e| ProviderError::Decode(format!("not a Teli call: {e}")))?;
    let id = non_empty(call.call_id.clone())
        .filter(|id| id.len() <= 200)
        .ok_or_else(|| ProviderError::Decode("the call has no call_id".into()))?;
    let status = status_of(&call).ok_or_else(|| {
        ProviderError::Decode(format!("unknown call_status {:?}", call.call_status))
    })?;
    let started = from_ms(call.start_timestamp);
    let ended = from_ms(call.end_timestamp);
    let mut report = CallReport::new(Provider::Teli, id, status);
    report.provider_agent_id = non_empty(call.agent_id).or(non_empty(call.voice_agent_id));
    report.direction = match call.direction.as_deref() {
        Some(d) if d.eq_ignore_ascii_case("inbound") => CallDirection::Inbound,
        _ => CallDirection::Outbound,
    };
    report.from_number = non_empty(call.from_number);
    report.to_number = non_empty(call.to_number);
    report.started_at = started;
    report.ended_at = ended;
    report.duration_seconds = call
        .duration_ms
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|ms| ms / 1000.0)
        .or_else(|| match (started, ended) {
            (Some(s), Some(e)) if e >= s => Some((e - s).num_milliseconds() as f64 / 1000.0),
            _ => None,
        });
    report.cost = call.call_cost.and_then(|c| c.combined_cost);
    report.transcript = non_empty(call.transcript);
    report.summary = call
        .call_analysis
        .as_ref()
        .and_then(|a| non_empty(a.call_summary.clone()));
    report.recording_url = non_empty(call.recording_url);
    report.extracted_data = call
        .extracted_fields
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        .or_else(|| {
            call.call_analysis
                .and_then(|a| a.custom_analysis_data)
                .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        });
    report.hangup_reason = non_empty(call.disconnection_reason);
    report.recipient_data = call
        .dynamic_variables
        .filter(|v| v.is_object())
        .or(call.metadata.filter(|v| v.is_object()));
    report.occurred_at = ended.or(started);
    report.raw = Some(raw);
    Ok(report.sanitized())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_call_detail() {
        let r = parse_call(json!({
            "call_id": "call_5b1e", "agent_id": "0d3f6a2b", "direction": "outbound",
            "from_number": "+15125550143", "to_number": "+15125550199", "call_status": "ended",
            "start_timestamp": 1756800003000u64, "end_timestamp": 1756800091000u64,
            "duration_ms": 88000, "disconnection_reason": "user_hangup",
            "transcript": "Agent: Hi\nUser: Sure", "extracted_fields": {"budget": "40000"},
            "call_analysis": {"call_summary": "Qualified lead."},
            "call_cost": {"combined_cost": 12.5}
        }))
        .unwrap();
        assert_eq!(r.status, CallStatus::Completed);
        assert_eq!(r.duration_seconds, Some(88.0));
        assert_eq!(r.summary.as_deref(), Some("Qualified lead."));
        assert_eq!(r.customer_number(), Some("+15125550199"));
    }

    #[test]
    fn maps_endings_and_sparse_list_items() {
        let busy = parse_call(
            json!({"call_id": "c1", "call_status": "ended", "disconnection_reason": "dial_busy"}),
        )
        .unwrap();
        assert_eq!(busy.status, CallStatus::Busy);
        let open = parse_call(json!({"call_id": "c2", "call_status": "ended"})).unwrap();
        assert_eq!(open.status, CallStatus::CallDisconnected);
        let live =
            parse_call(json!({"call_id": "c3", "call_status": "ongoing", "start_timestamp": null}))
                .unwrap();
        assert_eq!(live.status, CallStatus::InProgress);
        assert!(parse_call(json!({"call_status": "ended"})).is_err());
        assert!(parse_call(json!({"call_id": "c4", "call_status": "exploded"})).is_err());
    }
}
