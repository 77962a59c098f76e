//! Calls and their status history: reads (`repo`), and the life of a call we place
//! (`lifecycle`). Provider reports are written by `domain::ingest`.

pub mod lifecycle;
mod repo;

pub use repo::{
    CallFilter, CallParent, count, count_by_parent, events_by_call_ids, find, get, interactions,
    list, list_for_parent, recent_by_parent,
};
