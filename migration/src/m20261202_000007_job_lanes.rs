//! Jobs gain a lane (which runner slots claim them), a tenant key (fair claiming within a
//! lane) and a subject (what they act on); calls gain an explicit placement time instead
//! of a marker stored in `provider_execution_id`. On PostgreSQL a trigger notifies
//! listening workers of every job due now.

use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Lane,
    TenantKey,
    Subject,
    Status,
    RunAt,
}

#[derive(DeriveIden)]
enum Calls {
    Table,
    PlacingSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(string(Jobs::Lane).default("maintenance"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(string(Jobs::TenantKey).default(""))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(string_null(Jobs::Subject))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Calls::Table)
                    .add_column(timestamp_with_time_zone_null(Calls::PlacingSince))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let postgres = db.get_database_backend() == DatabaseBackend::Postgres;
        // Jobs queued before lanes existed: their lane, tenant and call from the kind and payload.
        let field = |name: &str| {
            if postgres {
                format!("payload->>'{name}'")
            } else {
                format!("json_extract(payload, '$.{name}')")
            }
        };
        db.execute_unprepared(
            "UPDATE jobs SET lane = CASE \
             WHEN kind IN ('place_call', 'follow_call') THEN 'calls' \
             WHEN kind IN ('ingest_report', 'simulator_report') THEN 'ingest' \
             WHEN kind = 'sync_run' THEN 'sync' ELSE 'maintenance' END",
        )
        .await?;
        db.execute_unprepared(&format!(
            "UPDATE jobs SET tenant_key = COALESCE({}, ''), subject = CASE WHEN kind IN ('place_call', 'follow_call') THEN {} END \
             WHERE kind IN ('place_call', 'follow_call', 'ingest_report', 'simulator_report')",
            field("tenant_id"),
            field("call_id")
        ))
        .await?;
        // A call whose POST was in flight carried "pending:<id>" as its execution id.
        db.execute_unprepared(
            "UPDATE calls SET placing_since = updated_at, provider_execution_id = NULL \
             WHERE provider_execution_id LIKE 'pending:%'",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_lane_claim")
                    .table(Jobs::Table)
                    .col(Jobs::Lane)
                    .col(Jobs::Status)
                    .col(Jobs::TenantKey)
                    .col(Jobs::RunAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_subject")
                    .table(Jobs::Table)
                    .col(Jobs::Subject)
                    .to_owned(),
            )
            .await?;
        if postgres {
            db.execute_unprepared(
                "CREATE OR REPLACE FUNCTION switchboard_job_due() RETURNS trigger AS $$ \
                 BEGIN \
                   IF NEW.status = 'pending' AND NEW.run_at <= now() + interval '1 second' THEN \
                     PERFORM pg_notify('switchboard_jobs', NEW.lane); \
                   END IF; \
                   RETURN NULL; \
                 END $$ LANGUAGE plpgsql",
            )
            .await?;
            db.execute_unprepared(
                "CREATE TRIGGER jobs_due AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION switchboard_job_due()",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if db.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("DROP TRIGGER IF EXISTS jobs_due ON jobs")
                .await?;
            db.execute_unprepared("DROP FUNCTION IF EXISTS switchboard_job_due()")
                .await?;
        }
        for name in ["idx_jobs_lane_claim", "idx_jobs_subject"] {
            manager
                .drop_index(Index::drop().name(name).table(Jobs::Table).to_owned())
                .await?;
        }
        for col in [Jobs::Lane, Jobs::TenantKey, Jobs::Subject] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Jobs::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Calls::Table)
                    .drop_column(Calls::PlacingSince)
                    .to_owned(),
            )
            .await
    }
}
