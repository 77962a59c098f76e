//! The webhooks lane's pump: finds endpoints with due deliveries, claims a batch per
//! endpoint (each subject's oldest pending delivery only, so one customer's or call's
//! events arrive in order), signs and sends them, and records every attempt.
//!
//! Each endpoint is drained by its own task, a few batches at a time, so a slow or failing
//! endpoint holds its own task and nothing else; requests in flight are capped per pump.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::webhook_endpoint;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, TransactionTrait};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::Outbound;
use super::endpoints::signing_secrets;
use super::payloads::tenant_event;
use super::record::{Subscriptions, record};
use super::types::EventType;
use crate::db::{Binder, Dialect};
use crate::error::DomainResult;
use crate::services::Services;

/// Bytes of an endpoint's answer kept in the log.
pub const EXCERPT_BYTES: usize = 1024;
/// Endpoints one pump drains at once (with the claims below, it bounds the event bodies a
/// pump holds).
const ACTIVE_ENDPOINTS: usize = 32;
/// Rounds a pump with nothing out waits for resting endpoints before it ends.
const IDLE_ROUNDS: usize = 4;
/// Batches each pipeline of an endpoint's task sends before it yields its place to other
/// endpoints.
const BATCHES_PER_TURN: usize = 4;
/// Batches of one endpoint in flight at once (their records' commits overlap).
const PIPELINES: usize = 2;
/// A pipeline claims this many times `WEBHOOK_PER_ENDPOINT` deliveries at once (sent
/// within the endpoint's permits): fewer, larger statements per delivery.
const CLAIM_FACTOR: usize = 4;
/// How often a pump with batches out looks for other endpoints' due deliveries.
const LOOK_AGAIN: Duration = Duration::from_millis(200);
/// How long an endpoint whose turn found nothing to claim is left alone.
const REST: Duration = Duration::from_millis(500);
/// A `Retry-After` longer than this is not waited for beyond the schedule's own waits.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpStats {
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
}

impl PumpStats {
    fn add(&mut self, o: PumpStats) {
        self.attempts += o.attempts;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
    }
}

