//! The `api` binary as a newcomer runs it: no configuration, a SQLite file, a demo tenant,
//! graceful shutdown on SIGTERM, and the operator subcommands.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain::testproc::{free_port, terminate};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_api");

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> Dir {
    let d = std::env::temp_dir().join(format!("switchboard-bin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// The binary with a clean environment (only what a fresh shell would have).
fn api(dir: &Dir) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(&dir.0)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

fn start(
    dir: &Dir,
    port: u16,
    extra: &[(&str, &str)],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = api(dir);
    cmd.env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Like `start`, with the standard error stream too (where the demo key goes).
fn start_split(
    dir: &Dir,
    port: u16,
) -> (
    Child,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Receiver<String>,
) {
    let mut cmd = api(dir);
    cmd.env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let lines = |stream: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    };
    let out = lines(Box::new(child.stdout.take().unwrap()));
    let err = lines(Box::new(child.stderr.take().unwrap()));
    (child, out, err)
}

async fn wait_ready(port: u16) {
    domain::install_tls_provider();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not become ready");
}

#[tokio::test]
async fn embedded_default_starts_seeds_and_stops_gracefully() {
    let dir = temp_dir();
    let port = free_port();
    let (mut child, logs, terminal) = start_split(&dir, port);
    wait_ready(port).await;
    let printed: Vec<String> = terminal.try_iter().collect();
    let key = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("sb_").map(|k| format!("sb_{k}")))
        .unwrap_or_else(|| panic!("no demo key printed on stderr: {printed:?}"));
    // The log stream (stdout) never carries the key.
    assert!(logs.try_iter().all(|l| !l.contains(&key)));
    // The database holds personal data: readable by its owner only, like its key file.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.0.join("switchboard.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "database mode {mode:o}");
    }

    domain::install_tls_provider();
    let client = reqwest::Client::new();
    let body: Value = client
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .bearer_auth(&key)
        .json(&json!({ "query": "{ me { name } agents { provider } customers { totalCount } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["me"]["name"], "Demo");
    assert_eq!(body["data"]["agents"][0]["provider"], "SIMULATOR");
    // The demo shows life: synced customers, finished calls with transcripts, summaries and
    // analyses (the embedded worker's jobs), and a running campaign.
    let demo = "{ customers { totalCount } calls(first: 100) { edges { node { status transcript summary analysis { outcome } } } } \
                campaigns { edges { node { name status } } } }";
    let deadline = Instant::now() + Duration::from_secs(60);
    let (alive, last) = loop {
        let last: Value = client
            .post(format!("http://127.0.0.1:{port}/graphql"))
            .bearer_auth(&key)
            .json(&json!({ "query": demo }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let d = &last["data"];
        let calls = d["calls"]["edges"].as_array().cloned().unwrap_or_default();
        let analysed = calls
            .iter()
            .filter(|e| {
                let n = &e["node"];
                n["status"] == "COMPLETED"
                    && n["transcript"].is_string()
                    && n["summary"].is_string()
                    && n["analysis"]["outcome"].is_string()
            })
            .count();
        let customers = d["customers"]["totalCount"].as_u64().unwrap_or(0);
        let running = d["campaigns"]["edges"][0]["node"]["status"] == "RUNNING";
        if customers >= 24 && analysed >= 5 && running {
            break (true, last);
        }
        if Instant::now() > deadline {
            break (false, last);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(alive, "the demo shows no life: {last}");
    let page = client
        .get(format!("http://127.0.0.1:{port}/graphql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.to_lowercase().contains("graphiql"));

    assert!(terminate(&mut child).success(), "exit status after SIGTERM");

    // A second start reuses the database and prints no new key.
    let (mut child, lines) = start(&dir, port, &[]);
    wait_ready(port).await;
    assert!(lines.try_iter().all(|l| !l.contains("sb_")));
    assert!(terminate(&mut child).success());
}

#[tokio::test]
async fn json_logs_and_bad_settings() {
    let dir = temp_dir();
    let port = free_port();
    let (mut child, lines) = start(
        &dir,
        port,
        &[("LOG_FORMAT", "json"), ("SEED_DEMO", "false")],
    );
    wait_ready(port).await;
    terminate(&mut child);
    let logs: Vec<String> = lines.try_iter().collect();
    assert!(!logs.is_empty());
    for l in &logs {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
    }

    let out = api(&dir).env("BIND_ADDR", "nowhere").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BIND_ADDR"), "{err}");
}

#[test]
fn operator_subcommands() {
    let dir = temp_dir();
    let db = format!("sqlite://{}/ops.db?mode=rwc", dir.0.display());
    let out = api(&dir)
        .args(["migrate"])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = api(&dir)
        .args(["create-tenant", "--name", "Acme", "--region", "IN"])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("api key: sb_"), "{text}");
    let out = api(&dir)
        .args(["create-tenant", "--name", "Bad", "--region", "XX"])
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(!out.status.success());

    let out = api(&dir).args(["export-schema"]).output().unwrap();
    assert!(out.status.success());
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), checked_in);
}
