//! Bolna's wire format. Every field is optional: the docs, the OpenAPI and real payloads
//! disagree on names and types, and webhooks arrive before fields are filled.

use serde::{Deserialize, Deserializer};

/// The execution object: `GET /executions/{id}`, list items and webhook bodies.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Execution {
    #[serde(default, alias = "execution_id")]
    pub id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// Also spelled `conversation_time` in older docs.
    #[serde(
        default,
        alias = "conversation_time",
        deserialize_with = "number_or_string"
    )]
    pub conversation_duration: Option<f64>,
    #[serde(default, deserialize_with = "number_or_string")]
    pub total_cost: Option<f64>,
    #[serde(default)]
    pub error_message: Option<String>,
    #[serde(default)]
    pub answered_by_voice_mail: Option<bool>,
    #[serde(default)]
    pub transcript: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub telephony_data: Option<TelephonyData>,
    #[serde(default)]
    pub extracted_data: Option<serde_json::Value>,
    /// A JSON *string* in some payloads.
    #[serde(default)]
    pub agent_extraction: Option<serde_json::Value>,
    #[serde(default)]
    pub context_details: Option<ContextDetails>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TelephonyData {
    /// A string of digits in the schema, a number in some examples.
    #[serde(default, deserialize_with = "number_or_string")]
    pub duration: Option<f64>,
    #[serde(default)]
    pub to_number: Option<String>,
    #[serde(default)]
    pub from_number: Option<String>,
    #[serde(default)]
    pub recording_url: Option<String>,
    #[serde(default)]
    pub provider_call_id: Option<String>,
    #[serde(default)]
    pub call_type: Option<String>,
    #[serde(default)]
    pub hangup_by: Option<String>,
    #[serde(default)]
    pub hangup_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContextDetails {
    #[serde(default)]
    pub recipient_data: Option<serde_json::Value>,
    #[serde(default)]
    pub recipient_phone_number: Option<String>,
}

/// `GET /v2/agent/{agent_id}/executions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExecutionList {
    #[serde(default)]
    pub page_number: Option<u32>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub data: Vec<serde_json::Value>,
}

/// An item of `GET /v2/agent/all` (a bare array).
#[derive(Debug, Clone, Deserialize)]
pub struct AgentItem {
    pub id: String,
}

/// `POST /call`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlaceCallResponse {
    pub execution_id: String,
}

/// Accepts `42`, `42.5`, `"42"`, `""` and `null`.
fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(f64),
        Str(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<NumOrStr>::deserialize(d)? {
        Some(NumOrStr::Num(n)) if n.is_finite() => Some(n),
        Some(NumOrStr::Str(s)) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    })
}
