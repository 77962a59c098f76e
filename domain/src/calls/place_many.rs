//! Placing a campaign round's calls as one job: one read of the calls, one do-not-call
//! check, one claim of all their slots, the provider requests concurrently (under the
//! provider's own request budget), and one transaction recording the placed calls with
//! the jobs that follow them. A round of hundreds of calls thus costs a handful of
//! statements instead of a dozen per call. The rules are `place::place`'s: checked again at
//! the moment of dialling, never sent twice, a refusal before the provider took the call
//! waits without spending an attempt.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use entity::call;
use futures_util::StreamExt;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::follow;
use super::live;
use super::place::{self, end_unplaced};
use super::transition::AfterCommit;
use crate::campaigns::finish::{self, AMBIGUOUS_PLACEMENT};
use crate::campaigns::repo::listed_numbers;
use crate::credits::{self, BALANCE_REASON};
use crate::db::Binder;
use crate::error::DomainResult;
use crate::jobs::{self, Outcome};
use crate::providers::registry::ProviderLookupError;
use crate::providers::{PlaceCall, ProviderError};
use crate::services::Services;
use crate::types::{CallStatus, LeadStatus, Provider};

/// Calls one placement job carries at most (a dispatch round is split into such jobs, so
/// several runners place one round together).
pub(crate) const BATCH: usize = 50;
/// Provider requests in flight at once from one job.
const PARALLEL: usize = 25;

/// Calls placed together: one provider, one campaign (or none).
type Group = (Provider, Option<Uuid>);

/// Why a call of the batch was not placed this run and waits.
enum Wait {
    /// A cap is full.
    Slot,
    /// The provider refused before taking the call.
    Provider(Duration, String),
}

/// Places the queued calls among `call_ids` (of `tenant_id`). Calls already placed, ended
/// or being placed elsewhere are left alone, so the job may run again after a crash.
pub(crate) async fn place_many(
    services: &Services,
    tenant_id: Uuid,
    call_ids: &[Uuid],
) -> anyhow::Result<Outcome> {
    let db = services.db();
    let mut found: HashMap<Uuid, call::Model> = call::Entity::find()
        .filter(call::Column::TenantId.eq(tenant_id))
        .filter(call::Column::Id.is_in(call_ids.iter().copied()))
        .all(db)
        .await
        .context("loading the calls")?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let mut ready = Vec::new();
    for id in call_ids {
        let Some(model) = found.remove(id) else {
            continue;
        };
        if model.provider_execution_id.is_some() {
            continue;
        }
        if model.placing_since.is_some() {
            // A previous run died between sending and recording: the provider may have
            // the call, so sending again could ring the customer twice.
            let reason =
                format!("the worker stopped while placing this call; {AMBIGUOUS_PLACEMENT}");
            end_unplaced(services, model.id, CallStatus::Failed, &reason).await?;
            continue;
        }
        if model.status_rank != CallStatus::Queued.rank() {
            continue;
        }
        if model.to_number.is_none() {
            end_unplaced(
                services,
                model.id,
                CallStatus::Failed,
                "the call has no number",
            )
            .await?;
            continue;
        }
        ready.push(model);
    }
    let ready = drop_do_not_call(services, tenant_id, ready).await?;
    let mut waits = Vec::new();
    // A round's calls share one agent, so this is one group; any mix is still handled.
    let mut groups: Vec<(Group, Vec<call::Model>)> = Vec::new();
    for model in ready {
        let key = (model.provider, model.campaign_id);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(model),
            None => groups.push((key, vec![model])),
        }
    }
    for ((provider, campaign_id), models) in groups {
        place_group(
            services,
            tenant_id,
            provider,
            campaign_id,
            models,
            &mut waits,
        )
        .await?;
    }
    Ok(outcome(&waits))
}

/// What the job does next given the calls left waiting.
fn outcome(waits: &[Wait]) -> Outcome {
    let deferred = waits.iter().find_map(|w| match w {
        Wait::Provider(after, why) => Some((*after, why.clone())),
        Wait::Slot => None,
    });
    if let Some((after, reason)) = deferred {
        return Outcome::Retry {
            after,
            spend_attempt: false,
            reason,
        };
    }
    if waits.is_empty() {
        return Outcome::Done;
    }
    let wait = jobs::backoff(3, Duration::from_millis(100), Duration::from_millis(800));
    Outcome::Snooze(
        Utc::now()
            + chrono::Duration::from_std(wait + Duration::from_millis(200)).unwrap_or_default(),
    )
}

