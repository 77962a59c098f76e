//! Integration tests: the real app on a random port, over SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

mod agents;
mod analysis;
mod auth;
mod binary;
mod campaign_processes;
mod campaigns;
mod console;
mod credits;
mod crm;
mod customers;
mod edge;
mod external;
mod hardening;
mod intelligence;
mod live;
mod llm;
mod operations;
mod outbound;
mod pagination;
mod phones;
mod plain;
mod schema;
mod subscriptions;
mod sync;
mod tenancy;
mod twenty_fake;
mod webhooks;
mod whatsapp;
mod whatsapp_campaigns;
mod wsclient;
