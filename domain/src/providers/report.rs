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

/// Empty strings from providers mean "nothing yet" (Bolna sends `recording_url: ""`).
pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}
