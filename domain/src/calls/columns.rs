//! Which of a call's columns a list read brings back, and reading them by position.
//!
//! A page of customers with their latest calls decodes hundreds of call rows. Decoding
//! through the entity's `FromQueryResult` finds every column by name (a formatted name
//! and a hash lookup per value, and a formatted error for every NULL): that, not
//! PostgreSQL, was the largest cost of the page. These reads select a fixed list of
//! columns and decode each by its position, and list views that show only a call's
//! summary fields read only those columns.

use std::sync::LazyLock;

use chrono::DateTime;
use entity::call;
use entity::values::{CallDirection, CallStatus, Provider};
use sea_orm::{DbErr, IdenStatic, Iterable, QueryResult, TryGetError, TryGetable};
use uuid::Uuid;

/// Which of a call's columns a list read brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallColumns {
    All,
    /// Every column but the long ones (transcript, summary, extracted data, raw provider
    /// body), which are left out: for lists that do not show them, so a page does not
    /// decode kilobytes of text and JSON per row it never sends.
    WithoutLongTexts,
    /// Only [`SUMMARY`]: identity, parents, provider, direction, status and times. Every
    /// other field of the model is `None`; for lists whose selection reads nothing else.
    Summary,
}

/// The long columns [`CallColumns::WithoutLongTexts`] leaves out.
const LONG: [call::Column; 4] = [
    call::Column::Transcript,
    call::Column::Summary,
    call::Column::ExtractedData,
    call::Column::RawPayload,
];

/// The columns [`CallColumns::Summary`] reads; the model's required fields are all here.
pub const SUMMARY: [call::Column; 14] = [
    call::Column::Id,
    call::Column::TenantId,
    call::Column::AgentId,
    call::Column::CustomerId,
    call::Column::CampaignId,
    call::Column::Provider,
    call::Column::Direction,
    call::Column::Status,
    call::Column::StatusRank,
    call::Column::StartedAt,
    call::Column::EndedAt,
    call::Column::DurationSeconds,
    call::Column::CreatedAt,
    call::Column::UpdatedAt,
];

static ALL: LazyLock<Vec<call::Column>> = LazyLock::new(|| call::Column::iter().collect());
static WITHOUT_LONG: LazyLock<Vec<call::Column>> =
    LazyLock::new(|| call::Column::iter().filter(|c| !is_long(*c)).collect());

fn is_long(column: call::Column) -> bool {
    LONG.iter().any(|l| l.as_str() == column.as_str())
}

impl CallColumns {
    /// The columns read, in select-list order.
    pub fn columns(self) -> &'static [call::Column] {
        match self {
            CallColumns::All => &ALL,
            CallColumns::WithoutLongTexts => &WITHOUT_LONG,
            CallColumns::Summary => &SUMMARY,
        }
    }

    /// The select list over table `calls`, in [`Self::columns`] order.
    pub fn select_list(self) -> String {
        self.columns()
            .iter()
            .map(|c| format!("calls.{}", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A row selected with [`Self::select_list`] (further columns after it are ignored).
    pub fn decode(self, row: &QueryResult) -> Result<call::Model, DbErr> {
        let mut model = blank();
        for (i, column) in self.columns().iter().enumerate() {
            read(&mut model, *column, row, i).map_err(DbErr::from)?;
        }
        Ok(model)
    }
}

/// A model whose fields are all about to be read or are left out on purpose; the
/// required ones are in every column list, so none of these placeholders survives.
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

fn get<T: TryGetable>(row: &QueryResult, i: usize) -> Result<T, TryGetError> {
    T::try_get_by_index(row, i)
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
        C::Id => m.id = get(row, i)?,
        C::TenantId => m.tenant_id = get(row, i)?,
        C::AgentId => m.agent_id = get(row, i)?,
        C::CustomerId => m.customer_id = get(row, i)?,
        C::CampaignId => m.campaign_id = get(row, i)?,
        C::CampaignItemId => m.campaign_item_id = get(row, i)?,
        C::Provider => m.provider = get(row, i)?,
        C::ProviderExecutionId => m.provider_execution_id = get(row, i)?,
        C::PlacingSince => m.placing_since = get(row, i)?,
        C::ProviderCallId => m.provider_call_id = get(row, i)?,
        C::Direction => m.direction = get(row, i)?,
        C::Status => m.status = get(row, i)?,
        C::FromNumber => m.from_number = get(row, i)?,
        C::ToNumber => m.to_number = get(row, i)?,
        C::StartedAt => m.started_at = get(row, i)?,
        C::EndedAt => m.ended_at = get(row, i)?,
        C::DurationSeconds => m.duration_seconds = get(row, i)?,
        C::Cost => m.cost = get(row, i)?,
        C::Transcript => m.transcript = get(row, i)?,
        C::Summary => m.summary = get(row, i)?,
        C::RecordingUrl => m.recording_url = get(row, i)?,
        C::ExtractedData => m.extracted_data = get(row, i)?,
        C::HangupReason => m.hangup_reason = get(row, i)?,
        C::RawPayload => m.raw_payload = get(row, i)?,
        C::ProviderAgentId => m.provider_agent_id = get(row, i)?,
        C::StatusRank => m.status_rank = get(row, i)?,
        C::IdempotencyKey => m.idempotency_key = get(row, i)?,
        C::ErrorMessage => m.error_message = get(row, i)?,
        C::Variables => m.variables = get(row, i)?,
        C::CreatedAt => m.created_at = get(row, i)?,
        C::UpdatedAt => m.updated_at = get(row, i)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_holds_the_required_fields_and_no_column_twice() {
        let required = [
            call::Column::Id,
            call::Column::TenantId,
            call::Column::Provider,
            call::Column::Direction,
            call::Column::Status,
            call::Column::StatusRank,
            call::Column::CreatedAt,
            call::Column::UpdatedAt,
        ];
        for columns in [
            CallColumns::All,
            CallColumns::WithoutLongTexts,
            CallColumns::Summary,
        ] {
            let list = columns.columns();
            for r in required {
                assert!(
                    list.iter().any(|c| c.as_str() == r.as_str()),
                    "{columns:?} lacks {}",
                    r.as_str()
                );
            }
            let mut names: Vec<&str> = list.iter().map(|c| c.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), list.len(), "{columns:?} repeats a column");
        }
        assert_eq!(
            CallColumns::All.columns().len(),
            call::Column::iter().count()
        );
        assert!(
            CallColumns::WithoutLongTexts
                .columns()
                .iter()
                .all(|c| !is_long(*c))
        );
    }
}
