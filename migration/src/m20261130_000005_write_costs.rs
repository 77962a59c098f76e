//! Less work per written call, measured with the sync benchmark (`bench/src/bin/sync.rs`):
//! - the campaign index holds only calls of a campaign (synced, webhook and manual calls have
//!   none, and `campaign_id = $1` still uses a partial index on both databases);
//! - `call_events (call_id, at)` goes: `(call_id, status)` serves the same lookups, and events
//!   are always read for a set of calls and sorted anyway;
//! - PostgreSQL keeps 20% of each customers page free, so the update every call makes to its
//!   customer (`last_contacted_at`, rarely an indexed column) stays on the page (HOT) instead of
//!   adding an entry to each of the table's four indexes.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // A new name: SQLite migrations run on the pool without a transaction, and another
        // connection may still see the old index when the name is reused at once.
        db.execute_unprepared(
            "CREATE INDEX idx_calls_campaign ON calls (tenant_id, campaign_id, id) \
             WHERE campaign_id IS NOT NULL",
        )
        .await?;
        db.execute_unprepared("DROP INDEX idx_calls_tenant_campaign")
            .await?;
        db.execute_unprepared("DROP INDEX idx_call_events_call")
            .await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            db.execute_unprepared("ALTER TABLE customers SET (fillfactor = 80)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            db.execute_unprepared("ALTER TABLE customers RESET (fillfactor)")
                .await?;
        }
        db.execute_unprepared("CREATE INDEX idx_call_events_call ON call_events (call_id, at)")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_calls_tenant_campaign ON calls (tenant_id, campaign_id, id)",
        )
        .await?;
        db.execute_unprepared("DROP INDEX idx_calls_campaign")
            .await?;
        Ok(())
    }
}
