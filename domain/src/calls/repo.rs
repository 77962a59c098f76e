//! SeaORM queries for calls and call events. Every function filters on the caller's tenant.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{call, call_event};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait,
    FromQueryResult, IdenStatic, Iterable, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Select, Statement, Value,
};
use uuid::Uuid;

use super::columns::CallColumns;
use crate::db::param;
use crate::error::{DomainError, DomainResult};
use crate::pagination::{self, Page, PageRequest};
use crate::tenancy::TenantScope;
use crate::types::CallStatus;

/// Every column of `calls` but the provider's raw body (returned as NULL), for reads and
/// writes whose callers never look at it: it would be converted to text and sent back
/// on every row.
pub(crate) static WITHOUT_RAW_BODY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    call::Column::iter()
        .map(|c| match c {
            call::Column::RawPayload => format!("NULL AS {}", c.as_str()),
            c => c.as_str().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
});

/// The calls of `tenant_id` among `ids`, without their raw bodies. Looked up by primary
/// key alone (a generic plan of the tenant's index would walk every call of the tenant);
/// another tenant's calls are dropped here.
pub(crate) async fn of_tenant_by_ids<C: sea_orm::ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> DomainResult<Vec<call::Model>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut b = crate::db::Binder::new(conn.get_database_backend());
        let list = b.list(chunk.iter().map(|id| (*id).into()));
        let sql = format!(
            "SELECT {} FROM calls WHERE id IN ({list})",
            *WITHOUT_RAW_BODY
        );
        for row in conn.query_all_raw(b.statement(sql)).await? {
            let call = super::columns::decode_every(&row)?;
            if call.tenant_id == tenant_id {
                out.push(call);
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub agent_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub customer_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Calls reported for a provider agent no agent here matches (ADMIN only).
    pub unmatched: Option<bool>,
}

/// Which column a nested `calls` connection hangs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallParent {
    Customer,
    Agent,
}

impl CallParent {
    fn column(self) -> call::Column {
        match self {
            CallParent::Customer => call::Column::CustomerId,
            CallParent::Agent => call::Column::AgentId,
        }
    }
    fn sql_name(self) -> &'static str {
        match self {
            CallParent::Customer => "customer_id",
            CallParent::Agent => "agent_id",
        }
    }
    fn parent_of(self, c: &call::Model) -> Option<Uuid> {
        match self {
            CallParent::Customer => c.customer_id,
            CallParent::Agent => c.agent_id,
        }
    }
}

fn scoped(scope: &TenantScope) -> Select<call::Entity> {
    call::Entity::find().filter(call::Column::TenantId.eq(scope.tenant_id()))
}

fn filtered(scope: &TenantScope, f: &CallFilter) -> Select<call::Entity> {
    scoped(scope).filter(condition(f))
}

fn condition(f: &CallFilter) -> Condition {
    let mut cond = Condition::all();
    if let Some(s) = f.status {
        cond = cond.add(call::Column::Status.eq(s));
    }
    if let Some(id) = f.agent_id {
        cond = cond.add(call::Column::AgentId.eq(id));
    }
    if let Some(id) = f.campaign_id {
        cond = cond.add(call::Column::CampaignId.eq(id));
    }
    if let Some(id) = f.customer_id {
        cond = cond.add(call::Column::CustomerId.eq(id));
    }
    match f.unmatched {
        Some(true) => {
            cond = cond
                .add(call::Column::AgentId.is_null())
                .add(call::Column::ProviderAgentId.is_not_null())
        }
        Some(false) => cond = cond.add(call::Column::AgentId.is_not_null()),
        None => {}
    }
    if let Some(t) = f.since {
        cond = cond.add(call::Column::CreatedAt.gte(t));
    }
    if let Some(t) = f.until {
        cond = cond.add(call::Column::CreatedAt.lt(t));
    }
    cond
}

/// The tenant's ended calls with a transcript matching `filter` (what a re-analysis
/// covers), by id after `after`.
fn analysable(tenant_id: Uuid, f: &CallFilter) -> Select<call::Entity> {
    call::Entity::find()
        .filter(call::Column::TenantId.eq(tenant_id))
        .filter(condition(f))
        .filter(call::Column::StatusRank.gte(CallStatus::TERMINAL_RANK))
        .filter(call::Column::Transcript.is_not_null())
}

