//! The operator console: served from the binary under a strict policy, and used in a real
//! browser (Debian's Chromium, headless, driven by playwright-core pinned in
//! `tests/console`) against the release-like binary with its demo: sign in with the printed
//! key, the demo's calls and customers, a simulated call whose row changes live, a CSV with
//! bad rows and its report, a campaign started and paused while its stats move, a sync
//! against the simulator and its summary. Screenshots go to `target/console-screenshots`.

use std::path::PathBuf;
use std::process::Command;

use crate::common::TestApp;
use crate::external::skip;

const BIN: &str = env!("CARGO_BIN_EXE_api");

/// The pages and their files come with a policy that allows only this server; unknown
/// files are a JSON 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_is_served_from_the_binary_under_a_strict_policy() {
    let Some(app) = TestApp::spawn(domain::testdb::Backend::Sqlite).await else {
        return;
    };
    let page = app.client.get(app.url("/console")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
    assert!(!csp.contains("unsafe"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/console/app.js"));
    for file in ["app.js", "ws.js", "calls.js", "console.css"] {
        let res = app
            .client
            .get(app.url(&format!("/console/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{file}");
        assert!(res.headers().contains_key("content-security-policy"));
    }
    for bad in ["nope.js", "..%2Fsrc%2Fmain.rs", "app.js%00"] {
        let res = app
            .client
            .get(app.url(&format!("/console/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{bad}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(body["error"].is_string());
    }
}

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_works_in_a_headless_browser() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    if !dir.join("node_modules/playwright-core").exists()
        || Command::new("node").arg("--version").output().is_err()
    {
        return skip("node with tests/console/node_modules");
    }
    let Some(browser) = chromium() else {
        return skip("chromium");
    };
    // The script starts the binary as a newcomer would (and restarts it once).
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("console.mjs")
        .arg(BIN)
        .arg(&shots)
        .env("CHROMIUM", browser);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("console: all steps passed"), "{stdout}");
}
