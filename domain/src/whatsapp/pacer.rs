//! The per-number messaging rate. Sends from one WhatsApp number are spaced `1 / rate`
//! apart whichever campaign or worker process sends them: slots are booked on the
//! connection row, locked while booking. A rate-limit answer from Meta pushes the next
//! free slot back, twice as far each time in a row, and a successful round clears it.

use chrono::{DateTime, Duration, Utc};
use entity::whatsapp_connection;
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::connection::MAX_RATE;
use crate::db::{Binder, Dialect};
use crate::error::DomainResult;

/// How far ahead one round may book sends.
pub(crate) const HORIZON: Duration = Duration::milliseconds(1000);
/// The longest pause after rate limits in a row (2^6 = 64 s).
const MAX_THROTTLE_LEVEL: i32 = 6;

/// The connection, locked for the rest of the caller's transaction.
pub(crate) async fn lock<C: ConnectionTrait>(
    txn: &C,
    tenant: Uuid,
) -> DomainResult<Option<whatsapp_connection::Model>> {
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "SELECT * FROM whatsapp_connections WHERE tenant_id = {}{}",
        b.bind(tenant),
        Dialect::of(txn).for_no_key_update()
    );
    Ok(whatsapp_connection::Entity::find()
        .from_raw_sql(b.statement(sql))
        .one(txn)
        .await?)
}

fn interval(m: &whatsapp_connection::Model) -> Duration {
    let rate = i64::from(m.messages_per_second.clamp(1, MAX_RATE));
    Duration::microseconds(1_000_000 / rate)
}

fn first_free(m: &whatsapp_connection::Model, now: DateTime<Utc>) -> DateTime<Utc> {
    m.next_send_at.map_or(now, |n| n.max(now))
}

/// How many sends could be booked now (within [`HORIZON`]), and, when none, when the
/// first one could.
pub(crate) fn room(m: &whatsapp_connection::Model, now: DateTime<Utc>) -> (usize, DateTime<Utc>) {
    let start = first_free(m, now);
    let end = now + HORIZON;
    if start >= end {
        return (0, start - HORIZON + Duration::milliseconds(1));
    }
    // Slots strictly before the horizon's end: one horizon never holds more than the rate.
    let step = interval(m).num_microseconds().unwrap_or(1).max(1);
    let span = (end - start).num_microseconds().unwrap_or(0);
    (((span + step - 1) / step) as usize, start)
}

/// Books `n` sends on the locked connection: the time each may go out.
pub(crate) async fn book<C: ConnectionTrait>(
    txn: &C,
    m: &whatsapp_connection::Model,
    n: usize,
    now: DateTime<Utc>,
) -> DomainResult<Vec<DateTime<Utc>>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let start = first_free(m, now);
    let step = interval(m);
    let times: Vec<DateTime<Utc>> = (0..n as i32).map(|i| start + step * i).collect();
    let next = start + step * n as i32;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE whatsapp_connections SET next_send_at = {} WHERE tenant_id = {}",
        b.bind(next),
        b.bind(m.tenant_id)
    );
    txn.execute_raw(b.statement(sql)).await?;
    Ok(times)
}

/// Meta said the number is over its rate: no send before the pause ends. The pause, and
/// whether the longest pause had already been taken (Meta keeps limiting).
pub(crate) async fn throttled<C: ConnectionTrait>(
    txn: &C,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> DomainResult<(Duration, bool)> {
    let Some(m) = lock(txn, tenant).await? else {
        return Ok((Duration::zero(), false));
    };
    let level = (m.throttle_level + 1).clamp(1, MAX_THROTTLE_LEVEL);
    let pause = Duration::seconds(1 << level);
    let next = first_free(&m, now).max(now + pause);
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE whatsapp_connections SET next_send_at = {}, throttle_level = {} WHERE tenant_id = {}",
        b.bind(next),
        b.bind(level),
        b.bind(tenant)
    );
    txn.execute_raw(b.statement(sql)).await?;
    Ok((pause, m.throttle_level >= MAX_THROTTLE_LEVEL))
}

/// Sends went through: the next rate limit starts from the shortest pause again.
pub(crate) async fn cleared<C: ConnectionTrait>(txn: &C, tenant: Uuid) -> DomainResult<()> {
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE whatsapp_connections SET throttle_level = 0 WHERE tenant_id = {} AND throttle_level > 0",
        b.bind(tenant)
    );
    txn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(rate: i32, next: Option<DateTime<Utc>>) -> whatsapp_connection::Model {
        let now = Utc::now();
        whatsapp_connection::Model {
            tenant_id: Uuid::nil(),
            phone_number_id: "1".into(),
            business_account_id: "2".into(),
            access_token_enc: String::new(),
            app_secret_enc: String::new(),
            verify_token_hash: String::new(),
            webhook_token: String::new(),
            broken_reason: None,
            broken_at: None,
            templates_synced_at: None,
            messages_per_second: rate,
            next_send_at: next,
            throttle_level: 0,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn room_is_one_horizon_of_slots() {
        let now = Utc::now();
        assert_eq!(room(&conn(10, None), now).0, 10);
        assert_eq!(
            room(&conn(80, Some(now + Duration::milliseconds(500))), now).0,
            40
        );
        let (n, at) = room(&conn(10, Some(now + Duration::seconds(3))), now);
        assert_eq!(n, 0);
        assert_eq!(at, now + Duration::seconds(2) + Duration::milliseconds(1));
        // A nonsense rate is still a rate.
        assert!(room(&conn(0, None), now).0 >= 1);
    }
}
