//! Customers written many at a time, by E.164 number: one lookup, one insert of the new
//! ones, one update of the others, whatever their number. Ingestion uses it for every
//! batch of reports; imports and CRM syncs write through it too.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::db::{Binder, Dialect, KeyIndex, param, probe};
use crate::error::{DomainError, DomainResult};
use crate::ingest::lead::{LeadChange, LeadPlan, funnel_rank, funnel_rank_sql};
use crate::phone::PhoneNumber;
use crate::types::EventSource;

/// What a batch says about one customer (by number).
pub(crate) struct CustomerPlan {
    pub name: Option<String>,
    pub contacted: DateTime<Utc>,
    pub lead: LeadPlan,
    /// The execution whose call asked not to be called again (for the list's reason).
    pub do_not_call_from: Option<String>,
}

/// What a lookup saw of a stored customer: enough to tell that a batch would change
/// nothing on it ([`unchanged`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Standing {
    pub last_contacted_at: Option<DateTime<Utc>>,
    pub named: bool,
    pub status: String,
}

/// Whether [`update_customers`] would leave the customer seen as `seen` as it is: its
/// conditions evaluated on what the lookup read. Any doubt (an unknown status) says no.
/// Skipping then is the same as having run the no-op update at the lookup: everything
/// the update would move only moves forward, so a newer row needs it no more.
fn unchanged(seen: &Standing, plan: &CustomerPlan, change: &LeadChange) -> bool {
    let Ok(status) = seen.status.parse::<crate::types::LeadStatus>() else {
        return false;
    };
    let Some(last) = seen.last_contacted_at else {
        return false;
    };
    if last < plan.contacted || (!seen.named && plan.name.is_some()) {
        return false;
    }
    let next = if status == crate::types::LeadStatus::DoNotCall {
        status
    } else if let Some((to, _)) = change.set.filter(|(_, at)| last <= *at) {
        to
    } else if let Some(forward) = change
        .forward
        .filter(|f| funnel_rank(status) < funnel_rank(*f))
    {
        forward
    } else {
        status
    };
    next == status
}

/// The numbers of a batch that are stored already: their ids and, when the caller read
/// it, their [`Standing`] (by number).
#[derive(Clone, Copy)]
pub(crate) struct Stored<'a> {
    pub ids: &'a HashMap<String, Uuid>,
    pub standing: &'a HashMap<String, Standing>,
}

/// Customers by phone number (E.164), for looking without writing.
pub(crate) async fn customers_by_phone<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    phones: &[&str],
) -> DomainResult<HashMap<String, Uuid>> {
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
        "id",
    );
    let mut out = HashMap::new();
    for row in conn
        .query_all_raw(b.statement(format!("SELECT p.k, p.id FROM {customers}")))
        .await?
    {
        out.insert(row.try_get("", "k")?, row.try_get("", "id")?);
    }
    Ok(out)
}

