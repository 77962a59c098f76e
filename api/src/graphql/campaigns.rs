//! Campaigns in the schema: `Campaign`, its stats and queue items, the import report, and
//! the campaign mutations. The work is in `domain::campaigns`.

use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::campaigns::{self, RowProblem as DomainRowProblem};
use domain::pagination::PageRequest;
use entity::{campaign, campaign_item};

use super::connection::{Connection, Listing, connection_object};
use super::context::{db, loaders, scope, services};
use super::enums::{CallStatus, CampaignStatus, QueueItemStatus};
use super::error::{GqlResultExt, parse_id};
use super::loaders::{AgentId, CallId, CustomerId};
use super::types::{Agent, Call, Customer, Detail};

/// When calls may be placed, in each recipient's local time.
#[derive(InputObject)]
pub struct CallingWindowInput {
    /// `HH:MM`, e.g. "09:00".
    pub start: String,
    /// `HH:MM` after `start`, e.g. "20:00" ("24:00" is the end of the day).
    pub end: String,
    /// Days the window is open: MON TUE WED THU FRI SAT SUN.
    pub days: Vec<String>,
}

/// How a campaign reaches its recipients.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum CampaignChannel {
    /// An agent phones each recipient.
    #[default]
    Call,
    /// An approved WhatsApp template is sent to each recipient.
    Whatsapp,
}

impl From<CampaignChannel> for campaigns::Channel {
    fn from(c: CampaignChannel) -> Self {
        match c {
            CampaignChannel::Call => campaigns::Channel::Call,
            CampaignChannel::Whatsapp => campaigns::Channel::WhatsApp,
        }
    }
}

/// The template a WhatsApp campaign sends.
#[derive(InputObject)]
pub struct CampaignTemplateInput {
    /// An APPROVED template of the connected account.
    pub name: String,
    /// Its language code.
    #[graphql(default_with = "String::from(\"en_US\")")]
    pub language: String,
    /// The CSV columns that fill its parameters (`{{1}}`, `{{2}}`...), in order; every
    /// row must have a value in each (matched like headers: case, spaces and dashes
    /// aside).
    #[graphql(default)]
    pub parameter_columns: Vec<String>,
}

/// The template a WhatsApp campaign sends, as stored.
#[derive(SimpleObject)]
pub struct CampaignTemplate {
    pub name: String,
    pub language: String,
    pub parameter_columns: Vec<String>,
}

/// A campaign to create from a CSV of recipients.
#[derive(InputObject)]
pub struct CreateCampaignInput {
    /// 1 to 200 characters.
    pub name: String,
    /// CALL (default): an agent phones each recipient; WHATSAPP: an approved template is
    /// sent to each, paced to the number's messaging rate.
    #[graphql(default)]
    pub channel: CampaignChannel,
    /// The agent that places the calls (call campaigns only; required for them).
    pub agent_id: Option<ID>,
    /// The template a WhatsApp campaign sends (required for them).
    pub template: Option<CampaignTemplateInput>,
    /// The file's text (within the 1 MiB request; larger files go to
    /// `POST /campaigns/import`). A header row naming a phone column (phone, phone_number,
    /// contact_number, mobile or number); name (or first_name and last_name), email and
    /// timezone are read too; every other column becomes a variable for the agent.
    pub csv: String,
    /// Calls of this campaign live at once, 1 to 1000 (default: the tenant's limit).
    pub concurrency_limit: Option<i32>,
    /// Calls per recipient at most, 1 to 10.
    #[graphql(default = 1)]
    pub max_attempts: i32,
    /// Minutes between attempts.
    #[graphql(default = 60)]
    pub retry_delay_minutes: i32,
    /// Minutes before each retry in turn, the last repeating (overrides
    /// `retryDelayMinutes`).
    pub retry_delays_minutes: Option<Vec<i32>>,
    /// Call endings that are retried (default BUSY, NO_ANSWER, FAILED, ERROR).
    pub retry_on: Option<Vec<CallStatus>>,
    /// When recipients may be called, in their local time (default: any time).
    pub calling_window: Option<CallingWindowInput>,
    /// Zone for recipients whose zone is not known from the row or the number (default:
    /// the tenant's).
    pub timezone: Option<String>,
    /// Only report what would be accepted; write nothing.
    #[graphql(default = false)]
    pub dry_run: bool,
}

