//! Teli (see shared/reference/providers.md §2): call history only; no single-call API.

mod client;
pub mod dto;
pub mod transform;

pub use client::Teli;
pub use transform::parse_call;