/// Creates the customers that are new and updates the others (`stored`, by number: last
/// contact, a missing name, the lead status), adding do-not-call requests to the tenant's
/// list. Returns (id, created) by number.
pub(crate) async fn write_customers<C: ConnectionTrait>(
    conn: &C,
    subs: &crate::outbound::Subscriptions,
    tenant_id: Uuid,
    customers: &BTreeMap<String, CustomerPlan>,
    stored: Stored<'_>,
    source: EventSource,
    now: DateTime<Utc>,
) -> DomainResult<HashMap<String, (Uuid, bool)>> {
    let backend = conn.get_database_backend();
    let mut ids: HashMap<String, (Uuid, bool)> = HashMap::with_capacity(customers.len());
    if customers.is_empty() {
        return Ok(ids);
    }
    let changes: BTreeMap<&str, LeadChange> = customers
        .iter()
        .map(|(phone, plan)| (phone.as_str(), plan.lead.change()))
        .collect();

    // Numbers already here are updated, the others inserted at their final status; a
    // number another transaction inserted in between is updated after all.
    let here: Vec<(&str, Uuid)> = customers
        .keys()
        .filter_map(|p| stored.ids.get(p).map(|id| (p.as_str(), *id)))
        .collect();
    // Most reports of a known customer change nothing on it (every status of a call
    // repeats its number): those are not sent.
    let stale: Vec<(&str, Uuid)> = here
        .iter()
        .filter(|(phone, _)| {
            stored
                .standing
                .get(*phone)
                .is_none_or(|s| !unchanged(s, &customers[*phone], &changes[phone]))
        })
        .copied()
        .collect();
    let mut updated = update_customers(conn, tenant_id, customers, &changes, &stale, now).await?;
    for (phone, id) in here {
        ids.insert(phone.to_owned(), (id, false));
    }
    let mut b = Binder::new(backend);
    let rows: Vec<String> = customers
        .iter()
        .filter(|(phone, _)| !ids.contains_key(phone.as_str()))
        .map(|(phone, plan)| {
            let status = changes[phone.as_str()].initial();
            b.row([
                Uuid::now_v7().into(),
                tenant_id.into(),
                phone.as_str().into(),
                plan.name.clone().into(),
                status.as_str().into(),
                serde_json::Value::Array(Vec::new()).into(),
                source.as_str().into(),
                Some(plan.contacted).into(),
                now.into(),
                now.into(),
            ])
        })
        .collect();
    if !rows.is_empty() {
        let sql = format!(
            "INSERT INTO customers (id, tenant_id, phone_number, name, status, tags, source, last_contacted_at, created_at, updated_at) \
             VALUES {} ON CONFLICT (tenant_id, phone_number) DO NOTHING RETURNING id, phone_number",
            rows.join(", ")
        );
        let sql = crate::crm::outbox::marking(&mut b, tenant_id, &sql).unwrap_or(sql);
        for row in conn.query_all_raw(b.statement(sql)).await? {
            ids.insert(
                row.try_get("", "phone_number")?,
                (row.try_get("", "id")?, true),
            );
        }
        let raced: Vec<&str> = customers
            .keys()
            .map(String::as_str)
            .filter(|p| !ids.contains_key(*p))
            .collect();
        if !raced.is_empty() {
            let raced = customers_by_phone(conn, tenant_id, &raced).await?;
            let pairs: Vec<(&str, Uuid)> = raced.iter().map(|(p, id)| (p.as_str(), *id)).collect();
            updated
                .extend(update_customers(conn, tenant_id, customers, &changes, &pairs, now).await?);
            for (phone, id) in pairs {
                ids.insert(phone.to_owned(), (id, false));
            }
        }
    }

    let mut b = Binder::new(backend);
    let rows: Vec<String> = customers
        .iter()
        .filter_map(|(phone, plan)| plan.do_not_call_from.as_ref().map(|e| (phone, e)))
        .map(|(phone, execution)| {
            b.row([
                tenant_id.into(),
                phone.as_str().into(),
                format!("asked during call {execution}").into(),
                now.into(),
            ])
        })
        .collect();
    if !rows.is_empty() {
        let sql = format!(
            "INSERT INTO do_not_call (tenant_id, phone_number, reason, created_at) VALUES {} \
             ON CONFLICT (tenant_id, phone_number) DO NOTHING",
            rows.join(", ")
        );
        conn.execute_raw(b.statement(sql)).await?;
    }
    let created: Vec<Uuid> = ids.values().filter(|v| v.1).map(|v| v.0).collect();
    // On PostgreSQL the customer statements noted their rows for the CRM already.
    let noted = backend == sea_orm::DatabaseBackend::Postgres;
    crate::outbound::record::customer_changes_with(
        conn, subs, tenant_id, &created, &updated, noted,
    )
    .await?;
    Ok(ids)
}

