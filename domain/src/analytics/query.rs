//! The analytics statements: aggregates over the tenant's calls in the period (found
//! through the `(tenant_id, COALESCE(started_at, created_at))` index), returning a few
//! rows whatever the number of calls: one pass for everything but the segments, one for
//! the customers called.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::days::Day;
use crate::db::{Binder, Dialect};
use crate::error::{DomainError, DomainResult};
use crate::types::{CallOutcome, CallStatus, Sentiment};

/// When a call counts: when it started, else when it was recorded. The expression of the
/// index the statements use, written the same way.
const CALL_TIME: &str = "COALESCE(c.started_at, c.created_at)";

pub(super) struct Scope {
    pub tenant_id: Uuid,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub agent_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
}

/// The calls' conditions other than time, for `c`.
fn filters(b: &mut Binder, q: &Scope) -> String {
    let mut sql = format!("c.tenant_id = {}", b.bind(q.tenant_id));
    if let Some(a) = q.agent_id {
        sql.push_str(&format!(" AND c.agent_id = {}", b.bind(a)));
    }
    if let Some(k) = q.campaign_id {
        sql.push_str(&format!(" AND c.campaign_id = {}", b.bind(k)));
    }
    sql
}

/// The calls in the period, for `c`.
fn in_period(b: &mut Binder, q: &Scope) -> String {
    let f = filters(b, q);
    format!(
        "{f} AND {CALL_TIME} >= {} AND {CALL_TIME} < {}",
        b.bind(q.since),
        b.bind(q.until)
    )
}

/// One group of the period's calls: a local day, a status, and the current analysis'
/// outcome and sentiment (none when not analysed).
pub(super) struct Group {
    pub date: NaiveDate,
    pub status: CallStatus,
    pub outcome: Option<CallOutcome>,
    pub sentiment: Option<Sentiment>,
    pub calls: i64,
    /// Calls with a duration, and their seconds.
    pub timed: i64,
    pub seconds: f64,
    pub cost: f64,
}

/// Every figure but the segments, in one pass over the period's calls: grouped by local
/// day (the `days` ranges cover the period exactly), status, outcome and sentiment, a few
/// thousand rows at most whatever the number of calls.
pub(super) async fn groups<C: ConnectionTrait>(
    conn: &C,
    q: &Scope,
    days: &[Day],
) -> DomainResult<Vec<Group>> {
    if days.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = Dialect::of(conn);
    let mut b = Binder::new(conn.get_database_backend());
    let rows: Vec<String> = days
        .iter()
        .map(|d| {
            format!(
                "({}, {}, {})",
                dialect.cast_text(&b.bind(d.date.to_string())),
                dialect.cast_timestamp(&b.bind(d.start)),
                dialect.cast_timestamp(&b.bind(d.end))
            )
        })
        .collect();
    let cond = filters(&mut b, q);
    let sql = format!(
        "WITH d (day, s, e) AS (VALUES {}) \
         SELECT d.day AS day, c.status AS status, a.outcome AS outcome, a.sentiment AS sentiment, COUNT(*) AS calls, \
         SUM(CASE WHEN c.duration_seconds IS NOT NULL THEN 1 ELSE 0 END) AS timed, \
         COALESCE(SUM(c.duration_seconds), 0.0) AS seconds, COALESCE(SUM(c.cost), 0.0) AS cost \
         FROM d JOIN calls c ON {cond} AND {CALL_TIME} >= d.s AND {CALL_TIME} < d.e \
         LEFT JOIN call_analyses a ON a.call_id = c.id AND a.current AND a.status = 'DONE' \
         GROUP BY d.day, c.status, a.outcome, a.sentiment",
        rows.join(", "),
    );
    let found = conn.query_all_raw(b.statement(sql)).await?;
    let mut out = Vec::with_capacity(found.len());
    for r in found {
        let day: String = r.try_get("", "day")?;
        out.push(Group {
            date: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                .map_err(|e| DomainError::Internal(format!("analytics day {day:?}: {e}")))?,
            status: r.try_get("", "status")?,
            outcome: r.try_get("", "outcome")?,
            sentiment: r.try_get("", "sentiment")?,
            calls: r.try_get("", "calls")?,
            timed: r.try_get("", "timed")?,
            seconds: number(&r, "seconds")?,
            cost: number(&r, "cost")?,
        });
    }
    Ok(out)
}

/// A sum that SQLite may hand back as an integer.
fn number(r: &sea_orm::QueryResult, col: &str) -> DomainResult<f64> {
    match r.try_get::<f64>("", col) {
        Ok(v) => Ok(v),
        Err(_) => Ok(r.try_get::<i64>("", col)? as f64),
    }
}

pub(super) async fn by_segment<C: ConnectionTrait>(
    db: &C,
    q: &Scope,
) -> DomainResult<Vec<(String, i64)>> {
    let mut b = Binder::new(db.get_database_backend());
    let tenant = b.bind(q.tenant_id);
    let cond = in_period(&mut b, q);
    let sql = format!(
        "SELECT COALESCE(cu.segment, 'NONE') AS segment, COUNT(*) AS n FROM customers cu \
         WHERE cu.tenant_id = {tenant} AND cu.id IN (SELECT c.customer_id FROM calls c WHERE {cond} AND c.customer_id IS NOT NULL) \
         GROUP BY COALESCE(cu.segment, 'NONE') ORDER BY 1"
    );
    let rows = db.query_all_raw(b.statement(sql)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.try_get("", "segment")?, r.try_get("", "n")?));
    }
    Ok(out)
}