pub(crate) async fn count_analysable(
    db: &DatabaseConnection,
    scope: &TenantScope,
    filter: &CallFilter,
) -> DomainResult<u64> {
    check_window(scope, filter)?;
    Ok(analysable(scope.tenant_id(), filter).count(db).await?)
}

pub(crate) async fn analysable_ids(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    filter: &CallFilter,
    after: Option<Uuid>,
    limit: u64,
) -> DomainResult<Vec<Uuid>> {
    let mut q = analysable(tenant_id, filter)
        .select_only()
        .column(call::Column::Id);
    if let Some(a) = after {
        q = q.filter(call::Column::Id.gt(a));
    }
    Ok(q.order_by_asc(call::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// Unmatched calls are the tenant's data like any other: every role sees them in `calls`,
/// so every role may also filter by them.
fn check_window(_scope: &TenantScope, f: &CallFilter) -> DomainResult<()> {
    if let Some(t) = f.since {
        crate::time::check_instant("since", t)?;
    }
    if let Some(t) = f.until {
        crate::time::check_instant("until", t)?;
    }
    if let (Some(a), Some(b)) = (f.since, f.until)
        && a > b
    {
        return Err(DomainError::invalid("until", "must not be before since"));
    }
    Ok(())
}

pub async fn list(
    db: &DatabaseConnection,
    scope: &TenantScope,
    filter: &CallFilter,
    page: PageRequest,
) -> DomainResult<Page<call::Model>> {
    check_window(scope, filter)?;
    pagination::fetch(db, filtered(scope, filter), call::Column::Id, page).await
}

pub async fn count(
    db: &DatabaseConnection,
    scope: &TenantScope,
    filter: &CallFilter,
) -> DomainResult<u64> {
    check_window(scope, filter)?;
    Ok(filtered(scope, filter).count(db).await?)
}

pub async fn find(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<Option<call::Model>> {
    Ok(scoped(scope)
        .filter(call::Column::Id.eq(id))
        .one(db)
        .await?)
}

/// The tenant's calls among `ids` (for loaders).
pub async fn by_ids(
    db: &DatabaseConnection,
    scope: &TenantScope,
    ids: &[Uuid],
) -> DomainResult<Vec<call::Model>> {
    Ok(scoped(scope)
        .filter(call::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn get(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<call::Model> {
    find(db, scope, id)
        .await?
        .ok_or(DomainError::not_found("call"))
}

/// One page of a parent's calls (used when a nested connection asks for a cursor).
pub async fn list_for_parent(
    db: &DatabaseConnection,
    scope: &TenantScope,
    parent: CallParent,
    parent_id: Uuid,
    page: PageRequest,
) -> DomainResult<Page<call::Model>> {
    pagination::fetch(
        db,
        scoped(scope).filter(parent.column().eq(parent_id)),
        call::Column::Id,
        page,
    )
    .await
}

/// Most parents one statement serves (SQLite allows 500 terms in a compound SELECT).
const PARENTS_PER_STATEMENT: usize = 100;

/// The newest `per_parent` calls of each parent: one statement per 100 parents, so a page
/// (at most 100) always costs one.
///
/// Two shapes, chosen by how many calls a parent can have. A customer has a handful: one
/// window function over the page's customers reads them all and is the cheapest plan
/// (measured with `bench`: the UNION form below cost 15% of the customers page's
/// throughput); on PostgreSQL the ids travel as one array (`= ANY($2)`), so every page size
/// shares one prepared statement. An agent can have millions: each agent gets its own
/// `UNION ALL` branch that reads the `(agent_id, id)` index backwards and stops after
/// `per_parent` rows.
pub async fn recent_by_parent(
    db: &DatabaseConnection,
    scope: &TenantScope,
    parent: CallParent,
    parent_ids: &[Uuid],
    per_parent: u64,
    columns: CallColumns,
) -> DomainResult<HashMap<Uuid, Vec<call::Model>>> {
    let mut out: HashMap<Uuid, Vec<call::Model>> = HashMap::new();
    let backend = db.get_database_backend();
    let col = parent.sql_name();
    // The parent column groups the rows, whatever the caller asked for.
    let columns = columns.with(call::Column::Id).with(parent.column());
    let select = columns.select_list();
    let read = columns.columns();
    for chunk in parent_ids.chunks(PARENTS_PER_STATEMENT) {
        // The limit is our own integer, not user text, so it is inlined.
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
        let sql = match parent {
            CallParent::Customer => {
                values.push(scope.tenant_id().into());
                let ids = if backend == DatabaseBackend::Postgres {
                    // A uuid[] literal: ids print as hex and dashes only.
                    let list: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
                    values.push(format!("{{{}}}", list.join(",")).into());
                    "= ANY($2::uuid[])".to_owned()
                } else {
                    let ids: Vec<String> = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, id)| {
                            values.push((*id).into());
                            param(backend, i + 2)
                        })
                        .collect();
                    format!("IN ({})", ids.join(", "))
                };
                format!(
                    "SELECT * FROM (SELECT {select}, ROW_NUMBER() OVER (PARTITION BY {col} ORDER BY id DESC) AS sb_rank \
                     FROM calls WHERE tenant_id = {t} AND {col} {ids}) ranked WHERE sb_rank <= {per_parent}",
                    t = param(backend, 1),
                )
            }
            CallParent::Agent => chunk
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    values.push(scope.tenant_id().into());
                    values.push((*id).into());
                    format!(
                        "SELECT * FROM (SELECT {select} FROM calls WHERE tenant_id = {t} AND {col} = {p} \
                         ORDER BY id DESC LIMIT {per_parent}) AS b{i}",
                        t = param(backend, 2 * i + 1),
                        p = param(backend, 2 * i + 2),
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL "),
        };
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        for row in rows {
            let row = super::columns::decode(&read, &row)?;
            if let Some(pid) = parent.parent_of(&row) {
                out.entry(pid).or_default().push(row);
            }
        }
    }
    // Neither shape promises an order in its output.
    for rows in out.values_mut() {
        rows.sort_by_key(|r| std::cmp::Reverse(r.id));
    }
    Ok(out)
}

#[derive(Debug, FromQueryResult)]
struct ParentCount {
    parent_id: Uuid,
    n: i64,
}

/// Number of calls per parent, in one statement.
pub async fn count_by_parent(
    db: &DatabaseConnection,
    scope: &TenantScope,
    parent: CallParent,
    parent_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, u64>> {
    if parent_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = call::Entity::find()
        .select_only()
        .column_as(parent.column(), "parent_id")
        .column_as(
            Expr::col((Alias::new("calls"), Alias::new("id"))).count(),
            "n",
        )
        .filter(call::Column::TenantId.eq(scope.tenant_id()))
        .filter(parent.column().is_in(parent_ids.iter().copied()))
        .group_by(parent.column())
        .into_model::<ParentCount>()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.parent_id, u64::try_from(r.n).unwrap_or(0)))
        .collect())
}

/// Status history of many calls at once, oldest first within each call.
pub async fn events_by_call_ids(
    db: &DatabaseConnection,
    scope: &TenantScope,
    call_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<call_event::Model>>> {
    let rows = call_event::Entity::find()
        .filter(call_event::Column::TenantId.eq(scope.tenant_id()))
        .filter(call_event::Column::CallId.is_in(call_ids.iter().copied()))
        .order_by_asc(call_event::Column::At)
        .order_by_asc(call_event::Column::Id)
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<call_event::Model>> = HashMap::new();
    for e in rows {
        out.entry(e.call_id).or_default().push(e);
    }
    Ok(out)
}

/// A customer's past conversations: calls with a transcript or summary, newest first.
pub async fn interactions(
    db: &DatabaseConnection,
    scope: &TenantScope,
    customer_id: Uuid,
    limit: u64,
) -> DomainResult<Vec<call::Model>> {
    Ok(scoped(scope)
        .filter(call::Column::CustomerId.eq(customer_id))
        .filter(
            Condition::any()
                .add(call::Column::Transcript.is_not_null())
                .add(call::Column::Summary.is_not_null()),
        )
        .order_by_desc(call::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}
