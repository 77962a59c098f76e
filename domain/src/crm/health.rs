//! Whether the tenant's CRM answers. The first failure starts a clock; a success stops
//! it; a CRM failing past `CRM_FAILING_AFTER_SECONDS` fires `crm.sync_failing` once.

use chrono::{Duration, Utc};
use entity::crm_connection;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    Set,
};
use uuid::Uuid;

use crate::error::DomainResult;
use crate::http::HttpError;

/// Whether an error says the CRM itself is unreachable or refusing us (rather than one
/// record being refused).
pub(crate) fn is_outage(e: &HttpError) -> bool {
    !matches!(e, HttpError::Rejected { .. } | HttpError::NotFound)
}

pub(crate) async fn ok(db: &DatabaseConnection, tenant: Uuid) -> DomainResult<()> {
    crm_connection::Entity::update_many()
        .col_expr(
            crm_connection::Column::FailingSince,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .col_expr(crm_connection::Column::FailingNotified, Expr::value(false))
        .col_expr(
            crm_connection::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(crm_connection::Column::TenantId.eq(tenant))
        .filter(crm_connection::Column::FailingSince.is_not_null())
        .exec(db)
        .await?;
    Ok(())
}

pub(crate) async fn failed(
    db: &DatabaseConnection,
    tenant: Uuid,
    error: &str,
    threshold_seconds: u64,
) -> DomainResult<()> {
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    let Some(c) = crm_connection::Entity::find_by_id(tenant).one(&txn).await? else {
        return Ok(());
    };
    let since = c.failing_since.unwrap_or(now);
    let due = !c.failing_notified
        && now - since >= Duration::seconds(threshold_seconds.min(i64::MAX as u64) as i64);
    let base_url = c.base_url.clone();
    let mut a = c.into_active_model();
    a.failing_since = Set(Some(since));
    a.last_error = Set(Some(error.chars().take(500).collect()));
    if due {
        a.failing_notified = Set(true);
    }
    a.update(&txn).await?;
    let mut webhooks = false;
    if due {
        webhooks = crate::outbound::record_events(
            &txn,
            vec![crate::outbound::NewEvent::new(
                tenant,
                crate::outbound::EventType::CrmSyncFailing,
                None,
                serde_json::json!({
                    "crm": "TWENTY",
                    "baseUrl": base_url,
                    "failingSince": since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "lastError": error.chars().take(500).collect::<String>(),
                }),
            )],
        )
        .await?;
        metrics::counter!("crm_sync_failing_total").increment(1);
        tracing::warn!(tenant.id = %tenant, error, "the CRM has been failing past the threshold");
    }
    txn.commit().await?;
    crate::outbound::wake_if(webhooks);
    Ok(())
}
