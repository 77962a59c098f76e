//! A call's analysis as the API shows it.

use std::sync::Arc;

use async_graphql::Object;
use chrono::{DateTime, Utc};
use entity::call_analysis;

use super::enums::{AnalysisStatus, CallOutcome, Sentiment};

pub struct LeadAnalysis(pub Arc<call_analysis::Model>);

/// What the call came to, by the analyzer named in `model`.
#[Object]
impl LeadAnalysis {
    /// How the customer sounded (null unless DONE).
    async fn sentiment(&self) -> Option<Sentiment> {
        self.0.sentiment.map(Into::into)
    }
    /// -1 (hostile) to 1 (delighted).
    async fn sentiment_score(&self) -> Option<f64> {
        self.0.sentiment_score
    }
    async fn outcome(&self) -> Option<CallOutcome> {
        self.0.outcome.map(Into::into)
    }
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    /// The tenant's custom fields by name; a field that could not be filled is null.
    async fn extracted_data(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.extracted_data.clone().map(async_graphql::Json)
    }
    /// The analyzer: `heuristic-v1`, or the LLM's model name.
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }
    async fn analyzed_at(&self) -> Option<DateTime<Utc>> {
        self.0.analyzed_at
    }
    async fn status(&self) -> AnalysisStatus {
        self.0.status.into()
    }
    /// Why it was SKIPPED or FAILED.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Tokens the analysis spent (0 for the heuristic analyzer).
    async fn prompt_tokens(&self) -> Option<i32> {
        self.0.prompt_tokens
    }
    async fn completion_tokens(&self) -> Option<i32> {
        self.0.completion_tokens
    }
    async fn latency_ms(&self) -> Option<i32> {
        self.0.latency_ms
    }
}
