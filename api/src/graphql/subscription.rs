//! Subscription root. Each subscription reads only its tenant's channel of the event hub
//! and filters by its arguments before anything is resolved, so an event costs work for
//! that tenant's matching subscribers only.

use std::sync::Arc;

use async_graphql::{Context, ID, SimpleObject, Subscription as SubscriptionObject};
use chrono::{DateTime, Utc};
use domain::events::{Event, Hub};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::campaigns::{CampaignProgress, progress_of};
use super::context::scope;
use super::enums::CallStatus;
use super::error::{INTERNAL, NOT_FOUND, coded, parse_id};
use super::types::Call;

/// Error code sent to a subscriber that fell too far behind; its subscription ends.
pub const LAGGED: &str = "RATE_LIMITED";

/// A change of one call.
#[derive(SimpleObject)]
pub struct CallUpdate {
    /// The call as committed.
    pub call: Call,
    /// Its status now.
    pub status: CallStatus,
    /// Its status before this change; null for a new call.
    pub previous_status: Option<CallStatus>,
    /// When the change was published.
    pub at: DateTime<Utc>,
}

pub struct Subscription;

#[SubscriptionObject]
impl Subscription {
    /// Progress of this tenant's sync runs (or one run): counts as pages are processed,
    /// then the final status.
    async fn sync_run_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<super::sync::SyncRun>>>
    {
        let tenant = scope(ctx)?.tenant_id();
        let id = id.map(|id| parse_id("id", &id)).transpose()?;
        let hub = ctx
            .data::<Arc<Hub>>()
            .map_err(|_| coded(INTERNAL, "internal error"))?;
        Ok(filtered(hub.subscribe(tenant), move |e| {
            matching_run(e, tenant, id)
        }))
    }

