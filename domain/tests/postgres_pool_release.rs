//! The other patched behaviour of `vendor/sqlx-core` (see `vendor/sqlx-core.patch`): a
//! pooled connection with nothing queued and no open transaction goes back to the pool
//! without the release ping (a second round trip per statement). These tests run on a
//! pool of one connection, so every statement reuses the connection the previous one
//! left, and check that what the ping used to clean up is still cleaned up: a dropped
//! transaction is rolled back, and the results of a cancelled or half-read statement never
//! reach the next one.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use domain::settings::{DatabaseSettings, Secret};
use sea_orm::sqlx::{self, Row};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait};

async fn one_connection() -> Option<DatabaseConnection> {
    let url = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))?;
    Some(
        domain::db::connect(&DatabaseSettings {
            url: Secret::new(url),
            max_connections: 1,
        })
        .await
        .unwrap(),
    )
}

async fn number(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_connections_carry_nothing_into_the_next_statement() {
    let Some(db) = one_connection().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not PostgreSQL");
        return;
    };
    let table = format!("pool_release_{}", uuid::Uuid::new_v4().simple());
    db.execute_unprepared(&format!("CREATE TABLE {table} (x int)"))
        .await
        .unwrap();

    // A transaction dropped without commit: its rollback is queued, so the connection
    // still goes through the flushing path, and the row is gone.
    {
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared(&format!("INSERT INTO {table} VALUES (1)"))
            .await
            .unwrap();
        drop(txn);
    }
    assert_eq!(
        number(&db, &format!("SELECT count(*) FROM {table}")).await,
        0
    );
    // Not left inside that transaction: this insert commits on its own, as another
    // session sees.
    db.execute_unprepared(&format!("INSERT INTO {table} VALUES (2)"))
        .await
        .unwrap();
    let other = domain::db::connect(&DatabaseSettings {
        url: Secret::new(std::env::var("TEST_DATABASE_URL").unwrap()),
        max_connections: 1,
    })
    .await
    .unwrap();
    assert_eq!(
        number(&other, &format!("SELECT count(*) FROM {table}")).await,
        1
    );

    // A statement cancelled while PostgreSQL is still working on it: its late result is
    // drained before the next statement, which gets its own answer.
    let slow = db.query_one_raw(Statement::from_string(
        DatabaseBackend::Postgres,
        "SELECT 7::bigint AS n FROM pg_sleep(0.3)",
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(50), slow)
            .await
            .is_err()
    );
    assert_eq!(number(&db, "SELECT 8::bigint").await, 8);

    // A result read halfway: the rest is skipped, not handed to the next statement.
    let pool = db.get_postgres_connection_pool();
    {
        use futures_util::StreamExt;
        let mut rows =
            sqlx::query("SELECT n::bigint FROM generate_series(1, 50000) AS n").fetch(pool);
        let first = rows.next().await.unwrap().unwrap();
        assert_eq!(first.get::<i64, _>(0), 1);
    }
    assert_eq!(number(&db, "SELECT 9::bigint").await, 9);

    // A transaction dropped while one of its statements was cancelled.
    {
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared(&format!("INSERT INTO {table} VALUES (3)"))
            .await
            .unwrap();
        let slow = txn.execute_unprepared("SELECT pg_sleep(0.3)");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slow)
                .await
                .is_err()
        );
        drop(txn);
    }
    assert_eq!(
        number(&db, &format!("SELECT count(*) FROM {table}")).await,
        1
    );
    assert_eq!(number(&db, "SELECT 10::bigint").await, 10);

    db.execute_unprepared(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}
