//! Everything that differs between SQLite and PostgreSQL in the SQL we write by hand:
//! placeholders, row locking, batched key lookups, error classification and date
//! bucketing. Code elsewhere asks this module instead of testing the backend itself.

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, RuntimeErr, Statement, Value};
use uuid::Uuid;

/// The SQL dialect of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn of<C: ConnectionTrait>(conn: &C) -> Dialect {
        Dialect::from(conn.get_database_backend())
    }

    /// Appended to a `SELECT` whose rows a claim takes: other transactions skip rows
    /// already taken instead of waiting. SQLite has one writer at a time and no row locks.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    /// Appended to a `SELECT` that reads rows the transaction will then update. SQLite's
    /// write transactions (`BEGIN IMMEDIATE`) already exclude other writers.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// Like [`Dialect::for_update`] for a row whose key the transaction does not change:
    /// rows referring to it (foreign keys) may still be inserted meanwhile.
    pub fn for_no_key_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR NO KEY UPDATE",
            Dialect::Sqlite => "",
        }
    }

    /// The advisory lock (PostgreSQL) every claim of a concurrency slot takes first, so
    /// counting live calls and taking a slot are one atomic step across processes.
    /// SQLite's `BEGIN IMMEDIATE` already admits one writer at a time.
    pub fn slot_lock(self) -> Option<i64> {
        match self {
            Dialect::Postgres => Some(SLOT_LOCK_KEY),
            Dialect::Sqlite => None,
        }
    }

    /// Whether many keys are best probed one index lookup each (`LATERAL .. LIMIT 1`)
    /// rather than with an `IN` list: PostgreSQL's planner may turn a long `IN` list into
    /// a scan of the tenant's rows when its statistics lag the table's growth.
    pub fn probes_laterally(self) -> bool {
        self == Dialect::Postgres
    }

    /// `tenant_id` compared with `param` so that no index serves the comparison, for
    /// lookups by a key whose unique index leads with the key ([`KeyIndex::KeyFirst`]).
    /// SQLite's planner already prefers a unique index whose every column is bound.
    pub fn tenant_outside_index(self, param: &str) -> String {
        match self {
            Dialect::Postgres => format!("(tenant_id = {param}) IS TRUE"),
            Dialect::Sqlite => format!("tenant_id = {param}"),
        }
    }

    /// Makes the transaction's statements planned for the values bound each time (heavy
    /// reports whose best plan depends on the range asked), not with a cached generic plan.
    pub fn custom_plans(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("SET LOCAL plan_cache_mode = force_custom_plan"),
            Dialect::Sqlite => None,
        }
    }

    /// A bound timestamp where its type cannot be inferred (a `VALUES` list): PostgreSQL
    /// needs the cast; SQLite compares the stored text as it is (a cast there would turn
    /// it into a number).
    pub fn cast_timestamp(self, param: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({param} AS timestamptz)"),
            Dialect::Sqlite => param.to_owned(),
        }
    }

    /// A bound text where its type cannot be inferred.
    pub fn cast_text(self, param: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST({param} AS text)"),
            Dialect::Sqlite => param.to_owned(),
        }
    }

    /// The local date (`YYYY-MM-DD`) starting the `unit` ("day", "week" from Monday,
    /// "month") that contains the timestamp expression `ts`: in the IANA time zone bound
    /// at `tz` on PostgreSQL, in UTC shifted by the offset bound at `offset_seconds` on
    /// SQLite (which has no time zone database; callers pass the zone's offset).
    pub fn local_bucket(self, unit: &str, ts: &str, tz: &str, offset_seconds: &str) -> String {
        match self {
            Dialect::Postgres => {
                let unit = match unit {
                    "week" | "month" => unit,
                    _ => "day",
                };
                format!("to_char(date_trunc('{unit}', {ts} AT TIME ZONE {tz}), 'YYYY-MM-DD')")
            }
            Dialect::Sqlite => {
                let shifted = format!("datetime({ts}, ({offset_seconds}) || ' seconds')");
                match unit {
                    "month" => format!("strftime('%Y-%m-01', {shifted})"),
                    "week" => format!("date({shifted}, 'weekday 0', '-6 days')"),
                    _ => format!("date({shifted})"),
                }
            }
        }
    }
}

