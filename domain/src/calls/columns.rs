//! Which of a call's columns a list read brings back, and reading them by position.
//!
//! A page of customers with their latest calls decodes hundreds of call rows. Decoding
//! through the entity's `FromQueryResult` finds every column by name (a formatted name
//! and a hash lookup per value, and a formatted error for every NULL): that, not
//! PostgreSQL, was the largest cost of the page. These reads select only the columns
//! their caller will look at, in a fixed order, and decode each by its position. Reads
//! and writes of whole rows (the call upsert's returned rows, calls read by id) name every
//! column in the entity's order and decode the same way ([`decode_every`]).

use chrono::DateTime;
use entity::call;
use entity::values::{CallDirection, CallStatus, Provider};
use sea_orm::{DbErr, IdenStatic, Iterable, QueryResult, TryGetError};
use uuid::Uuid;

use crate::db::by_position::at;

/// Which of a call's columns a list read brings back: a set of columns. Fields of the
/// model whose column is not in the set are left as placeholders (`None`, nil ids, epoch
/// times), so a read is only as wide as its caller's promise to look at nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallColumns(u64);

/// The long columns [`CallColumns::without_long_texts`] leaves out.
const LONG: [call::Column; 4] = [
    call::Column::Transcript,
    call::Column::Summary,
    call::Column::ExtractedData,
    call::Column::RawPayload,
];

fn bit(column: call::Column) -> u64 {
    // A fieldless enum in declaration order; `calls` has fewer than 64 columns (the
    // unit test below checks).
    1u64 << (column as u32)
}

impl CallColumns {
    /// Every column.
    pub fn all() -> Self {
        CallColumns(call::Column::iter().fold(0, |set, c| set | bit(c)))
    }

    /// Every column but the long ones (transcript, summary, extracted data, raw provider
    /// body): for lists that do not show them, so a page does not decode kilobytes of text
    /// and JSON per row it never sends.
    pub fn without_long_texts() -> Self {
        LONG.iter()
            .fold(Self::all(), |set, c| CallColumns(set.0 & !bit(*c)))
    }

    /// Only `id`, which every read needs (order, cursors, loaders).
    pub fn id_only() -> Self {
        CallColumns(bit(call::Column::Id))
    }

    pub fn with(self, column: call::Column) -> Self {
        CallColumns(self.0 | bit(column))
    }

    pub fn union(self, other: CallColumns) -> Self {
        CallColumns(self.0 | other.0)
    }

    pub fn contains(self, column: call::Column) -> bool {
        self.0 & bit(column) != 0
    }

    /// The columns read, in select-list order.
    pub fn columns(self) -> Vec<call::Column> {
        call::Column::iter().filter(|c| self.contains(*c)).collect()
    }

    /// The select list over table `calls`, in [`Self::columns`] order.
    pub fn select_list(self) -> String {
        self.columns()
            .iter()
            .map(|c| format!("calls.{}", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every column of `calls`, in [`call::Column::iter`] order.
static EVERY: std::sync::LazyLock<Vec<call::Column>> =
    std::sync::LazyLock::new(|| CallColumns::all().columns());

/// A row whose select list names every column in [`call::Column::iter`] order, as
/// `repo::WITHOUT_RAW_BODY` does (further columns after them are ignored). Never a row of
/// `SELECT *` or `RETURNING *`: the table's own column order may differ from the entity's
/// after migrations.
pub fn decode_every(row: &QueryResult) -> Result<call::Model, DbErr> {
    decode(&EVERY, row)
}

/// A row selected with `columns` in that order (further columns after them are ignored).
pub fn decode(columns: &[call::Column], row: &QueryResult) -> Result<call::Model, DbErr> {
    let mut model = blank();
    for (i, column) in columns.iter().enumerate() {
        read(&mut model, *column, row, i).map_err(DbErr::from)?;
    }
    Ok(model)
}

/// A model whose fields are all about to be read or are left out on purpose.
fn blank() -> call::Model {
    call::Model {
        id: Uuid::nil(),
        tenant_id: Uuid::nil(),
        agent_id: None,
        customer_id: None,
        campaign_id: None,
        campaign_item_id: None,
        provider: Provider::Simulator,
        provider_execution_id: None,
        placing_since: None,
        provider_call_id: None,
        direction: CallDirection::Outbound,
        status: CallStatus::Queued,
        from_number: None,
        to_number: None,
        started_at: None,
        ended_at: None,
        duration_seconds: None,
        cost: None,
        transcript: None,
        summary: None,
        recording_url: None,
        extracted_data: None,
        hangup_reason: None,
        raw_payload: None,
        provider_agent_id: None,
        status_rank: 0,
        idempotency_key: None,
        error_message: None,
        variables: None,
        created_at: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

/// Reads column `column` at position `i` into its field (every column is named here, so
/// a new column cannot be forgotten).
fn read(
    m: &mut call::Model,
    column: call::Column,
    row: &QueryResult,
    i: usize,
) -> Result<(), TryGetError> {
    use call::Column as C;
    match column {
        C::Id => m.id = at(row, i)?,
        C::TenantId => m.tenant_id = at(row, i)?,
        C::AgentId => m.agent_id = at(row, i)?,
        C::CustomerId => m.customer_id = at(row, i)?,
        C::CampaignId => m.campaign_id = at(row, i)?,
        C::CampaignItemId => m.campaign_item_id = at(row, i)?,
        C::Provider => m.provider = at(row, i)?,
        C::ProviderExecutionId => m.provider_execution_id = at(row, i)?,
        C::PlacingSince => m.placing_since = at(row, i)?,
        C::ProviderCallId => m.provider_call_id = at(row, i)?,
        C::Direction => m.direction = at(row, i)?,
        C::Status => m.status = at(row, i)?,
        C::FromNumber => m.from_number = at(row, i)?,
        C::ToNumber => m.to_number = at(row, i)?,
        C::StartedAt => m.started_at = at(row, i)?,
        C::EndedAt => m.ended_at = at(row, i)?,
        C::DurationSeconds => m.duration_seconds = at(row, i)?,
        C::Cost => m.cost = at(row, i)?,
        C::Transcript => m.transcript = at(row, i)?,
        C::Summary => m.summary = at(row, i)?,
        C::RecordingUrl => m.recording_url = at(row, i)?,
        C::ExtractedData => m.extracted_data = at(row, i)?,
        C::HangupReason => m.hangup_reason = at(row, i)?,
        C::RawPayload => m.raw_payload = at(row, i)?,
        C::ProviderAgentId => m.provider_agent_id = at(row, i)?,
        C::StatusRank => m.status_rank = at(row, i)?,
        C::IdempotencyKey => m.idempotency_key = at(row, i)?,
        C::ErrorMessage => m.error_message = at(row, i)?,
        C::Variables => m.variables = at(row, i)?,
        C::CreatedAt => m.created_at = at(row, i)?,
        C::UpdatedAt => m.updated_at = at(row, i)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_hold_what_they_say() {
        assert!(call::Column::iter().count() < 64);
        let all = CallColumns::all();
        assert_eq!(all.columns().len(), call::Column::iter().count());
        let short = CallColumns::without_long_texts();
        for c in call::Column::iter() {
            assert!(all.contains(c));
            assert_eq!(
                short.contains(c),
                !LONG.iter().any(|l| l.as_str() == c.as_str()),
                "{}",
                c.as_str()
            );
        }
        let some = CallColumns::id_only().with(call::Column::Status);
        let names: Vec<&str> = some.columns().iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["id", "status"]);
        assert_eq!(some.select_list(), "calls.id, calls.status");
        assert_eq!(some.union(short), short);
    }
}
