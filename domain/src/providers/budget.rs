//! A request budget for one provider account (Bolna allows about 500 requests a minute
//! per organisation; we stay under a configured figure). A token bucket: requests beyond
//! it wait their turn instead of drawing 429s. Shared by every client of the account in
//! this process; several processes each keep their own budget.

use std::time::Duration;

use tokio::time::Instant;

pub struct Budget {
    /// Tokens added per second.
    rate: f64,
    /// The most tokens held (the largest burst).
    capacity: f64,
    bucket: tokio::sync::Mutex<(f64, Instant)>,
}

impl Budget {
    /// At most `limit` requests in any minute: 90% of it as a steady rate, 10% as a burst.
    pub fn per_minute(limit: u32) -> Self {
        let limit = f64::from(limit.max(1));
        let capacity = (limit / 10.0).max(1.0);
        Budget {
            rate: (limit - capacity) / 60.0,
            capacity,
            bucket: tokio::sync::Mutex::new((capacity, Instant::now())),
        }
    }

    /// Waits until a request may be sent, then counts it.
    pub async fn take(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
