//! PostgreSQL: claiming a concurrency slot as one function call, so a claim costs a single
//! round trip while it holds the slot lock. With the lock, the count and the update as
//! separate statements, a campaign ramping up to hundreds of calls queued on that lock and
//! placed about 140 calls a second on a 2-core machine (`bench/src/bin/campaigns.rs`).
//!
//! Inside a PL/pgSQL function each statement takes a fresh snapshot (READ COMMITTED), so
//! the count that follows the lock sees every claim committed before the lock was granted.
//! The live-call condition's terminal rank and the lock key are arguments, so the code that
//! defines them stays their only source. SQLite has one writer at a time and needs none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const CREATE: &str = r#"
CREATE OR REPLACE FUNCTION switchboard_claim_slot(
    p_call uuid, p_now timestamptz, p_system_cap bigint, p_terminal_rank integer, p_lock bigint)
RETURNS TABLE (tenant_cap integer, campaign_cap integer, campaign_status text,
               live_system bigint, live_tenant bigint, live_campaign bigint, took bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    RETURN QUERY
    WITH target AS (
        SELECT c.id, c.tenant_id, c.campaign_id, t.concurrency_limit AS cap_t,
               k.concurrency_limit AS cap_k, k.status::text AS status_k
        FROM calls c JOIN tenants t ON t.id = c.tenant_id
        LEFT JOIN campaigns k ON k.id = c.campaign_id
        WHERE c.id = p_call AND c.placing_since IS NULL AND c.provider_execution_id IS NULL),
    live AS (
        SELECT COUNT(*) AS n_s,
               COALESCE(SUM(CASE WHEN l.tenant_id = (SELECT tenant_id FROM target) THEN 1 ELSE 0 END), 0)::bigint AS n_t,
               COALESCE(SUM(CASE WHEN l.campaign_id = (SELECT campaign_id FROM target) THEN 1 ELSE 0 END), 0)::bigint AS n_k
        FROM calls l
        WHERE l.status_rank < p_terminal_rank
          AND (l.placing_since IS NOT NULL OR l.provider_execution_id IS NOT NULL)),
    claimed AS (
        UPDATE calls SET placing_since = p_now FROM target, live
        WHERE calls.id = target.id
          AND (target.status_k IS NULL OR target.status_k = 'RUNNING')
          AND live.n_s < p_system_cap AND live.n_t < target.cap_t
          AND (target.cap_k IS NULL OR live.n_k < target.cap_k)
        RETURNING calls.id)
    SELECT target.cap_t, target.cap_k, target.status_k, live.n_s, live.n_t, live.n_k,
           (SELECT COUNT(*) FROM claimed)
    FROM target, live;
END
$$
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared(CREATE).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION IF EXISTS switchboard_claim_slot(uuid, timestamptz, bigint, integer, bigint)",
                )
                .await?;
        }
        Ok(())
    }
}
