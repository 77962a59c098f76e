//! The provider-neutral shape of one status report about one call.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::types::{CallDirection, CallStatus, Provider};

/// A provider's account of a call at one moment. Every field but the identity and the
/// status may be missing; ingestion merges reports, so absent never means "erase".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    pub provider: Provider,
    pub execution_id: String,
    pub provider_agent_id: Option<String>,
    pub status: CallStatus,
    pub direction: CallDirection,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub provider_call_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub cost: Option<f64>,
    pub transcript: Option<String>,
    pub summary: Option<String>,
    pub recording_url: Option<String>,
    pub extracted_data: Option<serde_json::Value>,
    pub hangup_reason: Option<String>,
    pub error_message: Option<String>,
    /// What the caller passed in for this call (names, plan, ...), when the provider echoes it.
    pub recipient_data: Option<serde_json::Value>,
    /// When the provider says this state was reached.
    pub occurred_at: Option<DateTime<Utc>>,
    /// The provider's own body, kept for audit.
    pub raw: Option<serde_json::Value>,
}

impl CallReport {
    /// A bare report: identity and status, nothing else known.
    pub fn new(provider: Provider, execution_id: impl Into<String>, status: CallStatus) -> Self {
        CallReport {
            provider,
            execution_id: execution_id.into(),
            provider_agent_id: None,
            status,
            direction: CallDirection::Outbound,
            from_number: None,
            to_number: None,
            provider_call_id: None,
            started_at: None,
            ended_at: None,
            duration_seconds: None,
            cost: None,
            transcript: None,
            summary: None,
            recording_url: None,
            extracted_data: None,
            hangup_reason: None,
            error_message: None,
            recipient_data: None,
            occurred_at: None,
            raw: None,
        }
    }

    /// The customer's side of the call: the callee when we called, the caller otherwise.
    pub fn customer_number(&self) -> Option<&str> {
        match self.direction {
            CallDirection::Outbound => self.to_number.as_deref(),
            CallDirection::Inbound => self.from_number.as_deref(),
        }
    }
}

/// Longest call a report may claim (a week); longer durations are dropped as nonsense.
const MAX_DURATION_SECONDS: f64 = 7.0 * 86_400.0;
/// Longest raw number kept from a report; anything longer is not a phone number.
const MAX_NUMBER_LEN: usize = 64;

impl CallReport {
    /// What every provider's parser returns: U+0000 removed from every string and JSON
    /// value (PostgreSQL cannot store it), times clamped to a window around now (a
    /// year-9999 report would freeze a lead), durations and costs range-checked, and
    /// numbers that cannot be phone numbers dropped (the raw body keeps them).
    pub fn sanitized(mut self) -> Self {
        strip_nul(&mut self.execution_id);
        for s in [
            &mut self.provider_agent_id,
            &mut self.from_number,
            &mut self.to_number,
            &mut self.provider_call_id,
            &mut self.transcript,
            &mut self.summary,
            &mut self.recording_url,
            &mut self.hangup_reason,
            &mut self.error_message,
        ]
        .into_iter()
        .flatten()
        {
            strip_nul(s);
        }
        for v in [
            &mut self.extracted_data,
            &mut self.recipient_data,
            &mut self.raw,
        ]
        .into_iter()
        .flatten()
        {
            strip_nul_json(v);
        }
        for n in [&mut self.from_number, &mut self.to_number] {
            if n.as_ref().is_some_and(|v| {
                v.len() > MAX_NUMBER_LEN
                    || !v.chars().all(|c| {
                        c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | '/' | '(' | ')' | ' ')
                    })
            }) {
                *n = None;
            }
        }
        for t in [
            &mut self.started_at,
            &mut self.ended_at,
            &mut self.occurred_at,
        ]
        .into_iter()
        .flatten()
        {
            *t = crate::time::clamp_reported(*t);
        }
        self.duration_seconds = self
            .duration_seconds
            .filter(|d| d.is_finite() && (0.0..=MAX_DURATION_SECONDS).contains(d));
        self.cost = self.cost.filter(|c| c.is_finite() && *c >= 0.0);
        self
    }
}

fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
}

fn strip_nul_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => strip_nul(s),
        Value::Array(items) => items.iter_mut().for_each(strip_nul_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
                for (mut k, val) in entries {
                    strip_nul(&mut k);
                    map.insert(k, val);
                }
            }
            map.values_mut().for_each(strip_nul_json);
        }
        _ => {}
    }
}

/// Empty strings from providers mean "nothing yet" (Bolna sends `recording_url: ""`).
pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sanitizing_removes_nul_and_nonsense() {
        let mut r = CallReport::new(Provider::Bolna, "ex\u{0}1", CallStatus::Completed);
        r.transcript = Some("hi\u{0} there".into());
        r.raw = Some(json!({"a\u{0}b": ["x\u{0}y", {"k": "\u{0}"}]}));
        r.to_number = Some("not a number <script>".into());
        r.from_number = Some("+1 650 253 0000".into());
        r.duration_seconds = Some(-5.0);
        r.cost = Some(f64::NAN);
        r.occurred_at = Some(DateTime::<Utc>::MAX_UTC);
        let r = r.sanitized();
        assert_eq!(r.execution_id, "ex1");
        assert_eq!(r.transcript.as_deref(), Some("hi there"));
        assert_eq!(r.raw, Some(json!({"ab": ["xy", {"k": ""}]})));
        assert_eq!(r.to_number, None);
        assert!(r.from_number.is_some());
        assert_eq!((r.duration_seconds, r.cost), (None, None));
        assert!(r.occurred_at.unwrap() < Utc::now() + chrono::Duration::days(2));
    }
}
