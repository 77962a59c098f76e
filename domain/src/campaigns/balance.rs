//! Campaigns and the tenant's credit: every running call campaign of a tenant pauses (reason
//! `balance`) when its credit cannot cover another call, and those campaigns, and only
//! those, run again when a top-up (or a pricing change) makes room.

use chrono::Utc;
use entity::campaign;
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::jobs::DispatchCampaign;
use super::service::publish_progress;
use crate::credits::PAUSED_FOR_BALANCE;
use crate::db::Binder;
use crate::error::DomainResult;
use crate::jobs::{self, Job, Lane};
use crate::outbound::{EventType, payloads};
use crate::services::Services;
use crate::types::CampaignStatus;

/// Moves the tenant's campaigns in `from` to `to` (with `reason`) in one statement and
/// records their events; the campaigns moved.
async fn move_all<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    from: CampaignStatus,
    from_reason: Option<&str>,
    to: CampaignStatus,
    reason: Option<&str>,
) -> DomainResult<Vec<campaign::Model>> {
    let mut b = Binder::new(conn.get_database_backend());
    let only_reason = match from_reason {
        Some(r) => format!(" AND paused_reason = {}", b.bind(r)),
        None => String::new(),
    };
    let sql = format!(
        "UPDATE campaigns SET status = {}, paused_reason = {}, updated_at = {} \
         WHERE tenant_id = {} AND status = {} AND channel = 'CALL'{only_reason} RETURNING *",
        b.bind(to.as_str()),
        b.bind(reason.map(str::to_owned)),
        b.bind(Utc::now()),
        b.bind(tenant_id),
        b.bind(from.as_str()),
    );
    let moved = campaign::Entity::find()
        .from_raw_sql(b.statement(sql))
        .all(conn)
        .await?;
    let kind = if to == CampaignStatus::Paused {
        EventType::CampaignPaused
    } else {
        EventType::CampaignResumed
    };
    let events = moved
        .iter()
        .map(|c| payloads::campaign_event(kind, c))
        .collect();
    crate::outbound::record_events(conn, events).await?;
    Ok(moved)
}

/// Pauses every running campaign of the tenant for want of credit, in its own
/// transaction, if under the account's lock the tenant still cannot dial and has no live
/// call left to give credit back; tells dashboards and integrators. The campaigns paused.
pub(crate) async fn pause_all(services: &Services, tenant_id: Uuid) -> DomainResult<Vec<Uuid>> {
    let txn = crate::db::begin_write(services.db()).await?;
    // Under the lock a top-up takes: a top-up that committed since the dispatcher looked
    // is seen here, and one that commits after this resumes what it paused.
    let account = crate::credits::lock_account(&txn, tenant_id).await?;
    let (reserved, live) = crate::credits::held(&txn, tenant_id).await?;
    if live > 0 || crate::credits::view(tenant_id, Some(&account), reserved, live).can_dial() {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    let moved = move_all(
        &txn,
        tenant_id,
        CampaignStatus::Running,
        None,
        CampaignStatus::Paused,
        Some(PAUSED_FOR_BALANCE),
    )
    .await?;
    txn.commit().await?;
    if !moved.is_empty() {
        jobs::wake(Lane::Webhooks);
        tracing::warn!(tenant.id = %tenant_id, campaigns = moved.len(), "campaigns paused: the balance cannot cover another call");
    }
    for c in &moved {
        publish_progress(services, tenant_id, c.id).await;
    }
    Ok(moved.iter().map(|c| c.id).collect())
}

/// Runs again, inside the caller's transaction, the tenant's campaigns paused for want of
/// credit (with their dispatch jobs). Call [`after_resume`] once it commits.
pub(crate) async fn resume_all<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
) -> DomainResult<Vec<Uuid>> {
    let moved = move_all(
        conn,
        tenant_id,
        CampaignStatus::Paused,
        Some(PAUSED_FOR_BALANCE),
        CampaignStatus::Running,
        None,
    )
    .await?;
    for c in &moved {
        // Its dispatcher may still be waiting (a paused campaign's ends at its next run):
        // hurried, or a new one if it has none, never two.
        super::finish::hurry(conn, c)
            .await
            .map_err(|e| crate::error::DomainError::Internal(format!("{e:#}")))?;
    }
    Ok(moved.iter().map(|c| c.id).collect())
}

/// Wakes the dispatchers of resumed campaigns and tells dashboards.
pub(crate) async fn after_resume(services: &Services, tenant_id: Uuid, resumed: &[Uuid]) {
    if resumed.is_empty() {
        return;
    }
    jobs::wake(DispatchCampaign::LANE);
    jobs::wake(Lane::Webhooks);
    tracing::info!(tenant.id = %tenant_id, campaigns = resumed.len(), "campaigns resumed after a top-up");
    for id in resumed {
        publish_progress(services, tenant_id, *id).await;
    }
}
