//! Calls and their status history. Read-only here; ingestion writes them.

mod repo;

pub use repo::{
    CallFilter, CallParent, count, count_by_parent, events_by_call_ids, find, get, interactions,
    list, list_for_parent, recent_by_parent,
};
