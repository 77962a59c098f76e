//! GraphQL output types. Each wraps an entity model; entities stay free of GraphQL.
//!
//! Resolvers that await the database box what they await (`Box::pin(..).await`). A type's
//! field future is as large as its largest resolver's, and every field resolved, `id`
//! included, allocates and copies one: unboxed, `Call`'s and `Customer`'s were 2-3 KB.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::calls::{self, CallColumns, CallFilter, CallParent};
use domain::customers::{self, CustomerFilter};
use domain::pagination::{Page, PageRequest, encode_cursor};
use entity::{agent, call, call_event, customer, tenant};
use uuid::Uuid;

use super::connection::{Connection, Listing, connection_object};
use super::context::{db, loaders, scope};
use super::enums::{CallDirection, CallEventSource, CallStatus, LeadStatus, Provider, Role};
use super::error::GqlResultExt;
use super::loaders::{AgentId, CallCount, CustomerId, EventsOf, RecentCalls};
use super::plain::plain_fields;
use super::prefetch;

fn id(u: Uuid) -> ID {
    ID(u.to_string())
}

pub struct Tenant(pub tenant::Model);

/// An organisation using Switchboard. All data belongs to exactly one tenant.
#[Object]
impl Tenant {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// ISO country code used to read national-format phone numbers.
    async fn default_region(&self) -> &str {
        &self.0.default_region
    }
    /// IANA time zone for reports and calling windows.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    /// Most calls this tenant may have live at once.
    async fn concurrency_limit(&self) -> i32 {
        self.0.concurrency_limit
    }
    /// Secret path segment of this tenant's webhook URLs (`/webhooks/bolna/{token}`): a
    /// write credential, so only ADMIN keys (and the operator, on `createTenant`) read it;
    /// other roles get null and a FORBIDDEN error. `rotateWebhookToken` replaces it.
    async fn webhook_token(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        if super::context::is_operator(ctx) {
            return Ok(Some(&self.0.webhook_token));
        }
        scope(ctx)?.require(domain::types::Role::Admin).gql()?;
        Ok(Some(&self.0.webhook_token))
    }
    /// When the record was created (UTC).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Credit left, in minor units (cents); never below zero. Calls spend it once the
    /// operator sets the tenant's pricing.
    async fn balance(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(self.credits(ctx).await?.balance)
    }
    /// The tenant's credit: balance, reserves of live calls, pricing, alert threshold.
    async fn credits(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<super::credits::CreditAccount> {
        let actor = if super::context::is_operator(ctx) {
            domain::credits::Actor::Operator
        } else {
            domain::credits::Actor::Tenant(scope(ctx)?)
        };
        Ok(Box::pin(domain::credits::get_account(
            db(ctx)?,
            actor,
            Some(self.0.id),
        ))
        .await
        .gql()?
        .into())
    }
}

/// A newly created tenant and its first ADMIN key (shown only here).
#[derive(SimpleObject)]
pub struct CreateTenantPayload {
    /// The new tenant.
    pub tenant: Tenant,
    /// Its first ADMIN key; store it now, it is not shown again.
    pub api_key: String,
}

/// A newly issued API key; `apiKey` is shown only here.
#[derive(SimpleObject)]
pub struct CreateApiKeyPayload {
    /// The key's id (for revokeApiKey).
    pub id: ID,
    /// The secret; store it now, it is not shown again.
    pub api_key: String,
    /// What the key may do.
    pub role: Role,
}

/// Relay page information.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// Whether another page follows.
    pub has_next_page: bool,
    /// Pass as `after` to get the next page.
    pub end_cursor: Option<String>,
}

pub(crate) fn page_info<T>(page: &Page<T>, id_of: impl Fn(&T) -> Uuid) -> PageInfo {
    PageInfo {
        has_next_page: page.has_next_page,
        end_cursor: page.items.last().map(|t| encode_cursor(id_of(t))),
    }
}

fn shared<T>(page: Page<T>) -> Page<Arc<T>> {
    Page {
        items: page.items.into_iter().map(Arc::new).collect(),
        has_next_page: page.has_next_page,
    }
}

pub struct Agent(pub Arc<agent::Model>);

impl Agent {
    pub fn new(model: agent::Model) -> Self {
        Agent(Arc::new(model))
    }
}

