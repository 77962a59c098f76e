//! Placing a queued call with its provider: checked again at the moment of dialling,
//! sent at most once, and its provider execution id recorded together with the jobs that
//! follow the call.

use anyhow::Context;
use chrono::Utc;
use entity::call;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use std::time::Duration;

use super::follow;
use super::live::{self, SlotClaim};
use super::transition::{self, AfterCommit, Transition};
use crate::campaigns::finish::{self, AMBIGUOUS_PLACEMENT};
use crate::credits::{self, BALANCE_REASON};
use crate::db::Binder;
use crate::dnc;
use crate::error::{DomainError, DomainResult};
use crate::jobs::{self, Outcome};
use crate::providers::registry::ProviderLookupError;
use crate::providers::{PlaceCall, ProviderError};
use crate::services::Services;
use crate::types::{CallStatus, EventSource, LeadStatus, Provider};

/// The call `call_id` of `tenant_id`, if it still exists.
pub(crate) async fn load<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    call_id: Uuid,
) -> DomainResult<Option<call::Model>> {
    Ok(call::Entity::find_by_id(call_id)
        .filter(call::Column::TenantId.eq(tenant_id))
        .one(conn)
        .await?)
}

/// Places a queued call. Idempotent, and never sends the provider's create request twice
/// for one call: the placement is claimed (`placing_since`) before the request goes out.
pub(crate) async fn place(
    services: &Services,
    tenant_id: Uuid,
    call_id: Uuid,
) -> anyhow::Result<Outcome> {
    let db = services.db();
    let Some(model) = load(db, tenant_id, call_id)
        .await
        .context("loading the call")?
    else {
        return Ok(Outcome::Done);
    };
    if model.provider_execution_id.is_some() {
        return Ok(Outcome::Done);
    }
    if model.placing_since.is_some() {
        // A previous attempt died between sending and recording: the provider may have
        // the call, so sending again could ring the customer twice.
        end_unplaced(
            services,
            call_id,
            CallStatus::Failed,
            &format!("the worker stopped while placing this call; {AMBIGUOUS_PLACEMENT}"),
        )
        .await?;
        return Ok(Outcome::Done);
    }
    if model.status_rank != CallStatus::Queued.rank() {
        return Ok(Outcome::Done);
    }
    let provider = model.provider;
    let client = match services.providers().for_tenant(tenant_id, provider).await {
        Ok(c) => c,
        Err(ProviderLookupError::Provider(e)) => {
            end_unplaced(services, call_id, CallStatus::Failed, &e.to_string()).await?;
            return Ok(Outcome::Done);
        }
        Err(ProviderLookupError::Domain(e)) => {
            return Err(e).context("loading the provider's credentials");
        }
    };
    let Some(to) = model.to_number.clone() else {
        end_unplaced(
            services,
            call_id,
            CallStatus::Failed,
            "the call has no number",
        )
        .await?;
        return Ok(Outcome::Done);
    };
    // The number may have been put on the do-not-call list (or its customer marked
    // DO_NOT_CALL) since the call was queued: checked again at the moment of dialling.
    if let Some(reason) = do_not_call_reason(services, &model, &to).await? {
        end_unplaced(services, call_id, CallStatus::Canceled, reason).await?;
        return Ok(Outcome::Done);
    }
    // Claim a slot under the system, tenant and campaign caps: only one worker gets
    // past this, and only while every cap has room.
    let cap = services.providers().settings().system_concurrent_calls;
    match live::claim_slot(db, call_id, cap)
        .await
        .context("claiming a concurrency slot")?
    {
        SlotClaim::Claimed => {}
        SlotClaim::Gone => return Ok(Outcome::Done),
        SlotClaim::Full(_) => {
            // Waiting for a slot is not a failure: try again shortly without an attempt.
            let wait = jobs::backoff(3, Duration::from_millis(100), Duration::from_millis(800));
            return Ok(Outcome::Snooze(
                Utc::now()
                    + chrono::Duration::from_std(wait + Duration::from_millis(200))
                        .unwrap_or_default(),
            ));
        }
        SlotClaim::CampaignStopped(status) => {
            let reason = format!("the campaign is {status}; the call was not placed");
            end_unplaced(services, call_id, CallStatus::Canceled, &reason).await?;
            return Ok(Outcome::Done);
        }
    }
    // The tenant's credit: with the slot held, a reserve for the call. Without one the
    // slot goes back and the call ends; a campaign's item returns to its queue without
    // spending an attempt, and its dispatcher pauses the campaign if need be.
    if !credits::reserve(db, tenant_id, &[call_id])
        .await
        .context("reserving credit")?
        .is_empty()
    {
        live::release_unplaced(db, call_id).await?;
        end_unplaced(services, call_id, CallStatus::BalanceLow, BALANCE_REASON).await?;
        return Ok(Outcome::Done);
    }
    let placed = client
        .place_call(PlaceCall {
            provider_agent_id: model.provider_agent_id.clone().unwrap_or_default(),
            to_number: to,
            from_number: None,
            variables: model.variables.clone().unwrap_or(json!({})),
        })
        .await;
    match placed {
        Ok(placed) => {
            if let Some(c) = model.campaign_id {
                finish::record_dial(services, c, false, "").await?;
            }
            record_placed(services, &model, provider, &placed.execution_id).await?;
            Ok(Outcome::Done)
        }
        Err(e) => {
            let campaign = model.campaign_id;
            if let Some(c) = campaign
                && is_provider_failure(&e)
            {
                finish::record_dial(services, c, true, &e.to_string()).await?;
            }
            match e {
                // The provider refused before taking the call: it waits, queued, without
                // spending an attempt (a campaign's breaker pauses it if this goes on).
                ProviderError::RateLimited { retry_after } => {
                    credits::release(db, &[call_id]).await?;
                    live::release_unplaced(db, call_id).await?;
                    let after = retry_after
                        .unwrap_or(Duration::from_secs(5))
                        .clamp(Duration::from_secs(1), Duration::from_secs(300));
                    return Ok(Outcome::Retry {
                        after,
                        spend_attempt: false,
                        reason: "the provider is rate limiting requests".into(),
                    });
                }
                ProviderError::Transient(ref why) => {
                    credits::release(db, &[call_id]).await?;
                    live::release_unplaced(db, call_id).await?;
                    return Ok(Outcome::Retry {
                        after: if campaign.is_some() {
                            Duration::from_secs(5)
                                + jobs::backoff(0, Duration::from_secs(5), Duration::from_secs(10))
                        } else {
                            jobs::backoff(2, Duration::from_secs(1), Duration::from_secs(30))
                        },
                        spend_attempt: campaign.is_none(),
                        reason: format!("the provider is unavailable: {why}"),
                    });
                }
                _ => {}
            }
            let reason = match &e {
                ProviderError::Ambiguous(_) => {
                    format!("{e}; the call was {AMBIGUOUS_PLACEMENT} (check the provider)")
                }
                _ => e.to_string(),
            };
            end_unplaced(services, call_id, CallStatus::Failed, &reason).await?;
            Ok(Outcome::Done)
        }
    }
}

