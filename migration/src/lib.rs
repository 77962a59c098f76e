//! Database migrations for Switchboard.
//!
//! The same migration code runs on both SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_core;
mod m20261123_000002_create_jobs;
mod m20261124_000003_live_calls;
mod m20261124_000004_sync_runs;
mod m20261130_000005_write_costs;
mod m20261202_000006_stale_checks;
mod m20261202_000007_job_lanes;
mod m20261202_000008_campaigns;
mod m20261203_000009_slot_claim;
mod m20261203_000010_call_analyses;
mod m20261203_000011_batch_slot_claim;
mod m20261203_000012_lead_scores;
mod m20261203_000013_analytics_index;
mod m20261203_000014_tasks;
mod m20261206_000015_webhooks;
mod m20261206_000016_crm;
mod m20261206_000017_crm_pending;
mod m20261206_000018_parent_indexes;
mod m20261206_000019_credits;
mod m20261206_000020_credit_rates;
mod m20261206_000021_whatsapp;
mod m20261206_000022_whatsapp_campaigns;
mod m20261207_000023_key_led_unique;
mod m20261207_000024_job_due_notify;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_core::Migration),
            Box::new(m20261123_000002_create_jobs::Migration),
            Box::new(m20261124_000003_live_calls::Migration),
            Box::new(m20261124_000004_sync_runs::Migration),
            Box::new(m20261130_000005_write_costs::Migration),
            Box::new(m20261202_000006_stale_checks::Migration),
            Box::new(m20261202_000007_job_lanes::Migration),
            Box::new(m20261202_000008_campaigns::Migration),
            Box::new(m20261203_000009_slot_claim::Migration),
            Box::new(m20261203_000010_call_analyses::Migration),
            Box::new(m20261203_000011_batch_slot_claim::Migration),
            Box::new(m20261203_000012_lead_scores::Migration),
            Box::new(m20261203_000013_analytics_index::Migration),
            Box::new(m20261203_000014_tasks::Migration),
            Box::new(m20261206_000015_webhooks::Migration),
            Box::new(m20261206_000016_crm::Migration),
            Box::new(m20261206_000017_crm_pending::Migration),
            Box::new(m20261206_000018_parent_indexes::Migration),
            Box::new(m20261206_000019_credits::Migration),
            Box::new(m20261206_000020_credit_rates::Migration),
            Box::new(m20261206_000021_whatsapp::Migration),
            Box::new(m20261206_000022_whatsapp_campaigns::Migration),
            Box::new(m20261207_000023_key_led_unique::Migration),
            Box::new(m20261207_000024_job_due_notify::Migration),
        ]
    }
}
