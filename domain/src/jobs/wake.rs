//! Waking idle lanes of this process when a job becomes due now, so it starts within
//! milliseconds instead of at the next poll.

use tokio::sync::Notify;

use super::Lane;

static LANES: [Notify; Lane::ALL.len()] = [const { Notify::const_new() }; Lane::ALL.len()];

/// Tells this process's idle worker on `lane` to look for jobs (call after the
/// transaction that enqueued them commits).
pub fn wake(lane: Lane) {
    // `notify_one` keeps the wake-up when nobody is waiting yet: a worker between its
    // last empty claim and its wait still sees it.
    LANES[lane.index()].notify_one();
}

/// Resolves on the next [`wake`] of `lane`.
pub async fn notified(lane: Lane) {
    LANES[lane.index()].notified().await
}