/// A voice agent configured at a provider.
#[Object]
impl Agent {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Which provider runs this agent.
    async fn provider(&self) -> Provider {
        self.0.provider.into()
    }
    /// The agent's id at its provider.
    async fn provider_agent_id(&self) -> &str {
        &self.0.provider_agent_id
    }
    /// Business the agent speaks for.
    async fn business_name(&self) -> Option<&str> {
        self.0.business_name.as_deref()
    }
    /// When the record was created (UTC).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the record last changed (UTC).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// This agent's calls, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn calls(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<CallConnection> {
        Box::pin(CallConnection::nested(
            ctx,
            CallParent::Agent,
            self.0.id,
            first,
            after,
        ))
        .await
    }
}

pub struct Customer(pub Arc<customer::Model>);

impl Customer {
    pub fn new(model: customer::Model) -> Self {
        Customer(Arc::new(model))
    }
}

/// A lead: one per phone number per tenant.
#[Object]
impl Customer {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Always E.164, e.g. `+917471180076`.
    async fn phone_number(&self) -> &str {
        &self.0.phone_number
    }
    /// Full name, when known.
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// Email address, when known.
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    /// Where the lead stands in the funnel.
    async fn status(&self) -> LeadStatus {
        self.0.status.into()
    }
    /// Lower-case tags.
    async fn tags(&self) -> Vec<String> {
        serde_json::from_value(self.0.tags.clone()).unwrap_or_default()
    }
    /// 0 to 100; higher is a warmer lead. Computed from the customer's calls and their
    /// analyses by the tenant's `scoringRules` after each analysis (or set by hand).
    async fn lead_score(&self) -> Option<f64> {
        self.0.lead_score
    }
    /// HOT, WARM or COLD from the lead score and the tenant's thresholds (or a label set
    /// by hand).
    async fn segment(&self) -> Option<&str> {
        self.0.segment.as_deref()
    }
    /// Each scoring rule's part in `leadScore` (empty until the score is computed).
    async fn score_explanation(&self) -> Vec<super::scoring::ScoreContribution> {
        self.0
            .score_explanation
            .clone()
            .and_then(|v| {
                serde_json::from_value::<Vec<domain::analysis::scoring::Contribution>>(v).ok()
            })
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect()
    }
    /// Free-form notes.
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    /// How the customer entered the CRM (API, SYNC, CAMPAIGN, WEBHOOK...).
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    /// When a call last reached or tried this customer.
    async fn last_contacted_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_contacted_at
    }
    /// When the record was created (UTC).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the record last changed (UTC).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// This customer's calls, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn calls(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<CallConnection> {
        Box::pin(CallConnection::nested(
            ctx,
            CallParent::Customer,
            self.0.id,
            first,
            after,
        ))
        .await
    }
    /// Past conversations, newest first: calls with a transcript or summary, and WhatsApp
    /// messages (50 of each at most).
    #[graphql(complexity = "50 * child_complexity")]
    async fn interactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Interaction>> {
        let (db, scope) = (db(ctx)?, scope(ctx)?);
        let calls = Box::pin(calls::interactions(db, scope, self.0.id, 50))
            .await
            .gql()?;
        let messages = Box::pin(domain::whatsapp::messages_of(db, scope, self.0.id, 50))
            .await
            .gql()?;
        let mut all: Vec<Interaction> = calls
            .into_iter()
            .map(|c| Interaction::Call(Box::new(c)))
            .chain(
                messages
                    .into_iter()
                    .map(|m| Interaction::Message(Box::new(m))),
            )
            .collect();
        all.sort_by_key(|i| std::cmp::Reverse(i.at_time()));
        Ok(all)
    }
    /// The customer's WhatsApp messages, newest first (at most `first`, default 50).
    async fn whatsapp_messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, 1 to 100 (default 50).")] first: Option<i32>,
    ) -> async_graphql::Result<Vec<super::whatsapp::WhatsAppMessage>> {
        let first = first.unwrap_or(50);
        if !(1..=100).contains(&first) {
            return Err(super::error::to_gql(&domain::DomainError::invalid(
                "first",
                "must be between 1 and 100",
            )));
        }
        Ok(Box::pin(domain::whatsapp::messages_of(
            db(ctx)?,
            scope(ctx)?,
            self.0.id,
            first as u64,
        ))
        .await
        .gql()?
        .into_iter()
        .map(super::whatsapp::WhatsAppMessage)
        .collect())
    }
    /// When the 24-hour WhatsApp window ends (or ended): free-form replies are allowed
    /// until then. Null if the customer never wrote.
    async fn whatsapp_window_ends_at(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DateTime<Utc>>> {
        Box::pin(domain::whatsapp::window_ends_at(
            db(ctx)?,
            scope(ctx)?.tenant_id(),
            self.0.id,
        ))
        .await
        .gql()
    }
}

