//! The campaign tables' set-based statements: numbers on the do-not-call list, customers
//! by number, and writing a chunk of customers and queue items.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::campaign;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::import::ImportRow;
use crate::db::Binder;
use crate::error::DomainResult;
use crate::types::LeadStatus;

/// Which of `phones` are on the tenant's do-not-call list.
pub(crate) async fn listed_numbers<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    phones: &[&str],
) -> DomainResult<HashSet<String>> {
    if phones.is_empty() {
        return Ok(HashSet::new());
    }
    let mut b = Binder::new(conn.get_database_backend());
    let tenant = b.bind(tenant_id);
    let list = b.list(phones.iter().map(|p| (*p).into()));
    let sql = format!(
        "SELECT phone_number FROM do_not_call WHERE tenant_id = {tenant} AND phone_number IN ({list})"
    );
    let mut out = HashSet::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        out.insert(row.try_get("", "phone_number")?);
    }
    Ok(out)
}

/// The tenant's customers among `phones`: (id, status) by number.
pub(crate) async fn customers_by_phone<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    phones: &[&str],
) -> DomainResult<HashMap<String, (Uuid, LeadStatus)>> {
    if phones.is_empty() {
        return Ok(HashMap::new());
    }
    let mut b = Binder::new(conn.get_database_backend());
    let tenant = b.bind(tenant_id);
    let list = b.list(phones.iter().map(|p| (*p).into()));
    let sql = format!(
        "SELECT id, phone_number, status FROM customers WHERE tenant_id = {tenant} AND phone_number IN ({list})"
    );
    let mut out = HashMap::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        out.insert(
            row.try_get("", "phone_number")?,
            (row.try_get("", "id")?, row.try_get("", "status")?),
        );
    }
    Ok(out)
}

/// Creates customers for `rows` (numbers not yet known); a number another transaction
/// created meanwhile is looked up instead. Returns ids by number.
pub(crate) async fn insert_customers<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    rows: &[&ImportRow],
    now: DateTime<Utc>,
) -> DomainResult<HashMap<String, Uuid>> {
    let mut out = HashMap::new();
    if rows.is_empty() {
        return Ok(out);
    }
    let mut b = Binder::new(conn.get_database_backend());
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            b.row([
                Uuid::now_v7().into(),
                tenant_id.into(),
                r.phone.as_str().into(),
                r.name.clone().into(),
                r.email.clone().into(),
                LeadStatus::New.as_str().into(),
                serde_json::Value::Array(Vec::new()).into(),
                "CAMPAIGN".into(),
                now.into(),
                now.into(),
            ])
        })
        .collect();
    let sql = format!(
        "INSERT INTO customers (id, tenant_id, phone_number, name, email, status, tags, source, created_at, updated_at) \
         VALUES {} ON CONFLICT (tenant_id, phone_number) DO NOTHING RETURNING id, phone_number",
        values.join(", ")
    );
    for row in conn.query_all_raw(b.statement(sql)).await? {
        out.insert(row.try_get("", "phone_number")?, row.try_get("", "id")?);
    }
    let raced: Vec<&str> = rows
        .iter()
        .map(|r| r.phone.as_str())
        .filter(|p| !out.contains_key(*p))
        .collect();
    for (phone, (id, _)) in customers_by_phone(conn, tenant_id, &raced).await? {
        out.insert(phone, id);
    }
    Ok(out)
}

/// One PENDING queue item per row, due now.
pub(crate) async fn insert_items<C: ConnectionTrait>(
    conn: &C,
    campaign: &campaign::Model,
    rows: &[ImportRow],
    customers: &HashMap<String, Uuid>,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut b = Binder::new(conn.get_database_backend());
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            b.row([
                Uuid::now_v7().into(),
                campaign.tenant_id.into(),
                campaign.id.into(),
                customers.get(r.phone.as_str()).copied().into(),
                r.phone.as_str().into(),
                (r.line.min(i32::MAX as u64) as i32).into(),
                r.variables.clone().into(),
                r.timezone.clone().into(),
                "PENDING".into(),
                0i32.into(),
                now.into(),
                now.into(),
                now.into(),
            ])
        })
        .collect();
    let sql = format!(
        "INSERT INTO campaign_items (id, tenant_id, campaign_id, customer_id, phone_number, line, variables, \
         timezone, status, attempts, next_attempt_at, created_at, updated_at) VALUES {}",
        values.join(", ")
    );
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}
