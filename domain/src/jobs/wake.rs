//! Waking idle lanes of this process when a job becomes due, so it starts within
//! milliseconds instead of at the next poll: at once for a job due now ([`wake`]), or
//! when it comes due ([`wake_at`]).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};
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

/// A lane's pending timed wakes, and whether a task is sleeping towards them.
struct Timer {
    state: Mutex<TimerState>,
    /// Tells the sleeping task that an earlier wake was asked for.
    sooner: Notify,
}

struct TimerState {
    due: BTreeSet<i64>,
    running: bool,
}

static TIMERS: [Timer; Lane::ALL.len()] = [const {
    Timer {
        state: Mutex::new(TimerState {
            due: BTreeSet::new(),
            running: false,
        }),
        sooner: Notify::const_new(),
    }
}; Lane::ALL.len()];

impl Timer {
    fn state(&self) -> MutexGuard<'_, TimerState> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tells every idle worker of this process on `lane` to look for jobs (call after the
/// transaction that enqueued them commits). All of them: with one waiter woken, a process
/// running several runners (or tests running side by side) could hand the wake-up to a
/// runner that does not see the job.
pub fn wake(lane: Lane) {
    LANES[lane.index()].notify_waiters();
}

/// Wakes `lane` when a job due at `at` comes due (at once if it is due). One task per
/// lane sleeps towards the earliest pending time, so a burst of jobs due a moment from
/// now costs no task each.
pub fn wake_at(lane: Lane, at: DateTime<Utc>) {
    let now = Utc::now().timestamp_millis();
    let ms = at.timestamp_millis();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        wake(lane);
        return;
    };
    if ms <= now {
        wake(lane);
        return;
    }
    let ms = ms
        .div_euclid(BUCKET_MS)
        .saturating_add(1)
        .saturating_mul(BUCKET_MS);
    let timer = &TIMERS[lane.index()];
    let mut state = timer.state();
    if state.due.contains(&ms) {
        return;
    }
    if state.due.len() >= MAX_PENDING {
        return;
    }
    let sooner = state.due.first().is_none_or(|first| ms < *first);
    state.due.insert(ms);
    if state.running {
        if sooner {
            timer.sooner.notify_one();
        }
        return;
    }
    state.running = true;
    drop(state);
    runtime.spawn(sleep_towards(lane));
}

/// Marks the lane's timer task gone if it is dropped before it ends (its runtime shut
/// down), so the next [`wake_at`] starts another.
struct Running(Option<Lane>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(lane) = self.0 {
            TIMERS[lane.index()].state().running = false;
        }
    }
}

async fn sleep_towards(lane: Lane) {
    let timer = &TIMERS[lane.index()];
    let mut running = Running(Some(lane));
    loop {
        let next = {
            let mut state = timer.state();
            match state.due.first() {
                Some(ms) => *ms,
                None => {
                    // Under the lock: a time added after this starts a new task.
                    state.running = false;
                    running.0 = None;
                    return;
                }
            }
        };
        let wait = next.saturating_sub(Utc::now().timestamp_millis()).max(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            // An earlier time was added: sleep towards it instead.
            _ = timer.sooner.notified() => continue,
        }
        let now = Utc::now().timestamp_millis();
        {
            let mut state = timer.state();
            state.due = state.due.split_off(&(now + 1));
        }
        wake(lane);
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

    #[tokio::test]
    async fn a_burst_of_timed_wakes_keeps_one_time_per_bucket() {
        let lane = Lane::Maintenance;
        let at = Utc::now() + chrono::Duration::seconds(60);
        for _ in 0..100 {
            wake_at(lane, at);
        }
        for i in 0..(MAX_PENDING as i64 * 2) {
            wake_at(lane, at + chrono::Duration::milliseconds(i * BUCKET_MS));
        }
        assert_eq!(TIMERS[lane.index()].state().due.len(), MAX_PENDING);
        TIMERS[lane.index()].state().due.clear();
    }
}