impl CreateCampaignInput {
    fn into_domain(self) -> async_graphql::Result<(campaigns::CreateCampaign, String)> {
        let agent_id = self
            .agent_id
            .as_ref()
            .map(|a| parse_id("agentId", a))
            .transpose()?;
        let input = campaigns::CreateCampaign {
            name: self.name,
            agent_id,
            channel: self.channel.into(),
            template: self.template.map(|t| campaigns::TemplateChoice {
                name: t.name,
                language: t.language,
                parameter_columns: t.parameter_columns,
            }),
            concurrency_limit: self.concurrency_limit,
            max_attempts: Some(self.max_attempts),
            retry_delay_minutes: self
                .retry_delays_minutes
                .unwrap_or_else(|| vec![self.retry_delay_minutes]),
            retry_on: self
                .retry_on
                .map(|v| v.into_iter().map(Into::into).collect()),
            calling_window: self.calling_window.map(|w| campaigns::CallingWindow {
                start: w.start,
                end: w.end,
                days: w.days,
            }),
            timezone: self.timezone,
            dry_run: self.dry_run,
        };
        Ok((input, self.csv))
    }
}

/// Why a row of the file was not accepted.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum RowProblem {
    MissingPhone,
    UnparseablePhone,
    DuplicateInFile,
    DoNotCallList,
    CustomerDoNotCall,
    UnknownTimezone,
    TooLarge,
    MissingParameter,
}

impl From<DomainRowProblem> for RowProblem {
    fn from(p: DomainRowProblem) -> Self {
        match p {
            DomainRowProblem::MissingPhone => RowProblem::MissingPhone,
            DomainRowProblem::UnparseablePhone => RowProblem::UnparseablePhone,
            DomainRowProblem::DuplicateInFile => RowProblem::DuplicateInFile,
            DomainRowProblem::DoNotCallList => RowProblem::DoNotCallList,
            DomainRowProblem::CustomerDoNotCall => RowProblem::CustomerDoNotCall,
            DomainRowProblem::UnknownTimezone => RowProblem::UnknownTimezone,
            DomainRowProblem::TooLarge => RowProblem::TooLarge,
            DomainRowProblem::MissingParameter => RowProblem::MissingParameter,
        }
    }
}

/// A rejected row.
#[derive(SimpleObject)]
pub struct RowError {
    /// Its line in the file: the header is line 1, a quoted field spanning lines counts
    /// every line.
    pub line: u64,
    /// The number as written (shortened past 64 characters).
    pub phone_number: String,
    /// Why, in words.
    pub reason: String,
    /// Why, as a code.
    pub code: RowProblem,
}

/// What `createCampaign` did (or, on a dry run, would do).
#[derive(SimpleObject)]
pub struct CampaignImportResult {
    /// The campaign created (DRAFT); null on a dry run.
    pub campaign: Option<Campaign>,
    /// Rows that became queue items.
    pub accepted: u64,
    /// Rejected rows in file order (the first 1000; see `rejectedCount`).
    pub rejected: Vec<RowError>,
    /// Rejected rows in all.
    pub rejected_count: u64,
    /// Rows whose number appeared earlier in the file.
    pub duplicates: u64,
    /// Rows refused by the do-not-call list or a customer marked DO_NOT_CALL.
    pub do_not_call: u64,
}

impl CampaignImportResult {
    pub fn from_domain(r: campaigns::ImportReport) -> Self {
        CampaignImportResult {
            campaign: r.campaign.map(Campaign),
            accepted: r.accepted,
            rejected: r
                .rejected
                .into_iter()
                .map(|e| RowError {
                    line: e.line,
                    phone_number: e.phone_number,
                    reason: e.problem.reason().to_owned(),
                    code: e.problem.into(),
                })
                .collect(),
            rejected_count: r.rejected_count,
            duplicates: r.duplicates,
            do_not_call: r.do_not_call,
        }
    }
}