impl From<DatabaseBackend> for Dialect {
    fn from(backend: DatabaseBackend) -> Self {
        match backend {
            DatabaseBackend::Postgres => Dialect::Postgres,
            _ => Dialect::Sqlite,
        }
    }
}

/// The SQLSTATE (PostgreSQL) or extended result code (SQLite) of a database error.
fn code(e: &DbErr) -> Option<String> {
    let runtime = match e {
        DbErr::Exec(r) | DbErr::Query(r) | DbErr::Conn(r) => r,
        _ => return None,
    };
    match runtime {
        RuntimeErr::SqlxError(sqlx) => match &**sqlx {
            sea_orm::sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// A transaction chosen as a deadlock victim or failed on serialisation: running it
/// again is expected to work. SQLite reports a busy database (5) once its timeout ran out.
pub fn is_deadlock(e: &DbErr) -> bool {
    code(e).is_some_and(|c| matches!(c.as_str(), "40P01" | "40001" | "5" | "517"))
}

/// A unique constraint refused the write (PostgreSQL 23505; SQLite 2067 and 1555).
pub fn is_unique_violation(e: &DbErr) -> bool {
    code(e).is_some_and(|c| matches!(c.as_str(), "23505" | "2067" | "1555"))
}

/// The advisory lock key of slot claims.
const SLOT_LOCK_KEY: i64 = 7_306_571_003;

/// Placeholder syntax differs between backends; raw SQL in repositories goes through this.
pub fn param(backend: DatabaseBackend, n: usize) -> String {
    match backend {
        DatabaseBackend::Postgres => format!("${n}"),
        // Numbered on SQLite too, so a statement may bind its values in any order.
        _ => format!("?{n}"),
    }
}

/// Which index serves a [`probe`]'s lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyIndex {
    /// A unique index led by the key, the tenant last (calls by execution id, customers by
    /// number). The tenant is tested outside any index, so that index is the only one that
    /// can serve the lookup.
    KeyFirst,
    /// A unique index led by the tenant, on a table where no other index could be walked
    /// instead at any cost (the do-not-call list) or where a tenant's rows are few (agents).
    TenantFirst,
}

/// A FROM item `p` with column `k` (each of `keys` that has a row) and `cols` of the
/// tenant's row in `table` whose unique `key_col` equals it; `filters` narrow it further.
///
/// PostgreSQL gets one index lookup per key (`LATERAL .. LIMIT 1`, which the planner cannot
/// turn into one scan of the tenant's rows for the whole list, as it did with an `IN` list
/// and statistics older than the table's growth, which made a large sync quadratic). With
/// [`KeyIndex::KeyFirst`] the tenant is compared as `(tenant_id = $n) IS TRUE`, which no
/// index can serve: written plainly, every tenant-led index could serve it too, and when
/// the planner expected about one row for the tenant (an empty table when the plan was
/// cached, or statistics older than the tenant) the costs tied and it walked all of the
/// tenant's rows with the key as a filter, once per key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn probe(
    b: &mut Binder,
    table: &str,
    index: KeyIndex,
    tenant_id: Uuid,
    filters: &[(&str, Value)],
    key_col: &str,
    keys: &[&str],
    cols: &str,
) -> String {
    if Dialect::from(b.backend()).probes_laterally() {
        let values: Vec<String> = keys.iter().map(|k| format!("({})", b.bind(*k))).collect();
        let tenant = b.bind(tenant_id);
        let mut wheres = vec![match index {
            KeyIndex::KeyFirst => Dialect::Postgres.tenant_outside_index(&tenant),
            KeyIndex::TenantFirst => format!("tenant_id = {tenant}"),
        }];
        wheres.extend(
            filters
                .iter()
                .map(|(col, v)| format!("{col} = {}", b.bind(v.clone()))),
        );
        format!(
            "(SELECT keys.k, m.* FROM (VALUES {}) AS keys (k) CROSS JOIN LATERAL \
             (SELECT {cols} FROM {table} WHERE {} AND {key_col} = keys.k LIMIT 1) m) p",
            values.join(", "),
            wheres.join(" AND ")
        )
    } else {
        let mut wheres = vec![format!("tenant_id = {}", b.bind(tenant_id))];
        wheres.extend(
            filters
                .iter()
                .map(|(col, v)| format!("{col} = {}", b.bind(v.clone()))),
        );
        format!(
            "(SELECT {key_col} AS k, {cols} FROM {table} WHERE {} AND {key_col} IN ({})) p",
            wheres.join(" AND "),
            b.list(keys.iter().map(|k| Value::from(*k)))
        )
    }
}

/// [`Dialect::tenant_outside_index`] as a SeaORM condition, for queries that find rows by a
/// key whose unique index leads with the key ([`KeyIndex::KeyFirst`]).
pub(crate) fn tenant_outside_index(
    backend: DatabaseBackend,
    tenant_id: Uuid,
) -> sea_orm::sea_query::SimpleExpr {
    // Custom SQL takes each backend's own placeholder.
    let placeholder = match backend {
        DatabaseBackend::Postgres => "$1",
        _ => "?",
    };
    sea_orm::sea_query::Expr::cust_with_values(
        Dialect::from(backend).tenant_outside_index(placeholder),
        [tenant_id],
    )
}

/// Collects the values of a raw statement and hands out their placeholders in order, so
/// statements with a variable number of rows are built without counting by hand.
pub struct Binder {
    backend: DatabaseBackend,
    values: Vec<sea_orm::Value>,
}

impl Binder {
    pub fn new(backend: DatabaseBackend) -> Self {
        Binder {
            backend,
            values: Vec::new(),
        }
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    /// The placeholder for `value`, which is bound at this position.
    pub fn bind(&mut self, value: impl Into<sea_orm::Value>) -> String {
        self.values.push(value.into());
        param(self.backend, self.values.len())
    }

    /// `(p1, p2, ...)` for a row of values.
    pub fn row(&mut self, values: impl IntoIterator<Item = sea_orm::Value>) -> String {
        let slots: Vec<String> = values.into_iter().map(|v| self.bind(v)).collect();
        format!("({})", slots.join(", "))
    }

    /// `p1, p2, ...` for an `IN (...)` list.
    pub fn list(&mut self, values: impl IntoIterator<Item = sea_orm::Value>) -> String {
        let slots: Vec<String> = values.into_iter().map(|v| self.bind(v)).collect();
        slots.join(", ")
    }

    pub fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The buckets of one instant in two zones, on SQLite and (when configured) PostgreSQL.
    async fn buckets(db: &sea_orm::DatabaseConnection) {
        let dialect = Dialect::of(db);
        // Sunday 2026-03-01 02:30 UTC: still Saturday in New York, Sunday in Kolkata.
        let at = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 2, 30, 0).unwrap();
        for (tz, offset, day, week, month) in [
            (
                "Asia/Kolkata",
                19_800,
                "2026-03-01",
                "2026-02-23",
                "2026-03-01",
            ),
            (
                "America/New_York",
                -18_000,
                "2026-02-28",
                "2026-02-23",
                "2026-02-01",
            ),
        ] {
            for (unit, want) in [("day", day), ("week", week), ("month", month)] {
                let mut b = Binder::new(db.get_database_backend());
                let ts = b.bind(at);
                let expr = match dialect {
                    Dialect::Postgres => dialect.local_bucket(unit, &ts, &b.bind(tz), "0"),
                    Dialect::Sqlite => dialect.local_bucket(unit, &ts, "''", &b.bind(offset)),
                };
                let stmt = b.statement(format!("SELECT {expr} AS d"));
                let row = db.query_one_raw(stmt).await.unwrap().unwrap();
                let got: String = row.try_get("", "d").unwrap();
                assert_eq!(got, want, "{unit} in {tz} on {dialect:?}");
            }
        }
    }

    #[tokio::test]
    async fn local_buckets_agree_on_both_backends() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        buckets(&db).await;
        if let Some(url) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
            buckets(&db).await;
        }
    }

    /// The plans of a batch lookup of calls by execution id and customers by number, on
    /// PostgreSQL, in the two states where a tenant-led index tied with the key's unique
    /// index: plans made while the tables were empty (then cached), and statistics taken
    /// before the tenant's rows arrived. Each must be one lookup in the key-led unique
    /// index per key, never a walk of the tenant's rows.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn key_lookups_use_the_key_index_whatever_the_statistics() {
        use crate::testdb::{Backend, TestDb};
        let Some(test_db) = TestDb::create(Backend::Postgres).await else {
            return;
        };
        let db = sea_orm::Database::connect(test_db.url.as_str())
            .await
            .unwrap();
        let old = crate::testdb::tenant(&db, "Old").await;
        let new = crate::testdb::tenant(&db, "New").await;

        // Plans made on empty tables.
        let empty = explain_lookup(&db, new.id, "force_generic_plan").await;
        assert_key_lookups(&empty);

        // One tenant's rows, statistics of them, then another tenant's rows.
        fill(&db, old.id, 0, 5_000).await;
        db.execute_unprepared("ANALYZE calls; ANALYZE customers")
            .await
            .unwrap();
        fill(&db, new.id, 5_000, 5_000).await;
        for mode in ["force_custom_plan", "force_generic_plan"] {
            assert_key_lookups(&explain_lookup(&db, new.id, mode).await);
        }
    }

    #[cfg(feature = "testing")]
    async fn fill(db: &sea_orm::DatabaseConnection, tenant_id: Uuid, from: i64, n: i64) {
        let to = from + n - 1;
        db.execute_unprepared(&format!(
            "INSERT INTO customers (id, tenant_id, phone_number, status, tags, created_at, updated_at) \
             SELECT gen_random_uuid(), '{tenant_id}', '+9198' || lpad(i::text, 8, '0'), 'NEW', '[]', now(), now() \
             FROM generate_series({from}, {to}) i; \
             INSERT INTO calls (id, tenant_id, provider, provider_execution_id, direction, status, created_at, updated_at) \
             SELECT gen_random_uuid(), '{tenant_id}', 'BOLNA', 'exec-' || i, 'OUTBOUND', 'COMPLETED', now(), now() \
             FROM generate_series({from}, {to}) i"
        ))
        .await
        .unwrap();
    }

    /// `EXPLAIN` of the lookup as a prepared statement, with `plan_cache_mode` set to
    /// `mode`; returns the plan's text.
    #[cfg(feature = "testing")]
    async fn explain_lookup(
        db: &sea_orm::DatabaseConnection,
        tenant_id: Uuid,
        mode: &str,
    ) -> String {
        let mut b = Binder::new(DatabaseBackend::Postgres);
        let calls = probe(
            &mut b,
            "calls",
            KeyIndex::KeyFirst,
            tenant_id,
            &[("provider", Value::from("BOLNA"))],
            "provider_execution_id",
            &["exec-5001", "exec-9000"],
            "id, status",
        );
        let customers = probe(
            &mut b,
            "customers",
            KeyIndex::KeyFirst,
            tenant_id,
            &[],
            "phone_number",
            &["+919800005001"],
            "id",
        );
        let sql =
            format!("SELECT p.k, p.id FROM {calls} UNION ALL SELECT p.k, p.id FROM {customers}");
        // The bound values as literals, for `EXECUTE`.
        let args: Vec<String> = b
            .values
            .iter()
            .map(|v| match v {
                Value::Uuid(Some(u)) => format!("'{u}'::uuid"),
                Value::String(Some(s)) => format!("'{s}'"),
                other => panic!("unexpected value {other:?}"),
            })
            .collect();
        let conn = sea_orm::TransactionTrait::begin(db).await.unwrap();
        let script = format!("SET LOCAL plan_cache_mode = {mode}; PREPARE lookup AS {sql};");
        conn.execute_unprepared(&script).await.unwrap();
        let rows = conn
            .query_all_raw(Statement::from_string(
                DatabaseBackend::Postgres,
                format!("EXPLAIN EXECUTE lookup({})", args.join(", ")),
            ))
            .await
            .unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect();
        conn.execute_unprepared("DEALLOCATE lookup").await.unwrap();
        conn.rollback().await.unwrap();
        plan.join("\n")
    }

    #[cfg(feature = "testing")]
    fn assert_key_lookups(plan: &str) {
        for wanted in [
            "Index Scan using uq_calls_execution_provider_tenant on calls",
            "Index Scan using uq_customers_phone_tenant on customers",
        ] {
            assert!(plan.contains(wanted), "{wanted} missing from:\n{plan}");
        }
        let scans = plan.matches("Index Scan").count();
        let other = plan.matches("Seq Scan").count() + plan.matches("Bitmap").count();
        assert_eq!((scans, other), (2, 0), "one index scan per table:\n{plan}");
        let walks = plan.lines().any(|l| {
            l.contains("Filter:")
                && (l.contains("provider_execution_id") || l.contains("phone_number"))
        });
        assert!(!walks, "a key tested outside the index:\n{plan}");
    }
}
