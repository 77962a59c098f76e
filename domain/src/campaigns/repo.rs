//! The campaign tables' set-based statements: numbers on the do-not-call list, customers
//! by number, and writing a chunk of customers and queue items.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::campaign;
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

use super::import::ImportRow;
use crate::db::{Binder, Dialect, KeyIndex, probe};
use crate::error::DomainResult;
use crate::types::LeadStatus;

/// Which of `phones` are on the tenant's do-not-call list (an index probe per number, so
/// the cost does not grow with the list).
pub(crate) async fn listed_numbers<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    phones: &[&str],
) -> DomainResult<HashSet<String>> {
    if phones.is_empty() {
        return Ok(HashSet::new());
    }
    let mut b = Binder::new(conn.get_database_backend());
    let listed = probe(
        &mut b,
        "do_not_call",
        KeyIndex::TenantFirst,
        tenant_id,
        &[],
        "phone_number",
        phones,
        "phone_number",
    );
    let sql = format!("SELECT p.k AS phone_number FROM {listed}");
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
    let customers = probe(
        &mut b,
        "customers",
        KeyIndex::KeyFirst,
        tenant_id,
        &[],
        "phone_number",
        phones,
        "id, status",
    );
    let sql = format!("SELECT p.k AS phone_number, p.id, p.status FROM {customers}");
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
    let columns = "INSERT INTO customers (id, tenant_id, phone_number, name, email, status, tags, source, created_at, updated_at)";
    let sql = if Dialect::of(conn) == Dialect::Postgres {
        // One JSON parameter for the whole chunk: PostgreSQL parses it far faster than
        // thousands of bound values.
        let records: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| json!({ "id": Uuid::now_v7(), "phone_number": r.phone.as_str(), "name": r.name, "email": r.email }))
            .collect();
        format!(
            "{columns} SELECT r.id, {}, r.phone_number, r.name, r.email, {}, '[]'::jsonb, 'CAMPAIGN', {now}, {now} \
             FROM jsonb_to_recordset({}) AS r (id uuid, phone_number text, name text, email text) \
             ON CONFLICT (tenant_id, phone_number) DO NOTHING RETURNING id, phone_number",
            b.bind(tenant_id),
            b.bind(LeadStatus::New.as_str()),
            b.bind(serde_json::Value::Array(records)),
            now = b.bind(now),
        )
    } else {
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
        format!(
            "{columns} VALUES {} ON CONFLICT (tenant_id, phone_number) DO NOTHING RETURNING id, phone_number",
            values.join(", ")
        )
    };
    for row in conn.query_all_raw(b.statement(sql)).await? {
        out.insert(row.try_get("", "phone_number")?, row.try_get("", "id")?);
    }
    let created: Vec<Uuid> = out.values().copied().collect();
    crate::outbound::record::customer_changes(conn, tenant_id, &created, &[]).await?;
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
    let columns = "INSERT INTO campaign_items (id, tenant_id, campaign_id, customer_id, phone_number, line, variables, \
                   timezone, status, attempts, next_attempt_at, created_at, updated_at)";
    let line = |r: &ImportRow| r.line.min(i32::MAX as u64) as i32;
    let sql = if Dialect::of(conn) == Dialect::Postgres {
        let records: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                json!({ "id": Uuid::now_v7(), "customer_id": customers.get(r.phone.as_str()),
                        "phone_number": r.phone.as_str(), "line": line(r), "variables": r.variables,
                        "timezone": r.timezone })
            })
            .collect();
        format!(
            "{columns} SELECT r.id, {}, {}, r.customer_id, r.phone_number, r.line, r.variables, r.timezone, 'PENDING', 0, \
             {now}, {now}, {now} FROM jsonb_to_recordset({}) AS r (id uuid, customer_id uuid, phone_number text, \
             line int, variables jsonb, timezone text)",
            b.bind(campaign.tenant_id),
            b.bind(campaign.id),
            b.bind(serde_json::Value::Array(records)),
            now = b.bind(now),
        )
    } else {
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                b.row([
                    Uuid::now_v7().into(),
                    campaign.tenant_id.into(),
                    campaign.id.into(),
                    customers.get(r.phone.as_str()).copied().into(),
                    r.phone.as_str().into(),
                    line(r).into(),
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
        format!("{columns} VALUES {}", values.join(", "))
    };
    conn.execute_raw(b.statement(sql)).await?;
    Ok(())
}
