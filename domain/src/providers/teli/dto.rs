//! Teli's wire format (Retell-shaped). Every field is optional.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Call {
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub voice_agent_id: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub from_number: Option<String>,
    #[serde(default)]
    pub to_number: Option<String>,
    #[serde(default)]
    pub call_status: Option<String>,
    /// Epoch milliseconds.
    #[serde(default)]
    pub start_timestamp: Option<f64>,
    #[serde(default)]
    pub end_timestamp: Option<f64>,
    #[serde(default)]
    pub duration_ms: Option<f64>,
    #[serde(default)]
    pub disconnection_reason: Option<String>,
    #[serde(default)]
    pub recording_url: Option<String>,
    #[serde(default)]
    pub transcript: Option<String>,
    #[serde(default)]
    pub extracted_fields: Option<serde_json::Value>,
    #[serde(default)]
    pub call_analysis: Option<CallAnalysis>,
    #[serde(default)]
    pub call_analyzed_at: Option<String>,
    #[serde(default)]
    pub call_cost: Option<CallCost>,
    #[serde(default)]
    pub dynamic_variables: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallAnalysis {
    #[serde(default)]
    pub call_summary: Option<String>,
    #[serde(default)]
    pub custom_analysis_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallCost {
    #[serde(default)]
    pub combined_cost: Option<f64>,
}

/// `GET /v1/voice/calls`.
#[derive(Debug, Clone, Deserialize)]
pub struct CallList {
    #[serde(default)]
    pub calls: Vec<serde_json::Value>,
}

/// `GET /v1/voice/calls/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct CallEnvelope {
    pub call: serde_json::Value,
}
