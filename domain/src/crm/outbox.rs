//! Customers changed or deleted here, waiting for the next push to the tenant's CRM. Rows
//! are written in the transaction of the change, and only for tenants with a CRM (one
//! statement either way, nothing written for the others).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

use crate::db::Binder;
use crate::error::DomainResult;

/// Notes that `ids` (customers of `tenant`) changed here.
pub(crate) async fn mark<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    ids: &[Uuid],
) -> DomainResult<()> {
    let now = Utc::now();
    for chunk in ids.chunks(super::CHUNK) {
        let mut b = Binder::new(conn.get_database_backend());
        let t = b.bind(tenant);
        let at = b.bind(now);
        let no = b.bind(false);
        let list = b.list(super::uuid_list(chunk));
        let sql = format!(
            "INSERT INTO crm_outbox (customer_id, tenant_id, remote_id, deleted, changed_at) \
             SELECT c.id, c.tenant_id, NULL, {no}, {at} FROM customers c \
             WHERE c.tenant_id = {t} AND c.id IN ({list}) \
             AND EXISTS (SELECT 1 FROM crm_connections k WHERE k.tenant_id = {t}) \
             ON CONFLICT (customer_id) DO UPDATE SET changed_at = excluded.changed_at"
        );
        conn.execute_raw(b.statement(sql)).await?;
    }
    Ok(())
}

/// On PostgreSQL, `statement` (writing the tenant's customers and returning their `id`)
/// made to also note the customers it returns, as [`mark`] would, in the same statement:
/// a round trip less for every batch that writes customers. `None` on SQLite, whose
/// data-modifying statements cannot be nested: call [`mark`] there.
pub(crate) fn marking(b: &mut Binder, tenant: Uuid, statement: &str) -> Option<String> {
    if b.backend() != sea_orm::DatabaseBackend::Postgres {
        return None;
    }
    let t = b.bind(tenant);
    let at = b.bind(Utc::now());
    let no = b.bind(false);
    Some(format!(
        "WITH written AS ({statement}), noted AS (\
         INSERT INTO crm_outbox (customer_id, tenant_id, remote_id, deleted, changed_at) \
         SELECT w.id, {t}, NULL, {no}, {at} FROM written w \
         WHERE EXISTS (SELECT 1 FROM crm_connections k WHERE k.tenant_id = {t}) \
         ON CONFLICT (customer_id) DO UPDATE SET changed_at = excluded.changed_at) \
         SELECT * FROM written"
    ))
}

/// Notes that `customer` is about to be deleted here: its CRM record is deleted by the
/// next push. Call before deleting (the link goes with the customer).
pub(crate) async fn mark_deleted<C: ConnectionTrait>(
    conn: &C,
    tenant: Uuid,
    customer: Uuid,
) -> DomainResult<()> {
    let mut b = Binder::new(conn.get_database_backend());
    let t = b.bind(tenant);
    let c = b.bind(customer);
    let at = b.bind(Utc::now());
    let yes = b.bind(true);
    let sql = format!(
        "INSERT INTO crm_outbox (customer_id, tenant_id, remote_id, deleted, changed_at) \
         SELECT l.customer_id, l.tenant_id, l.remote_id, {yes}, {at} FROM crm_links l \
         WHERE l.customer_id = {c} AND l.tenant_id = {t} AND l.remote_deleted_at IS NULL \
         ON CONFLICT (customer_id) DO UPDATE SET deleted = excluded.deleted, \
         remote_id = excluded.remote_id, changed_at = excluded.changed_at"
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}

/// Tenants with changes older than `settled` waiting (oldest first, at most `limit`).
pub(crate) async fn waiting(
    db: &DatabaseConnection,
    settled: DateTime<Utc>,
    limit: u64,
) -> DomainResult<Vec<Uuid>> {
    let mut b = Binder::new(db.get_database_backend());
    let at = b.bind(settled);
    let lim = b.bind(limit as i64);
    let sql = format!(
        "SELECT tenant_id, MIN(changed_at) AS first FROM crm_outbox WHERE changed_at <= {at} \
         GROUP BY tenant_id ORDER BY first LIMIT {lim}"
    );
    let mut out = Vec::new();
    for row in db.query_all_raw(b.statement(sql)).await? {
        out.push(row.try_get("", "tenant_id")?);
    }
    Ok(out)
}
