//! Bolna.ai (see shared/reference/providers.md §1).

mod client;
pub mod dto;
pub mod transform;

pub use client::Bolna;
pub use transform::{parse_execution, parse_status};