/// Updates the customers `targets` (number, id): last contact, a missing name, the lead
/// status. A row is rewritten only when one of those changes, so a repeated report costs
/// no new row version. Returns the ids of the rows rewritten (on PostgreSQL, noted for the
/// tenant's CRM by the same statement).
async fn update_customers<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    customers: &BTreeMap<String, CustomerPlan>,
    changes: &BTreeMap<&str, LeadChange>,
    targets: &[(&str, Uuid)],
    now: DateTime<Utc>,
) -> DomainResult<Vec<Uuid>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = Binder::new(conn.get_database_backend());
    let rows: Vec<String> = targets
        .iter()
        .map(|(phone, id)| {
            let plan = &customers[*phone];
            let change = &changes[phone];
            b.row([
                (*id).into(),
                Some(plan.contacted).into(),
                plan.name.clone().into(),
                change.set.map(|s| s.0.as_str().to_owned()).into(),
                change.set.map(|s| s.1).into(),
                change.forward.map(|f| f.as_str().to_owned()).into(),
                change.forward.map_or(0, funnel_rank).into(),
            ])
        })
        .collect();
    // Placeholders in text order (SQLite binds by position).
    let now_slot = b.bind(now);
    let status = format!(
        "CASE WHEN customers.status = 'DO_NOT_CALL' THEN customers.status \
         WHEN v.set_to IS NOT NULL AND (customers.last_contacted_at IS NULL OR customers.last_contacted_at <= v.set_at) THEN v.set_to \
         WHEN v.forward IS NOT NULL AND {} < v.forward_rank THEN v.forward \
         ELSE customers.status END",
        funnel_rank_sql("customers.status")
    );
    let later = "customers.last_contacted_at IS NULL OR customers.last_contacted_at < v.contacted";
    // Every SET expression reads the row as it was before this statement.
    let sql = format!(
        "WITH v (id, contacted, name, set_to, set_at, forward, forward_rank) AS (VALUES {rows}) \
         UPDATE customers SET \
         last_contacted_at = CASE WHEN {later} THEN v.contacted ELSE customers.last_contacted_at END, \
         name = COALESCE(customers.name, v.name), \
         updated_at = CASE WHEN ({status}) <> customers.status THEN {now_slot} ELSE customers.updated_at END, \
         status = {status} \
         FROM v WHERE customers.id = v.id \
         AND ({later} OR (customers.name IS NULL AND v.name IS NOT NULL) OR ({status}) <> customers.status) \
         RETURNING {returning}",
        rows = rows.join(", "),
        // SQLite's RETURNING names only the updated table's columns, unqualified.
        returning = match crate::db::Dialect::of(conn) {
            crate::db::Dialect::Postgres => "customers.id",
            crate::db::Dialect::Sqlite => "id",
        },
    );
    let sql = crate::crm::outbox::marking(&mut b, tenant_id, &sql).unwrap_or(sql);
    let mut updated = Vec::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        updated.push(row.try_get("", "id")?);
    }
    Ok(updated)
}

