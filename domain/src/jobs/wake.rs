//! Waking idle lanes of this process when a job becomes due, so it starts within
//! milliseconds instead of at the next poll: at once for a job due now ([`wake`]), or
//! when it comes due ([`wake_at`]).

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use super::Lane;

static LANES: [Notify; Lane::ALL.len()] = [const { Notify::const_new() }; Lane::ALL.len()];

/// Timed wakes are rounded up to this many milliseconds: jobs coming due within one
/// bucket are all due at its one wake, and a gathering kind takes them in one run.
const BUCKET_MS: i64 = 100;
/// Distinct wake times one lane keeps; past this a job waits for the poll.
const MAX_PENDING: usize = 1024;

/// Pending timed wakes of every lane, served by one thread of the process. A thread
/// rather than a task: it outlives any one async runtime (tests run many side by side).
struct Timers {
    state: Mutex<TimersState>,
    /// Tells the thread an earlier time was added.
    sooner: Condvar,
}

struct TimersState {
    /// (unix ms, lane index), earliest first.
    due: BTreeSet<(i64, usize)>,
    per_lane: [usize; Lane::ALL.len()],
}

static TIMERS: Timers = Timers {
    state: Mutex::new(TimersState {
        due: BTreeSet::new(),
        per_lane: [0; Lane::ALL.len()],
    }),
    sooner: Condvar::new(),
};

/// Whether the timer thread is running.
static THREAD: OnceLock<bool> = OnceLock::new();

fn timers() -> MutexGuard<'static, TimersState> {
    // The state stays consistent whatever panicked while holding it.
    TIMERS.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tells every idle worker of this process on `lane` to look for jobs (call after the
/// transaction that enqueued them commits). All of them: with one waiter woken, a process
/// running several runners (or tests running side by side) could hand the wake-up to a
/// runner that does not see the job.
pub fn wake(lane: Lane) {
    LANES[lane.index()].notify_waiters();
}

/// Wakes `lane` when a job due at `at` comes due (at once if it is due).
pub fn wake_at(lane: Lane, at: DateTime<Utc>) {
    let ms = at.timestamp_millis();
    if ms <= Utc::now().timestamp_millis() {
        wake(lane);
        return;
    }
    let started = *THREAD.get_or_init(|| {
        std::thread::Builder::new()
            .name("job-wakes".into())
            .spawn(serve_timers)
            .is_ok()
    });
    if !started {
        // The poll finds the job.
        return;
    }
    let key = (
        ms.div_euclid(BUCKET_MS)
            .saturating_add(1)
            .saturating_mul(BUCKET_MS),
        lane.index(),
    );
    let mut state = timers();
    if state.due.contains(&key) || state.per_lane[key.1] >= MAX_PENDING {
        return;
    }
    let sooner = state.due.first().is_none_or(|first| key.0 < first.0);
    state.due.insert(key);
    state.per_lane[key.1] += 1;
    drop(state);
    if sooner {
        TIMERS.sooner.notify_one();
    }
}

/// The timer thread: wakes each lane when its earliest pending time comes.
fn serve_timers() {
    let mut state = timers();
    loop {
        let now = Utc::now().timestamp_millis();
        let mut fired = [false; Lane::ALL.len()];
        while let Some(&(ms, lane)) = state.due.first() {
            if ms > now {
                break;
            }
            state.due.pop_first();
            state.per_lane[lane] = state.per_lane[lane].saturating_sub(1);
            fired[lane] = true;
        }
        if fired.contains(&true) {
            drop(state);
            for lane in Lane::ALL {
                if fired[lane.index()] {
                    wake(lane);
                }
            }
            state = timers();
            continue;
        }
        let wait = state
            .due
            .first()
            .map_or(Duration::from_secs(3600), |(ms, _)| {
                Duration::from_millis(ms.saturating_sub(now).max(1) as u64)
            });
        state = TIMERS
            .sooner
            .wait_timeout(state, wait)
            .map(|(s, _)| s)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// A wake-up of `lane` to wait for. Enable it (`Notified::enable`) before looking for
/// jobs, so a wake between an empty claim and the wait is not missed.
pub fn waiter(lane: Lane) -> Notified<'static> {
    LANES[lane.index()].notified()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn a_wake_after_enable_is_kept_and_reaches_every_waiter() {
        let a = waiter(Lane::Sync);
        let b = waiter(Lane::Sync);
        tokio::pin!(a, b);
        a.as_mut().enable();
        b.as_mut().enable();
        wake(Lane::Sync);
        tokio::time::timeout(Duration::from_secs(1), async { tokio::join!(a, b) })
            .await
            .expect("both waiters woken");
    }

    /// Waits for the next wake of `lane`; how long it took.
    async fn next_wake(lane: Lane, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let woken = waiter(lane);
        tokio::pin!(woken);
        woken.as_mut().enable();
        tokio::time::timeout(limit, woken).await.ok()?;
        Some(started.elapsed())
    }

    #[tokio::test]
    async fn a_timed_wake_comes_when_due_and_an_earlier_one_is_not_held_up_by_a_later() {
        // Lanes no other test here times.
        let lane = Lane::Campaigns;
        let waiting = tokio::spawn(next_wake(lane, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        wake_at(lane, Utc::now() + chrono::Duration::seconds(30));
        wake_at(lane, Utc::now() + chrono::Duration::milliseconds(150));
        let took = waiting.await.unwrap().expect("woken before the later time");
        assert!(took >= Duration::from_millis(140), "woken early: {took:?}");

        // Due already: at once.
        let lane = Lane::Webhooks;
        let waiting = tokio::spawn(next_wake(lane, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        wake_at(lane, Utc::now() - chrono::Duration::seconds(1));
        assert!(waiting.await.unwrap().is_some());
    }

    /// Timed wakes outlive the runtime that asked for them.
    #[test]
    fn a_timed_wake_asked_for_on_a_runtime_that_ended_still_comes() {
        let lane = Lane::Ingest;
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { wake_at(lane, Utc::now() + chrono::Duration::milliseconds(200)) });
        let took = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(next_wake(lane, Duration::from_secs(5)));
        assert!(took.is_some(), "the wake never came");
    }

    #[test]
    fn a_burst_of_timed_wakes_keeps_one_time_per_bucket() {
        let lane = Lane::Maintenance;
        let at = Utc::now() + chrono::Duration::seconds(60);
        for _ in 0..100 {
            wake_at(lane, at);
        }
        assert_eq!(timers().per_lane[lane.index()], 1);
        for i in 0..(MAX_PENDING as i64 * 2) {
            wake_at(lane, at + chrono::Duration::milliseconds(i * BUCKET_MS));
        }
        let mut state = timers();
        assert_eq!(state.per_lane[lane.index()], MAX_PENDING);
        let kept = state.due.iter().filter(|(_, l)| *l == lane.index()).count();
        assert_eq!(kept, MAX_PENDING);
        // Leave the process's timers as they were.
        state.due.retain(|(_, l)| *l != lane.index());
        state.per_lane[lane.index()] = 0;
    }
}
