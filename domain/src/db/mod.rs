//! Connecting to the database (SQLite or PostgreSQL) and bringing its schema up to date;
//! what differs between the two in SQL lives in [`dialect`].

pub mod by_position;
mod dialect;

pub use dialect::{Binder, Dialect, is_deadlock, is_unique_violation, param};
pub(crate) use dialect::{KeyIndex, probe, tenant_outside_index};

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};

use crate::settings::DatabaseSettings;

/// Opens a pool. SQLite files are created if missing and run in WAL mode so readers
/// do not wait for the writer.
/// The file of a `sqlite:` URL, unless it is an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:") && !url.contains("mode=memory"))
        .then(|| std::path::PathBuf::from(path))
}

/// A SQLite database holds personal data: its file (and so its WAL and shared-memory
/// files, which SQLite creates with the same mode) is readable by its owner only.
fn restrict_sqlite_file(url: &str) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let Some(path) = sqlite_file(url) else {
        return;
    };
    let result = if path.exists() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map(drop)
    };
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not restrict the database file to its owner");
    }
}

pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.expose();
    if settings.is_sqlite() {
        restrict_sqlite_file(url);
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    opts.max_connections(if in_memory {
        1
    } else {
        settings.max_connections
    })
    .min_connections(if in_memory { 1 } else { 0 })
    .connect_timeout(Duration::from_secs(10))
    .acquire_timeout(Duration::from_secs(10))
    // A connection in steady use is known to be alive: pinging it on every checkout cost
    // a round trip per statement (a second statement for PostgreSQL to serve). Only one
    // that sat idle long enough for the server, a proxy or a firewall to have dropped it
    // is checked first.
    .test_before_acquire_if_idle_for(Duration::from_secs(10))
    .sqlx_logging(false);
    if settings.is_sqlite() {
        opts.map_sqlx_sqlite_opts(move |o| {
            let o = o
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if in_memory {
                o
            } else {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
            }
        });
    }
    if !settings.is_sqlite() {
        // Our statements are short lookups and writes. Where a table has no statistics
        // yet, a batch lookup's estimate can pass the JIT threshold and spend milliseconds
        // compiling a plan that runs in less.
        opts.map_sqlx_postgres_opts(|o| o.options([("jit", "off")]));
    }
    Database::connect(opts).await
}

/// Applies every pending migration; safe to call on each start.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Connects and applies pending migrations: what every binary does first.
pub async fn open(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let db = connect(settings).await?;
    migrate(&db).await?;
    Ok(db)
}

/// One cheap round trip, for readiness checks.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "SELECT 1",
    ))
    .await?;
    Ok(())
}

/// Begins a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails
/// at once with "database is locked" when another writer got in between, while an
/// immediate one waits its turn (busy timeout).
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
