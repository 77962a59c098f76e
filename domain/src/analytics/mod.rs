//! The tenant's call analytics over a period: totals, connect rate, duration and cost,
//! counts by status, outcome, sentiment and segment, and a daily series in the tenant's
//! time zone. Everything is aggregated by the database (a constant number of statements,
//! no call rows loaded); `days` cuts the period into local days, `query` holds the SQL.
//!
//! A call counts at the time it started (when it never started: when it was recorded), so
//! synced history lands on the days the calls happened.

pub mod days;
mod query;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::{DatabaseConnection, EntityTrait};
use uuid::Uuid;

use crate::error::{DomainError, DomainResult};
use crate::tenancy::TenantScope;
use crate::types::{CallOutcome, CallStatus, Sentiment};

/// The longest period one query covers.
pub const MAX_DAYS: i64 = 366;
/// The period when none is given.
pub const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Clone, Default)]
pub struct AnalyticsFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub agent_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DailyPoint {
    /// The local date in the tenant's time zone.
    pub date: NaiveDate,
    pub calls: i64,
    pub connected: i64,
    pub booked: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analytics {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub timezone: String,
    pub total_calls: i64,
    pub connected_calls: i64,
    /// connected ÷ total (0 when there are no calls).
    pub connect_rate: f64,
    /// Over connected calls with a duration.
    pub average_duration_seconds: Option<f64>,
    pub total_cost: f64,
    pub by_status: Vec<(CallStatus, i64)>,
    pub by_outcome: Vec<(CallOutcome, i64)>,
    pub by_sentiment: Vec<(Sentiment, i64)>,
    /// Customers called in the period, by their segment (`NONE` when not scored).
    pub by_segment: Vec<(String, i64)>,
    pub daily: Vec<DailyPoint>,
}

/// The statuses of a call that reached the customer.
pub const CONNECTED: [CallStatus; 3] = [
    CallStatus::InProgress,
    CallStatus::CallDisconnected,
    CallStatus::Completed,
];

/// Analytics queries of one tenant running at once in a process (a dashboard's few; a
/// flood is refused rather than queued on the database).
static RUNNING: crate::inflight::PerTenant =
    crate::inflight::PerTenant::new(4, "analytics queries");

/// The tenant's analytics for `filter` (any role).
pub async fn analytics(
    db: &DatabaseConnection,
    scope: &TenantScope,
    filter: AnalyticsFilter,
) -> DomainResult<Analytics> {
    let _running = RUNNING.take(scope.tenant_id())?;
    let now = Utc::now();
    let until = match filter.until {
        Some(t) => crate::time::check_instant("until", t)?,
        None => now,
    };
    let since = match filter.since {
        Some(t) => crate::time::check_instant("since", t)?,
        None => until - Duration::days(DEFAULT_DAYS),
    };
    if until <= since {
        return Err(DomainError::invalid("until", "must be after since"));
    }
    if until - since > Duration::days(MAX_DAYS) {
        return Err(DomainError::invalid(
            "since",
            format!("the period may cover at most {MAX_DAYS} days"),
        ));
    }
    let tenant = entity::tenant::Entity::find_by_id(scope.tenant_id())
        .one(db)
        .await?
        .ok_or(DomainError::not_found("tenant"))?;
    let tz = crate::campaigns::window::parse_zone(&tenant.timezone).unwrap_or(chrono_tz::UTC);
    let q = query::Scope {
        tenant_id: scope.tenant_id(),
        since,
        until,
        agent_id: filter.agent_id,
        campaign_id: filter.campaign_id,
    };
    let days = days::days(tz, since, until);
    // The statements' plans depend on the period's size: planned for the values given.
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    if let Some(sql) = crate::db::Dialect::of(db).custom_plans() {
        sea_orm::ConnectionTrait::execute_unprepared(&txn, sql).await?;
    }
    let groups = query::groups(&txn, &q, &days).await?;
    let by_segment = query::by_segment(&txn, &q).await?;
    txn.commit().await?;
    let sum = Summary::of(&groups, &days);
    let total_calls = sum.total_calls;
    let connected_calls = sum.connected_calls;
    Ok(Analytics {
        since,
        until,
        timezone: tz.name().to_owned(),
        total_calls,
        connected_calls,
        connect_rate: if total_calls == 0 {
            0.0
        } else {
            connected_calls as f64 / total_calls as f64
        },
        average_duration_seconds: (sum.timed > 0).then(|| sum.seconds / sum.timed as f64),
        total_cost: sum.cost,
        by_status: sum.by_status.into_values().collect(),
        by_outcome: sum.by_outcome.into_values().collect(),
        by_sentiment: sum.by_sentiment.into_values().collect(),
        by_segment,
        daily: sum.daily,
    })
}

/// The figures the grouped rows add up to.
#[derive(Default)]
struct Summary {
    total_calls: i64,
    connected_calls: i64,
    timed: i64,
    seconds: f64,
    cost: f64,
    by_status: BTreeMap<&'static str, (CallStatus, i64)>,
    by_outcome: BTreeMap<&'static str, (CallOutcome, i64)>,
    by_sentiment: BTreeMap<&'static str, (Sentiment, i64)>,
    daily: Vec<DailyPoint>,
}

impl Summary {
    fn of(groups: &[query::Group], days: &[days::Day]) -> Summary {
        let mut s = Summary {
            daily: days
                .iter()
                .map(|d| DailyPoint {
                    date: d.date,
                    calls: 0,
                    connected: 0,
                    booked: 0,
                })
                .collect(),
            ..Summary::default()
        };
        let index: BTreeMap<NaiveDate, usize> =
            days.iter().enumerate().map(|(i, d)| (d.date, i)).collect();
        for g in groups {
            let connected = CONNECTED.contains(&g.status);
            s.total_calls += g.calls;
            s.cost += g.cost;
            if connected {
                s.connected_calls += g.calls;
                s.timed += g.timed;
                s.seconds += g.seconds;
            }
            s.by_status
                .entry(g.status.as_str())
                .or_insert((g.status, 0))
                .1 += g.calls;
            if let Some(o) = g.outcome {
                s.by_outcome.entry(o.as_str()).or_insert((o, 0)).1 += g.calls;
            }
            if let Some(m) = g.sentiment {
                s.by_sentiment.entry(m.as_str()).or_insert((m, 0)).1 += g.calls;
            }
            if let Some(p) = index.get(&g.date).and_then(|i| s.daily.get_mut(*i)) {
                p.calls += g.calls;
                if connected {
                    p.connected += g.calls;
                }
                if g.outcome == Some(CallOutcome::AppointmentBooked) {
                    p.booked += g.calls;
                }
            }
        }
        s
    }
}
