//! How many LLM requests may be in flight at once for one deployment. A local server
//! (Ollama on one GPU) slows to a crawl when many requests pile in, whatever the number of
//! worker processes sending them.
//!
//! Without Redis the cap is a semaphore in this process. With Redis every process takes a
//! lease in one sorted set (member: a random id, score: when the lease expires), counted
//! and added atomically by a script; a lease outlives the request timeout by a margin, so
//! the slots of a process that died free themselves. When Redis cannot be reached, each
//! process falls back to its own semaphore.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How much longer than the request timeout a lease lives: the budget wait and reading
/// the body come on top of the request itself.
const LEASE_MARGIN: Duration = Duration::from_secs(15);

/// How long the shared cap is left alone after a Redis error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

pub struct ConcurrencyLimit {
    local: Arc<Semaphore>,
    shared: Option<SharedLeases>,
}

impl ConcurrencyLimit {
    /// At most `limit` requests at once in this process.
    pub fn local(limit: usize) -> Self {
        ConcurrencyLimit {
            local: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
            shared: None,
        }
    }

    /// At most `limit` requests at once across every process counting under `key` in
    /// Redis. `request_timeout` bounds a request, so a lease lives a little longer.
    pub fn shared(
        limit: usize,
        request_timeout: Duration,
        conn: redis::aio::ConnectionManager,
        key: String,
    ) -> Self {
        ConcurrencyLimit {
            local: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
            shared: Some(SharedLeases {
                conn,
                key,
                limit: limit.max(1),
                lease: request_timeout + LEASE_MARGIN,
                warned: AtomicBool::new(false),
                retry_at: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Waits for a free slot. Release it with [`Slot::release`] when the request is done
    /// (dropping it releases it too, in a background task).
    pub async fn acquire(&self) -> Slot {
        if let Some(shared) = &self.shared
            && shared.available()
        {
            match shared.acquire().await {
                Ok(lease) => {
                    return Slot {
                        lease: Some(lease),
                        _permit: None,
                    };
                }
                Err(e) => shared.failed(&e),
            }
        }
        // The semaphore is never closed, so this always yields a permit.
        let permit = self.local.clone().acquire_owned().await.ok();
        Slot {
            lease: None,
            _permit: permit,
        }
    }
}

/// One request's place; freed on release or drop.
pub struct Slot {
    lease: Option<Lease>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Slot {
    /// Frees the slot now (for a shared lease, before returning).
    pub async fn release(mut self) {
        if let Some(lease) = self.lease.take() {
            lease.remove().await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Dropped without `release` (an error path, a cancelled future): free the lease in
        // the background; without a runtime it expires on its own.
        if let Some(lease) = self.lease.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(lease.remove());
        }
    }
}

struct Lease {
    conn: redis::aio::ConnectionManager,
    key: String,
    member: String,
}

impl Lease {
    async fn remove(self) {
        let mut conn = self.conn;
        let removed: redis::RedisResult<i64> = redis::cmd("ZREM")
            .arg(&self.key)
            .arg(&self.member)
            .query_async(&mut conn)
            .await;
        if let Err(error) = removed {
            // The lease expires by itself; only the slot is held a little longer.
            tracing::debug!(%error, "could not release an LLM concurrency lease");
        }
    }
}

struct SharedLeases {
    conn: redis::aio::ConnectionManager,
    key: String,
    limit: usize,
    lease: Duration,
    warned: AtomicBool,
    /// After a Redis error, requests use the local semaphore until then.
    retry_at: std::sync::Mutex<Option<Instant>>,
}

/// Drops expired leases, then adds one if fewer than the limit are held; by Redis's clock,
/// so processes on hosts whose clocks differ agree. Returns 1 when the lease was taken.
const TAKE_LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
  return 1
end
return 0
";

impl SharedLeases {
    fn available(&self) -> bool {
        let retry_at = self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
        retry_at.is_none_or(|at| Instant::now() >= at)
    }

    fn failed(&self, error: &redis::RedisError) {
        *self.retry_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_AFTER_ERROR);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "shared LLM concurrency cap unavailable; counting in this process");
        }
    }

    /// Polls until a lease is free. Errors end the wait (the caller falls back).
    async fn acquire(&self) -> redis::RedisResult<Lease> {
        let member = uuid::Uuid::new_v4().simple().to_string();
        let ttl_ms = self.lease.as_millis().clamp(1, i64::MAX as u128) as i64;
        loop {
            let mut conn = self.conn.clone();
            let taken: i64 = redis::cmd("EVAL")
                .arg(TAKE_LEASE)
                .arg(1)
                .arg(&self.key)
                .arg(self.limit)
                .arg(ttl_ms)
                .arg(&member)
                .query_async(&mut conn)
                .await?;
            if taken == 1 {
                self.warned.store(false, Ordering::Relaxed);
                return Ok(Lease {
                    conn: self.conn.clone(),
                    key: self.key.clone(),
                    member,
                });
            }
            // Full: look again shortly, with jitter so waiters do not all ask at once.
            tokio::time::sleep(Duration::from_millis(20 + u64::from(rand_u8() % 31))).await;
        }
    }
}

fn rand_u8() -> u8 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    b[0]
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Runs `tasks` holders of `limit` slots; returns the most held at once.
    async fn peak(limits: Vec<Arc<ConcurrencyLimit>>, tasks: usize) -> usize {
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for i in 0..tasks {
            let limit = limits[i % limits.len()].clone();
            let (held, peak) = (held.clone(), peak.clone());
            handles.push(tokio::spawn(async move {
                let slot = limit.acquire().await;
                let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                held.fetch_sub(1, Ordering::SeqCst);
                slot.release().await;
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        peak.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn the_local_cap_holds() {
        let limit = Arc::new(ConcurrencyLimit::local(3));
        let most = peak(vec![limit], 12).await;
        assert_eq!(most, 3);
    }

    use crate::testing_redis_manager as manager;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_share_the_cap() {
        let Some(url) = crate::testing_redis_url() else {
            return;
        };
        let key = format!(
            "switchboard:test:llm-slots:{}",
            uuid::Uuid::new_v4().simple()
        );
        // Two "processes", each of which alone would allow 3.
        let a = Arc::new(ConcurrencyLimit::shared(
            3,
            Duration::from_secs(5),
            manager(&url),
            key.clone(),
        ));
        let b = Arc::new(ConcurrencyLimit::shared(
            3,
            Duration::from_secs(5),
            manager(&url),
            key.clone(),
        ));
        let most = peak(vec![a, b], 12).await;
        assert!(most <= 3, "{most}");
        assert!(most >= 2, "{most}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_the_local_semaphore() {
        // Nothing listens on port 1.
        let limit = Arc::new(ConcurrencyLimit::shared(
            2,
            Duration::from_secs(5),
            manager("redis://127.0.0.1:1"),
            "switchboard:test:llm-slots:down".into(),
        ));
        let most = peak(vec![limit.clone()], 6).await;
        assert_eq!(most, 2);
        assert!(!limit.shared.as_ref().unwrap().available());
    }
}