/// A past conversation: a call or a WhatsApp message.
pub enum Interaction {
    Call(Box<call::Model>),
    Message(Box<entity::whatsapp_message::Model>),
}

impl Interaction {
    fn at_time(&self) -> DateTime<Utc> {
        match self {
            Interaction::Call(c) => c.started_at.unwrap_or(c.created_at),
            Interaction::Message(m) => m.sent_at,
        }
    }
}

/// One past conversation with a customer: a call, or a WhatsApp message.
#[Object]
impl Interaction {
    /// CALL or WHATSAPP.
    async fn channel(&self) -> &str {
        match self {
            Interaction::Call(_) => "CALL",
            Interaction::Message(_) => "WHATSAPP",
        }
    }
    /// The call this conversation happened on; null for a message.
    async fn call_id(&self) -> Option<ID> {
        match self {
            Interaction::Call(c) => Some(id(c.id)),
            Interaction::Message(_) => None,
        }
    }
    /// The message, for a WhatsApp interaction.
    async fn message(&self) -> Option<super::whatsapp::WhatsAppMessage> {
        match self {
            Interaction::Message(m) => Some(super::whatsapp::WhatsAppMessage((**m).clone())),
            Interaction::Call(_) => None,
        }
    }
    /// When the conversation happened.
    async fn at(&self) -> DateTime<Utc> {
        self.at_time()
    }
    /// Summary of the call; a message's text.
    async fn summary(&self) -> Option<&str> {
        match self {
            Interaction::Call(c) => c.summary.as_deref(),
            Interaction::Message(m) => m.body.as_deref(),
        }
    }
    /// Transcript, `assistant:`/`user:` lines; null for a message.
    async fn transcript(&self) -> Option<&str> {
        match self {
            Interaction::Call(c) => c.transcript.as_deref(),
            Interaction::Message(_) => None,
        }
    }
    /// The call's analysed outcome, once analysis has run.
    async fn outcome(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::enums::CallOutcome>> {
        let Interaction::Call(c) = self else {
            return Ok(None);
        };
        let analysis = loaders(ctx)?
            .load_one(super::loaders::AnalysisOf(c.id))
            .await
            .gql()?;
        Ok(analysis.and_then(|a| a.outcome).map(Into::into))
    }
}

/// Shared, not cloned: the same row can sit in a page, a loader cache and an edge.
pub struct Call(pub Arc<call::Model>, pub Detail);

/// Whether the model holds the call's long texts, or they are to be read when asked for
/// (a subscription event about a call with a long transcript leaves them out); read once
/// however many of them the subscriber selects.
#[derive(Clone)]
pub enum Detail {
    Full,
    Omitted(Arc<tokio::sync::OnceCell<Arc<call::Model>>>),
}

impl Call {
    pub fn new(model: call::Model) -> Self {
        Call(Arc::new(model), Detail::Full)
    }

    /// A call whose transcript, summary and extracted data are read when selected.
    pub fn partial(model: Arc<call::Model>) -> Self {
        Call(model, Detail::Omitted(Arc::default()))
    }

