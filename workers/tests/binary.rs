//! The standalone `workers` binary: serves its own metrics (the API process never sees a
//! separate worker's counters), counts the jobs it runs, and stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::testproc::{free_port, terminate};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_workers");

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(dir: &Dir, metrics_addr: &str) -> Child {
    Command::new(BIN)
        .current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WORKER_METRICS_ADDR", metrics_addr)
        .env("WORKER_POLL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One plain HTTP/1.0 GET: status code and body, or None while nothing listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_its_metrics_counts_jobs_and_stops_on_sigterm() {
    let dir = Dir(std::env::temp_dir().join(format!(
        "switchboard-worker-{}",
        uuid::Uuid::new_v4().simple()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let port = free_port();
    let mut child = start(&dir, &format!("127.0.0.1:{port}"));
    wait_for("/healthz", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });

    // A job nobody handles, written into the worker's own database (the default SQLite file).
    let db = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=rwc",
        dir.0.join("switchboard.db").display()
    ))
    .await
    .unwrap();
    let id = domain::queue::enqueue(&db, "nobody_handles_this", json!({}), Utc::now(), 1)
        .await
        .unwrap();
    let line = "jobs_total{kind=\"unregistered\",lane=\"maintenance\",outcome=\"failed\"} 1";
    wait_for("the job's metrics", || {
        get(port, "/metrics").is_some_and(|(s, body)| s == 200 && body.contains(line))
    });
    let job = domain::queue::get(&db, id).await.unwrap().unwrap();
    assert_eq!(job.status, domain::types::JobStatus::Failed);
    let (_, body) = get(port, "/metrics").unwrap();
    assert!(
        body.contains("db_statements_total{outcome=\"ok\"}"),
        "{body}"
    );
    assert!(
        body.contains("job_duration_seconds_bucket{kind=\"unregistered\""),
        "{body}"
    );
    db.close().await.unwrap();

    assert!(terminate(&mut child).success(), "exit status after SIGTERM");
    assert!(get(port, "/healthz").is_none(), "metrics server still up");
}

#[test]
fn a_taken_metrics_port_fails_the_start_naming_the_setting() {
    let dir = Dir(std::env::temp_dir().join(format!(
        "switchboard-worker-{}",
        uuid::Uuid::new_v4().simple()
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = start(&dir, &addr).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WORKER_METRICS_ADDR"), "{err}");
}
