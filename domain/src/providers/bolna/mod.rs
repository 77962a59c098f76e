//! Bolna.ai: `POST /call` places a call, `GET /executions/{id}` reads one, the agent's
//! executions list pages a window (sync), and webhooks post the execution object as it
//! moves (queued, initiated, ringing, in-progress, call-disconnected, completed, or
//! busy / no-answer / failed).

mod client;
pub mod dto;
pub mod transform;

pub use client::Bolna;
pub use transform::{parse_execution, parse_status};
