//! Throwaway databases for tests (feature `testing`): a fresh SQLite file or a fresh
//! PostgreSQL database per test, removed on drop, so tests run in parallel and leave
//! nothing behind.
//!
//! Each comes already migrated: the migrations run once into a template (a PostgreSQL
//! template database, a SQLite file) named after the migration set, and every test's
//! database is a copy of it (`CREATE DATABASE .. TEMPLATE`, a file copy), which costs a
//! fraction of migrating afresh.

use std::path::PathBuf;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

use crate::settings::{DatabaseSettings, Secret};

/// Names the current set of migrations: a template made from another set is not used.
fn fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let digest = Sha256::digest(names.join(",").as_bytes());
    hex::encode(&digest[..6])
}

async fn migrate_into(url: &str) {
    let db = crate::db::connect(&DatabaseSettings {
        url: Secret::new(url.to_owned()),
        max_connections: 1,
    })
    .await
    .unwrap_or_else(|e| panic!("connecting to the template: {e}"));
    crate::db::migrate(&db)
        .await
        .unwrap_or_else(|e| panic!("migrating the template: {e}"));
    let _ = db.close().await;
}

/// The migrated SQLite template file, made once per migration set (by whichever test
/// process gets there first: written aside, then renamed into place).
async fn sqlite_template() -> PathBuf {
    let path = std::env::temp_dir().join(format!("switchboard-template-{}.db", fingerprint()));
    if !path.exists() {
        let aside = std::env::temp_dir().join(format!(
            "switchboard-template-{}.db",
            Uuid::new_v4().simple()
        ));
        migrate_into(&format!("sqlite://{}?mode=rwc", aside.display())).await;
        for suffix in ["-wal", "-shm"] {
            let mut p = aside.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
        std::fs::rename(&aside, &path).unwrap_or_else(|e| panic!("placing the template: {e}"));
    }
    path
}

/// One session on the admin database (advisory locks belong to a session).
async fn admin_session(admin_url: &str) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(admin_url.to_owned());
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    Database::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}"))
}

/// The migrated PostgreSQL template database, made once per migration set under an
/// advisory lock (concurrent test processes wait for the first), migrated under another
/// name and renamed when complete.
async fn postgres_template(admin: &DatabaseConnection, base: &str) -> String {
    let name = format!("sb_template_{}", fingerprint());
    admin
        .execute_unprepared("SELECT pg_advisory_lock(7283901)")
        .await
        .unwrap_or_else(|e| panic!("locking the template: {e}"));
    let exists = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!("SELECT 1 AS x FROM pg_database WHERE datname = '{name}'"),
        ))
        .await
        .ok()
        .flatten()
        .is_some();
    if !exists {
        let aside = format!("sb_template_tmp_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{aside}\""))
            .await
            .unwrap_or_else(|e| panic!("creating the template: {e}"));
        migrate_into(&format!("{base}/{aside}")).await;
        admin
            .execute_unprepared(&format!("ALTER DATABASE \"{aside}\" RENAME TO \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("placing the template: {e}"));
    }
    let _ = admin
        .execute_unprepared("SELECT pg_advisory_unlock(7283901)")
        .await;
    name
}

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL tests create PostgreSQL databases through (`TEST_DATABASE_URL`).
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// The Redis tests may use (`TEST_REDIS_URL`).
pub fn redis_url() -> Option<String> {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// `None` when the backend is not configured here (PostgreSQL without `TEST_DATABASE_URL`).
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let id = Uuid::new_v4().simple().to_string();
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("switchboard-test-{id}.db"));
                std::fs::copy(sqlite_template().await, &path)
                    .unwrap_or_else(|e| panic!("copying the template: {e}"));
                Some(TestDb {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    cleanup: Cleanup::File(path),
                })
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url()?;
                let name = format!("sb_test_{id}");
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_url)
                    .to_owned();
                let admin = admin_session(&admin_url).await;
                let template = postgres_template(&admin, &base).await;
                // A copy waits while another process copies the same template.
                let mut tries = 0;
                loop {
                    match admin
                        .execute_unprepared(&format!(
                            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
                        ))
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if tries < 50 && e.to_string().contains("being accessed") => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("creating test database: {e}"),
                    }
                }
                let _ = admin.close().await;
                Some(TestDb {
                    url: format!("{base}/{name}"),
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                // Drop runs inside the test's runtime; use a thread with its own.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async {
                        if let Ok(admin) = Database::connect(&admin_url).await {
                            let _ = admin
                                .execute_unprepared(&format!(
                                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                                ))
                                .await;
                            let _ = admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A tenant for domain tests: region IN, UTC, a cap of 10 calls.
pub async fn tenant(db: &DatabaseConnection, name: &str) -> entity::tenant::Model {
    crate::tenancy::create_tenant(
        db,
        crate::tenancy::NewTenant {
            name: name.into(),
            default_region: "IN".into(),
            timezone: "UTC".into(),
            concurrency_limit: 10,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("creating tenant {name}: {e}"))
    .0
}
