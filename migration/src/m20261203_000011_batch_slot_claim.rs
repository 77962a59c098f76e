//! PostgreSQL: claiming slots for a batch of calls of one campaign (or one tenant's ad-hoc
//! calls) in one function call under the slot lock: as many of the calls as every cap has
//! room for, in the order given. A campaign round places its calls as one job, so its
//! ramp to the cap costs a handful of round trips instead of one claim per call.
//!
//! As in `switchboard_claim_slot`, each statement in the function takes a fresh snapshot
//! after the lock, so the count sees every claim committed before it. Calls of another
//! tenant or campaign than the first one found are left alone (the caller groups them).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const CREATE: &str = r#"
CREATE OR REPLACE FUNCTION switchboard_claim_slots(
    p_calls uuid[], p_now timestamptz, p_system_cap bigint, p_terminal_rank integer, p_lock bigint)
RETURNS TABLE (call_id uuid, campaign_status text, room bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_tenant uuid;
    v_campaign uuid;
    v_cap_t integer;
    v_cap_k integer;
    v_status text;
    v_room bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT c.tenant_id, c.campaign_id, t.concurrency_limit, k.concurrency_limit, k.status::text
      INTO v_tenant, v_campaign, v_cap_t, v_cap_k, v_status
      FROM unnest(p_calls) WITH ORDINALITY AS u(id, ord)
      JOIN calls c ON c.id = u.id
      JOIN tenants t ON t.id = c.tenant_id
      LEFT JOIN campaigns k ON k.id = c.campaign_id
     WHERE c.placing_since IS NULL AND c.provider_execution_id IS NULL
     ORDER BY u.ord LIMIT 1;
    IF v_tenant IS NULL THEN
        RETURN;
    END IF;
    IF v_status IS NOT NULL AND v_status <> 'RUNNING' THEN
        RETURN QUERY SELECT NULL::uuid, v_status, 0::bigint;
        RETURN;
    END IF;
    SELECT LEAST(p_system_cap - COUNT(*),
                 v_cap_t - COALESCE(SUM(CASE WHEN l.tenant_id = v_tenant THEN 1 ELSE 0 END), 0),
                 COALESCE(v_cap_k - COALESCE(SUM(CASE WHEN l.campaign_id = v_campaign THEN 1 ELSE 0 END), 0),
                          p_system_cap))
      INTO v_room
      FROM calls l
     WHERE l.status_rank < p_terminal_rank
       AND (l.placing_since IS NOT NULL OR l.provider_execution_id IS NOT NULL);
    v_room := GREATEST(v_room, 0);
    RETURN QUERY
    WITH chosen AS (
        SELECT c.id
          FROM unnest(p_calls) WITH ORDINALITY AS u(id, ord)
          JOIN calls c ON c.id = u.id
         WHERE c.placing_since IS NULL AND c.provider_execution_id IS NULL
           AND c.tenant_id = v_tenant AND c.campaign_id IS NOT DISTINCT FROM v_campaign
         ORDER BY u.ord
         LIMIT v_room),
    claimed AS (
        UPDATE calls SET placing_since = p_now FROM chosen
         WHERE calls.id = chosen.id
        RETURNING calls.id)
    SELECT claimed.id, v_status, v_room FROM claimed
    UNION ALL
    SELECT NULL::uuid, v_status, v_room WHERE NOT EXISTS (SELECT 1 FROM claimed);
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
                    "DROP FUNCTION IF EXISTS switchboard_claim_slots(uuid[], timestamptz, bigint, integer, bigint)",
                )
                .await?;
        }
        Ok(())
    }
}