/// Whether a placement error counts against the provider in a campaign's breaker.
pub(crate) fn is_provider_failure(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Transient(_)
            | ProviderError::Ambiguous(_)
            | ProviderError::Credentials { .. }
            | ProviderError::Decode(_)
            | ProviderError::NotConfigured(_)
    )
}

/// Records a call the provider has taken: tries hard, since the call exists now.
pub(crate) async fn record_placed(
    services: &Services,
    model: &call::Model,
    provider: Provider,
    execution_id: &str,
) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match adopt_execution(services, model, provider, execution_id).await {
            Ok(after) => {
                after.run(&**services.events()).await;
                return Ok(());
            }
            Err(e) if attempt < 4 => {
                attempt += 1;
                tracing::warn!(call.id = %model.id, error = %e, "recording a placed call failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => {
                tracing::error!(call.id = %model.id, execution.id = %execution_id, error = %e, "placed a call but could not record its execution id");
                return Err(e).context("recording the placed call's execution id");
            }
        }
    }
}

/// Why `model` may not be dialled now, if it may not.
async fn do_not_call_reason(
    services: &Services,
    model: &call::Model,
    to: &str,
) -> anyhow::Result<Option<&'static str>> {
    let db = services.db();
    if dnc::listed(db, model.tenant_id, to)
        .await
        .context("reading the do-not-call list")?
    {
        return Ok(Some("the number is on the do-not-call list"));
    }
    if let Some(customer_id) = model.customer_id
        && let Some(customer) = entity::customer::Entity::find_by_id(customer_id)
            .one(db)
            .await
            .context("loading the call's customer")?
        && customer.status == LeadStatus::DoNotCall
    {
        return Ok(Some("the customer is marked DO_NOT_CALL"));
    }
    Ok(None)
}

