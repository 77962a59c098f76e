//! A request budget for one provider account (Bolna allows about 500 requests a minute
//! per organisation; we stay under a configured figure). Requests beyond it wait their turn
//! instead of drawing 429s.
//!
//! Without Redis the budget is a token bucket in this process. With Redis every process
//! sending for the account (API replicas, workers) counts in the same short windows, so
//! the account's limit holds however many processes there are; when Redis cannot be
//! reached, each process falls back to its own bucket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub struct Budget {
    local: Bucket,
    shared: Option<SharedWindows>,
}

impl Budget {
    /// At most `limit` requests in any minute from this process.
    pub fn per_minute(limit: u32) -> Self {
        Budget {
            local: Bucket::per_minute(limit),
            shared: None,
        }
    }

    /// At most `limit` requests in any minute across every process counting under `key`
    /// in Redis (falling back to this process's own bucket while Redis is unreachable).
    pub fn shared_per_minute(limit: u32, conn: redis::aio::ConnectionManager, key: String) -> Self {
        Budget {
            local: Bucket::per_minute(limit),
            shared: Some(SharedWindows::per_minute(limit, conn, key)),
        }
    }

    /// Waits until a request may be sent, then counts it.
    pub async fn take(&self) {
        if let Some(shared) = &self.shared
            && shared.available()
        {
            match shared.take().await {
                Ok(()) => return,
                Err(e) => shared.failed(&e),
            }
        }
        self.local.take().await;
    }
}

/// This process's token bucket.
struct Bucket {
    /// Tokens added per second.
    rate: f64,
    /// The most tokens held (the largest burst).
    capacity: f64,
    bucket: tokio::sync::Mutex<(f64, Instant)>,
}

impl Bucket {
    /// At most `limit` requests in any minute: 90% of it as a steady rate, 10% as a burst.
    fn per_minute(limit: u32) -> Self {
        let limit = f64::from(limit.max(1));
        let capacity = (limit / 10.0).max(1.0);
        Bucket {
            rate: (limit - capacity) / 60.0,
            capacity,
            bucket: tokio::sync::Mutex::new((capacity, Instant::now())),
        }
    }

    async fn take(&self) {
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().await;
                let now = Instant::now();
                let (tokens, last) = *bucket;
                let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate)
                    .min(self.capacity);
                if tokens >= 1.0 {
                    *bucket = (tokens - 1.0, now);
                    return;
                }
                *bucket = (tokens, now);
                Duration::from_secs_f64((1.0 - tokens) / self.rate.max(f64::MIN_POSITIVE))
            };
            metrics::counter!("provider_budget_waits_total").increment(1);
            tokio::time::sleep(wait).await;
        }
    }
}

/// Fixed windows counted in Redis (`INCR` on a key per window). Any minute overlaps at most
/// `60 s / window + 1` windows, so each window grants `limit / (60 s / window + 1)`: the limit
/// holds over every minute, not only over aligned ones.
struct SharedWindows {
    conn: redis::aio::ConnectionManager,
    key: String,
    window: Duration,
    per_window: u64,
    warned: AtomicBool,
    /// After a Redis error, requests use the local bucket until then (no connect timeout
    /// paid on every request while Redis is down).
    retry_at: std::sync::Mutex<Option<Instant>>,
}

/// How long the shared budget is left alone after a Redis error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// Short windows keep the bursts small (at most `per_window` requests at a window's start).
const WINDOW: Duration = Duration::from_secs(3);

impl SharedWindows {
    fn per_minute(limit: u32, conn: redis::aio::ConnectionManager, key: String) -> Self {
        let overlapped = 60 / WINDOW.as_secs() + 1;
        Self::new(conn, key, WINDOW, (u64::from(limit) / overlapped).max(1))
    }

    fn new(
        conn: redis::aio::ConnectionManager,
        key: String,
        window: Duration,
        per_window: u64,
    ) -> Self {
        SharedWindows {
            conn,
            key,
            window,
            per_window,
            warned: AtomicBool::new(false),
            retry_at: std::sync::Mutex::new(None),
        }
    }

    fn available(&self) -> bool {
        let retry_at = self.retry_at.lock().unwrap_or_else(|e| e.into_inner());
        retry_at.is_none_or(|at| Instant::now() >= at)
    }

