//! A call's analysis as the API shows it, and the tenant's custom analysis fields.

use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::analysis::{fields::AnalysisField as DomainField, service};
use entity::call_analysis;

use super::context::{db, scope};
use super::enums::{AnalysisFieldType, AnalysisStatus, CallOutcome, JobStatus, Sentiment};
use super::error::GqlResultExt;

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

/// A custom field the analyzers fill in from each call.
#[derive(SimpleObject)]
pub struct AnalysisField {
    /// An identifier (`a-z`, `0-9`, `_`): the key in `extractedData`.
    pub name: String,
    /// What it means, in words an analyzer (or a person) can follow.
    pub description: String,
    #[graphql(name = "type")]
    pub kind: AnalysisFieldType,
    /// The allowed values of an ENUM field.
    pub values: Vec<String>,
}

impl From<DomainField> for AnalysisField {
    fn from(f: DomainField) -> Self {
        AnalysisField {
            name: f.name,
            description: f.description,
            kind: f.kind.into(),
            values: f.values,
        }
    }
}

#[derive(InputObject)]
pub struct AnalysisFieldInput {
    pub name: String,
    pub description: String,
    #[graphql(name = "type")]
    pub kind: AnalysisFieldType,
    /// Required for ENUM fields, and only for them.
    #[graphql(default)]
    pub values: Vec<String>,
}

/// A background job a user started (`reanalyzeCalls`), with its progress.
pub struct Job(pub entity::task::Model);

#[Object]
impl Job {
    async fn id(&self) -> async_graphql::ID {
        async_graphql::ID(self.0.id.to_string())
    }
    /// e.g. `reanalyze_calls`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn status(&self) -> JobStatus {
        self.0.status.into()
    }
    /// Items the job covers (counted when it started).
    async fn total(&self) -> i64 {
        self.0.total
    }
    /// Items done so far.
    async fn done(&self) -> i64 {
        self.0.done
    }
    /// Items that failed.
    async fn failed(&self) -> i64 {
        self.0.failed
    }
    /// Why the job FAILED.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

#[derive(Default)]
pub struct AnalysisQuery;

#[Object]
impl AnalysisQuery {
    /// The tenant's custom analysis fields (empty until an ADMIN sets them).
    async fn analysis_fields(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AnalysisField>> {
        let fields = service::fields(db(ctx)?, scope(ctx)?).await.gql()?;
        Ok(fields.into_iter().map(Into::into).collect())
    }

    /// A background job of this tenant (from `reanalyzeCalls`), or null.
    async fn job(
        &self,
        ctx: &Context<'_>,
        id: async_graphql::ID,
    ) -> async_graphql::Result<Option<Job>> {
        let id = super::error::parse_id("id", &id)?;
        Ok(domain::tasks::get(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(Job))
    }
}

#[derive(Default)]
pub struct AnalysisMutation;

#[Object]
impl AnalysisMutation {
    /// Analyses a finished call again with the tenant's current fields (in the background:
    /// `analysis` changes when it is done); the earlier analysis is kept as history.
    async fn reanalyze_call(
        &self,
        ctx: &Context<'_>,
        id: async_graphql::ID,
    ) -> async_graphql::Result<super::types::Call> {
        let id = super::error::parse_id("id", &id)?;
        service::reanalyze(db(ctx)?, scope(ctx)?, id)
            .await
            .map(super::types::Call::new)
            .gql()
    }

    /// Re-analyses the tenant's ended calls with a transcript that match `filter` (all of
    /// them without one; at most 100,000) in the background (MEMBER), with the tenant's
    /// current fields; each call keeps its earlier analyses as history. The returned job's
    /// `done` counts up; `job(id)` reads it again. One runs per tenant at a time.
    async fn reanalyze_calls(
        &self,
        ctx: &Context<'_>,
        filter: Option<super::calls::CallFilter>,
    ) -> async_graphql::Result<Job> {
        let filter = filter.unwrap_or_default().into_domain()?;
        service::reanalyze_calls(db(ctx)?, scope(ctx)?, filter)
            .await
            .map(Job)
            .gql()
    }

    /// Replaces the tenant's custom analysis fields (ADMIN); at most 30, names unique.
    async fn set_analysis_fields(
        &self,
        ctx: &Context<'_>,
        fields: Vec<AnalysisFieldInput>,
    ) -> async_graphql::Result<Vec<AnalysisField>> {
        let fields = fields
            .into_iter()
            .map(|f| DomainField {
                name: f.name,
                description: f.description,
                kind: f.kind.into(),
                values: f.values,
            })
            .collect();
        let stored = service::set_fields(db(ctx)?, scope(ctx)?, fields)
            .await
            .gql()?;
        Ok(stored.into_iter().map(Into::into).collect())
    }
}
