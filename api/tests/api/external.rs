//! Checks by outside tools against the real server: the GraphQL-over-HTTP spec's audit
//! suite (graphql-http's `serverAudits`, pinned in `tests/http-audit`) and a headless
//! Chromium loading GraphiQL with the network closed. They need Node (with `npm ci` run in
//! `tests/http-audit`) and Debian's `chromium`; `.ci/run` provides both and sets
//! `REQUIRE_EXTERNAL_TOOLS=1`, so in CI a missing tool fails instead of skipping.

use std::path::PathBuf;
use std::process::Command;

use crate::common::TestApp;

fn required() -> bool {
    std::env::var("REQUIRE_EXTERNAL_TOOLS").is_ok_and(|v| v == "1")
}

pub(crate) fn skip(what: &str) {
    assert!(
        !required(),
        "{what} is missing and REQUIRE_EXTERNAL_TOOLS=1"
    );
    eprintln!("skipped: {what} is missing (set REQUIRE_EXTERNAL_TOOLS=1 to fail instead)");
}

/// Runs a child process off the async threads (the server under test shares them).
async fn run(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("joining")
        .expect("running the tool")
}

fn audit_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/http-audit")
}

/// Every MUST and SHOULD of the spec's server audits passes, with a key and without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_over_http_audits_pass() {
    let dir = audit_dir();
    if !dir.join("node_modules/graphql-http").exists()
        || Command::new("node").arg("--version").output().is_err()
    {
        return skip("node with tests/http-audit/node_modules");
    }
    let Some(app) = TestApp::spawn(domain::testdb::Backend::Sqlite).await else {
        return;
    };
    let t = app.create_tenant("Acme", "US").await;
    for auth in [Some(format!("Bearer {}", t.key)), None] {
        let url = app.url("/graphql");
        let mut cmd = Command::new("node");
        cmd.current_dir(&dir).arg("audit.mjs").arg(&url);
        if let Some(a) = &auth {
            cmd.env("AUDIT_AUTHORIZATION", a);
        }
        let out = run(cmd).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "audits failed (key: {}):\n{stdout}\n{}",
            auth.is_some(),
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap_or("{}")).unwrap();
        assert_eq!(summary["error"], 0, "{summary}");
        assert_eq!(summary["warn"], 0, "{summary}");
        assert!(summary["ok"].as_u64().unwrap() >= 60, "{summary}");
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// GraphiQL renders its editor from the binary alone: every host but this server's
/// loopback address resolves to nothing, and the page's policy allows nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_renders_offline_in_a_headless_browser() {
    let Some(browser) = chromium() else {
        return skip("chromium");
    };
    let Some(app) = TestApp::spawn(domain::testdb::Backend::Sqlite).await else {
        return;
    };
    let profile =
        std::env::temp_dir().join(format!("sb-chromium-{}", uuid::Uuid::new_v4().simple()));
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=15000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--dump-dom")
    .arg(app.url("/graphql"));
    let out = run(cmd).await;
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        dom.contains("graphiql-container"),
        "no GraphiQL in the DOM:\n{dom}\n{log}"
    );
    assert!(dom.contains("CodeMirror"), "no editor in the DOM:\n{dom}");
    assert!(dom.contains("graphiql-execute-button"));
    assert!(
        !log.to_lowercase().contains("content security policy"),
        "the page broke its own policy:\n{log}"
    );
}
