//! The `analytics` query: the tenant's call figures over a period.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::analytics;

use super::context::{db, scope};
use super::enums::{CallOutcome, CallStatus, Sentiment};
use super::error::{GqlResultExt, parse_id};

/// Which calls the figures cover; every field optional.
#[derive(InputObject, Default)]
pub struct AnalyticsFilter {
    /// Calls that started at or after this instant (default: 30 days before `until`).
    pub since: Option<DateTime<Utc>>,
    /// Calls that started before this instant (default: now). At most 366 days after `since`.
    pub until: Option<DateTime<Utc>>,
    pub agent_id: Option<ID>,
    pub campaign_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct StatusCount {
    pub status: CallStatus,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct OutcomeCount {
    pub outcome: CallOutcome,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct SentimentCount {
    pub sentiment: Sentiment,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct SegmentCount {
    /// HOT, WARM, COLD, a label set by hand, or NONE (not scored yet).
    pub segment: String,
    pub count: i64,
}

/// One local day of the tenant's time zone.
#[derive(SimpleObject)]
pub struct DailyPoint {
    /// `YYYY-MM-DD` in the tenant's time zone.
    pub date: String,
    pub calls: i64,
    /// Calls that reached the customer (IN_PROGRESS, CALL_DISCONNECTED, COMPLETED).
    pub connected: i64,
    /// Calls whose analysis outcome is APPOINTMENT_BOOKED.
    pub booked: i64,
}

/// Call figures over a period. A call counts when it started (when it never started: when
/// it was recorded).
#[derive(SimpleObject)]
pub struct Analytics {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// The tenant's time zone, in which `daily` is bucketed.
    pub timezone: String,
    pub total_calls: i64,
    /// Calls that reached the customer (IN_PROGRESS, CALL_DISCONNECTED, COMPLETED).
    pub connected_calls: i64,
    /// connectedCalls ÷ totalCalls (0 without calls).
    pub connect_rate: f64,
    /// Over connected calls that have a duration.
    pub average_duration_seconds: Option<f64>,
    pub total_cost: f64,
    pub by_status: Vec<StatusCount>,
    /// Calls by their current analysis' outcome (analysed calls only).
    pub by_outcome: Vec<OutcomeCount>,
    pub by_sentiment: Vec<SentimentCount>,
    /// Customers called in the period, by their segment.
    pub by_segment: Vec<SegmentCount>,
    pub daily: Vec<DailyPoint>,
}

impl From<analytics::Analytics> for Analytics {
    fn from(a: analytics::Analytics) -> Self {
        Analytics {
            since: a.since,
            until: a.until,
            timezone: a.timezone,
            total_calls: a.total_calls,
            connected_calls: a.connected_calls,
            connect_rate: a.connect_rate,
            average_duration_seconds: a.average_duration_seconds,
            total_cost: a.total_cost,
            by_status: a
                .by_status
                .into_iter()
                .map(|(s, count)| StatusCount {
                    status: s.into(),
                    count,
                })
                .collect(),
            by_outcome: a
                .by_outcome
                .into_iter()
                .map(|(o, count)| OutcomeCount {
                    outcome: o.into(),
                    count,
                })
                .collect(),
            by_sentiment: a
                .by_sentiment
                .into_iter()
                .map(|(s, count)| SentimentCount {
                    sentiment: s.into(),
                    count,
                })
                .collect(),
            by_segment: a
                .by_segment
                .into_iter()
                .map(|(segment, count)| SegmentCount { segment, count })
                .collect(),
            daily: a
                .daily
                .into_iter()
                .map(|d| DailyPoint {
                    date: d.date.to_string(),
                    calls: d.calls,
                    connected: d.connected,
                    booked: d.booked,
                })
                .collect(),
        }
    }
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// The tenant's call figures over a period (default: the last 30 days).
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        filter: Option<AnalyticsFilter>,
    ) -> async_graphql::Result<Analytics> {
        let f = filter.unwrap_or_default();
        let opt_id = |field, v: &Option<ID>| v.as_ref().map(|id| parse_id(field, id)).transpose();
        let filter = analytics::AnalyticsFilter {
            since: f.since,
            until: f.until,
            agent_id: opt_id("agentId", &f.agent_id)?,
            campaign_id: opt_id("campaignId", &f.campaign_id)?,
        };
        analytics::analytics(db(ctx)?, scope(ctx)?, filter)
            .await
            .map(Into::into)
            .gql()
    }
}
