//! Background tasks a user starts and watches (`reanalyzeCalls`): a row with the status
//! and progress counts that the jobs doing the work update as they go.

use chrono::Utc;
use entity::task;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use uuid::Uuid;

use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::tenancy::TenantScope;
use crate::types::TaskStatus;

/// Starts a task record (RUNNING) inside the caller's transaction.
pub(crate) async fn create<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    kind: &str,
    total: i64,
    params: serde_json::Value,
) -> DomainResult<task::Model> {
    let now = Utc::now();
    let row = task::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        kind: Set(kind.to_owned()),
        status: Set(TaskStatus::Running),
        total: Set(total),
        done: Set(0),
        failed: Set(0),
        error: Set(None),
        params: Set(params),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    };
    Ok(row.insert(conn).await?)
}

/// Adds to a running task's counts.
pub(crate) async fn advance(
    db: &DatabaseConnection,
    id: Uuid,
    done: i64,
    failed: i64,
) -> DomainResult<()> {
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "UPDATE tasks SET done = done + {}, failed = failed + {}, updated_at = {} WHERE id = {} AND status = 'RUNNING'",
        b.bind(done),
        b.bind(failed),
        b.bind(Utc::now()),
        b.bind(id)
    );
    db.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// Ends a running task.
pub(crate) async fn finish(
    db: &DatabaseConnection,
    id: Uuid,
    status: TaskStatus,
    error: Option<&str>,
) -> DomainResult<()> {
    let now = Utc::now();
    let mut b = Binder::new(db.get_database_backend());
    let sql = format!(
        "UPDATE tasks SET status = {}, error = {}, updated_at = {}, finished_at = {} WHERE id = {} AND status = 'RUNNING'",
        b.bind(status.as_str()),
        b.bind(error.map(|e| e.chars().take(2000).collect::<String>())),
        b.bind(now),
        b.bind(now),
        b.bind(id)
    );
    db.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// One of the tenant's tasks (any role).
pub async fn get(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<Option<task::Model>> {
    Ok(task::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|t| t.tenant_id == scope.tenant_id()))
}

/// The task `id` or NOT_FOUND.
pub async fn require(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<task::Model> {
    get(db, scope, id)
        .await?
        .ok_or(DomainError::not_found("job"))
}