/// Sends due deliveries until none is left or `deadline` passes. Batches already out are
/// always awaited and recorded (an error stops new work, never drops a sent batch).
pub async fn pump(services: &Services, deadline: Instant) -> DomainResult<PumpStats> {
    let outbound = services.outbound().clone();
    let db = services.db().clone();
    let permits = Arc::new(Semaphore::new(outbound.settings().in_flight));
    let mut stats = PumpStats::default();
    let mut active: HashSet<Uuid> = HashSet::new();
    // Endpoints whose turn claimed nothing (another worker's claim was in the way) rest a
    // moment before this pump looks at them again; after a few such rounds it ends.
    let mut resting: HashMap<Uuid, Instant> = HashMap::new();
    let mut idle_rounds = 0;
    let mut failed = false;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let now = Instant::now();
        let open = !failed && now < deadline && active.len() < ACTIVE_ENDPOINTS;
        if open {
            resting.retain(|_, until| *until > now);
            match due_endpoints(&db, Utc::now()).await {
                Ok(due) => {
                    for endpoint in due {
                        if active.len() >= ACTIVE_ENDPOINTS {
                            break;
                        }
                        if active.contains(&endpoint) || resting.contains_key(&endpoint) {
                            continue;
                        }
                        active.insert(endpoint);
                        let (db, outbound, permits) =
                            (db.clone(), outbound.clone(), permits.clone());
                        tasks.spawn(async move {
                            let r = drain(&db, &outbound, &permits, endpoint, deadline).await;
                            (endpoint, r)
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not look for due webhook deliveries");
                    failed = true;
                }
            }
        }
        // While a slow endpoint's batch is out, keep looking for other endpoints' work.
        let joined = if open {
            tokio::select! {
                j = tasks.join_next() => j,
                _ = tokio::time::sleep(LOOK_AGAIN) => continue,
            }
        } else {
            tasks.join_next().await
        };
        let Some(joined) = joined else {
            if !failed
                && !resting.is_empty()
                && idle_rounds < IDLE_ROUNDS
                && Instant::now() < deadline
            {
                idle_rounds += 1;
                tokio::time::sleep(REST).await;
                continue;
            }
            break;
        };
        match joined {
            Ok((endpoint, result)) => {
                active.remove(&endpoint);
                match result {
                    Ok(s) if s.attempts == 0 => {
                        resting.insert(endpoint, Instant::now() + REST);
                    }
                    Ok(s) => {
                        idle_rounds = 0;
                        stats.add(s);
                    }
                    Err(e) => {
                        resting.insert(endpoint, Instant::now() + REST);
                        tracing::warn!(%endpoint, error = %e, "webhook delivery batch failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "webhook delivery task panicked"),
        }
    }
    Ok(stats)
}

/// Enabled endpoints with a delivery due now and not leased.
async fn due_endpoints(db: &DatabaseConnection, now: DateTime<Utc>) -> DomainResult<Vec<Uuid>> {
    let mut b = Binder::new(db.get_database_backend());
    let (n1, n2, yes) = (b.bind(now), b.bind(now), b.bind(true));
    let sql = format!(
        "SELECT d.endpoint_id FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = {yes} \
         WHERE d.status = 'PENDING' AND d.next_attempt_at <= {n1} \
         AND (d.lease_until IS NULL OR d.lease_until < {n2}) \
         GROUP BY d.endpoint_id ORDER BY MIN(d.next_attempt_at) LIMIT 256"
    );
    let rows = db.query_all_raw(b.statement(sql)).await?;
    rows.iter()
        .map(|r| r.try_get("", "endpoint_id").map_err(Into::into))
        .collect()
}

struct Claimed {
    id: Uuid,
    event_id: String,
    subject: Option<Uuid>,
    attempts: i32,
    body: String,
}

/// A claim's deliveries and its lease: only the holder of this lease records them.
struct Claim {
    lease_until: DateTime<Utc>,
    items: Vec<Claimed>,
}

/// Takes up to `n` due deliveries of one endpoint: per subject only the oldest pending
/// one, so a later event waits while an earlier one is retrying. Nothing is taken once the
/// endpoint is disabled or its URL or secret changed since `endpoint` was read.
async fn claim(
    db: &DatabaseConnection,
    endpoint: &webhook_endpoint::Model,
    n: usize,
    lease: Duration,
) -> DomainResult<Claim> {
    let now = Utc::now();
    let lease_until = now + chrono::Duration::from_std(lease).unwrap_or_default();
    let dialect = Dialect::of(db);
    let mut b = Binder::new(db.get_database_backend());
    let lease_slot = b.bind(lease_until);
    let e = b.bind(endpoint.id);
    let (n1, n2) = (b.bind(now), b.bind(now));
    let (yes, url, secret) = (
        b.bind(true),
        b.bind(endpoint.url.clone()),
        b.bind(endpoint.secret_enc.clone()),
    );
    let limit = b.bind(n as i64);
    let n3 = b.bind(now);
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = {lease_slot} WHERE id IN (\
           SELECT d.id FROM webhook_deliveries d \
           WHERE d.endpoint_id = {e} AND d.status = 'PENDING' AND d.next_attempt_at <= {n1} \
           AND (d.lease_until IS NULL OR d.lease_until < {n2}) \
           AND (d.subject IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
             WHERE p.endpoint_id = d.endpoint_id AND p.subject = d.subject \
             AND p.status = 'PENDING' AND p.id < d.id)) \
           AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id \
             AND w.enabled = {yes} AND w.url = {url} AND w.secret_enc = {secret}) \
           ORDER BY d.id LIMIT {limit}{skip}) \
         AND (lease_until IS NULL OR lease_until < {n3}) \
         RETURNING id, event_id, subject, attempts",
        skip = dialect.skip_locked(),
    );
    if dialect == Dialect::Postgres {
        // The bodies come with the claim: one round trip.
        let sql = format!(
            "WITH c AS ({sql}) SELECT c.id, c.event_id, c.subject, c.attempts, e.body FROM c \
             JOIN webhook_events e ON e.id = c.event_id ORDER BY c.id"
        );
        // A lease lost to a crash only means the delivery is claimed (and sent) again, which
        // at-least-once delivery allows: the claim does not wait for its WAL flush.
        let txn = db.begin().await?;
        txn.execute_unprepared("SET LOCAL synchronous_commit = off")
            .await?;
        let rows = txn.query_all_raw(b.statement(sql)).await?;
        txn.commit().await?;
        let mut items = Vec::new();
        for r in rows {
            items.push(Claimed {
                id: r.try_get("", "id")?,
                event_id: r.try_get("", "event_id")?,
                subject: r.try_get("", "subject")?,
                attempts: r.try_get("", "attempts")?,
                body: r.try_get("", "body")?,
            });
        }
        return Ok(Claim { lease_until, items });
    }
    let rows = db.query_all_raw(b.statement(sql)).await?;
    let mut claimed: Vec<(Uuid, String, Option<Uuid>, i32)> = Vec::with_capacity(rows.len());
    for r in rows {
        claimed.push((
            r.try_get("", "id")?,
            r.try_get("", "event_id")?,
            r.try_get("", "subject")?,
            r.try_get("", "attempts")?,
        ));
    }
    if claimed.is_empty() {
        return Ok(Claim {
            lease_until,
            items: Vec::new(),
        });
    }
    let mut b = Binder::new(db.get_database_backend());
    let ids: HashSet<&str> = claimed.iter().map(|c| c.1.as_str()).collect();
    let list = b.list(ids.into_iter().map(|s| s.to_owned().into()));
    let sql = format!("SELECT id, body FROM webhook_events WHERE id IN ({list})");
    let mut bodies: HashMap<String, String> = HashMap::new();
    for r in db.query_all_raw(b.statement(sql)).await? {
        bodies.insert(r.try_get("", "id")?, r.try_get("", "body")?);
    }
    claimed.sort_by_key(|c| c.0);
    let items = claimed
        .into_iter()
        .filter_map(|(id, event_id, subject, attempts)| {
            // A redelivery and its original may share one event.
            let body = bodies.get(&event_id).cloned()?;
            Some(Claimed {
                id,
                event_id,
                subject,
                attempts,
                body,
            })
        })
        .collect();
    Ok(Claim { lease_until, items })
}

/// Deliveries of `endpoint` that are due but wait behind an earlier one of their subject
/// that is itself waiting for a retry are put off until that retry, so they stop looking
/// due and no pump keeps finding work it cannot take. Only waits behind a retry are put
/// off: one behind a delivery in flight would miss its end (the release in `settle` may
/// already have run), and such a wait is short anyway.
async fn defer_blocked(db: &DatabaseConnection, endpoint: Uuid) -> DomainResult<u64> {
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    let (n1, n2) = (b.bind(now), b.bind(now));
    let e = b.bind(endpoint);
    let n3 = b.bind(now);
    let (n4, n5) = (b.bind(now), b.bind(now));
    let earlier = |a: &str, c: &str| {
        format!(
            "FROM webhook_deliveries p WHERE p.endpoint_id = webhook_deliveries.endpoint_id \
             AND p.subject = webhook_deliveries.subject AND p.status = 'PENDING' \
             AND p.id < webhook_deliveries.id AND p.next_attempt_at > {a} \
             AND (p.lease_until IS NULL OR p.lease_until < {c})"
        )
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET next_attempt_at = (SELECT MIN(p.next_attempt_at) {}) \
         WHERE endpoint_id = {e} AND status = 'PENDING' AND attempts = 0 AND subject IS NOT NULL \
         AND next_attempt_at <= {n3} AND EXISTS (SELECT 1 {})",
        earlier(&n1, &n2),
        earlier(&n4, &n5),
    );
    Ok(db.execute_raw(b.statement(sql)).await?.rows_affected())
}

/// What one attempt came to.
struct Attempt {
    delivery: Uuid,
    subject: Option<Uuid>,
    prior_attempts: i32,
    at: DateTime<Utc>,
    status: Option<u16>,
    latency_ms: i64,
    excerpt: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
    fn gone(&self) -> bool {
        self.status == Some(410)
    }
}

/// One endpoint's turn: a few pipelines, each claiming a batch, sending it and recording
/// it, [`BATCHES_PER_TURN`] times. While one pipeline waits for its record to commit the
/// others send, so commits overlap; requests in flight to the endpoint stay within
/// `WEBHOOK_PER_ENDPOINT` (its own permits) and the pump's total within its permits.
/// Order per subject holds: a delivery being sent or recorded is still pending (and
/// leased), so no pipeline can claim a later one of its subject until it has committed.
async fn drain(
    db: &DatabaseConnection,
    outbound: &Outbound,
    permits: &Arc<Semaphore>,
    endpoint_id: Uuid,
    deadline: Instant,
) -> DomainResult<PumpStats> {
    let Some(endpoint) = webhook_endpoint::Entity::find_by_id(endpoint_id)
        .one(db)
        .await?
    else {
        return Ok(PumpStats::default());
    };
    if !endpoint.enabled {
        return Ok(PumpStats::default());
    }
    let secrets = signing_secrets(outbound, &endpoint)?;
    let timeout = Duration::from_millis(outbound.settings().timeout_ms);
    let per_endpoint = outbound.settings().per_endpoint;
    let batch = per_endpoint * CLAIM_FACTOR;
    // Long enough for every pipeline's claim at the endpoint's concurrency, each request
    // timing out; a request that could not start in time is not sent (see below).
    let lease = timeout * (CLAIM_FACTOR * PIPELINES) as u32 + Duration::from_secs(60);
    let endpoint_permits = Semaphore::new(per_endpoint);
    let disabled = std::sync::atomic::AtomicBool::new(false);
    let deferred = std::sync::atomic::AtomicBool::new(false);
    let pipeline = || async {
        let mut stats = PumpStats::default();
        for _ in 0..BATCHES_PER_TURN {
            if Instant::now() >= deadline || disabled.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let claim = claim(db, &endpoint, batch, lease).await?;
            if claim.items.is_empty() {
                if !deferred.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    defer_blocked(db, endpoint_id).await?;
                }
                break;
            }
            // The last moment a request may start and still end (timing out) well within
            // the lease: a delivery waiting longer for a permit is left for a later claim.
            let send_by = tokio::time::Instant::from_std(
                Instant::now() + lease.saturating_sub(timeout + Duration::from_secs(10)),
            );
            let sends = claim.items.iter().map(|c| async {
                let held = async {
                    let mine = endpoint_permits.acquire().await;
                    let all = permits.acquire().await;
                    (mine, all)
                };
                match tokio::time::timeout_at(send_by, held).await {
                    Ok(held) => {
                        let attempt = send(outbound, &endpoint.url, &secrets, c).await;
                        drop(held);
                        Ok(attempt)
                    }
                    Err(_) => Err(c.id),
                }
            });
            let (attempts, unsent): (Vec<_>, Vec<_>) = futures_util::future::join_all(sends)
                .await
                .into_iter()
                .partition(Result::is_ok);
            let attempts: Vec<Attempt> = attempts.into_iter().filter_map(Result::ok).collect();
            let unsent: Vec<Uuid> = unsent.into_iter().filter_map(Result::err).collect();
            // Sent before the endpoint was disabled, or not: recorded either way.
            if settle(
                db,
                outbound,
                &endpoint,
                claim.lease_until,
                &attempts,
                &unsent,
            )
            .await?
            {
                disabled.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            for a in &attempts {
                stats.attempts += 1;
                if a.succeeded() {
                    stats.succeeded += 1;
                } else {
                    stats.failed += 1;
                }
            }
        }
        Ok::<_, crate::error::DomainError>(stats)
    };
    let mut stats = PumpStats::default();
    for r in futures_util::future::join_all((0..PIPELINES).map(|_| pipeline())).await {
        stats.add(r?);
    }
    Ok(stats)
}

async fn send(outbound: &Outbound, url: &str, secrets: &[String], c: &Claimed) -> Attempt {
    let at = Utc::now();
    let mut attempt = Attempt {
        delivery: c.id,
        subject: c.subject,
        prior_attempts: c.attempts,
        at,
        status: None,
        latency_ms: 0,
        excerpt: None,
        error: None,
        retry_after: None,
    };
    // IP literals never reach the resolver: check them here (names are checked as they
    // resolve, so a name that moves to a private address is refused too).
    if let Err(e) = outbound.policy().check_literal(url) {
        attempt.error = Some(format!("refused: {e}"));
        return attempt;
    }
    let ts = at.timestamp();
    let keys: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let headers = [
        ("webhook-id", c.event_id.clone()),
        ("webhook-timestamp", ts.to_string()),
        (
            "webhook-signature",
            super::signing::signature_header(&keys, &c.event_id, ts, c.body.as_bytes()),
        ),
    ];
    let started = Instant::now();
    let result = outbound
        .client()
        .post_once(url, &headers, c.body.clone(), EXCERPT_BYTES)
        .await;
    attempt.latency_ms = started.elapsed().as_millis() as i64;
    metrics::histogram!("webhook_delivery_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(answer) => {
            attempt.status = Some(answer.status);
            attempt.retry_after = answer.retry_after;
            attempt.excerpt = Some(storable(&answer.excerpt)).filter(|e| !e.is_empty());
            if !(200..300).contains(&answer.status) {
                attempt.error = Some(format!("HTTP {}", answer.status));
            }
        }
        Err(e) => attempt.error = Some(storable(&e)),
    }
    let outcome = match (attempt.succeeded(), attempt.status) {
        (true, _) => "succeeded",
        (false, Some(_)) => "http_error",
        (false, None) => "no_answer",
    };
    metrics::counter!("webhook_attempts_total", "outcome" => outcome).increment(1);
    attempt
}

/// Text from outside as a column can hold it: PostgreSQL's `text` refuses NUL.
fn storable(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// The wait before attempt `n + 1` after `n` failed ones, with ±10 % jitter; `None` once
/// the schedule is spent.
pub fn retry_wait(schedule: &[Duration], failed: usize) -> Option<Duration> {
    let base = *schedule.get(failed.checked_sub(1)?)?;
    let mut b = [0u8; 2];
    let r = match getrandom::fill(&mut b) {
        Ok(()) => u16::from_le_bytes(b) as f64 / u16::MAX as f64,
        Err(_) => 0.5,
    };
    Some(base.mul_f64(0.9 + 0.2 * r))
}

/// Records a batch's attempts and moves each delivery on, in one transaction; updates the
/// endpoint's health and disables it after a 410 or after failing for too long. Returns
/// whether the endpoint was disabled.
async fn settle(
    db: &DatabaseConnection,
    outbound: &Outbound,
    endpoint: &webhook_endpoint::Model,
    lease_until: DateTime<Utc>,
    attempts: &[Attempt],
    unsent: &[Uuid],
) -> DomainResult<bool> {
    let settings = outbound.settings();
    let now = Utc::now();
    let txn = db.begin().await?;
    let backend = txn.get_database_backend();
    if !unsent.is_empty() {
        let mut b = Binder::new(backend);
        let list = b.list(unsent.iter().map(|id| (*id).into()));
        let sql = format!(
            "UPDATE webhook_deliveries SET lease_until = NULL WHERE id IN ({list}) AND lease_until = {}",
            b.bind(lease_until)
        );
        txn.execute_raw(b.statement(sql)).await?;
    }
    if attempts.is_empty() {
        txn.commit().await?;
        return Ok(false);
    }

    let mut b = Binder::new(backend);
    let rows: Vec<String> = attempts
        .iter()
        .map(|a| {
            b.row([
                Uuid::now_v7().into(),
                a.delivery.into(),
                endpoint.tenant_id.into(),
                endpoint.id.into(),
                a.at.into(),
                a.status.map(i32::from).into(),
                a.latency_ms.into(),
                a.excerpt.clone().into(),
                a.error.clone().into(),
            ])
        })
        .collect();
    let sql = format!(
        "INSERT INTO webhook_attempts (id, delivery_id, tenant_id, endpoint_id, attempted_at, status_code, latency_ms, response_excerpt, error) VALUES {}",
        rows.join(", ")
    );
    txn.execute_raw(b.statement(sql)).await?;

    let mut soonest_retry: Option<DateTime<Utc>> = None;
    let mut exhausted: Vec<Uuid> = Vec::new();
    let mut b = Binder::new(backend);
    let mut rows = Vec::with_capacity(attempts.len());
    for a in attempts {
        let tries = a.prior_attempts + 1;
        let (status, next, finished) = if a.succeeded() {
            ("SUCCEEDED", now, Some(now))
        } else if a.gone() {
            // Waits for the endpoint to be enabled again.
            ("PENDING", now, None)
        } else {
            match retry_wait(&settings.retry_schedule, tries as usize) {
                Some(wait) => {
                    let wait = match a.retry_after {
                        Some(ra) => wait.max(ra.min(MAX_RETRY_AFTER)),
                        None => wait,
                    };
                    let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
                    soonest_retry = Some(soonest_retry.map_or(next, |s| s.min(next)));
                    ("PENDING", next, None)
                }
                None => ("FAILED", now, Some(now)),
            }
        };
        if status == "FAILED"
            && let Some(subject) = a.subject
        {
            exhausted.push(subject);
        }
        match status {
            "FAILED" => metrics::counter!("webhook_deliveries_failed_total").increment(1),
            "SUCCEEDED" => metrics::counter!("webhook_deliveries_succeeded_total").increment(1),
            _ => {}
        }
        rows.push(b.row([
            a.delivery.into(),
            status.into(),
            tries.into(),
            next.into(),
            a.status.map(i32::from).into(),
            a.error.clone().into(),
            finished.into(),
        ]));
    }
    // One statement for the batch; every SET reads the row as it was. Only this claim's
    // lease holder records: a delivery whose lease ran out and was taken again is not
    // overwritten (its attempt above is still logged).
    let sql = format!(
        "WITH v (id, status, attempts, next_at, code, err, finished) AS (VALUES {}) \
         UPDATE webhook_deliveries SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_at, \
         lease_until = NULL, last_status_code = v.code, last_error = v.err, updated_at = {}, finished_at = v.finished \
         FROM v WHERE webhook_deliveries.id = v.id AND webhook_deliveries.status = 'PENDING' \
         AND webhook_deliveries.lease_until = {}",
        rows.join(", "),
        b.bind(now),
        b.bind(lease_until),
    );
    txn.execute_raw(b.statement(sql)).await?;

    // The next events of subjects whose delivery ended may go now (they were put off
    // while it was pending).
    let ended: HashSet<Uuid> = attempts
        .iter()
        .filter(|a| a.succeeded())
        .filter_map(|a| a.subject)
        .chain(exhausted)
        .collect();
    if !ended.is_empty() {
        let mut b = Binder::new(backend);
        let list = b.list(ended.into_iter().map(Into::into));
        let sql = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = {} WHERE endpoint_id = {} AND status = 'PENDING' \
             AND attempts = 0 AND next_attempt_at > {} AND subject IN ({list})",
            b.bind(now),
            b.bind(endpoint.id),
            b.bind(now),
        );
        txn.execute_raw(b.statement(sql)).await?;
    }

    // Retries due sooner than the periodic pump get a pump of their own at that time.
    if let Some(at) = soonest_retry.filter(|at| *at - now < chrono::Duration::seconds(2)) {
        super::record::schedule_pump(&txn, at).await?;
    }

    let any_success = attempts.iter().any(Attempt::succeeded);
    let gone = attempts.iter().any(Attempt::gone);
    if attempts.iter().all(Attempt::succeeded) {
        // The common case: no lock, and no write unless the endpoint was failing.
        let mut b = Binder::new(backend);
        let sql = format!(
            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = {} AND failing_since IS NOT NULL",
            b.bind(endpoint.id)
        );
        txn.execute_raw(b.statement(sql)).await?;
        txn.commit().await?;
        return Ok(false);
    }
    let mut b = Binder::new(backend);
    let id = b.bind(endpoint.id);
    let sql = format!(
        "SELECT enabled, failing_since FROM webhook_endpoints WHERE id = {id}{}",
        // Not a key lock: deliveries recorded meanwhile reference this row.
        match Dialect::of(&txn) {
            Dialect::Postgres => " FOR NO KEY UPDATE",
            Dialect::Sqlite => "",
        }
    );
    let Some(row) = txn.query_one_raw(b.statement(sql)).await? else {
        txn.commit().await?;
        return Ok(true);
    };
    let enabled: bool = row.try_get("", "enabled")?;
    let failing_since: Option<DateTime<Utc>> = row.try_get("", "failing_since")?;
    let failing_since = if any_success {
        None
    } else {
        Some(failing_since.unwrap_or(now))
    };
    let too_long = failing_since.is_some_and(|since| {
        now - since >= chrono::Duration::seconds(settings.disable_after_seconds as i64)
    });
    let disable_reason = if !enabled {
        None
    } else if gone {
        Some("the endpoint answered 410 Gone".to_owned())
    } else if too_long {
        Some(format!(
            "every delivery failed since {}",
            failing_since.map(|s| s.to_rfc3339()).unwrap_or_default()
        ))
    } else {
        None
    };
    let mut b = Binder::new(backend);
    let sql = format!(
        "UPDATE webhook_endpoints SET failing_since = {}, enabled = {}, disabled_reason = COALESCE({}, disabled_reason), updated_at = {} WHERE id = {}",
        b.bind(failing_since),
        b.bind(enabled && disable_reason.is_none()),
        b.bind(disable_reason.clone()),
        b.bind(now),
        b.bind(endpoint.id),
    );
    txn.execute_raw(b.statement(sql)).await?;
    if disable_reason.is_some() {
        super::endpoints::park(&txn, endpoint.id).await?;
    }
    if let Some(reason) = &disable_reason {
        tracing::warn!(endpoint = %endpoint.id, reason, "webhook endpoint disabled");
        metrics::counter!("webhook_endpoints_disabled_total").increment(1);
        // The tenant's other endpoints hear of it (this one is disabled by now).
        let subs = Subscriptions::load(&txn, [endpoint.tenant_id]).await?;
        record(
            &txn,
            &subs,
            vec![tenant_event(
                endpoint.tenant_id,
                EventType::EndpointDisabled,
                serde_json::json!({
                    "endpoint": {"id": endpoint.id, "url": endpoint.url},
                    "reason": reason,
                    "failingSince": failing_since,
                }),
            )],
        )
        .await?;
    }
    txn.commit().await?;
    Ok(!enabled || disable_reason.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_followed_with_jitter_then_spent() {
        let schedule: Vec<Duration> = [5, 300, 1800]
            .into_iter()
            .map(Duration::from_secs)
            .collect();
        assert_eq!(retry_wait(&schedule, 0), None);
        for (failed, base) in [(1, 5.0), (2, 300.0), (3, 1800.0)] {
            let w = retry_wait(&schedule, failed).expect("a wait").as_secs_f64();
            assert!(
                w >= base * 0.9 - 1e-9 && w <= base * 1.1 + 1e-9,
                "{failed}: {w}"
            );
        }
        assert_eq!(retry_wait(&schedule, 4), None);
    }
}