/// How many of a campaign's items are in each state; `total` is their sum.
#[derive(SimpleObject, Clone, Copy)]
#[graphql(complex)]
pub struct CampaignStats {
    #[graphql(skip)]
    pub campaign_id: uuid::Uuid,
    pub total: i64,
    pub pending: i64,
    pub dispatching: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub failed: i64,
    pub skipped: i64,
    pub canceled: i64,
}

impl From<campaigns::Stats> for CampaignStats {
    fn from(s: campaigns::Stats) -> Self {
        CampaignStats {
            campaign_id: s.campaign_id,
            total: s.total,
            pending: s.pending,
            dispatching: s.dispatching,
            in_progress: s.in_progress,
            completed: s.completed,
            failed: s.failed,
            skipped: s.skipped,
            canceled: s.canceled,
        }
    }
}

#[async_graphql::ComplexObject]
impl CampaignStats {
    /// How many recipients each outcome ended with (the analysis of each item's latest
    /// call; recipients not analysed yet are not counted).
    async fn outcomes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<super::analytics::OutcomeCount>> {
        let counts = campaigns::outcome_counts(db(ctx)?, self.campaign_id)
            .await
            .gql()?;
        Ok(counts
            .into_iter()
            .map(|(o, count)| super::analytics::OutcomeCount {
                outcome: o.into(),
                count,
            })
            .collect())
    }
}

/// A calling window as stored.
#[derive(SimpleObject)]
pub struct CallingWindow {
    pub start: String,
    pub end: String,
    pub days: Vec<String>,
}

/// A list of recipients called by one agent under the campaign's caps, window and
/// retry rules.
pub struct Campaign(pub campaign::Model);

#[Object]
impl Campaign {
    /// Opaque identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// DRAFT until started; COMPLETED by itself when no item is left.
    async fn status(&self) -> CampaignStatus {
        self.0.status.into()
    }
    /// CALL or WHATSAPP.
    async fn channel(&self) -> CampaignChannel {
        match campaigns::Channel::of(&self.0) {
            campaigns::Channel::Call => CampaignChannel::Call,
            campaigns::Channel::WhatsApp => CampaignChannel::Whatsapp,
        }
    }
    /// The template a WhatsApp campaign sends; null for call campaigns.
    async fn template(&self) -> Option<CampaignTemplate> {
        Some(CampaignTemplate {
            name: self.0.template_name.clone()?,
            language: self.0.template_language.clone()?,
            parameter_columns: self
                .0
                .template_parameters
                .clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
        })
    }
    /// Why it is PAUSED ("paused by request", or the circuit breaker's reason).
    async fn paused_reason(&self) -> Option<&str> {
        self.0.paused_reason.as_deref()
    }
    /// The agent placing the calls, if it still exists.
    async fn agent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Agent>> {
        let Some(id) = self.0.agent_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?.load_one(AgentId(id)).await.gql()?.map(Agent))
    }
    /// Calls of this campaign live at once.
    async fn concurrency_limit(&self) -> i32 {
        self.0.concurrency_limit
    }
    /// Calls per recipient at most.
    async fn max_attempts(&self) -> i32 {
        self.0.max_attempts
    }
    /// Minutes before the first retry.
    async fn retry_delay_minutes(&self) -> i32 {
        self.retry_delays().first().copied().unwrap_or(60)
    }
    /// Minutes before each retry in turn (the last repeats).
    async fn retry_delays_minutes(&self) -> Vec<i32> {
        self.retry_delays()
    }
    /// Call endings that are retried.
    async fn retry_on(&self) -> Vec<CallStatus> {
        serde_json::from_value::<Vec<domain::types::CallStatus>>(self.0.retry_on.clone())
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect()
    }
    /// When recipients may be called, in their local time; null: any time.
    async fn calling_window(&self) -> Option<CallingWindow> {
        let w: campaigns::CallingWindow =
            serde_json::from_value(self.0.calling_window.clone()?).ok()?;
        Some(CallingWindow {
            start: w.start,
            end: w.end,
            days: w.days,
        })
    }
    /// Zone for recipients whose own zone is not known.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// Items in each state, counted now.
    async fn stats(&self, ctx: &Context<'_>) -> async_graphql::Result<CampaignStats> {
        campaigns::stats(db(ctx)?, self.0.id)
            .await
            .map(Into::into)
            .gql()
    }
    /// The campaign's recipients, in file order.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn items(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
        status: Option<QueueItemStatus>,
    ) -> async_graphql::Result<QueueItemConnection> {
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        let status = status.map(Into::into);
        let rows = Box::pin(campaigns::items(
            db(ctx)?,
            scope(ctx)?,
            self.0.id,
            status,
            page,
        ))
        .await
        .gql()?;
        Ok(Connection::new(
            rows,
            QueueItemListing {
                campaign_id: self.0.id,
                status,
            },
        ))
    }
}

