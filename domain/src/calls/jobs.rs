//! The calls lane's jobs (placing and following a call) and the sweeps for calls nothing
//! else moves.

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{follow, place, place_many, sweep};
use crate::jobs::{Job, JobRun, Lane, Outcome};
use crate::services::Services;
use crate::types::CallStatus;

/// Places a queued call with its provider. When its last attempt fails the call ends
/// FAILED with the error instead of staying queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaceCall {
    pub tenant_id: Uuid,
    pub call_id: Uuid,
}

impl Job for PlaceCall {
    type Context = Services;
    const KIND: &'static str = "place_call";
    const LANE: Lane = Lane::Calls;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(180);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn subject(&self) -> Option<Uuid> {
        Some(self.call_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        place::place(services, self.tenant_id, self.call_id).await
    }

    async fn gave_up(self, services: &Services, error: &str) -> anyhow::Result<()> {
        let reason = format!("the call could not be placed: {error}");
        place::end_unplaced(services, self.call_id, CallStatus::Failed, &reason)
            .await
            .context("failing the call")
    }
}

/// Places a campaign round's queued calls together (at most `place_many::BATCH`): one
/// claim of their slots, the provider requests concurrently, one transaction recording
/// them. Calls left waiting for a slot keep the job snoozed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaceCalls {
    pub tenant_id: Uuid,
    pub call_ids: Vec<Uuid>,
}

impl PlaceCalls {
    /// The jobs placing `call_ids`, a batch each.
    pub(crate) fn batches(tenant_id: Uuid, call_ids: &[Uuid]) -> Vec<PlaceCalls> {
        call_ids
            .chunks(place_many::BATCH)
            .map(|ids| PlaceCalls {
                tenant_id,
                call_ids: ids.to_vec(),
            })
            .collect()
    }
}

impl Job for PlaceCalls {
    type Context = Services;
    const KIND: &'static str = "place_calls";
    const LANE: Lane = Lane::Calls;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(180);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        place_many::place_many(services, self.tenant_id, &self.call_ids).await
    }

    async fn gave_up(self, services: &Services, error: &str) -> anyhow::Result<()> {
        let reason = format!("the call could not be placed: {error}");
        place_many::end_unplaced_many(services, self.tenant_id, &self.call_ids, &reason)
            .await
            .context("failing the calls")
    }
}

/// Polls a placed call's provider until the call ends, 15 s, 30 s, 60 s ... apart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowCall {
    pub tenant_id: Uuid,
    pub call_id: Uuid,
    #[serde(default)]
    pub attempt: u32,
}

impl Job for FollowCall {
    type Context = Services;
    const KIND: &'static str = "follow_call";
    const LANE: Lane = Lane::Calls;
    const MAX_ATTEMPTS: i32 = 3;
    const TIMEOUT: Duration = Duration::from_secs(120);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn subject(&self) -> Option<Uuid> {
        Some(self.call_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        follow::poll(services, self).await?;
        Ok(Outcome::Done)
    }
}

/// Refreshes calls quiet for longer than `STALE_CALL_SECONDS` (a lost webhook).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StaleCalls {}

impl Job for StaleCalls {
    type Context = Services;
    const KIND: &'static str = "stale_calls";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 1;
    const TIMEOUT: Duration = Duration::from_secs(600);

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let sweep = sweep::sweep_stale(services, 200)
            .await
            .context("sweeping stale calls")?;
        if sweep.found > 0 {
            tracing::info!(?sweep, "refreshed stale calls");
        }
        Ok(Outcome::Done)
    }
}

/// Fails calls nothing will move (queued with no placement job, placement interrupted).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StuckCalls {}

impl Job for StuckCalls {
    type Context = Services;
    const KIND: &'static str = "stuck_calls";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 1;
    const TIMEOUT: Duration = Duration::from_secs(300);

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let sweep = sweep::sweep_stuck(services, 200)
            .await
            .context("sweeping stuck calls")?;
        if sweep.unplaced + sweep.interrupted > 0 {
            tracing::warn!(?sweep, "failed calls nothing would move");
        }
        Ok(Outcome::Done)
    }
}
