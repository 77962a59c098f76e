//! Look-ahead prefetching. A connection loads, in one statement per relation, what the
//! query asks for on its nodes and feeds the request's loader cache, so nested resolvers
//! find their data there. The statement count of a request is then fixed by its shape,
//! not by page size or by how the runtime schedules resolvers.

use async_graphql::{Context, Lookahead, Value};
use domain::calls::{CallColumns, CallParent};
use domain::pagination::PageRequest;
use entity::call;
use uuid::Uuid;

use super::context::loaders;
use super::error::GqlResultExt;
use super::loaders::{AgentId, CallCount, CustomerId, EventsOf, RecentCalls};

/// Relations of call nodes: `agent`, `customer`, `events`.
pub async fn call_nodes(
    ctx: &Context<'_>,
    node: &Lookahead<'_>,
    calls: &[&call::Model],
) -> async_graphql::Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let l = loaders(ctx)?;
    if node.field("agent").exists() {
        l.load_many(calls.iter().filter_map(|c| c.agent_id).map(AgentId))
            .await
            .gql()?;
    }
    if node.field("customer").exists() {
        l.load_many(calls.iter().filter_map(|c| c.customer_id).map(CustomerId))
            .await
            .gql()?;
    }
    if node.field("events").exists() {
        l.load_many(calls.iter().map(|c| EventsOf(c.id)))
            .await
            .gql()?;
    }
    Ok(())
}

/// The columns each field of `Call` reads (its relations read only their ids). The long
/// texts go together, since a call with any of them is treated as holding them all.
fn columns_of_field(name: &str) -> Option<&'static [call::Column]> {
    use call::Column as C;
    Some(match name {
        "__typename" => &[],
        "id" | "analysis" | "events" => &[C::Id],
        "provider" => &[C::Provider],
        "providerExecutionId" => &[C::ProviderExecutionId],
        "providerAgentId" => &[C::ProviderAgentId],
        "errorMessage" => &[C::ErrorMessage],
        "providerCallId" => &[C::ProviderCallId],
        "direction" => &[C::Direction],
        "status" => &[C::Status],
        "fromNumber" => &[C::FromNumber],
        "toNumber" => &[C::ToNumber],
        "startedAt" => &[C::StartedAt],
        "endedAt" => &[C::EndedAt],
        "durationSeconds" => &[C::DurationSeconds],
        "cost" => &[C::Cost],
        "recordingUrl" => &[C::RecordingUrl],
        "hangupReason" => &[C::HangupReason],
        "agent" => &[C::AgentId],
        "customer" => &[C::CustomerId],
        "campaign" => &[C::CampaignId],
        "createdAt" => &[C::CreatedAt],
        "updatedAt" => &[C::UpdatedAt],
        "transcript" | "summary" | "extractedData" => {
            &[C::Transcript, C::Summary, C::ExtractedData]
        }
        _ => return None,
    })
}

/// The call columns a list's `node` selection reads: those of its fields (so one
/// prepared statement per selection shape). A field this function does not know reads
/// every column but the long texts, so a new field is never answered from a column that
/// was not read.
pub fn columns_for(node: &Lookahead<'_>) -> CallColumns {
    let mut set = CallColumns::id_only();
    for occurrence in node.selection_fields() {
        for field in occurrence.selection_set() {
            match columns_of_field(field.name()) {
                Some(columns) => {
                    for c in columns {
                        set = set.with(*c);
                    }
                }
                None => set = set.union(CallColumns::without_long_texts()),
            }
        }
    }
    set
}

/// A `calls(first, after)` connection below each of `parent_ids`, with its nodes' relations.
pub async fn calls_below(
    ctx: &Context<'_>,
    calls_field: &Lookahead<'_>,
    parent: CallParent,
    parent_ids: &[Uuid],
) -> async_graphql::Result<()> {
    if parent_ids.is_empty() || !calls_field.exists() {
        return Ok(());
    }
    let l = loaders(ctx)?;
    for selection in calls_field.selection_fields() {
        let args = selection.arguments()?;
        let arg = |name: &str| {
            args.iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v)
        };
        let first = match arg("first") {
            Some(Value::Number(n)) => n.as_i64().map(|v| v as i32),
            _ => None,
        };
        if matches!(arg("after"), Some(Value::String(_))) {
            continue; // paged explicitly: resolved per parent
        }
        // Bad arguments are reported by the field itself.
        let Ok(req) = PageRequest::new(first, None) else {
            continue;
        };
        let conn: Lookahead<'_> = selection.into();
        let node = conn.field("edges").field("node");
        let columns = columns_for(&node);
        let keys = parent_ids.iter().map(|id| RecentCalls {
            parent,
            id: *id,
            limit: req.first + 1,
            columns,
        });
        let found = l.load_many(keys).await.gql()?;
        let mut rows: Vec<&call::Model> = found
            .values()
            .flat_map(|v| v.iter().take(req.first as usize).map(|c| c.as_ref()))
            .collect();
        rows.sort_by_key(|c| c.id);
        rows.dedup_by_key(|c| c.id);
        call_nodes(ctx, &node, &rows).await?;
    }
    if calls_field.field("totalCount").exists() {
        l.load_many(parent_ids.iter().map(|id| CallCount(parent, *id)))
            .await
            .gql()?;
    }
    Ok(())
}
