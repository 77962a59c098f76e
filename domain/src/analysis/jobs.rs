//! The analysis lane's job, and the call-transition hook that enqueues it: a call reaching
//! its first terminal status with a transcript gets exactly one analysis job, in the same
//! transaction as the change, however many duplicate or out-of-order reports follow (a
//! later terminal status is a move from terminal to terminal, which enqueues nothing).

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::service;
use crate::calls::transition::{FollowUp, Transition};
use crate::error::DomainResult;
use crate::jobs::{self, Job, JobRun, Lane, Outcome, queue::NewJob};
use crate::services::Services;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalyzeCall {
    pub tenant_id: Uuid,
    pub call_id: Uuid,
    /// A re-analysis asked for: analyse even if the call has its analysis.
    #[serde(default)]
    pub again: bool,
}

impl Job for AnalyzeCall {
    type Context = Services;
    const KIND: &'static str = "analyze_call";
    const LANE: Lane = Lane::Analysis;
    /// At most three tries, then the analysis is FAILED with its error.
    const MAX_ATTEMPTS: i32 = 3;
    /// An LLM analysis may take a few requests (a step down the ladder, a repair), each
    /// up to `LLM_TIMEOUT_SECONDS`.
    const TIMEOUT: Duration = Duration::from_secs(600);

    fn retry_in(attempt: i32) -> Duration {
        jobs::backoff(attempt, Duration::from_secs(2), Duration::from_secs(60))
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn subject(&self) -> Option<Uuid> {
        Some(self.call_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        match service::analyse(services, self.tenant_id, self.call_id, self.again).await {
            Ok(_) => Ok(Outcome::Done),
            Err(service::AnalyseError::Llm(e)) if e.is_retryable() => Ok(Outcome::Retry {
                after: e
                    .retry_after()
                    .unwrap_or_else(|| Self::retry_in(_run.attempt))
                    .clamp(Duration::from_secs(1), Duration::from_secs(600)),
                spend_attempt: true,
                reason: e.to_string(),
            }),
            Err(service::AnalyseError::Llm(e)) => {
                // Retrying cannot help (quota, a refused request, an answer that is not
                // the JSON asked for after its repair): FAILED now, with the reason.
                let reason = e.to_string();
                service::fail(services.db(), self.tenant_id, self.call_id, &reason)
                    .await
                    .context("recording the failed analysis")?;
                Ok(Outcome::Fail(reason))
            }
            Err(service::AnalyseError::Domain(e)) => Err(e).context("analysing the call"),
        }
    }

    async fn gave_up(self, services: &Services, error: &str) -> anyhow::Result<()> {
        service::fail(services.db(), self.tenant_id, self.call_id, error)
            .await
            .context("recording the failed analysis")
    }
}

/// The call-transition hook of analysis.
pub struct AnalysisFollowUp;

impl FollowUp for AnalysisFollowUp {
    fn jobs(&self, t: &Transition) -> DomainResult<Vec<NewJob>> {
        if !t.status.is_terminal() || t.previous.is_some_and(|p| p.is_terminal()) {
            return Ok(Vec::new());
        }
        // Busy, unanswered and failed calls have nothing to analyse.
        if t.call
            .transcript
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
        {
            return Ok(Vec::new());
        }
        Ok(vec![jobs::new_job(
            &AnalyzeCall {
                tenant_id: t.call.tenant_id,
                call_id: t.call.id,
                again: false,
            },
            chrono::Utc::now(),
        )?])
    }
}

/// Rescores a tenant's customers after its scoring rules changed, a chunk per run; each
/// run enqueues the next.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RescoreCustomers {
    pub tenant_id: Uuid,
    /// The last customer id done.
    pub after: Option<Uuid>,
}

impl Job for RescoreCustomers {
    type Context = Services;
    const KIND: &'static str = "rescore_customers";
    const LANE: Lane = Lane::Analysis;
    const MAX_ATTEMPTS: i32 = 5;
    const TIMEOUT: Duration = Duration::from_secs(300);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let next = super::scores::rescore_chunk(services.db(), self.tenant_id, self.after)
            .await
            .context("rescoring customers")?;
        if let Some(after) = next {
            jobs::enqueue(
                services.db(),
                &RescoreCustomers {
                    tenant_id: self.tenant_id,
                    after: Some(after),
                },
                chrono::Utc::now(),
            )
            .await
            .context("enqueueing the next chunk")?;
            jobs::wake(Lane::Analysis);
        }
        Ok(Outcome::Done)
    }
}

/// Re-analyses a chunk of the calls a `reanalyzeCalls` task covers, updates the task's
/// counts, and enqueues the next chunk (or ends the task).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReanalyzeCalls {
    pub tenant_id: Uuid,
    pub task_id: Uuid,
    pub filter: crate::calls::CallFilter,
    /// The last call id done.
    pub after: Option<Uuid>,
}

impl ReanalyzeCalls {
    /// The task kind users see.
    pub const TASK: &'static str = "reanalyze_calls";
    /// Calls one run takes.
    const CHUNK: u64 = 50;
    /// Analyses one run makes at once (an LLM's own caps still apply).
    const PARALLEL: usize = 4;
}

impl Job for ReanalyzeCalls {
    type Context = Services;
    const KIND: &'static str = "reanalyze_calls";
    const LANE: Lane = Lane::Analysis;
    const MAX_ATTEMPTS: i32 = 5;
    const TIMEOUT: Duration = Duration::from_secs(600);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        use futures_util::StreamExt;
        let db = services.db();
        let ids = crate::calls::repo::analysable_ids(
            db,
            self.tenant_id,
            &self.filter,
            self.after,
            Self::CHUNK,
        )
        .await
        .context("listing the calls to re-analyse")?;
        let results: Vec<bool> = futures_util::stream::iter(ids.iter().copied())
            .map(|id| async move {
                match service::analyse(services, self.tenant_id, id, true).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(call.id = %id, error = %e, "re-analysis of a call failed");
                        false
                    }
                }
            })
            .buffer_unordered(Self::PARALLEL)
            .collect()
            .await;
        let done = results.iter().filter(|ok| **ok).count() as i64;
        let failed = results.len() as i64 - done;
        crate::tasks::advance(db, self.task_id, done, failed)
            .await
            .context("recording progress")?;
        match ids.last() {
            Some(last) if ids.len() as u64 == Self::CHUNK => {
                jobs::enqueue(
                    db,
                    &ReanalyzeCalls {
                        after: Some(*last),
                        ..self
                    },
                    chrono::Utc::now(),
                )
                .await
                .context("enqueueing the next chunk")?;
                jobs::wake(Lane::Analysis);
            }
            _ => {
                crate::tasks::finish(db, self.task_id, crate::types::TaskStatus::Succeeded, None)
                    .await
                    .context("ending the task")?;
            }
        }
        Ok(Outcome::Done)
    }

    async fn gave_up(self, services: &Services, error: &str) -> anyhow::Result<()> {
        crate::tasks::finish(
            services.db(),
            self.task_id,
            crate::types::TaskStatus::Failed,
            Some(error),
        )
        .await
        .context("ending the task")
    }
}
