//! The query and mutation roots: each area's part, merged. To add an area, write its
//! `XQuery`/`XMutation` in its own module and list it here.

use async_graphql::MergedObject;

use super::agents::{AgentsMutation, AgentsQuery};
use super::analysis::{AnalysisMutation, AnalysisQuery};
use super::analytics::AnalyticsQuery;
use super::calls::{CallsMutation, CallsQuery};
use super::campaigns::{CampaignsMutation, CampaignsQuery};
use super::credits::{CreditsMutation, CreditsQuery};
use super::crm::{CrmMutation, CrmQuery};
use super::customers::{CustomersMutation, CustomersQuery};
use super::scoring::{ScoringMutation, ScoringQuery};
use super::sync::{SyncMutation, SyncQuery};
use super::tenancy::{TenancyMutation, TenancyQuery};
use super::webhook_endpoints::{WebhookEndpointsMutation, WebhookEndpointsQuery};
use super::whatsapp::{WhatsAppMutation, WhatsAppQuery};

/// Reads. Resolvers parse arguments and call `domain`; nothing else.
#[derive(MergedObject, Default)]
pub struct Query(
    TenancyQuery,
    AgentsQuery,
    CustomersQuery,
    CallsQuery,
    CampaignsQuery,
    SyncQuery,
    AnalysisQuery,
    ScoringQuery,
    AnalyticsQuery,
    WebhookEndpointsQuery,
    CrmQuery,
    CreditsQuery,
    WhatsAppQuery,
);

/// Writes. Roles and tenancy are checked in `domain`, not here.
#[derive(MergedObject, Default)]
pub struct Mutation(
    TenancyMutation,
    AgentsMutation,
    CustomersMutation,
    CallsMutation,
    CampaignsMutation,
    SyncMutation,
    AnalysisMutation,
    ScoringMutation,
    WebhookEndpointsMutation,
    CrmMutation,
    CreditsMutation,
    WhatsAppMutation,
);
