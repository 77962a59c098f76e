//! Bolna execution → [`CallReport`].

use chrono::{DateTime, Utc};

use super::dto::Execution;
use crate::providers::report::non_empty;
use crate::providers::{CallReport, ProviderError};
use crate::types::{CallDirection, CallStatus, Provider};

/// Bolna's status words (`in-progress`, `no-answer`, ...) in any case; `initiate` is a
/// spelling seen in one of its filter lists.
pub fn parse_status(s: &str) -> Option<CallStatus> {
    let norm = s.trim().to_ascii_lowercase().replace('_', "-");
    Some(match norm.as_str() {
        "scheduled" => CallStatus::Scheduled,
        "queued" => CallStatus::Queued,
        "rescheduled" => CallStatus::Rescheduled,
        "initiated" | "initiate" => CallStatus::Initiated,
        "ringing" => CallStatus::Ringing,
        "in-progress" => CallStatus::InProgress,
        "call-disconnected" => CallStatus::CallDisconnected,
        "completed" => CallStatus::Completed,
        "busy" => CallStatus::Busy,
        "no-answer" => CallStatus::NoAnswer,
        "balance-low" => CallStatus::BalanceLow,
        "canceled" | "cancelled" => CallStatus::Canceled,
        "failed" => CallStatus::Failed,
        "stopped" => CallStatus::Stopped,
        "error" => CallStatus::Error,
        _ => return None,
    })
}

fn parse_time(s: &Option<String>) -> Option<DateTime<Utc>> {
    let s = s.as_deref()?.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            // Timestamps without a zone are UTC.
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Parses an execution object (a webhook body or an API item).
pub fn parse_execution(raw: serde_json::Value) -> Result<CallReport, ProviderError> {
    let exec: Execution = serde_json::from_value(raw.clone())
        .map_err(|e| ProviderError::Decode(format!("not a Bolna execution: {e}")))?;
    let id = non_empty(exec.id.clone())
        .ok_or_else(|| ProviderError::Decode("the execution has no id".into()))?;
    if id.len() > 200 {
        return Err(ProviderError::Decode("the execution id is too long".into()));
    }
    let status_text = exec
        .status
        .as_deref()
        .ok_or_else(|| ProviderError::Decode("the execution has no status".into()))?;
    let status = parse_status(status_text)
        .ok_or_else(|| ProviderError::Decode(format!("unknown status {status_text:?}")))?;
    let tel = exec.telephony_data.clone().unwrap_or_default();
    let ctx = exec.context_details.clone().unwrap_or_default();
    let direction = match tel
        .call_type
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("inbound") => CallDirection::Inbound,
        _ => CallDirection::Outbound,
    };
    let to_number = non_empty(tel.to_number).or_else(|| non_empty(ctx.recipient_phone_number));
    let created = parse_time(&exec.created_at);
    let updated = parse_time(&exec.updated_at);
    let extracted = match (exec.extracted_data, exec.agent_extraction) {
        (Some(v), _) if !v.is_null() => Some(v),
        (_, Some(serde_json::Value::String(s))) => serde_json::from_str(&s).ok(),
        (_, Some(v)) if v.is_object() => Some(v),
        _ => None,
    };
    let mut report = CallReport::new(Provider::Bolna, id, status);
    report.provider_agent_id = non_empty(exec.agent_id);
    report.direction = direction;
    report.from_number = non_empty(tel.from_number);
    report.to_number = to_number;
    report.provider_call_id = non_empty(tel.provider_call_id);
    report.started_at = created;
    report.ended_at = if status.is_terminal() || status == CallStatus::CallDisconnected {
        updated
    } else {
        None
    };
    report.duration_seconds = exec.conversation_duration.or(tel.duration);
    report.cost = exec.total_cost;
    report.transcript = non_empty(exec.transcript);
    report.summary = non_empty(exec.summary);
    report.recording_url = non_empty(tel.recording_url);
    report.extracted_data = extracted;
    report.hangup_reason = non_empty(tel.hangup_reason);
    report.error_message = non_empty(exec.error_message);
    report.recipient_data = ctx.recipient_data.filter(|v| !v.is_null());
    report.occurred_at = updated.or(created);
    report.raw = Some(raw);
    Ok(report.sanitized())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_documented_example() {
        let r = parse_execution(json!({
            "id": "a3e9b2c1-7d4f-4e2a-b8c6-1f0e9d8c7b6a",
            "agent_id": "6f1c2d7e-3b4a-4c59-9e21-0d8a7b6c5e41",
            "status": "completed", "conversation_duration": 74.6, "total_cost": 9.8,
            "transcript": "assistant: Hi\nuser: Yes", "summary": "Wants a callback.",
            "created_at": "2025-09-02T05:00:03Z", "updated_at": "2025-09-02T05:04:41Z",
            "telephony_data": { "duration": "76", "to_number": "+919812345678",
                "from_number": "+918045671234", "recording_url": "https://x/rec.mp3",
                "provider_call_id": "CA9f", "call_type": "outbound",
                "hangup_reason": "Call recipient hung up" },
            "extracted_data": { "interested": true },
            "context_details": { "recipient_data": { "customer_name": "Priya" },
                                 "recipient_phone_number": "+919812345678" }
        }))
        .unwrap();
        assert_eq!(r.status, CallStatus::Completed);
        assert_eq!(r.duration_seconds, Some(74.6));
        assert_eq!(r.customer_number(), Some("+919812345678"));
        assert_eq!(r.recipient_data.unwrap()["customer_name"], "Priya");
        assert!(r.ended_at.is_some() && r.recording_url.is_some());
    }

    #[test]
    fn tolerates_alternate_names_types_and_nulls() {
        let r = parse_execution(json!({
            "execution_id": "e1", "status": "in-progress", "conversation_time": null,
            "telephony_data": { "duration": 42, "recording_url": "", "call_type": "inbound",
                                "from_number": "+15125550143" },
            "extracted_data": null, "agent_extraction": "{\"name\":\"Sam\"}",
            "transcript": null, "summary": null, "created_at": "2025-09-02T05:00:03"
        }))
        .unwrap();
        assert_eq!(r.execution_id, "e1");
        assert_eq!(r.duration_seconds, Some(42.0));
        assert_eq!(r.recording_url, None);
        assert_eq!(r.direction, CallDirection::Inbound);
        assert_eq!(r.customer_number(), Some("+15125550143"));
        assert_eq!(r.extracted_data.unwrap()["name"], "Sam");
        assert!(r.started_at.is_some());
        let r = parse_execution(json!({"id": "e2", "status": "busy", "conversation_time": "12.5"}))
            .unwrap();
        assert_eq!(r.duration_seconds, Some(12.5));
    }

    #[test]
    fn refuses_what_is_not_an_execution() {
        assert!(parse_execution(json!({"status": "completed"})).is_err());
        assert!(parse_execution(json!({"id": "x", "status": "exploded"})).is_err());
        assert!(parse_execution(json!([1, 2])).is_err());
        assert!(parse_execution(json!({"id": 5, "status": "queued"})).is_err());
    }
}