impl Campaign {
    fn retry_delays(&self) -> Vec<i32> {
        serde_json::from_value(self.0.retry_delays.clone()).unwrap_or_default()
    }
}

/// One recipient of a campaign; each attempt is its own call.
pub struct QueueItem(pub campaign_item::Model);

#[Object]
impl QueueItem {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// E.164.
    async fn phone_number(&self) -> &str {
        &self.0.phone_number
    }
    /// Its line in the imported file.
    async fn line(&self) -> i32 {
        self.0.line
    }
    async fn status(&self) -> QueueItemStatus {
        self.0.status.into()
    }
    /// Calls placed for it so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// Why the last attempt did not reach the person, or why it was skipped.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When it is next due (its window, a retry delay or a cap may hold it); null once
    /// finished.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (!self.0.status.is_finished()).then_some(self.0.next_attempt_at)
    }
    /// The recipient's zone from the file, if it named one.
    async fn timezone(&self) -> Option<&str> {
        self.0.timezone.as_deref()
    }
    /// The row's other columns, passed to the agent.
    async fn variables(&self) -> Option<Json<serde_json::Value>> {
        self.0.variables.clone().map(Json)
    }
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Customer>> {
        let Some(id) = self.0.customer_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(CustomerId(id))
            .await
            .gql()?
            .map(Customer))
    }
    /// WhatsApp campaigns: Meta's id of the message sent (its delivery status is on the
    /// customer's `whatsappMessages`; a message that fails later fails the item).
    async fn wamid(&self) -> Option<&str> {
        self.0.wamid.as_deref()
    }
    /// Its latest call, if one was placed.
    async fn call(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Call>> {
        let Some(id) = self.0.call_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .load_one(CallId(id))
            .await
            .gql()?
            .map(|c| Call(c, Detail::Full)))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// The tenant's campaigns, newest first.
pub struct CampaignListing;

pub type CampaignConnection = Connection<CampaignListing>;

impl Listing for CampaignListing {
    type Row = campaign::Model;
    type Node = Campaign;

    fn id(row: &Self::Row) -> uuid::Uuid {
        row.id
    }

    fn node(&self, row: &Self::Row) -> Campaign {
        Campaign(row.clone())
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        campaigns::count(db(ctx)?, scope(ctx)?).await.gql()
    }
}

connection_object!(
    CampaignListing,
    "CampaignConnection",
    "A page of campaigns, newest first.",
    "Number of campaigns, over all pages."
);

/// One campaign's items, optionally of one status.
pub struct QueueItemListing {
    campaign_id: uuid::Uuid,
    status: Option<domain::types::QueueItemStatus>,
}

pub type QueueItemConnection = Connection<QueueItemListing>;

impl Listing for QueueItemListing {
    type Row = campaign_item::Model;
    type Node = QueueItem;

    fn id(row: &Self::Row) -> uuid::Uuid {
        row.id
    }

    fn node(&self, row: &Self::Row) -> QueueItem {
        QueueItem(row.clone())
    }

    async fn total(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        use domain::types::QueueItemStatus as S;
        let s = campaigns::stats(db(ctx)?, self.campaign_id).await.gql()?;
        let n = match self.status {
            None => s.total,
            Some(S::Pending) => s.pending,
            Some(S::Dispatching) => s.dispatching,
            Some(S::InProgress) => s.in_progress,
            Some(S::Completed) => s.completed,
            Some(S::Failed) => s.failed,
            Some(S::Skipped) => s.skipped,
            Some(S::Canceled) => s.canceled,
        };
        Ok(n.max(0) as u64)
    }
}

connection_object!(
    QueueItemListing,
    "QueueItemConnection",
    "A page of a campaign's items, in file order.",
    "Number of items (of the status asked for), over all pages."
);

/// A campaign's stats as they were at `at`.
#[derive(SimpleObject)]
pub struct CampaignProgress {
    pub campaign: Campaign,
    pub stats: CampaignStats,
    pub at: DateTime<Utc>,
}

/// Campaigns' part of the query root.
#[derive(Default)]
pub struct CampaignsQuery;

#[Object]
impl CampaignsQuery {
    /// This tenant's campaigns, newest first.
    #[graphql(complexity = "first.unwrap_or(20).clamp(1, 100) as usize * child_complexity")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<CampaignConnection> {
        let page = PageRequest::new(first, after.as_deref()).gql()?;
        let rows = campaigns::list(db(ctx)?, scope(ctx)?, page).await.gql()?;
        Ok(Connection::new(rows, CampaignListing))
    }

    /// One campaign, or null if it does not exist in this tenant.
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Campaign>> {
        let id = parse_id("id", &id)?;
        Ok(campaigns::get(db(ctx)?, scope(ctx)?, id)
            .await
            .gql()?
            .map(Campaign))
    }
}

