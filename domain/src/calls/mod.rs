//! Calls and their status history: reads (`repo`), and the life of a call we place:
//! `start` (startCall), `place` (sending it to the provider), `follow` (polling until it
//! ends), `sweep` (calls nothing else moves), `live` (counting calls out with a provider)
//! and `transition`, the one place a call's status changes. Provider reports are
//! applied by `domain::ingest`, which hands its status changes to `transition` too.

mod columns;
mod follow;
pub mod jobs;
pub mod live;
mod place;
mod place_many;
pub(crate) mod repo;
mod start;
mod sweep;
pub mod transition;

pub use columns::CallColumns;
pub(crate) use columns::decode_every;
pub use follow::{RefreshError, refresh};
pub use repo::{
    CallFilter, CallParent, by_ids, count, count_by_parent, events_by_call_ids, find, get,
    interactions, list, list_for_parent, recent_by_parent,
};
pub use start::{StartCall, start_call};
pub use sweep::{PLACING_TIMEOUT_SECONDS, StaleSweep, StuckSweep, sweep_stale, sweep_stuck};