/// Ends the calls whose number may no longer be called (on the do-not-call list, or the
/// customer marked DO_NOT_CALL since the call was queued); returns the others.
async fn drop_do_not_call(
    services: &Services,
    tenant_id: Uuid,
    ready: Vec<call::Model>,
) -> anyhow::Result<Vec<call::Model>> {
    if ready.is_empty() {
        return Ok(ready);
    }
    let db = services.db();
    let phones: Vec<&str> = ready
        .iter()
        .filter_map(|m| m.to_number.as_deref())
        .collect();
    let listed = listed_numbers(db, tenant_id, &phones)
        .await
        .context("reading the do-not-call list")?;
    let customer_ids: Vec<Uuid> = ready.iter().filter_map(|m| m.customer_id).collect();
    let refused: HashSet<Uuid> = if customer_ids.is_empty() {
        HashSet::new()
    } else {
        entity::customer::Entity::find()
            .filter(entity::customer::Column::Id.is_in(customer_ids))
            .filter(entity::customer::Column::Status.eq(LeadStatus::DoNotCall))
            .all(db)
            .await
            .context("loading the calls' customers")?
            .into_iter()
            .map(|c| c.id)
            .collect()
    };
    let mut keep = Vec::with_capacity(ready.len());
    for model in ready {
        let reason = if model
            .to_number
            .as_deref()
            .is_some_and(|n| listed.contains(n))
        {
            Some("the number is on the do-not-call list")
        } else if model.customer_id.is_some_and(|c| refused.contains(&c)) {
            Some("the customer is marked DO_NOT_CALL")
        } else {
            None
        };
        match reason {
            Some(reason) => end_unplaced(services, model.id, CallStatus::Canceled, reason).await?,
            None => keep.push(model),
        }
    }
    Ok(keep)
}

