//! Post-call analysis: what a call's transcript says (outcome, sentiment, a summary and the
//! tenant's custom fields). `transcript` splits a transcript into turns; `heuristic` is the
//! embedded analyzer used when no LLM is configured; `extract` fills custom fields from
//! text; `fields` holds the tenant's field definitions and their validation; `batch` runs
//! and stores the analyses of many calls of a tenant at once, `service` the rest of the
//! API; `jobs` holds the analysis lane's jobs and their transition hook.

pub mod batch;
pub mod effects;
pub mod extract;
pub mod fields;
pub mod heuristic;
pub mod jobs;
pub mod llm;
pub mod scores;
pub mod scoring;
pub mod service;
pub mod transcript;

use serde_json::{Map, Value};

use crate::types::{CallOutcome, Sentiment};

/// What an analyzer concluded about one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub sentiment: Sentiment,
    /// -1 (hostile) to 1 (delighted).
    pub sentiment_score: f64,
    pub outcome: CallOutcome,
    pub summary: String,
    /// The tenant's custom fields by name; a field the analyzer could not fill is null.
    pub extracted: Map<String, Value>,
    /// Which analyzer (and version) produced it, e.g. `heuristic-v1`.
    pub model: String,
}

/// Fewer words than this (or no customer turn) is not worth analysing.
pub const MIN_WORDS: usize = 5;

/// The sentiment a score in -1..1 falls in.
pub fn sentiment_of(score: f64) -> Sentiment {
    if score > 0.15 {
        Sentiment::Positive
    } else if score < -0.15 {
        Sentiment::Negative
    } else {
        Sentiment::Neutral
    }
}
