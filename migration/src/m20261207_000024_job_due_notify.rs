//! The jobs table's notification names when a job comes due: `lane` for a job due now,
//! `lane@<unix ms>` for one due within a second, so a worker elsewhere wakes when it comes
//! due instead of looking at once, finding nothing, and waiting for its poll. Listeners
//! that do not know the second form wake every lane, as before.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Replaces the trigger function, which notifies with `notify` for a pending job due within
/// a second (PostgreSQL only; SQLite has no notifications).
async fn notify_with(manager: &SchemaManager<'_>, notify: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    db.execute_unprepared(&format!(
        "CREATE OR REPLACE FUNCTION switchboard_job_due() RETURNS trigger AS $$ \
         BEGIN \
           IF NEW.status = 'pending' AND NEW.run_at <= now() + interval '1 second' THEN \
             {notify} \
           END IF; \
           RETURN NULL; \
         END $$ LANGUAGE plpgsql"
    ))
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `now()` is the transaction's start: a job enqueued "now" later in it is named
        // with its time, which has passed by the commit, and the listener wakes at once.
        notify_with(
            manager,
            "IF NEW.run_at <= now() THEN \
               PERFORM pg_notify('switchboard_jobs', NEW.lane); \
             ELSE \
               PERFORM pg_notify('switchboard_jobs', NEW.lane || '@' || \
                 floor(extract(epoch FROM NEW.run_at) * 1000)::bigint::text); \
             END IF;",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        notify_with(manager, "PERFORM pg_notify('switchboard_jobs', NEW.lane);").await
    }
}