/// Campaigns' part of the mutation root (MEMBER or ADMIN).
#[derive(Default)]
pub struct CampaignsMutation;

#[Object]
impl CampaignsMutation {
    /// Creates a DRAFT campaign from a CSV and reports every rejected row by its line;
    /// with `dryRun` only reports. A file that cannot be read at all (empty, binary, no
    /// phone column) is one BAD_USER_INPUT.
    async fn create_campaign(
        &self,
        ctx: &Context<'_>,
        input: CreateCampaignInput,
    ) -> async_graphql::Result<CampaignImportResult> {
        let (input, csv) = input.into_domain()?;
        campaigns::create(services(ctx)?, scope(ctx)?, input, csv.as_bytes())
            .await
            .map(CampaignImportResult::from_domain)
            .gql()
    }

    /// DRAFT → RUNNING: dialling begins.
    async fn start_campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let id = parse_id("id", &id)?;
        campaigns::start(services(ctx)?, scope(ctx)?, id)
            .await
            .map(Campaign)
            .gql()
    }

    /// RUNNING → PAUSED: no new dials; calls in flight finish and are recorded.
    async fn pause_campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let id = parse_id("id", &id)?;
        campaigns::pause(services(ctx)?, scope(ctx)?, id)
            .await
            .map(Campaign)
            .gql()
    }

    /// PAUSED → RUNNING, whatever paused it (a request or the circuit breaker).
    async fn resume_campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let id = parse_id("id", &id)?;
        campaigns::resume(services(ctx)?, scope(ctx)?, id)
            .await
            .map(Campaign)
            .gql()
    }

    /// → CANCELED: items not yet dialled are CANCELED; calls in flight finish and are
    /// recorded.
    async fn cancel_campaign(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Campaign> {
        let id = parse_id("id", &id)?;
        campaigns::cancel(services(ctx)?, scope(ctx)?, id)
            .await
            .map(Campaign)
            .gql()
    }
}

/// Loads what `campaignProgress` pushes: the campaign and its stats now.
pub async fn progress_of(
    db: &sea_orm::DatabaseConnection,
    scope: &domain::tenancy::TenantScope,
    id: uuid::Uuid,
) -> async_graphql::Result<Option<CampaignProgress>> {
    let Some(c) = campaigns::get(db, scope, id).await.gql()? else {
        return Ok(None);
    };
    let stats = campaigns::stats(db, id).await.gql()?;
    Ok(Some(CampaignProgress {
        campaign: Campaign(c),
        stats: stats.into(),
        at: Utc::now(),
    }))
}

/// Rows of this list always take the derived resolver (see `plain`).
impl super::plain::PlainFields for Campaign {}

/// Rows of this list always take the derived resolver (see `plain`).
impl super::plain::PlainFields for QueueItem {}
