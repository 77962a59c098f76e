//! Campaigns dispatched by separate worker processes (the release's `api` binary with its
//! worker on) racing on one PostgreSQL database: the caps hold at every sample taken from
//! the database, and a worker killed with SIGKILL mid-dispatch leaves nothing dialled
//! twice.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::testdb::Backend;
use domain::testproc::{free_port, terminate};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::campaigns::{campaign, create, live_calls, numbers, start, tenant_with_limit};
use crate::common::TestApp;

const BIN: &str = env!("CARGO_BIN_EXE_api");

/// One worker process on the test app's database, killed (SIGKILL) when dropped unless
/// it was stopped first.
struct Worker {
    child: Option<Child>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Worker {
    async fn start(app: &TestApp, extra: &[(&str, &str)]) -> Worker {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-worker-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&app.env)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUN_WORKER", "true")
            .env("WORKER_POLL_MS", "20")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        // Set TEST_WORKER_LOGS to see the processes' logs.
        if std::env::var_os("TEST_WORKER_LOGS").is_some() {
            cmd.stdout(Stdio::inherit());
        } else {
            cmd.stdout(Stdio::null());
        }
        let child = cmd.spawn().unwrap();
        let w = Worker {
            child: Some(child),
            _dir: TempDir(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = app
                .client
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                && r.status().is_success()
            {
                return w;
            }
            assert!(
                Instant::now() < deadline,
                "the worker process never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let status = terminate(&mut c);
            assert!(status.success(), "the worker exited with {status}");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn postgres_app(extra: &[(&str, &str)]) -> Option<TestApp> {
    let app = TestApp::spawn_with(Backend::Postgres, extra).await;
    if app.is_none() {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
    }
    app
}

fn id_of(made: &Value) -> String {
    made["data"]["createCampaign"]["campaign"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{made}"))
        .to_owned()
}

/// Every item of the campaign is final, with exactly one call (maxAttempts 1).
async fn each_item_ended_once(
    app: &TestApp,
    campaign_id: &str,
) -> Vec<entity::campaign_item::Model> {
    use domain::types::QueueItemStatus;
    let items = entity::campaign_item::Entity::find()
        .filter(
            entity::campaign_item::Column::CampaignId
                .eq(uuid::Uuid::parse_str(campaign_id).unwrap()),
        )
        .all(&app.db)
        .await
        .unwrap();
    for item in &items {
        assert!(
            matches!(
                item.status,
                QueueItemStatus::Completed | QueueItemStatus::Failed
            ),
            "{item:?}"
        );
        let calls = entity::call::Entity::find()
            .filter(entity::call::Column::CampaignItemId.eq(item.id))
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(calls, 1, "{item:?}");
    }
    items
}

async fn open_calls(app: &TestApp) -> u64 {
    entity::call::Entity::find()
        .filter(entity::call::Column::StatusRank.lt(domain::types::CallStatus::TERMINAL_RANK))
        .count(&app.db)
        .await
        .unwrap()
}

/// Three worker processes; tenant A runs a 2,000-item campaign (campaign cap 5, tenant
/// cap 8), tenant B a campaign of its own (tenant cap 10), tenant C places ad-hoc calls
/// (tenant cap 5), under a system cap of 20. Live calls are counted from the database at
/// every step; no cap is exceeded at any sample and every item ends once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_hold_with_three_worker_processes() {
    let Some(app) = postgres_app(&[("SYSTEM_CONCURRENT_CALLS_LIMIT", "20")]).await else {
        return;
    };
    let run = [("SIMULATOR_SPEED", "2000")];
    let mut workers = vec![
        Worker::start(&app, &run).await,
        Worker::start(&app, &run).await,
        Worker::start(&app, &run).await,
    ];
    let (a, key_a) = tenant_with_limit(&app, 8).await;
    let (b, key_b) = tenant_with_limit(&app, 10).await;
    let (c, key_c) = tenant_with_limit(&app, 5).await;
    let agent_a = app.create_agent(&key_a, "Sim").await;
    let agent_b = app.create_agent(&key_b, "Sim").await;
    let agent_c = app.create_agent(&key_c, "Sim").await;
    let camp_a = id_of(
        &create(
            &app,
            &key_a,
            json!({ "name": "A", "agentId": agent_a, "csv": numbers(2000, "+1212561"), "concurrencyLimit": 5 }),
        )
        .await,
    );
    let camp_b = id_of(
        &create(
            &app,
            &key_b,
            json!({ "name": "B", "agentId": agent_b, "csv": numbers(300, "+1212562") }),
        )
        .await,
    );
    start(&app, &key_a, "start", &camp_a).await;
    start(&app, &key_b, "start", &camp_b).await;
    let mut ad_hoc = 0;
    let mut samples = 0u64;
    let mut peak = [0u64; 5];
    let began = Instant::now();
    // The caps are what is checked, not the speed: alone this takes about 5 minutes on a
    // 2-core machine, and twice that beside the rest of the suite.
    let deadline = began + Duration::from_secs(900);
    loop {
        // Tenant C keeps placing ad-hoc calls while the campaigns run.
        if ad_hoc < 60 && samples.is_multiple_of(5) {
            app.ok(
                &key_c,
                "mutation($i: StartCallInput!) { startCall(input: $i) { id } }",
                json!({ "i": { "agentId": agent_c, "phoneNumber": format!("212563{ad_hoc:04}") } }),
            )
            .await;
            ad_hoc += 1;
        }
        let now = [
            live_calls(&app, None, None).await,
            live_calls(&app, Some(&a), None).await,
            live_calls(&app, Some(&a), Some(&camp_a)).await,
            live_calls(&app, Some(&b), None).await,
            live_calls(&app, Some(&c), None).await,
        ];
        samples += 1;
        for (p, n) in peak.iter_mut().zip(now) {
            *p = (*p).max(n);
        }
        assert!(now[0] <= 20, "system cap exceeded: {now:?}");
        assert!(now[1] <= 8, "tenant A's cap exceeded: {now:?}");
        assert!(now[2] <= 5, "A's campaign cap exceeded: {now:?}");
        assert!(now[3] <= 10, "tenant B's cap exceeded: {now:?}");
        assert!(now[4] <= 5, "tenant C's cap exceeded: {now:?}");
        if samples.is_multiple_of(20) {
            let ca = campaign(&app, &key_a, &camp_a).await;
            let cb = campaign(&app, &key_b, &camp_b).await;
            if ca["status"] == "COMPLETED"
                && cb["status"] == "COMPLETED"
                && ad_hoc == 60
                && open_calls(&app).await == 0
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not done: {peak:?} {} {}",
                ca["stats"],
                cb["stats"]
            );
        }
    }
    eprintln!(
        "three processes: {samples} samples in {:.1} s, peaks (system, A, A's campaign, B, C) {peak:?}",
        began.elapsed().as_secs_f64()
    );
    assert_eq!(peak[2], 5, "A's campaign never reached its cap: {peak:?}");
    assert!(
        peak[0] >= 15,
        "the system cap was never approached: {peak:?}"
    );
    assert_eq!(each_item_ended_once(&app, &camp_a).await.len(), 2000);
    assert_eq!(each_item_ended_once(&app, &camp_b).await.len(), 300);
    for w in &mut workers {
        w.stop();
    }
}

/// The fake Bolna's record of create-call requests: recipient and the execution id it
/// answered with.
type Placed = Arc<Mutex<Vec<(String, String)>>>;

async fn slow_bolna(placed: Placed) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/call"))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            let to = body["recipient_phone_number"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut placed = placed.lock().unwrap();
            let exec = format!("exec-{}", placed.len());
            placed.push((to, exec.clone()));
            // Slow enough that a worker is killed with requests still unanswered.
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({ "message": "done", "status": "queued", "execution_id": exec }),
                )
                .set_delay(Duration::from_millis(600))
        })
        .mount(&server)
        .await;
    server
}

