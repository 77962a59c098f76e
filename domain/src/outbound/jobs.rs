//! The webhooks lane's jobs: the delivery pump, and the pruning of old deliveries.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::jobs::{Job, JobRun, Lane, Outcome};
use crate::services::Services;

/// How long one pump sends before it ends (the next one takes over).
const PUMP_BUDGET: Duration = Duration::from_secs(30);

/// Sends due deliveries. Recorded events schedule one per 50 ms window; it runs past the
/// end of its window (`until`, ms since the epoch) so deliveries committed just after it
/// started are sent by it too. A periodic one catches retries as they come due.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeliverWebhooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

impl Job for DeliverWebhooks {
    type Context = Services;
    const KIND: &'static str = "webhooks_deliver";
    const LANE: Lane = Lane::Webhooks;
    const MAX_ATTEMPTS: i32 = 1;
    /// Past its budget a pump only waits for batches already out, each bounded by its
    /// lease (at most eight request timeouts and a minute): never cut off mid-batch.
    const TIMEOUT: Duration = Duration::from_secs(900);

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let deadline = Instant::now() + PUMP_BUDGET;
        super::deliver::pump(services, deadline)
            .await
            .context("delivering webhooks")?;
        if let Some(until) = self.until {
            let wait = until - chrono::Utc::now().timestamp_millis();
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait.min(1000) as u64)).await;
                super::deliver::pump(services, deadline)
                    .await
                    .context("delivering webhooks")?;
            }
        }
        Ok(Outcome::Done)
    }
}

/// Deletes finished deliveries, attempts and events past `WEBHOOK_RETENTION_DAYS`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneWebhooks {}

impl Job for PruneWebhooks {
    type Context = Services;
    const KIND: &'static str = "webhooks_prune";
    const LANE: Lane = Lane::Maintenance;
    const MAX_ATTEMPTS: i32 = 1;
    const TIMEOUT: Duration = Duration::from_secs(1800);

    async fn run(self, services: &Services, _run: &JobRun) -> anyhow::Result<Outcome> {
        let days = services.outbound().settings().retention_days;
        let n = super::log::prune(services.db(), days)
            .await
            .context("pruning webhook deliveries")?;
        if n > 0 {
            tracing::info!(rows = n, "pruned old webhook deliveries");
        }
        Ok(Outcome::Done)
    }
}