/// Finds or creates the tenant's customer for `phone`, moving `last_contacted_at` forward
/// and filling a missing name. The row is rewritten only when one of those changes (a
/// repeated report costs a read, not a new row version). Returns (id, created).
pub(crate) async fn upsert_customer<C: ConnectionTrait>(
    conn: &C,
    tenant_id: Uuid,
    phone: &PhoneNumber,
    name: Option<String>,
    source: EventSource,
    contacted: Option<DateTime<Utc>>,
) -> DomainResult<(Uuid, bool)> {
    let backend = conn.get_database_backend();
    let p = |n| param(backend, n);
    let now = Utc::now();
    let new_id = Uuid::now_v7();
    let sql = format!(
        "INSERT INTO customers (id, tenant_id, phone_number, name, status, tags, source, last_contacted_at, created_at, updated_at) \
         VALUES ({}, {}, {}, {}, 'NEW', '[]', {}, {}, {}, {}) \
         ON CONFLICT (tenant_id, phone_number) DO UPDATE SET \
         last_contacted_at = CASE WHEN customers.last_contacted_at IS NULL OR customers.last_contacted_at < excluded.last_contacted_at \
           THEN excluded.last_contacted_at ELSE customers.last_contacted_at END, \
         name = COALESCE(customers.name, excluded.name) \
         RETURNING id",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8)
    );
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                new_id.into(),
                tenant_id.into(),
                phone.as_str().into(),
                name.into(),
                source.as_str().into(),
                contacted.into(),
                now.into(),
                now.into(),
            ],
        ))
        .await?;
    if let Some(row) = row {
        let id: Uuid = row.try_get("", "id")?;
        return Ok((id, id == new_id));
    }
    // The customer exists and nothing about it changes.
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT id FROM customers WHERE {} AND phone_number = {}",
                Dialect::from(backend).tenant_outside_index(&p(1)),
                p(2)
            ),
            [tenant_id.into(), phone.as_str().into()],
        ))
        .await?
        .ok_or_else(|| DomainError::Internal("customer vanished during upsert".into()))?;
    Ok((row.try_get("", "id")?, false))
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use chrono::Duration;
    use sea_orm::TransactionTrait;

    use super::*;
    use crate::testdb::{Backend, TestDb};
    use crate::types::{LeadStatus, Provider};

    /// A customer the lookup says a batch leaves alone is one the update would not have
    /// rewritten: every stored standing against every plan, on both databases. The usual
    /// repeat (a later status of the same call) is skipped.
    #[tokio::test]
    async fn customers_skipped_as_unchanged_are_ones_the_update_leaves_alone() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let Some(test_db) = TestDb::create(backend).await else {
                continue;
            };
            let db = sea_orm::Database::connect(test_db.url.as_str())
                .await
                .unwrap();
            let tenant = crate::testdb::tenant(&db, "Standing").await;
            let phone = "+919876543210";
            let t0 = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc);
            let mut plans = BTreeMap::new();
            plans.insert(
                phone.to_owned(),
                CustomerPlan {
                    name: None,
                    contacted: t0,
                    lead: LeadPlan::default(),
                    do_not_call_from: None,
                },
            );
            let ids = write_customers(
                &db,
                &crate::outbound::Subscriptions::default(),
                tenant.id,
                &plans,
                Stored {
                    ids: &HashMap::new(),
                    standing: &HashMap::new(),
                },
                EventSource::Webhook,
                t0,
            )
            .await
            .unwrap();
            let id = ids[phone].0;
            let (mut skipped, mut checked) = (0, 0);
            for status in ["NEW", "CONTACTED", "INTERESTED", "DO_NOT_CALL"] {
                for last in [None, Some(t0)] {
                    for stored_name in [None, Some("Asha")] {
                        for contacted in [t0 - Duration::minutes(1), t0, t0 + Duration::minutes(1)]
                        {
                            for name in [None, Some("Bench Lead".to_owned())] {
                                for set in [
                                    None,
                                    Some((LeadStatus::Interested, t0)),
                                    Some((LeadStatus::Contacted, t0 - Duration::minutes(1))),
                                ] {
                                    for forward in [
                                        None,
                                        Some(LeadStatus::Contacted),
                                        Some(LeadStatus::Booked),
                                    ] {
                                        let txn = db.begin().await.unwrap();
                                        let mut b = Binder::new(txn.get_database_backend());
                                        let sql = format!(
                                            "UPDATE customers SET status = {}, last_contacted_at = {}, name = {} WHERE id = {}",
                                            b.bind(status),
                                            b.bind(last),
                                            b.bind(stored_name),
                                            b.bind(id)
                                        );
                                        txn.execute_raw(b.statement(sql)).await.unwrap();
                                        let found = crate::ingest::lookup(
                                            &txn,
                                            tenant.id,
                                            Provider::Bolna,
                                            &[],
                                            &[],
                                            &[phone],
                                            false,
                                        )
                                        .await
                                        .unwrap();
                                        let seen = &found.standing[phone];
                                        assert_eq!(seen.status, status);
                                        assert_eq!(seen.last_contacted_at, last);
                                        assert_eq!(seen.named, stored_name.is_some());
                                        let mut plans = BTreeMap::new();
                                        plans.insert(
                                            phone.to_owned(),
                                            CustomerPlan {
                                                name: name.clone(),
                                                contacted,
                                                lead: LeadPlan::default(),
                                                do_not_call_from: None,
                                            },
                                        );
                                        let change = LeadChange {
                                            set,
                                            forward,
                                            do_not_call: false,
                                        };
                                        let changes: BTreeMap<&str, LeadChange> =
                                            [(phone, change.clone())].into_iter().collect();
                                        let rewritten = update_customers(
                                            &txn,
                                            tenant.id,
                                            &plans,
                                            &changes,
                                            &[(phone, id)],
                                            t0,
                                        )
                                        .await
                                        .unwrap();
                                        let skip = unchanged(seen, &plans[phone], &change);
                                        if skip {
                                            skipped += 1;
                                            assert!(
                                                rewritten.is_empty(),
                                                "{backend:?}: skipped but rewritten: {status} {last:?} {stored_name:?} {contacted} {name:?} {set:?} {forward:?}"
                                            );
                                        }
                                        checked += 1;
                                        txn.rollback().await.unwrap();
                                    }
                                }
                            }
                        }
                    }
                }
            }
            assert!(skipped > checked / 10, "{skipped} of {checked} skipped");
            // The usual repeat: contacted, named, the same contact time, no new intent.
            let seen = Standing {
                last_contacted_at: Some(t0),
                named: true,
                status: "CONTACTED".into(),
            };
            let plan = CustomerPlan {
                name: Some("Bench Lead".into()),
                contacted: t0,
                lead: LeadPlan::default(),
                do_not_call_from: None,
            };
            let change = LeadChange {
                set: None,
                forward: Some(LeadStatus::Contacted),
                do_not_call: false,
            };
            assert!(unchanged(&seen, &plan, &change));
        }
    }
}
