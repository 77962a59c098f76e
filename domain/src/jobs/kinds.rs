//! Every job kind of the product, registered once. Both the `workers` binary and the
//! worker embedded in the API run this list.

use std::time::Duration;

use super::Registry;
use crate::analysis::jobs::{AnalyzeCall, AnalyzeCalls, ReanalyzeCalls, RescoreCustomers};
use crate::calls::jobs::{FollowCall, PlaceCall, PlaceCalls, StaleCalls, StuckCalls};
use crate::campaigns::jobs::{DispatchCampaign, FinishItem};
use crate::crm::jobs::{CrmSync, PushCrmChanges, ScheduleCrmSyncs};
use crate::ingest::jobs::IngestReport;
use crate::outbound::jobs::{DeliverWebhooks, PruneWebhooks};
use crate::providers::simulator::playback::SimulatorReport;
use crate::services::Services;
use crate::settings::{CrmSettings, ProviderSettings};
use crate::sync::jobs::{Reconcile, ScheduleSyncs, SyncRun};

/// Analysis jobs one run takes together with the embedded analyzer (each holds the calls
/// of one commit; a run analyses them a batch at a time). With an LLM a job runs alone,
/// so a run stays well within its timeout.
pub const ANALYSIS_GATHER: usize = 32;

/// The product's job kinds, and how often the periodic ones run; `llm`: analyses are made
/// by an LLM.
pub fn product(providers: &ProviderSettings, crm: &CrmSettings, llm: bool) -> Registry<Services> {
    Registry::new()
        .register::<IngestReport>()
        .register::<SimulatorReport>()
        .register::<PlaceCall>()
        .register::<PlaceCalls>()
        .register::<FollowCall>()
        .register::<SyncRun>()
        .register::<DispatchCampaign>()
        .register::<FinishItem>()
        .register::<AnalyzeCall>()
        .register_gathering::<AnalyzeCalls>(if llm { 1 } else { ANALYSIS_GATHER })
        .register::<RescoreCustomers>()
        .register::<ReanalyzeCalls>()
        .register::<CrmSync>()
        .every::<StaleCalls>(Duration::from_secs(
            providers.stale_call_seconds.clamp(10, 300),
        ))
        .every::<StuckCalls>(Duration::from_secs(60))
        // Retries come due on their own; this finds them within a few seconds.
        .every::<DeliverWebhooks>(Duration::from_secs(2))
        .every::<PruneWebhooks>(Duration::from_secs(3600))
        .every::<ScheduleSyncs>(Duration::from_secs(providers.sync_interval_seconds))
        .every::<Reconcile>(Duration::from_secs(providers.reconcile_interval_seconds))
        .every::<ScheduleCrmSyncs>(Duration::from_secs(crm.sync_interval_seconds))
        // Changes made here reach the CRM within seconds, not at the next scheduled sync.
        .every::<PushCrmChanges>(Duration::from_secs(3))
}
