//! Live-call accounting: how many calls are out with a provider right now (being placed,
//! or placed and not yet final). Concurrency caps count these.

use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::db::Binder;
use crate::error::DomainResult;
use crate::types::CallStatus;

/// Calls being placed or placed and not final, for one tenant or (`None`) all of them.
pub async fn count_live<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Option<Uuid>,
) -> DomainResult<u64> {
    let mut b = Binder::new(conn.get_database_backend());
    let tenant = match tenant_id {
        Some(t) => format!(" AND tenant_id = {}", b.bind(t)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT COUNT(*) AS n FROM calls WHERE status_rank < {} \
         AND (placing_since IS NOT NULL OR provider_execution_id IS NOT NULL){tenant}",
        CallStatus::TERMINAL_RANK
    );
    let stmt: Statement = b.statement(sql);
    let row = conn.query_one_raw(stmt).await?;
    Ok(row
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .unwrap_or(0)
        .max(0) as u64)
}
