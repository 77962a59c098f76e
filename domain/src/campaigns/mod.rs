//! Campaigns: a CSV of recipients (`import`) becomes customers and queue items
//! (`service`, `repo`); a dispatcher per running campaign (`dispatch`) turns due items
//! into calls under the system, tenant and campaign caps, in each recipient's calling
//! window (`window`); a call's ending finishes or retries its item and feeds the circuit
//! breaker (`finish`), through the call-transition hook (`jobs`). WhatsApp campaigns
//! share the queue, the window and the do-not-contact rules, and send an approved
//! template to each recipient at the number's messaging rate instead (`messaging`).

pub(crate) mod balance;
pub mod dispatch;
pub mod finish;
pub mod import;
pub mod jobs;
mod messaging;
pub(crate) mod repo;
pub mod service;
pub mod window;

pub use import::{MAX_FILE_BYTES, RowError, RowProblem};
pub use service::{
    Channel, CreateCampaign, ImportReport, Stats, TemplateChoice, by_ids, cancel, count, create,
    get, items, list, outcome_counts, pause, resume, start, stats,
};
pub use window::CallingWindow;
