//! The patched behaviour of `vendor/sqlx-core` (see `vendor/sqlx-core.patch`): PostgreSQL
//! sockets are opened with TCP_NODELAY. Without it, a statement larger than one TCP
//! segment waits for the server's delayed ACK (about 40 ms on Linux) before its last
//! segment leaves, so every large statement costs at least that much. This test sends
//! statements of several segments and fails when their round trips show that wait.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_statements_do_not_wait_for_delayed_acks() {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let db = Database::connect(url.as_str()).await.unwrap();
    // Four loopback segments' worth (the loopback MSS is about 64 KiB).
    let big = "x".repeat(256 * 1024);
    let mut times = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        db.query_one_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT length($1) AS n",
            [big.clone().into()],
        ))
        .await
        .unwrap()
        .unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    // With TCP_NODELAY such a round trip takes a millisecond or two; without it, 40 ms or
    // more. The bound sits far from both.
    assert!(
        median < Duration::from_millis(20),
        "a 256 KiB statement took {median:?} (median of 15): is TCP_NODELAY set on PostgreSQL sockets?"
    );
}