    /// A campaign's stats, first as they are now and then after every change, at most
    /// four times a second (changes in between are folded into the next push). Ends when
    /// the campaign is gone.
    async fn campaign_progress(
        &self,
        ctx: &Context<'_>,
        campaign_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CampaignProgress>>> {
        let scope = scope(ctx)?.clone();
        let db = super::context::db(ctx)?.clone();
        let id = parse_id("campaignId", &campaign_id)?;
        let hub = ctx
            .data::<Arc<Hub>>()
            .map_err(|_| coded(INTERNAL, "internal error"))?;
        let rx = hub.subscribe(scope.tenant_id());
        // Subscribed before the first read, so no change between the two is missed.
        let first = progress_of(&db, &scope, id).await?;
        if first.is_none() {
            return Err(coded(NOT_FOUND, "campaign not found"));
        }
        let state = Progress {
            rx,
            db,
            scope,
            id,
            first,
            last: None,
        };
        Ok(futures_util::stream::unfold(
            Some(state),
            |state| async move {
                let mut state = state?;
                if let Some(first) = state.first.take() {
                    state.last = Some(tokio::time::Instant::now());
                    return Some((Ok(first), Some(state)));
                }
                if !state.changed().await {
                    return None;
                }
                if let Some(last) = state.last {
                    tokio::time::sleep_until(last + PROGRESS_INTERVAL).await;
                }
                // Whatever arrived while waiting is covered by the read below.
                state.drain();
                state.last = Some(tokio::time::Instant::now());
                match progress_of(&state.db, &state.scope, state.id).await {
                    Ok(Some(p)) => Some((Ok(p), Some(state))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
                }
            },
        ))
    }

    /// WhatsApp messages as they arrive, are sent and change status (optionally one
    /// customer's).
    async fn whatsapp_messages(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<ID>,
    ) -> async_graphql::Result<
        impl Stream<Item = async_graphql::Result<super::whatsapp::WhatsAppMessage>>,
    > {
        let tenant = scope(ctx)?.tenant_id();
        let customer = customer_id
            .map(|id| parse_id("customerId", &id))
            .transpose()?;
        let hub = ctx
            .data::<Arc<Hub>>()
            .map_err(|_| coded(INTERNAL, "internal error"))?;
        Ok(filtered(hub.subscribe(tenant), move |e| match e {
            Event::WhatsAppMessage {
                tenant_id,
                customer_id,
                message,
                ..
            } if *tenant_id == tenant && customer.is_none_or(|c| Some(c) == *customer_id) => {
                Some(super::whatsapp::WhatsAppMessage((**message).clone()))
            }
            _ => None,
        }))
    }

    /// Live status of this tenant's calls, optionally one call or one campaign's calls.
    /// Updates of one call arrive in commit order. A subscriber that falls more than
    /// 256 events behind gets a RATE_LIMITED error and the subscription ends.
    async fn call_updated(
        &self,
        ctx: &Context<'_>,
        call_id: Option<ID>,
        campaign_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<CallUpdate>>> {
        let tenant = scope(ctx)?.tenant_id();
        let call_id = call_id.map(|id| parse_id("callId", &id)).transpose()?;
        let campaign_id = campaign_id
            .map(|id| parse_id("campaignId", &id))
            .transpose()?;
        let hub = ctx
            .data::<Arc<Hub>>()
            .map_err(|_| coded(INTERNAL, "internal error"))?;
        Ok(filtered(hub.subscribe(tenant), move |e| {
            matching(e, tenant, call_id, campaign_id)
        }))
    }
}

/// Pushes of one campaign's progress are at least this far apart.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

struct Progress {
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    db: sea_orm::DatabaseConnection,
    scope: domain::tenancy::TenantScope,
    id: Uuid,
    first: Option<CampaignProgress>,
    last: Option<tokio::time::Instant>,
}

impl Progress {
    fn concerns(&self, event: &Event) -> bool {
        matches!(event, Event::CampaignProgress { campaign_id, .. } if *campaign_id == self.id)
    }

    /// Waits for an event about this campaign; false when the hub closed. Falling behind
    /// only means a change was missed, which the next read covers.
    async fn changed(&mut self) -> bool {
        loop {
            match self.rx.recv().await {
                Ok(e) if self.concerns(&e) => return true,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            }
        }
    }

    fn drain(&mut self) {
        use tokio::sync::broadcast::error::TryRecvError;
        loop {
            match self.rx.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }
}

/// The tenant's events that `select` keeps, ending with a RATE_LIMITED error if the
/// subscriber falls too far behind.
fn filtered<T: Send + 'static>(
    rx: tokio::sync::broadcast::Receiver<Arc<Event>>,
    select: impl Fn(&Event) -> Option<T> + Send + Sync + 'static,
) -> impl Stream<Item = async_graphql::Result<T>> {
    let select = Arc::new(select);
    futures_util::stream::unfold(Some(rx), move |rx| {
        let select = select.clone();
        async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if let Some(item) = select(&event) {
                            return Some((Ok(item), Some(rx)));
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        metrics::counter!("subscriptions_lagged_total").increment(1);
                        let err = coded(
                            LAGGED,
                            format!(
                                "this subscriber fell {n} events behind and was dropped; resubscribe"
                            ),
                        );
                        return Some((Err(err), None));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    })
}

fn matching_run(event: &Event, tenant: Uuid, id: Option<Uuid>) -> Option<super::sync::SyncRun> {
    let Event::SyncRunUpdated {
        tenant_id,
        sync_run_id,
        run: Some(run),
        ..
    } = event
    else {
        return None;
    };
    (*tenant_id == tenant && id.is_none_or(|i| i == *sync_run_id))
        .then(|| super::sync::SyncRun((**run).clone()))
}

fn matching(
    event: &Event,
    tenant: Uuid,
    call_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
) -> Option<CallUpdate> {
    let Event::CallUpdated {
        tenant_id,
        call_id: id,
        campaign_id: campaign,
        status,
        previous_status,
        at,
        call: Some(call),
        detail_omitted,
    } = event
    else {
        return None;
    };
    if *tenant_id != tenant
        || call_id.is_some_and(|c| c != *id)
        || campaign_id.is_some_and(|c| Some(c) != *campaign)
    {
        return None;
    }
    Some(CallUpdate {
        call: if *detail_omitted {
            Call::partial(call.clone())
        } else {
            Call(call.clone(), super::types::Detail::Full)
        },
        status: (*status).into(),
        previous_status: previous_status.map(Into::into),
        at: *at,
    })
}