/// A `completed` report for every placed call of the tenant that has not ended.
async fn complete_placed_calls(app: &TestApp, token: &str) {
    let open = entity::call::Entity::find()
        .filter(entity::call::Column::StatusRank.lt(domain::types::CallStatus::TERMINAL_RANK))
        .filter(entity::call::Column::ProviderExecutionId.is_not_null())
        .all(&app.db)
        .await
        .unwrap();
    for call in open {
        let report = json!({
            "id": call.provider_execution_id, "agent_id": call.provider_agent_id,
            "status": "completed", "conversation_duration": 12.0,
            "telephony_data": { "to_number": call.to_number, "call_type": "outbound" },
            "transcript": "assistant: Hello\nuser: Not now.",
        });
        let (status, body) = app.webhook("bolna", token, report.to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// A worker is killed (SIGKILL) while it holds dispatched items and has create-call
/// requests in flight. After its leases expire another worker takes over: the items it had
/// dispatched but not begun to place are dialled once; a call whose placement had begun
/// (its slot taken, the request sent or about to be) is never sent again, since the
/// provider may have it, and ends FAILED as ambiguous; every item ends exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_items_are_dialled_at_most_once() {
    let Some(app) = postgres_app(&[("ALLOW_PROVIDER_BASE_URL", "true")]).await else {
        return;
    };
    let placed: Placed = Arc::default();
    let bolna = slow_bolna(placed.clone()).await;
    let (_, key) = tenant_with_limit(&app, 10).await;
    let token = app.ok(&key, "{ me { webhookToken } }", json!({})).await["me"]["webhookToken"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &key,
        "mutation($i: ProviderCredentialsInput!) { setProviderCredentials(input: $i) }",
        json!({ "i": { "provider": "BOLNA", "apiKey": "bn-key", "baseUrl": bolna.uri() } }),
    )
    .await;
    let agent = app.create_agent_for(&key, "BOLNA", "agent-kill").await;
    let id = id_of(
        &create(
            &app,
            &key,
            json!({ "name": "Kill", "agentId": agent, "csv": numbers(40, "+1212564"), "concurrencyLimit": 6 }),
        )
        .await,
    );
    let lease = [("WORKER_LEASE_SECONDS", "3")];
    // The first worker runs alone, so every request in flight when it dies is its own.
    let mut first = Worker::start(&app, &lease).await;
    start(&app, &key, "start", &id).await;
    let recorded = || async {
        entity::call::Entity::find()
            .filter(entity::call::Column::ProviderExecutionId.is_not_null())
            .count(&app.db)
            .await
            .unwrap() as usize
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        complete_placed_calls(&app, &token).await;
        let sent = placed.lock().unwrap().len();
        if sent >= 8 && sent >= recorded().await + 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first worker never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.sigkill();
    let killed_at = Instant::now();
    let in_flight: Vec<(String, String)> = {
        let recorded: std::collections::HashSet<String> = entity::call::Entity::find()
            .filter(entity::call::Column::ProviderExecutionId.is_not_null())
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| c.provider_execution_id)
            .collect();
        placed
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, exec)| !recorded.contains(exec))
            .cloned()
            .collect()
    };
    assert!(in_flight.len() >= 3, "{in_flight:?}");
    let mut second = Worker::start(&app, &lease).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        complete_placed_calls(&app, &token).await;
        let c = campaign(&app, &key, &id).await;
        if c["status"] == "COMPLETED" && open_calls(&app).await == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not done: {}", c["stats"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "killed with {} requests unanswered; done {:.1} s after the kill",
        in_flight.len(),
        killed_at.elapsed().as_secs_f64()
    );
    // No number was sent to the provider twice.
    let mut per_number: HashMap<String, usize> = HashMap::new();
    for (to, _) in placed.lock().unwrap().iter() {
        *per_number.entry(to.clone()).or_default() += 1;
    }
    assert!(per_number.values().all(|n| *n == 1), "{per_number:?}");
    let items = each_item_ended_once(&app, &id).await;
    let ambiguous = |item: &entity::campaign_item::Model| {
        item.status == domain::types::QueueItemStatus::Failed
            && item
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(domain::campaigns::finish::AMBIGUOUS_PLACEMENT))
    };
    // The requests the killed worker never heard back from ended as ambiguous failures.
    for (to, _) in &in_flight {
        let item = items.iter().find(|i| &i.phone_number == to).unwrap();
        assert!(ambiguous(item), "{item:?}");
    }
    // A number never sent was one the killed worker had claimed for dialling (its slot
    // taken, the request maybe about to go): it is not sent either, for the same reason.
    let never_sent: Vec<_> = items
        .iter()
        .filter(|i| !per_number.contains_key(&i.phone_number))
        .collect();
    for item in &never_sent {
        assert!(ambiguous(item), "{item:?}");
    }
    let completed = items
        .iter()
        .filter(|i| i.status == domain::types::QueueItemStatus::Completed)
        .count();
    assert_eq!(completed, 40 - in_flight.len() - never_sent.len());
    // Only what held one of the campaign's 6 slots at the kill can be lost that way.
    assert!(
        in_flight.len() + never_sent.len() <= 6,
        "{} unanswered, {} never sent",
        in_flight.len(),
        never_sent.len()
    );
    second.stop();
}