/// Claims slots for, sends and records calls of one provider and one campaign.
async fn place_group(
    services: &Services,
    tenant_id: Uuid,
    provider: Provider,
    campaign_id: Option<Uuid>,
    models: Vec<call::Model>,
    waits: &mut Vec<Wait>,
) -> anyhow::Result<()> {
    let db = services.db();
    let client = match services.providers().for_tenant(tenant_id, provider).await {
        Ok(c) => c,
        Err(ProviderLookupError::Provider(e)) => {
            for m in &models {
                end_unplaced(services, m.id, CallStatus::Failed, &e.to_string()).await?;
            }
            return Ok(());
        }
        Err(ProviderLookupError::Domain(e)) => {
            return Err(e).context("loading the provider's credentials");
        }
    };
    let ids: Vec<Uuid> = models.iter().map(|m| m.id).collect();
    let cap = services.providers().settings().system_concurrent_calls;
    let claim = live::claim_slots(db, &ids, cap)
        .await
        .context("claiming concurrency slots")?;
    if let Some(status) = claim.stopped {
        let reason = format!("the campaign is {status}; the call was not placed");
        for m in &models {
            end_unplaced(services, m.id, CallStatus::Canceled, &reason).await?;
        }
        return Ok(());
    }
    let claimed: HashSet<Uuid> = claim.claimed.iter().copied().collect();
    let (go, wait): (Vec<call::Model>, Vec<call::Model>) =
        models.into_iter().partition(|m| claimed.contains(&m.id));
    waits.extend(wait.iter().map(|_| Wait::Slot));
    // The tenant's credit: with their slots held, a reserve for each call. Those without
    // one give their slot back and end; campaign items return to their queue without
    // spending an attempt, and the dispatcher pauses the campaign if need be.
    let short: HashSet<Uuid> =
        credits::reserve(db, tenant_id, &go.iter().map(|m| m.id).collect::<Vec<_>>())
            .await
            .context("reserving credit")?
            .into_iter()
            .collect();
    let go = if short.is_empty() {
        go
    } else {
        let (unpaid, go): (Vec<call::Model>, Vec<call::Model>) =
            go.into_iter().partition(|m| short.contains(&m.id));
        live::release_unplaced_many(db, &unpaid.iter().map(|m| m.id).collect::<Vec<_>>()).await?;
        for m in &unpaid {
            end_unplaced(services, m.id, CallStatus::BalanceLow, BALANCE_REASON).await?;
        }
        go
    };
    let results: Vec<(call::Model, Result<String, ProviderError>)> = futures_util::stream::iter(go)
        .map(|m| {
            let client = client.clone();
            async move {
                let placed = client
                    .place_call(PlaceCall {
                        provider_agent_id: m.provider_agent_id.clone().unwrap_or_default(),
                        to_number: m.to_number.clone().unwrap_or_default(),
                        from_number: None,
                        variables: m.variables.clone().unwrap_or(json!({})),
                    })
                    .await
                    .map(|p| p.execution_id);
                (m, placed)
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut placed = Vec::new();
    let mut failed = Vec::new();
    for (m, r) in results {
        match r {
            Ok(execution_id) => placed.push((m, execution_id)),
            Err(e) => failed.push((m, e)),
        }
    }
    if let Some(c) = campaign_id {
        let dials: Vec<(bool, String)> = placed
            .iter()
            .map(|_| (false, String::new()))
            .chain(
                failed
                    .iter()
                    .filter(|(_, e)| place::is_provider_failure(e))
                    .map(|(_, e)| (true, e.to_string())),
            )
            .collect();
        finish::record_dials(services, c, &dials).await?;
    }
    record_placed(services, provider, &placed).await?;
    let mut release = Vec::new();
    for (m, e) in failed {
        match e {
            ProviderError::RateLimited { retry_after } => {
                release.push(m.id);
                let after = retry_after
                    .unwrap_or(Duration::from_secs(5))
                    .clamp(Duration::from_secs(1), Duration::from_secs(300));
                waits.push(Wait::Provider(
                    after,
                    "the provider is rate limiting requests".into(),
                ));
            }
            ProviderError::Transient(ref why) => {
                release.push(m.id);
                let after = Duration::from_secs(5)
                    + jobs::backoff(0, Duration::from_secs(5), Duration::from_secs(10));
                waits.push(Wait::Provider(
                    after,
                    format!("the provider is unavailable: {why}"),
                ));
            }
            ProviderError::Ambiguous(_) => {
                let reason =
                    format!("{e}; the call was {AMBIGUOUS_PLACEMENT} (check the provider)");
                end_unplaced(services, m.id, CallStatus::Failed, &reason).await?;
            }
            other => {
                end_unplaced(services, m.id, CallStatus::Failed, &other.to_string()).await?;
            }
        }
    }
    credits::release(db, &release).await?;
    live::release_unplaced_many(db, &release).await?;
    Ok(())
}

/// Records the placed calls' execution ids, their items IN_PROGRESS and the jobs that
/// follow them in one transaction; if that fails (a webhook for one of them created a row
/// meanwhile, say) each call is recorded on its own, as a single placement would be.
async fn record_placed(
    services: &Services,
    provider: Provider,
    placed: &[(call::Model, String)],
) -> anyhow::Result<()> {
    if placed.is_empty() {
        return Ok(());
    }
    match record_together(services, provider, placed).await {
        Ok(Some(after)) => {
            after.run(&**services.events()).await;
            return Ok(());
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, calls = placed.len(), "recording placed calls together failed; recording each");
        }
    }
    for (m, execution_id) in placed {
        place::record_placed(services, m, provider, execution_id).await?;
    }
    Ok(())
}

/// The batch write; `None` when a webhook already created a row for one of the
/// executions (those need folding, which the single path does).
async fn record_together(
    services: &Services,
    provider: Provider,
    placed: &[(call::Model, String)],
) -> DomainResult<Option<AfterCommit>> {
    let db = services.db();
    let txn = crate::db::begin_write(db).await?;
    let tenant_id = placed[0].0.tenant_id;
    let executions: Vec<String> = placed.iter().map(|(_, e)| e.clone()).collect();
    let existing = call::Entity::find()
        .filter(crate::db::tenant_outside_index(
            txn.get_database_backend(),
            tenant_id,
        ))
        .filter(call::Column::Provider.eq(provider))
        .filter(call::Column::ProviderExecutionId.is_in(executions))
        .all(&txn)
        .await?;
    if !existing.is_empty() {
        return Ok(None);
    }
    let now = Utc::now();
    let mut b = Binder::new(txn.get_database_backend());
    let arms: Vec<String> = placed
        .iter()
        .map(|(m, e)| format!("WHEN {} THEN {}", b.bind(m.id), b.bind(e.clone())))
        .collect();
    let ids = b.list(placed.iter().map(|(m, _)| m.id.into()));
    let sql = format!(
        "UPDATE calls SET provider_execution_id = CASE id {} END, updated_at = {} \
         WHERE id IN ({ids}) AND provider_execution_id IS NULL",
        arms.join(" "),
        b.bind(now)
    );
    let moved = txn.execute_raw(b.statement(sql)).await?.rows_affected();
    if moved != placed.len() as u64 {
        return Ok(None);
    }
    let items: Vec<Uuid> = placed
        .iter()
        .filter_map(|(m, _)| m.campaign_item_id)
        .collect();
    if !items.is_empty() {
        let mut b = Binder::new(txn.get_database_backend());
        let ids = b.list(items.into_iter().map(Into::into));
        let sql = format!(
            "UPDATE campaign_items SET status = 'IN_PROGRESS', updated_at = {} \
             WHERE id IN ({ids}) AND status = 'DISPATCHING'",
            b.bind(now)
        );
        txn.execute_raw(b.statement(sql)).await?;
    }
    let mut after = AfterCommit::default();
    let mut rows = Vec::new();
    for (m, execution_id) in placed {
        rows.extend(follow::following_jobs(
            services,
            m,
            provider,
            execution_id,
            &mut after,
        )?);
    }
    jobs::queue::insert_many(&txn, rows).await?;
    txn.commit().await?;
    Ok(Some(after))
}

/// Ends the batch's calls that were never recorded as placed (the job gave up); placed
/// calls go on.
pub(crate) async fn end_unplaced_many(
    services: &Services,
    tenant_id: Uuid,
    call_ids: &[Uuid],
    reason: &str,
) -> DomainResult<()> {
    let unplaced = call::Entity::find()
        .filter(call::Column::TenantId.eq(tenant_id))
        .filter(call::Column::Id.is_in(call_ids.iter().copied()))
        .filter(call::Column::ProviderExecutionId.is_null())
        .all(services.db())
        .await?;
    for m in unplaced {
        end_unplaced(services, m.id, CallStatus::Failed, reason).await?;
    }
    Ok(())
}