    fn failed(&self, error: &redis::RedisError) {
        *self.retry_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_AFTER_ERROR);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "shared request budget unavailable; counting in this process");
        }
    }

    async fn take(&self) -> redis::RedisResult<()> {
        self.take_in_window().await.map(drop)
    }

    /// Waits for a grant; returns the window it was counted in.
    async fn take_in_window(&self) -> redis::RedisResult<i64> {
        let window_ms = self.window.as_millis().max(1) as i64;
        loop {
            let mut conn = self.conn.clone();
            let (count, window, wait_ms): (i64, i64, i64) = redis::cmd("EVAL")
                .arg(COUNT_IN_WINDOW)
                .arg(1)
                .arg(&self.key)
                .arg(window_ms)
                .query_async(&mut conn)
                .await?;
            if count <= self.per_window as i64 {
                self.warned.store(false, Ordering::Relaxed);
                return Ok(window);
            }
            metrics::counter!("provider_budget_waits_total").increment(1);
            // Until the next window starts, plus a little jitter so waiters do not all
            // arrive at once.
            let jitter = i64::from(rand_u8() % 50);
            tokio::time::sleep(Duration::from_millis((wait_ms.max(0) + jitter) as u64)).await;
        }
    }
}

/// Counts one request in the current window by Redis's clock (so processes on hosts whose
/// clocks differ still agree on windows); returns the count, the window and the
/// milliseconds until the next one.
const COUNT_IN_WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[1])
local w = math.floor(now / size)
local key = KEYS[1] .. ':' .. w
local c = redis.call('INCR', key)
if c == 1 then redis.call('PEXPIRE', key, 2 * size) end
return {c, w, (w + 1) * size - now}
";

fn rand_u8() -> u8 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    b[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing_redis_manager as manager;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_share_the_windows() {
        let Some(url) = crate::testing_redis_url() else {
            return;
        };
        // Two "processes" (two budgets, two connections) on one account.
        let key = format!("switchboard:test:budget:{}", uuid::Uuid::new_v4().simple());
        let window = Duration::from_millis(300);
        let a = std::sync::Arc::new(SharedWindows::new(manager(&url), key.clone(), window, 3));
        let b = std::sync::Arc::new(SharedWindows::new(manager(&url), key.clone(), window, 3));
        let mut tasks = Vec::new();
        for i in 0..12 {
            let w = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(
                async move { w.take_in_window().await.unwrap() },
            ));
        }
        let mut per_window = std::collections::BTreeMap::new();
        for t in tasks {
            *per_window.entry(t.await.unwrap()).or_insert(0) += 1;
        }
        // 12 grants between both, at most 3 in any window: at least 4 windows.
        assert_eq!(per_window.values().sum::<i32>(), 12);
        assert!(per_window.values().all(|n| *n <= 3), "{per_window:?}");
        assert!(per_window.len() >= 4, "{per_window:?}");
    }

    #[tokio::test]
    async fn an_unreachable_redis_falls_back_to_the_local_bucket() {
        // Nothing listens on port 1.
        let budget = Budget::shared_per_minute(
            600,
            manager("redis://127.0.0.1:1"),
            "switchboard:test:budget:down".into(),
        );
        for _ in 0..20 {
            budget.take().await;
        }
        // One failed attempt; every grant then came from this process's bucket.
        assert!(!budget.shared.as_ref().unwrap().available());
        let (tokens, _) = *budget.local.bucket.lock().await;
        assert!(tokens <= 50.0, "{tokens}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_minute_never_holds_more_than_the_limit() {
        let budget = Budget::per_minute(450);
        let start = Instant::now();
        let mut in_first_minute = 0;
        for _ in 0..1_000 {
            budget.take().await;
            if start.elapsed() < Duration::from_secs(60) {
                in_first_minute += 1;
            }
        }
        assert!(in_first_minute <= 450, "{in_first_minute}");
        assert!(in_first_minute >= 440, "{in_first_minute}");
        // The rest flow at the steady rate: (1,000 - 45) / 405 a minute.
        let took = start.elapsed().as_secs();
        assert!((140..=143).contains(&took), "{took}");
    }
}
