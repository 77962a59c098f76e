//! The operator console: served from the binary under a strict policy, and used in a real
//! browser (Debian's Chromium, headless, driven by playwright-core pinned in
//! `tests/console`) against the release-like binary with its demo: sign in with the printed
//! key, the demo's calls and customers, a simulated call whose row changes live, a CSV with
//! bad rows and its report, a campaign started and paused while its stats move, a sync
//! against the simulator and its summary. Screenshots go to `target/console-screenshots`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use domain::testproc::free_port;

use crate::common::TestApp;

const BIN: &str = env!("CARGO_BIN_EXE_api");

fn required() -> bool {
    std::env::var("REQUIRE_EXTERNAL_TOOLS").is_ok_and(|v| v == "1")
}

fn skip(what: &str) {
    assert!(
        !required(),
        "{what} is missing and REQUIRE_EXTERNAL_TOOLS=1"
    );
    eprintln!("skipped: {what} is missing (set REQUIRE_EXTERNAL_TOOLS=1 to fail instead)");
}

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

/// The server process, stopped however the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
    // The binary as a newcomer starts it: SQLite, the demo, the simulator (sped up).
    let work = std::env::temp_dir().join(format!("sb-console-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work).unwrap();
    let port = free_port();
    let mut child = Server(
        Command::new(BIN)
            .current_dir(&work)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("SIMULATOR_SPEED", "10")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let key = loop {
        assert!(Instant::now() < deadline, "no demo key printed");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && let Some(k) = line.trim().strip_prefix("sb_")
        {
            break format!("sb_{k}");
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    domain::install_tls_provider();
    let client = reqwest::Client::new();
    let ready = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < ready, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("console.mjs")
        .arg(&base)
        .arg(&key)
        .arg(&shots)
        .env("CHROMIUM", browser);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    drop(child);
    let _ = std::fs::remove_dir_all(&work);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("console: all steps passed"), "{stdout}");
}
