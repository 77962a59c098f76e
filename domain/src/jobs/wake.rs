//! Waking idle lanes of this process when a job becomes due now, so it starts within
//! milliseconds instead of at the next poll.

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use super::Lane;

static LANES: [Notify; Lane::ALL.len()] = [const { Notify::const_new() }; Lane::ALL.len()];

/// Tells every idle worker of this process on `lane` to look for jobs (call after the
/// transaction that enqueued them commits). All of them: with one waiter woken, a process
/// running several runners (or tests running side by side) could hand the wake-up to a
/// runner that does not see the job.
pub fn wake(lane: Lane) {
    LANES[lane.index()].notify_waiters();
}

/// A wake-up of `lane` to wait for. Enable it (`Notified::enable`) before looking for
/// jobs, so a wake between an empty claim and the wait is not missed.
pub fn waiter(lane: Lane) -> Notified<'static> {
    LANES[lane.index()].notified()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
