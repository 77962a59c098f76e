//! The embedded default's demo data: one tenant with a simulator agent, and something to look
//! at on the first start: the simulator's last two days synced in (a few dozen customers,
//! finished calls with transcripts and summaries, analysed by the worker's analysis jobs) and
//! one simulator campaign running in real time.

use chrono::{Duration, Utc};
use sea_orm::DatabaseConnection;

use crate::agents::{self, NewAgent};
use crate::campaigns::service::{self as campaigns, CreateCampaign};
use crate::error::DomainResult;
use crate::services::Services;
use crate::sync::{self, TriggerSync};
use crate::tenancy::{self, IssuedKey, NewTenant, TenantScope};
use crate::types::{Provider, SyncTrigger};

/// How far back the demo's first sync reaches: the simulator's history holds a call about
/// every hour, so two days give a few dozen customers.
const DEMO_HISTORY_HOURS: i64 = 48;
/// Leads of the demo campaign (numbers in the fictional 555-01xx range).
const DEMO_CAMPAIGN_LEADS: usize = 12;

/// The demo tenant, just created.
pub struct Demo {
    /// Its ADMIN key, to be shown once.
    pub key: IssuedKey,
    scope: TenantScope,
    agent_id: uuid::Uuid,
}

/// Creates the demo tenant when the database has no tenant at all; `None` when tenants
/// already exist.
pub async fn demo_tenant_if_empty(db: &DatabaseConnection) -> DomainResult<Option<Demo>> {
    if tenancy::count_tenants(db).await? > 0 {
        return Ok(None);
    }
    let (tenant, key) = tenancy::create_tenant(
        db,
        NewTenant {
            name: "Demo".into(),
            default_region: "US".into(),
            timezone: "UTC".into(),
            concurrency_limit: 10,
        },
    )
    .await?;
    let scope = TenantScope::system(&tenant)?;
    let agent = agents::create(
        db,
        &scope,
        NewAgent {
            name: "Demo simulator agent".into(),
            provider: Provider::Simulator,
            provider_agent_id: None,
            business_name: Some("Switchboard Demo".into()),
        },
    )
    .await?;
    Ok(Some(Demo {
        key,
        scope,
        agent_id: agent.id,
    }))
}

/// Starts the demo's activity: a sync of the simulator's recent history and a running
/// campaign. Both are jobs, so the worker (embedded or not) carries them out.
pub async fn demo_activity(services: &Services, demo: &Demo) -> DomainResult<()> {
    let now = Utc::now();
    sync::trigger(
        services.db(),
        &demo.scope,
        TriggerSync {
            provider: Provider::Simulator,
            since: Some(now - Duration::hours(DEMO_HISTORY_HOURS)),
            until: Some(now),
            dry_run: false,
        },
        SyncTrigger::Manual,
    )
    .await?;
    let mut csv = String::from("phone_number,name\n");
    for (i, name) in DEMO_NAMES
        .iter()
        .cycle()
        .take(DEMO_CAMPAIGN_LEADS)
        .enumerate()
    {
        csv.push_str(&format!("+1212555{:04},{name}\n", 100 + i));
    }
    let report = campaigns::create(
        services,
        &demo.scope,
        CreateCampaign {
            name: "Demo campaign".into(),
            agent_id: Some(demo.agent_id),
            concurrency_limit: Some(3),
            max_attempts: Some(1),
            retry_delay_minutes: Vec::new(),
            retry_on: None,
            calling_window: None,
            timezone: None,
            dry_run: false,
            ..CreateCampaign::default()
        },
        csv.as_bytes(),
    )
    .await?;
    if let Some(campaign) = report.campaign {
        campaigns::start(services, &demo.scope, campaign.id).await?;
    }
    Ok(())
}

const DEMO_NAMES: [&str; 12] = [
    "Ada Byron",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "John Backus",
    "Radia Perlman",
    "Ken Thompson",
    "Margaret Hamilton",
    "Dennis Ritchie",
];
