//! What a job kind declares about itself, and what a run of it decides.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A group of job kinds with its own slots in every worker process, so that a slow kind
/// (a long sync) never holds up another (placing a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Placing and following calls.
    Calls,
    /// Applying provider reports (queued webhooks, the simulator's playback).
    Ingest,
    /// Sync runs.
    Sync,
    /// Campaign dispatch and the bookkeeping of campaign calls that ended.
    Campaigns,
    /// Post-call analysis (slow when an LLM answers, so it waits on no other lane).
    Analysis,
    /// Periodic sweeps and schedules, and kinds this build does not know.
    Maintenance,
    /// Outbound webhook deliveries (an integrator's slow endpoint holds up nothing else).
    Webhooks,
}

impl Lane {
    pub const ALL: [Lane; 7] = [
        Lane::Calls,
        Lane::Ingest,
        Lane::Sync,
        Lane::Campaigns,
        Lane::Analysis,
        Lane::Maintenance,
        Lane::Webhooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Calls => "calls",
            Lane::Ingest => "ingest",
            Lane::Sync => "sync",
            Lane::Campaigns => "campaigns",
            Lane::Analysis => "analysis",
            Lane::Maintenance => "maintenance",
            Lane::Webhooks => "webhooks",
        }
    }

    pub fn parse(s: &str) -> Option<Lane> {
        Lane::ALL.into_iter().find(|l| l.as_str() == s)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a job decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished.
    Done,
    /// Run again after `after`. With `spend_attempt: false` the run does not count towards
    /// the job's attempts (the job was not at fault: a provider asked it to wait).
    Retry {
        after: Duration,
        spend_attempt: bool,
        reason: String,
    },
    /// Give up for good; the reason stays on the job.
    Fail(String),
    /// Not yet: run again at this time without spending an attempt (waiting for a free
    /// slot, or for a time the provider named).
    Snooze(DateTime<Utc>),
}

/// The run being made of a job: which attempt, on which worker.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub id: Uuid,
    /// 1 on the first run.
    pub attempt: i32,
    pub max_attempts: i32,
    pub worker: String,
}

impl JobRun {
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// One kind of background job: the struct is its payload (stored as JSON), the constants
/// say where and how it runs. `run` must be idempotent: after a crash a job runs again.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What `run` gets besides the payload (`Services` for the product's jobs).
    type Context: Clone + Send + Sync + 'static;
    /// Stored in the queue; never rename a kind that may have jobs queued.
    const KIND: &'static str;
    const LANE: Lane;
    /// Runs (including the first) before the job ends failed.
    const MAX_ATTEMPTS: i32 = 3;
    /// A run taking longer is stopped and counts as a failed attempt.
    const TIMEOUT: Duration = Duration::from_secs(300);

    /// How long to wait before running again after failed attempt number `attempt`.
    fn retry_in(attempt: i32) -> Duration {
        backoff(attempt, Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Whose job this is: claims within a lane take tenants in turn.
    fn tenant(&self) -> Option<Uuid> {
        None
    }

    /// What it acts on (a call, ...), so a sweep can ask whether some job still will.
    fn subject(&self) -> Option<Uuid> {
        None
    }

    fn run(
        self,
        ctx: &Self::Context,
        run: &JobRun,
    ) -> impl Future<Output = anyhow::Result<Outcome>> + Send;

    /// Called once when the job has failed for good because its last attempt returned an
    /// error, panicked or timed out (not after [`Outcome::Fail`], which the job chose).
    fn gave_up(
        self,
        _ctx: &Self::Context,
        _error: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// A kind whose due jobs of one tenant one run may take together (see
/// `Registry::register_gathering`): a burst of small jobs costs one run, not one each.
/// The run's outcome is every gathered job's; `gave_up` runs for each job that ends
/// failed, with its own payload. Only first runs are gathered: after a gathered run
/// fails, each of its jobs is retried alone, so one bad job fails only itself.
pub trait Gather: Job {
    /// The one job doing the work of `jobs` (never empty; claimed in due order).
    fn gather(jobs: Vec<Self>) -> Self;
}

/// Exponential backoff with full jitter: up to `base * 2^attempt`, capped at `cap`.
pub fn backoff(attempt: i32, base: Duration, cap: Duration) -> Duration {
    let cap_ms = cap.as_millis().min(u64::MAX as u128) as u64;
    let exp = (base.as_millis() as u64)
        .saturating_mul(1u64 << attempt.clamp(0, 32) as u32)
        .min(cap_ms);
    let mut b = [0u8; 8];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b) % (exp + 1),
        Err(_) => exp / 2,
    };
    Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_jittered() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempt in -3..40 {
            assert!(backoff(attempt, base, cap) <= cap);
        }
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(5, base, cap)).collect();
        assert!(samples.len() > 1, "jitter should vary");
    }

    #[test]
    fn lanes_round_trip() {
        for lane in Lane::ALL {
            assert_eq!(Lane::parse(lane.as_str()), Some(lane));
        }
        assert_eq!(Lane::parse("nope"), None);
    }
}
