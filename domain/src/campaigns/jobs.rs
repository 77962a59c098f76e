//! The campaigns lane: a dispatcher per running campaign, and the bookkeeping of each
//! campaign call that ended (enqueued by the call-transition hook in the same transaction
//! as the ending, so none is lost).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{dispatch, finish};
use crate::calls::transition::{FollowUp, Transition};
use crate::error::DomainResult;
use crate::jobs::{self, Job, JobRun, Lane, Outcome, queue::NewJob};
use crate::services::Services;

/// Dials a running campaign's due items while its caps have room, snoozing in between.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DispatchCampaign {
    pub tenant_id: Uuid,
    pub campaign_id: Uuid,
}

impl Job for DispatchCampaign {
    type Context = Services;
    const KIND: &'static str = "campaign_dispatch";
    const LANE: Lane = Lane::Campaigns;
    const MAX_ATTEMPTS: i32 = 20;
    const TIMEOUT: Duration = Duration::from_secs(120);

    fn retry_in(attempt: i32) -> Duration {
        jobs::backoff(attempt, Duration::from_secs(1), Duration::from_secs(30))
    }

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn subject(&self) -> Option<Uuid> {
        Some(self.campaign_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        dispatch::run(services, self.campaign_id).await
    }
}

/// A campaign call ended: finish, retry or requeue its item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishItem {
    pub tenant_id: Uuid,
    pub item_id: Uuid,
    pub call_id: Uuid,
}

impl Job for FinishItem {
    type Context = Services;
    const KIND: &'static str = "campaign_item_finished";
    const LANE: Lane = Lane::Campaigns;
    const MAX_ATTEMPTS: i32 = 10;
    const TIMEOUT: Duration = Duration::from_secs(60);

    fn tenant(&self) -> Option<Uuid> {
        Some(self.tenant_id)
    }

    fn subject(&self) -> Option<Uuid> {
        Some(self.item_id)
    }

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        finish::finish(services, self.item_id, self.call_id).await?;
        Ok(Outcome::Done)
    }
}

/// The call-transition hook of campaigns: a campaign call reaching its first terminal
/// status gets its item finished.
pub struct CampaignFollowUp;

impl FollowUp for CampaignFollowUp {
    fn jobs(&self, t: &Transition) -> DomainResult<Vec<NewJob>> {
        let Some(item_id) = t.call.campaign_item_id else {
            return Ok(Vec::new());
        };
        if !t.status.is_terminal() || t.previous.is_some_and(|p| p.is_terminal()) {
            return Ok(Vec::new());
        }
        Ok(vec![jobs::new_job(
            &FinishItem {
                tenant_id: t.call.tenant_id,
                item_id,
                call_id: t.call.id,
            },
            chrono::Utc::now(),
        )?])
    }
}
