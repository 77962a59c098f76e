//! The analysis lane's jobs, and the call-transition hook that enqueues them: a call
//! reaching its first terminal status with a transcript is in exactly one analysis job
//! (a batch of its transaction's calls), enqueued in the same transaction as the change,
//! however many duplicate or out-of-order reports follow (a later terminal status is a
//! move from terminal to terminal, which enqueues nothing).

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::service;
use crate::calls::transition::{FollowUp, Transition};
use crate::error::DomainResult;
use crate::jobs::{self, Gather, Job, JobRun, Lane, Outcome, queue::NewJob};
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

/// The analysis of calls of one tenant that ended in one transaction, in one run (see
/// `batch`): a sync or a burst of reports costs a few statements per batch, not a dozen
/// per call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnalyzeCalls {
    pub tenant_id: Uuid,
    pub call_ids: Vec<Uuid>,
}

impl Job for AnalyzeCalls {
    type Context = Services;
    const KIND: &'static str = "analyze_calls";
    const LANE: Lane = Lane::Analysis;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(600);

    fn retry_in(attempt: i32) -> Duration {
        jobs::backoff(attempt, Duration::from_secs(2), Duration::from_secs(60))
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        // Gathered jobs hold more calls than one batch: a batch at a time keeps the
        // transcripts in memory bounded.
        for chunk in self.call_ids.chunks(AnalysisFollowUp::HEURISTIC_BATCH) {
            let batch = super::batch::analyse_many(services, self.tenant_id, chunk, false)
                .await
                .context("analysing the calls")?;
            // A call whose analyzer asked to wait (or timed out) goes on alone, so the
            // others' analyses stand; this run was its first try. Enqueued before the
            // next batch, so a later batch's error does not take it back.
            let later = super::batch::settle_failures(services, self.tenant_id, batch.failed)
                .await
                .context("recording failed analyses")?;
            let now = chrono::Utc::now();
            for (call_id, after, reason) in later {
                tracing::info!(call.id = %call_id, %reason, "analysis to be tried again");
                let at = now + chrono::Duration::from_std(after).unwrap_or_default();
                let mut alone = jobs::new_job(
                    &AnalyzeCall {
                        tenant_id: self.tenant_id,
                        call_id,
                        again: false,
                    },
                    at,
                )?;
                alone.max_attempts = (AnalyzeCall::MAX_ATTEMPTS - 1).max(1);
                jobs::queue::insert(services.db(), alone)
                    .await
                    .context("enqueueing a call's analysis")?;
            }
        }
        Ok(Outcome::Done)
    }

    async fn gave_up(self, services: &Services, error: &str) -> anyhow::Result<()> {
        for call_id in self.call_ids {
            service::fail(services.db(), self.tenant_id, call_id, error)
                .await
                .context("recording the failed analysis")?;
        }
        Ok(())
    }
}

/// Analysis jobs of one tenant that came due together run as one batch: under a burst of
/// reports each commit enqueues a job for its one or two completed calls. The runner
/// gathers jobs of one tenant key, which is the tenant's id.
impl Gather for AnalyzeCalls {
    fn gather(jobs: Vec<Self>) -> Self {
        let mut jobs = jobs.into_iter();
        let mut all = jobs.next().unwrap_or(AnalyzeCalls {
            tenant_id: Uuid::nil(),
            call_ids: Vec::new(),
        });
        for job in jobs {
            all.call_ids.extend(job.call_ids);
        }
        all
    }
}

/// The call-transition hook of analysis: the calls of a transaction that reached their
/// first terminal status with a transcript get analysis jobs, a batch per tenant.
pub struct AnalysisFollowUp {
    /// Calls per job: many with the embedded analyzer, fewer with an LLM so a batch ends
    /// well within its timeout.
    batch: usize,
    /// How long after the commit the job comes due.
    delay: chrono::Duration,
}

impl AnalysisFollowUp {
    /// Calls per job with the embedded analyzer.
    pub const HEURISTIC_BATCH: usize = 100;
    /// Calls per job with an LLM.
    pub const LLM_BATCH: usize = 8;
    /// With the embedded analyzer a job comes due this long after its commit, so the jobs
    /// of a burst of commits are due together and run gathered (`kinds::ANALYSIS_GATHER`):
    /// one run for a few dozen commits rather than one each. An LLM's jobs run alone and
    /// at once.
    pub const GATHER_WINDOW: chrono::Duration = chrono::Duration::milliseconds(200);

    pub fn new(llm: bool) -> Self {
        if llm {
            AnalysisFollowUp {
                batch: Self::LLM_BATCH,
                delay: chrono::Duration::zero(),
            }
        } else {
            AnalysisFollowUp {
                batch: Self::HEURISTIC_BATCH,
                delay: Self::GATHER_WINDOW,
            }
        }
    }

    fn wants(t: &Transition) -> bool {
        if !t.status.is_terminal() || t.previous.is_some_and(|p| p.is_terminal()) {
            return false;
        }
        // Busy, unanswered and failed calls have nothing to analyse.
        t.call
            .transcript
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty())
    }
}

impl FollowUp for AnalysisFollowUp {
    fn jobs(&self, t: &Transition) -> DomainResult<Vec<NewJob>> {
        self.jobs_for(std::slice::from_ref(t))
    }

    fn jobs_for(&self, changed: &[Transition]) -> DomainResult<Vec<NewJob>> {
        let mut by_tenant: std::collections::BTreeMap<Uuid, Vec<Uuid>> = Default::default();
        for t in changed.iter().filter(|t| Self::wants(t)) {
            by_tenant
                .entry(t.call.tenant_id)
                .or_default()
                .push(t.call.id);
        }
        let due = chrono::Utc::now() + self.delay;
        let mut out = Vec::new();
        for (tenant_id, ids) in by_tenant {
            for chunk in ids.chunks(self.batch.max(1)) {
                out.push(jobs::new_job(
                    &AnalyzeCalls {
                        tenant_id,
                        call_ids: chunk.to_vec(),
                    },
                    due,
                )?);
            }
        }
        Ok(out)
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
        let batch = super::batch::analyse_many(services, self.tenant_id, &ids, true)
            .await
            .context("re-analysing the calls")?;
        for (id, e) in &batch.failed {
            tracing::warn!(call.id = %id, error = %e, "re-analysis of a call failed");
        }
        let failed = batch.failed.len() as i64;
        let done = ids.len() as i64 - failed;
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
