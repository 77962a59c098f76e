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
    const TIMEOUT: Duration = Duration::from_secs(120);

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
        service::analyse(services.db(), self.tenant_id, self.call_id, self.again)
            .await
            .context("analysing the call")?;
        Ok(Outcome::Done)
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
