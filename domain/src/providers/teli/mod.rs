//! Teli: call history only (`GET /v1/voice/calls`, paged); calls are not placed through it.

mod client;
pub mod dto;
pub mod transform;

pub use client::Teli;
pub use transform::parse_call;
