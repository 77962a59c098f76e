//! Every benchmark binary runs to its end in a tiny configuration (seconds, small data)
//! against the debug server, so a benchmark cannot rot unnoticed between the sessions
//! that measure with it. Figures from these runs mean nothing; the full runs are in
//! BENCHMARKS.md. Needs PostgreSQL (`TEST_DATABASE_URL`), and Redis for `live`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn api_bin() -> std::path::PathBuf {
    // target/<profile>/deps/smoke-* -> target/<profile>/api, built for the api's own tests.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("api")
}

/// One benchmark at a time: each loads both cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// In CI (`REQUIRE_EXTERNAL_TOOLS=1`) a benchmark may not skip.
fn skip(why: &str) {
    assert!(
        std::env::var("REQUIRE_EXTERNAL_TOOLS").map_or(true, |v| v != "1"),
        "{why} and REQUIRE_EXTERNAL_TOOLS=1"
    );
    eprintln!("skipped: {why}");
}

fn run(bin: &str, extra: &[(&str, &str)]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(pg) = std::env::var("TEST_DATABASE_URL") else {
        return skip("TEST_DATABASE_URL is not set");
    };
    let api = api_bin();
    if !api.exists() {
        // `cargo test -p bench` alone does not build the server; the workspace run does.
        return skip(&format!("{} is not built", api.display()));
    }
    let mut cmd = Command::new(bin);
    cmd.env("BENCH_PG", pg)
        .env("BENCH_API_BIN", &api)
        .env("BENCH_SECONDS", "1")
        .env("BENCH_RUNS", "1");
    if let Ok(redis) = std::env::var("TEST_REDIS_URL") {
        cmd.env("BENCH_REDIS", redis);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{bin} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verdict"),
        "{bin} printed no verdicts:\n{stdout}"
    );
}

#[test]
fn the_read_path_benchmark_runs() {
    run(
        env!("CARGO_BIN_EXE_bench"),
        &[
            ("BENCH_CUSTOMERS", "200"),
            ("BENCH_TENANTS", "2"),
            ("BENCH_CONNECTIONS", "4"),
        ],
    );
}

#[test]
fn the_live_benchmark_runs() {
    if std::env::var("TEST_REDIS_URL").is_err() {
        return skip("TEST_REDIS_URL is not set");
    }
    run(
        env!("CARGO_BIN_EXE_live"),
        &[
            ("BENCH_TENANTS", "2"),
            ("BENCH_SUBSCRIBERS_PER_TENANT", "2"),
            ("BENCH_RATE", "20"),
            ("BENCH_IDLE_SUBSCRIBERS", "10"),
        ],
    );
}

#[test]
fn the_sync_benchmark_runs() {
    run(
        env!("CARGO_BIN_EXE_sync"),
        &[("BENCH_EXECUTIONS", "500"), ("BENCH_PEOPLE", "200")],
    );
}

#[test]
fn the_campaigns_benchmark_runs() {
    run(
        env!("CARGO_BIN_EXE_campaigns"),
        &[
            ("BENCH_ROWS", "300"),
            ("BENCH_CAP", "20"),
            ("BENCH_SIM_SPEED", "50"),
        ],
    );
}

#[test]
fn the_analytics_benchmark_runs() {
    run(
        env!("CARGO_BIN_EXE_analytics"),
        &[
            ("BENCH_CALLS", "2000"),
            ("BENCH_TENANTS", "2"),
            ("BENCH_QUERIES", "3"),
            ("BENCH_LLM_ANALYSES", "8"),
            ("BENCH_LLM_DELAY_MS", "20"),
        ],
    );
}

#[test]
fn the_webhooks_benchmark_runs() {
    run(
        env!("CARGO_BIN_EXE_webhooks"),
        &[("BENCH_DELIVERIES", "300"), ("BENCH_RATE", "20")],
    );
}

#[test]
fn the_deletes_benchmark_runs() {
    run(
        env!("CARGO_BIN_EXE_deletes"),
        &[
            ("BENCH_CALLS", "2000"),
            ("BENCH_CUSTOMERS", "400"),
            ("BENCH_OPS", "10"),
        ],
    );
}