    /// The call with its long texts: this model, or the stored row.
    async fn full(&self, ctx: &Context<'_>) -> async_graphql::Result<Arc<call::Model>> {
        let Detail::Omitted(full) = &self.1 else {
            return Ok(self.0.clone());
        };
        Box::pin(full.get_or_try_init(|| async {
            let stored = calls::find(db(ctx)?, scope(ctx)?, self.0.id).await.gql()?;
            Ok(stored.map(Arc::new).unwrap_or_else(|| self.0.clone()))
        }))
        .await
        .cloned()
    }
}

/// One phone call placed or received through a provider.
#[Object]
impl Call {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Which provider placed or received the call.
    async fn provider(&self) -> Provider {
        self.0.provider.into()
    }
    /// The provider's execution id (Bolna `execution_id`, Teli `call_id`).
    async fn provider_execution_id(&self) -> Option<&str> {
        self.0.provider_execution_id.as_deref()
    }
    /// The provider's agent id as reported; set even when no agent here matches it.
    async fn provider_agent_id(&self) -> Option<&str> {
        self.0.provider_agent_id.as_deref()
    }
    /// Why the call failed, when it did (provider refusal, carrier error, ...).
    async fn error_message(&self) -> Option<&str> {
        self.0.error_message.as_deref()
    }
    /// The carrier's call id.
    async fn provider_call_id(&self) -> Option<&str> {
        self.0.provider_call_id.as_deref()
    }
    /// Inbound or outbound.
    async fn direction(&self) -> CallDirection {
        self.0.direction.into()
    }
    /// Current status; it never moves backwards.
    async fn status(&self) -> CallStatus {
        self.0.status.into()
    }
    /// Caller number, E.164.
    async fn from_number(&self) -> Option<&str> {
        self.0.from_number.as_deref()
    }
    /// Callee number, E.164.
    async fn to_number(&self) -> Option<&str> {
        self.0.to_number.as_deref()
    }
    /// When the call connected or started.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    /// When the call ended.
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// Conversation length in seconds.
    async fn duration_seconds(&self) -> Option<f64> {
        self.0.duration_seconds
    }
    /// Cost as reported by the provider.
    async fn cost(&self) -> Option<f64> {
        self.0.cost
    }
    /// Transcript, `assistant:`/`user:` lines, once available.
    async fn transcript(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(self.full(ctx).await?.transcript.clone())
    }
    /// Summary of the conversation, once available.
    async fn summary(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(self.full(ctx).await?.summary.clone())
    }
    /// Recording URL from the provider (may expire).
    async fn recording_url(&self) -> Option<&str> {
        self.0.recording_url.as_deref()
    }
    /// Free-form data the provider's agent extracted from the conversation.
    async fn extracted_data(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<async_graphql::Json<serde_json::Value>>> {
        Ok(self
            .full(ctx)
            .await?
            .extracted_data
            .clone()
            .map(async_graphql::Json))
    }
    /// Why the call ended, as the provider put it.
    async fn hangup_reason(&self) -> Option<&str> {
        self.0.hangup_reason.as_deref()
    }
    /// The agent that handled the call, if it still exists.
    async fn agent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Agent>> {
        let Some(agent_id) = self.0.agent_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(AgentId(agent_id))
            .await
            .gql()?
            .map(Agent))
    }
    /// The customer called (or calling), if known.
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Customer>> {
        let Some(customer_id) = self.0.customer_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(CustomerId(customer_id))
            .await
            .gql()?
            .map(Customer))
    }
    /// The campaign that placed the call, if any.
    async fn campaign(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::campaigns::Campaign>> {
        let Some(id) = self.0.campaign_id else {
            return Ok(None);
        };
        Ok(
            Box::pin(loaders(ctx)?.load_one(super::loaders::CampaignId(id)))
                .await
                .gql()?
                .map(|c| super::campaigns::Campaign((*c).clone())),
        )
    }
    /// The call's current analysis (null until it has run; calls without a transcript
    /// have none).
    async fn analysis(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<super::analysis::LeadAnalysis>> {
        Ok(loaders(ctx)?
            .load_one(super::loaders::AnalysisOf(self.0.id))
            .await
            .gql()?
            .map(super::analysis::LeadAnalysis))
    }
    /// Status history, oldest first.
    async fn events(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CallEvent>> {
        let events = loaders(ctx)?.load_one(EventsOf(self.0.id)).await.gql()?;
        Ok(events
            .unwrap_or_default()
            .into_iter()
            .map(CallEvent)
            .collect())
    }
    /// When the record was created (UTC).
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the record last changed (UTC).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct CallEvent(call_event::Model);

/// A status a call reported, when, and through which path.
#[Object]
impl CallEvent {
    /// The status reported.
    async fn status(&self) -> CallStatus {
        self.0.status.into()
    }
    /// When it was recorded.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// Which path reported it.
    async fn source(&self) -> CallEventSource {
        self.0.source.into()
    }
}

/// How a call connection's `totalCount` is computed, only when asked for.
pub enum CallListing {
    Filter(CallFilter),
    /// The newest calls of one parent, read with these columns.
    Parent(CallParent, Uuid, CallColumns),
}

pub type CallConnection = Connection<CallListing>;

impl Listing for CallListing {
    type Row = Arc<call::Model>;
    type Node = Call;

    fn id(row: &Self::Row) -> Uuid {
        row.id
    }

    fn node(&self, row: &Self::Row) -> Call {
        match self {
            // A field that reads a long text left out loads it (never expected: the
            // columns were chosen from the selection).
            CallListing::Parent(_, _, columns) if !columns.contains(call::Column::Transcript) => {
                Call(row.clone(), Detail::Omitted(Arc::default()))
            }
            _ => Call(row.clone(), Detail::Full),
        }
    }

    async fn prefetch(&self, ctx: &Context<'_>, rows: &[Self::Row]) -> async_graphql::Result<()> {
        let rows: Vec<&call::Model> = rows.iter().map(|c| c.as_ref()).collect();
        prefetch::call_nodes(ctx, &ctx.look_ahead().field("node"), &rows).await
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        match self {
            CallListing::Filter(f) => calls::count(db(ctx)?, scope(ctx)?, f).await.gql(),
            CallListing::Parent(p, id, _) => Ok(loaders(ctx)?
                .load_one(CallCount(*p, *id))
                .await
                .gql()?
                .unwrap_or(0)),
        }
    }
}

connection_object!(
    CallListing,
    "CallConnection",
    "A page of calls.",
    "Number of calls matching, over all pages."
);

impl Connection<CallListing> {
    pub async fn top_level(
        ctx: &Context<'_>,
        filter: CallFilter,
        page: PageRequest,
    ) -> async_graphql::Result<Self> {
        let page = shared(
            calls::list(db(ctx)?, scope(ctx)?, &filter, page)
                .await
                .gql()?,
        );
        Ok(Connection::new(page, CallListing::Filter(filter)))
    }

    async fn nested(
        ctx: &Context<'_>,
        parent: CallParent,
        parent_id: Uuid,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Self> {
        let req = PageRequest::new(first, after.as_deref()).gql()?;
        let (page, columns) = if req.after.is_some() {
            let page = calls::list_for_parent(db(ctx)?, scope(ctx)?, parent, parent_id, req)
                .await
                .gql()?;
            (shared(page), CallColumns::all())
        } else {
            // Batched across every parent on the page: one statement in all (the key is the
            // one `prefetch::calls_below` loaded).
            let columns = prefetch::columns_for(&ctx.look_ahead().field("edges").field("node"));
            let key = RecentCalls {
                parent,
                id: parent_id,
                limit: req.first + 1,
                columns,
            };
            let rows = loaders(ctx)?.load_one(key).await.gql()?.unwrap_or_default();
            (Page::from_overfetch(rows, req.first), columns)
        };
        Ok(Connection::new(
            page,
            CallListing::Parent(parent, parent_id, columns),
        ))
    }
}

/// A customer list's filter, for its `totalCount`.
pub struct CustomerListing(CustomerFilter);

pub type CustomerConnection = Connection<CustomerListing>;

impl Listing for CustomerListing {
    type Row = Arc<customer::Model>;
    type Node = Customer;

    fn id(row: &Self::Row) -> Uuid {
        row.id
    }

    fn node(&self, row: &Self::Row) -> Customer {
        Customer(row.clone())
    }

    async fn prefetch(&self, ctx: &Context<'_>, rows: &[Self::Row]) -> async_graphql::Result<()> {
        let ids: Vec<Uuid> = rows.iter().map(|c| c.id).collect();
        prefetch::calls_below(
            ctx,
            &ctx.look_ahead().field("node").field("calls"),
            CallParent::Customer,
            &ids,
        )
        .await
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        customers::count(db(ctx)?, scope(ctx)?, &self.0).await.gql()
    }
}

connection_object!(
    CustomerListing,
    "CustomerConnection",
    "A page of customers.",
    "Number of customers matching, over all pages."
);

impl Connection<CustomerListing> {
    pub async fn load(
        ctx: &Context<'_>,
        filter: CustomerFilter,
        page: PageRequest,
    ) -> async_graphql::Result<Self> {
        let page = shared(
            customers::list(db(ctx)?, scope(ctx)?, &filter, page)
                .await
                .gql()?,
        );
        Ok(Connection::new(page, CustomerListing(filter)))
    }
}

// The fields answered from memory when a list's rows select only them (see `plain`).
plain_fields!(Call {
    "id" => id,
    "provider" => provider,
    "providerExecutionId" => provider_execution_id,
    "providerAgentId" => provider_agent_id,
    "errorMessage" => error_message,
    "providerCallId" => provider_call_id,
    "direction" => direction,
    "status" => status,
    "fromNumber" => from_number,
    "toNumber" => to_number,
    "startedAt" => started_at,
    "endedAt" => ended_at,
    "durationSeconds" => duration_seconds,
    "cost" => cost,
    "recordingUrl" => recording_url,
    "hangupReason" => hangup_reason,
    "createdAt" => created_at,
    "updatedAt" => updated_at,
});

plain_fields!(Customer {
    "id" => id,
    "phoneNumber" => phone_number,
    "name" => name,
    "email" => email,
    "status" => status,
    "tags" => tags,
    "leadScore" => lead_score,
    "segment" => segment,
    "notes" => notes,
    "source" => source,
    "lastContactedAt" => last_contacted_at,
    "createdAt" => created_at,
    "updatedAt" => updated_at,
});