/// Ends a call that was never sent to its provider (FAILED, CANCELED) through the
/// transition point, unless it already ended.
pub(crate) async fn end_unplaced(
    services: &Services,
    call_id: Uuid,
    status: CallStatus,
    reason: &str,
) -> DomainResult<()> {
    let txn = crate::db::begin_write(services.db()).await?;
    let ended = transition::end_unplaced(
        &txn,
        services.ingestor().follow_ups(),
        call_id,
        status,
        reason,
    )
    .await?;
    txn.commit().await?;
    if let Some(after) = ended {
        tracing::info!(call.id = %call_id, %status, reason, "call ended before it was placed");
        after.run(&**services.events()).await;
    }
    Ok(())
}

/// Stores the provider's execution id on our call and enqueues the jobs that follow it,
/// in one transaction. If a webhook for the execution already created a call row, that
/// row is folded into ours (its events and fields kept) and our call takes its status.
async fn adopt_execution(
    services: &Services,
    model: &call::Model,
    provider: Provider,
    execution_id: &str,
) -> DomainResult<AfterCommit> {
    let db = services.db();
    let txn = crate::db::begin_write(db).await?;
    let duplicate = call::Entity::find()
        .filter(crate::db::tenant_outside_index(
            txn.get_database_backend(),
            model.tenant_id,
        ))
        .filter(call::Column::Provider.eq(model.provider))
        .filter(call::Column::ProviderExecutionId.eq(execution_id))
        .one(&txn)
        .await?;
    let current = call::Entity::find_by_id(model.id)
        .one(&txn)
        .await?
        .ok_or(DomainError::not_found("call"))?;
    let previous = Some(current.status);
    let mut active: call::ActiveModel = current.into();
    let mut moved_to = None;
    if let Some(dup) = duplicate.filter(|d| d.id != model.id) {
        let backend = txn.get_database_backend();
        // Keep one event per status: ours where both have one.
        let mut b = Binder::new(backend);
        let sql = format!(
            "DELETE FROM call_events WHERE call_id = {} AND status IN (SELECT status FROM call_events WHERE call_id = {})",
            b.bind(dup.id),
            b.bind(model.id)
        );
        txn.execute_raw(b.statement(sql)).await?;
        let mut b = Binder::new(backend);
        let sql = format!(
            "UPDATE call_events SET call_id = {} WHERE call_id = {}",
            b.bind(model.id),
            b.bind(dup.id)
        );
        txn.execute_raw(b.statement(sql)).await?;
        call::Entity::delete_by_id(dup.id).exec(&txn).await?;
        if dup.status_rank > model.status_rank {
            active.status = Set(dup.status);
            active.status_rank = Set(dup.status_rank);
            moved_to = Some(dup.status);
        }
        macro_rules! fill {
            ($($f:ident),*) => {$(
                if dup.$f.is_some() { active.$f = Set(dup.$f.clone()); }
            )*};
        }
        fill!(
            provider_call_id,
            from_number,
            started_at,
            ended_at,
            duration_seconds,
            cost,
            transcript,
            summary,
            recording_url,
            extracted_data,
            hangup_reason,
            raw_payload
        );
    }
    if let Some(item) = model.campaign_item_id {
        let mut b = Binder::new(txn.get_database_backend());
        let sql = format!(
            "UPDATE campaign_items SET status = 'IN_PROGRESS', updated_at = {} WHERE id = {} AND status = 'DISPATCHING'",
            b.bind(Utc::now()),
            b.bind(item)
        );
        txn.execute_raw(b.statement(sql)).await?;
    }
    active.provider_execution_id = Set(Some(execution_id.to_owned()));
    active.updated_at = Set(Utc::now());
    let updated = sea_orm::ActiveModelTrait::update(active, &txn).await?;
    let mut after = AfterCommit::default();
    if let Some(status) = moved_to {
        // The folded row's events came with it: the change has no new event of its own.
        let (_, moved) = transition::record(
            &txn,
            services.ingestor().follow_ups(),
            transition::Events::Written(Default::default()),
            vec![Transition {
                call: updated.clone(),
                previous,
                status,
                source: EventSource::Webhook,
                checks_cleared: false,
            }],
            None,
        )
        .await?;
        after.absorb(moved);
    }
    if updated.status_rank < CallStatus::TERMINAL_RANK {
        after.absorb(
            follow::enqueue_following(&txn, services, &updated, provider, execution_id).await?,
        );
    }
    txn.commit().await?;
    Ok(after)
}
