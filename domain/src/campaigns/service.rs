//! Campaign use cases: creating one from a CSV (or checking the file with `dry_run`),
//! starting, pausing, resuming and cancelling it, and reading campaigns, their items and
//! their stats. Every entry takes the caller's `TenantScope`.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use entity::{campaign, campaign_item};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde_json::json;
use uuid::Uuid;

use super::import::{ImportRow, Parsed, RowError, RowProblem, Rows};
use super::jobs::DispatchCampaign;
use super::window::{CallingWindow, Window, parse_zone};
use crate::db::Binder;
use crate::error::{DomainError, DomainResult};
use crate::events::Event;
use crate::jobs::{self, Job, Lane};
use crate::outbound::{EventType, payloads};
use crate::pagination::{self, Page, PageRequest};
use crate::services::Services;
use crate::tenancy::TenantScope;
use crate::types::{CallStatus, CampaignStatus, LeadStatus, QueueItemStatus, Role};

/// Rows written per transaction.
const CHUNK: usize = 1000;
/// Row errors returned (the count covers them all).
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// Statuses retried when the campaign does not say.
pub const DEFAULT_RETRY_ON: [CallStatus; 4] = [
    CallStatus::Busy,
    CallStatus::NoAnswer,
    CallStatus::Failed,
    CallStatus::Error,
];

/// How a campaign reaches its recipients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Channel {
    /// An agent phones each recipient.
    #[default]
    Call,
    /// An approved WhatsApp template is sent to each recipient.
    WhatsApp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Call => "CALL",
            Channel::WhatsApp => "WHATSAPP",
        }
    }

    pub fn of(c: &campaign::Model) -> Channel {
        if c.channel == "WHATSAPP" {
            Channel::WhatsApp
        } else {
            Channel::Call
        }
    }
}

/// The template a WhatsApp campaign sends, and the CSV columns that fill its parameters
/// in order.
#[derive(Debug, Clone, Default)]
pub struct TemplateChoice {
    pub name: String,
    pub language: String,
    pub parameter_columns: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateCampaign {
    pub name: String,
    pub channel: Channel,
    /// Required for call campaigns; WhatsApp campaigns have none.
    pub agent_id: Option<Uuid>,
    /// Required for WhatsApp campaigns.
    pub template: Option<TemplateChoice>,
    pub concurrency_limit: Option<i32>,
    pub max_attempts: Option<i32>,
    /// One delay for every retry, or one per retry (the last repeats), in minutes.
    pub retry_delay_minutes: Vec<i32>,
    pub retry_on: Option<Vec<CallStatus>>,
    pub calling_window: Option<CallingWindow>,
    pub timezone: Option<String>,
    pub dry_run: bool,
}

/// What an import did (or, on a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub campaign: Option<campaign::Model>,
    pub accepted: u64,
    /// The first [`MAX_REPORTED_ERRORS`] bad rows, in file order.
    pub rejected: Vec<RowError>,
    pub rejected_count: u64,
    pub duplicates: u64,
    pub do_not_call: u64,
}

impl ImportReport {
    fn reject(&mut self, e: RowError) {
        self.rejected_count += 1;
        match e.problem {
            RowProblem::DuplicateInFile => self.duplicates += 1,
            RowProblem::DoNotCallList | RowProblem::CustomerDoNotCall => self.do_not_call += 1,
            _ => {}
        }
        // Rows refused at write time arrive after later rows refused while reading: kept
        // sorted by line, and only the first lines.
        self.rejected.push(e);
        if self.rejected.len() >= 2 * MAX_REPORTED_ERRORS {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.rejected.sort_by_key(|e| e.line);
        self.rejected.truncate(MAX_REPORTED_ERRORS);
    }
}

fn validate(scope: &TenantScope, input: &CreateCampaign) -> DomainResult<()> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(DomainError::invalid("name", "must be 1 to 200 characters"));
    }
    if let Some(c) = input.concurrency_limit
        && !(1..=1000).contains(&c)
    {
        return Err(DomainError::invalid(
            "concurrencyLimit",
            "must be 1 to 1000",
        ));
    }
    if let Some(m) = input.max_attempts
        && !(1..=10).contains(&m)
    {
        return Err(DomainError::invalid("maxAttempts", "must be 1 to 10"));
    }
    if input.retry_delay_minutes.len() > 10
        || input
            .retry_delay_minutes
            .iter()
            .any(|d| !(1..=10_080).contains(d))
    {
        return Err(DomainError::invalid(
            "retryDelayMinutes",
            "at most 10 delays, each 1 to 10080 minutes",
        ));
    }
    if let Some(on) = &input.retry_on
        && on
            .iter()
            .any(|s| !s.is_terminal() || *s == CallStatus::Completed)
    {
        return Err(DomainError::invalid(
            "retryOn",
            "only call endings other than COMPLETED can be retried",
        ));
    }
    if let Some(w) = &input.calling_window {
        Window::parse(w)?;
    }
    if let Some(t) = &input.template
        && (t.name.trim().is_empty()
            || t.name.len() > 512
            || t.language.trim().is_empty()
            || t.language.len() > 20
            || t.parameter_columns.len() > 100
            || t.parameter_columns
                .iter()
                .any(|c| c.trim().is_empty() || c.len() > 200))
    {
        return Err(DomainError::invalid(
            "template",
            "a name (at most 512 bytes), a language code (at most 20) and at most 100 parameter columns of 1 to 200 bytes",
        ));
    }
    if let Some(tz) = &input.timezone
        && parse_zone(tz).is_none()
    {
        return Err(DomainError::invalid(
            "timezone",
            "not a time zone of the tz database (e.g. Asia/Kolkata)",
        ));
    }
    let _ = scope;
    Ok(())
}

/// Creates a campaign (DRAFT) from `csv`, or with `dry_run` only reports what it would
/// accept. Rows become customers (by E.164, never twice) and queue items, one transaction
/// per chunk of rows.
pub async fn create(
    services: &Services,
    scope: &TenantScope,
    input: CreateCampaign,
    csv: &[u8],
) -> DomainResult<ImportReport> {
    scope.require(Role::Member)?;
    validate(scope, &input)?;
    let db = services.db();
    let mut rows = Rows::open(csv, scope.region())?;
    let agent_id = match (input.channel, input.agent_id, &input.template) {
        (Channel::Call, Some(id), None) => {
            let agent = crate::agents::get(db, scope, id)
                .await
                .map_err(|e| match e {
                    DomainError::NotFound { .. } => {
                        DomainError::invalid("agentId", "agent not found")
                    }
                    other => other,
                })?;
            Some(agent.id)
        }
        (Channel::Call, None, _) => {
            return Err(DomainError::invalid(
                "agentId",
                "a call campaign needs the agent that places its calls",
            ));
        }
        (Channel::Call, Some(_), Some(_)) => {
            return Err(DomainError::invalid(
                "template",
                "only WhatsApp campaigns send a template (channel: WHATSAPP)",
            ));
        }
        (Channel::WhatsApp, Some(_), _) => {
            return Err(DomainError::invalid(
                "agentId",
                "a WhatsApp campaign sends a template; it has no agent",
            ));
        }
        (Channel::WhatsApp, None, None) => {
            return Err(DomainError::invalid(
                "template",
                "a WhatsApp campaign needs the template it sends",
            ));
        }
        (Channel::WhatsApp, None, Some(t)) => {
            crate::whatsapp::check_campaign_template(
                db,
                scope.tenant_id(),
                &t.name,
                &t.language,
                t.parameter_columns.len(),
            )
            .await?;
            rows.require_columns(&t.parameter_columns)?;
            None
        }
    };
    let tenant = entity::tenant::Entity::find_by_id(scope.tenant_id())
        .one(db)
        .await?
        .ok_or(DomainError::not_found("tenant"))?;
    let now = Utc::now();
    let delays = if input.retry_delay_minutes.is_empty() {
        vec![60]
    } else {
        input.retry_delay_minutes.clone()
    };
    let retry_on: Vec<&str> = input
        .retry_on
        .as_deref()
        .unwrap_or(&DEFAULT_RETRY_ON)
        .iter()
        .map(|s| s.as_str())
        .collect();
    let model = campaign::Model {
        id: Uuid::now_v7(),
        tenant_id: scope.tenant_id(),
        agent_id,
        name: input.name.trim().to_owned(),
        channel: input.channel.as_str().to_owned(),
        template_name: input.template.as_ref().map(|t| t.name.clone()),
        template_language: input.template.as_ref().map(|t| t.language.clone()),
        template_parameters: input.template.as_ref().map(|t| json!(t.parameter_columns)),
        status: CampaignStatus::Draft,
        concurrency_limit: input
            .concurrency_limit
            .unwrap_or(tenant.concurrency_limit.clamp(1, 1000)),
        max_attempts: input.max_attempts.unwrap_or(1),
        retry_delays: json!(delays),
        retry_on: json!(retry_on),
        calling_window: input
            .calling_window
            .as_ref()
            .map(|w| serde_json::to_value(w).unwrap_or_default()),
        timezone: input
            .timezone
            .as_deref()
            .and_then(parse_zone)
            .map_or_else(|| tenant.timezone.clone(), |z| z.name().to_owned()),
        paused_reason: None,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    let mut report = ImportReport::default();
    if !input.dry_run {
        campaign::ActiveModel::from(model.clone())
            .insert(db)
            .await?;
    }
    let written = import_rows(db, scope, &model, &mut rows, &mut report, input.dry_run).await;
    if let Err(e) = written {
        if !input.dry_run {
            // No half-imported campaign is left behind.
            let _ = campaign::Entity::delete_by_id(model.id).exec(db).await;
        }
        return Err(e);
    }
    if report.accepted == 0 && !input.dry_run {
        let _ = campaign::Entity::delete_by_id(model.id).exec(db).await;
        return Err(DomainError::invalid(
            "csv",
            format!(
                "no row was accepted ({} rejected; the first: line {} {})",
                report.rejected_count,
                report.rejected.first().map_or(0, |e| e.line),
                report.rejected.first().map_or("", |e| e.problem.reason())
            ),
        ));
    }
    report.trim();
    if !input.dry_run {
        report.campaign = Some(model);
    }
    Ok(report)
}

async fn import_rows(
    db: &DatabaseConnection,
    scope: &TenantScope,
    campaign: &campaign::Model,
    rows: &mut Rows<'_>,
    report: &mut ImportReport,
    dry_run: bool,
) -> DomainResult<()> {
    use futures_util::StreamExt;
    // On PostgreSQL two chunks are written at once (each its own transaction; a file's
    // rows never share a number, so they cannot conflict), so the database works on one
    // while this process reads and prepares the next. SQLite has one writer.
    let parallel = match crate::db::Dialect::of(db) {
        crate::db::Dialect::Postgres => 2,
        crate::db::Dialect::Sqlite => 1,
    };
    let mut in_flight = futures_util::stream::FuturesOrdered::new();
    let mut more = true;
    loop {
        while more && in_flight.len() < parallel {
            let (chunk, rejected) = read_chunk(rows)?;
            rejected.into_iter().for_each(|e| report.reject(e));
            match chunk {
                Some(chunk) => {
                    in_flight.push_back(write_chunk(db, scope, campaign, chunk, dry_run))
                }
                None => more = false,
            }
        }
        let Some(written) = in_flight.next().await else {
            return Ok(());
        };
        let written = written?;
        report.accepted += written.accepted;
        written.rejected.into_iter().for_each(|e| report.reject(e));
    }
}

/// The next `CHUNK` good rows (none at the end of the file), and the rows refused on
/// the way.
#[allow(clippy::type_complexity)]
fn read_chunk(rows: &mut Rows<'_>) -> DomainResult<(Option<Vec<ImportRow>>, Vec<RowError>)> {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut rejected = Vec::new();
    while chunk.len() < CHUNK {
        match rows.next_row()? {
            Some(Parsed::Row(r)) => chunk.push(r),
            Some(Parsed::Rejected(e)) => rejected.push(e),
            None => break,
        }
    }
    Ok(((!chunk.is_empty()).then_some(chunk), rejected))
}

/// What writing one chunk accepted and refused.
struct Written {
    accepted: u64,
    rejected: Vec<RowError>,
}

async fn write_chunk(
    db: &DatabaseConnection,
    scope: &TenantScope,
    campaign: &campaign::Model,
    chunk: Vec<ImportRow>,
    dry_run: bool,
) -> DomainResult<Written> {
    let tenant_id = scope.tenant_id();
    let mut rejected = Vec::new();
    let txn = crate::db::begin_write(db).await?;
    let phones: Vec<&str> = chunk.iter().map(|r| r.phone.as_str()).collect();
    let listed = super::repo::listed_numbers(&txn, tenant_id, &phones).await?;
    let existing = super::repo::customers_by_phone(&txn, tenant_id, &phones).await?;
    let mut accepted = Vec::with_capacity(chunk.len());
    for row in chunk {
        let problem = if listed.contains(row.phone.as_str()) {
            Some(RowProblem::DoNotCallList)
        } else if existing
            .get(row.phone.as_str())
            .is_some_and(|c| c.1 == LeadStatus::DoNotCall)
        {
            Some(RowProblem::CustomerDoNotCall)
        } else {
            None
        };
        match problem {
            Some(problem) => rejected.push(RowError {
                line: row.line,
                phone_number: row.raw.clone(),
                problem,
            }),
            None => accepted.push(row),
        }
    }
    let written = Written {
        accepted: accepted.len() as u64,
        rejected,
    };
    if dry_run || accepted.is_empty() {
        return Ok(written);
    }
    let now = Utc::now();
    let mut ids: HashMap<String, Uuid> = existing.into_iter().map(|(k, v)| (k, v.0)).collect();
    let new: Vec<&ImportRow> = accepted
        .iter()
        .filter(|r| !ids.contains_key(r.phone.as_str()))
        .collect();
    ids.extend(super::repo::insert_customers(&txn, tenant_id, &new, now).await?);
    super::repo::insert_items(&txn, campaign, &accepted, &ids, now).await?;
    txn.commit().await?;
    Ok(written)
}

pub async fn get(
    db: &DatabaseConnection,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<Option<campaign::Model>> {
    Ok(campaign::Entity::find_by_id(id)
        .filter(campaign::Column::TenantId.eq(scope.tenant_id()))
        .one(db)
        .await?)
}

/// The tenant's campaigns among `ids` (for loaders).
pub async fn by_ids(
    db: &DatabaseConnection,
    scope: &TenantScope,
    ids: &[Uuid],
) -> DomainResult<Vec<campaign::Model>> {
    Ok(campaign::Entity::find()
        .filter(campaign::Column::TenantId.eq(scope.tenant_id()))
        .filter(campaign::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn count(db: &DatabaseConnection, scope: &TenantScope) -> DomainResult<u64> {
    use sea_orm::PaginatorTrait;
    Ok(campaign::Entity::find()
        .filter(campaign::Column::TenantId.eq(scope.tenant_id()))
        .count(db)
        .await?)
}

pub async fn list(
    db: &DatabaseConnection,
    scope: &TenantScope,
    page: PageRequest,
) -> DomainResult<Page<campaign::Model>> {
    let q = campaign::Entity::find().filter(campaign::Column::TenantId.eq(scope.tenant_id()));
    pagination::fetch(db, q, campaign::Column::Id, page).await
}

pub async fn items(
    db: &DatabaseConnection,
    scope: &TenantScope,
    campaign_id: Uuid,
    status: Option<QueueItemStatus>,
    page: PageRequest,
) -> DomainResult<Page<campaign_item::Model>> {
    let mut q = campaign_item::Entity::find()
        .filter(campaign_item::Column::TenantId.eq(scope.tenant_id()))
        .filter(campaign_item::Column::CampaignId.eq(campaign_id));
    if let Some(s) = status {
        q = q.filter(campaign_item::Column::Status.eq(s));
    }
    // Ids are made in file order.
    pagination::fetch_ascending(db, q, campaign_item::Column::Id, page).await
}

/// How many items are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub campaign_id: Uuid,
    pub total: i64,
    pub pending: i64,
    pub dispatching: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub failed: i64,
    pub skipped: i64,
    pub canceled: i64,
}

impl Stats {
    /// Items that may still be dialled or are being dialled.
    pub fn active(&self) -> i64 {
        self.pending + self.dispatching + self.in_progress
    }
}

pub async fn stats<C: ConnectionTrait>(conn: &C, campaign_id: Uuid) -> DomainResult<Stats> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "SELECT status, COUNT(*) AS n FROM campaign_items WHERE campaign_id = {} GROUP BY status",
        b.bind(campaign_id)
    );
    let mut s = Stats {
        campaign_id,
        ..Stats::default()
    };
    for row in conn.query_all_raw(b.statement(sql)).await? {
        let n: i64 = row.try_get("", "n")?;
        let status: QueueItemStatus = row.try_get("", "status")?;
        s.total += n;
        match status {
            QueueItemStatus::Pending => s.pending += n,
            QueueItemStatus::Dispatching => s.dispatching += n,
            QueueItemStatus::InProgress => s.in_progress += n,
            QueueItemStatus::Completed => s.completed += n,
            QueueItemStatus::Failed => s.failed += n,
            QueueItemStatus::Skipped => s.skipped += n,
            QueueItemStatus::Canceled => s.canceled += n,
        }
    }
    Ok(s)
}

/// How many of a campaign's recipients each outcome ended with: the current analysis of
/// each item's latest call (items not analysed yet are not counted).
pub async fn outcome_counts<C: ConnectionTrait>(
    conn: &C,
    campaign_id: Uuid,
) -> DomainResult<Vec<(crate::types::CallOutcome, i64)>> {
    let mut b = Binder::new(conn.get_database_backend());
    let sql = format!(
        "SELECT a.outcome AS outcome, COUNT(*) AS n FROM campaign_items i \
         JOIN call_analyses a ON a.call_id = i.call_id AND a.current AND a.status = 'DONE' \
         WHERE i.campaign_id = {} AND a.outcome IS NOT NULL GROUP BY a.outcome ORDER BY a.outcome",
        b.bind(campaign_id)
    );
    let mut out = Vec::new();
    for row in conn.query_all_raw(b.statement(sql)).await? {
        out.push((row.try_get("", "outcome")?, row.try_get("", "n")?));
    }
    Ok(out)
}

/// Publishes a campaign's progress for dashboards (after the commit that changed it).
pub(crate) async fn publish_progress(services: &Services, tenant_id: Uuid, campaign_id: Uuid) {
    let event = Event::CampaignProgress {
        tenant_id,
        campaign_id,
        at: Utc::now(),
    };
    if let Err(e) = services.events().publish(event).await {
        tracing::warn!(error = %e, "could not publish campaign progress");
    }
}

/// Moves the campaign from one of `from` to `to` in one statement; the campaign as it is
/// afterwards, or a clear error when it was not in a state that allows the move.
async fn move_status<C: ConnectionTrait>(
    conn: &C,
    scope: &TenantScope,
    id: Uuid,
    from: &[CampaignStatus],
    to: CampaignStatus,
    paused_reason: Option<&str>,
    verb: &str,
) -> DomainResult<campaign::Model> {
    let now = Utc::now();
    let mut b = Binder::new(conn.get_database_backend());
    let started = if to == CampaignStatus::Running {
        format!(", started_at = COALESCE(started_at, {})", b.bind(now))
    } else {
        String::new()
    };
    let finished = if to.is_finished() {
        format!(", finished_at = {}", b.bind(now))
    } else {
        String::new()
    };
    let from_list = b.list(from.iter().map(|s| s.as_str().into()));
    let sql = format!(
        "UPDATE campaigns SET status = {}, paused_reason = {}, updated_at = {}{started}{finished} \
         WHERE id = {} AND tenant_id = {} AND status IN ({from_list})",
        b.bind(to.as_str()),
        b.bind(paused_reason.map(str::to_owned)),
        b.bind(now),
        b.bind(id),
        b.bind(scope.tenant_id()),
    );
    let moved = conn.execute_raw(b.statement(sql)).await?.rows_affected();
    let model = campaign::Entity::find_by_id(id)
        .filter(campaign::Column::TenantId.eq(scope.tenant_id()))
        .one(conn)
        .await?
        .ok_or(DomainError::not_found("campaign"))?;
    if moved == 0 {
        return Err(DomainError::invalid(
            "id",
            format!("a {} campaign cannot be {verb}", model.status),
        ));
    }
    let kind = match to {
        CampaignStatus::Running if from.contains(&CampaignStatus::Draft) => {
            EventType::CampaignStarted
        }
        CampaignStatus::Running => EventType::CampaignResumed,
        CampaignStatus::Paused => EventType::CampaignPaused,
        CampaignStatus::Completed => EventType::CampaignCompleted,
        _ => EventType::CampaignCanceled,
    };
    crate::outbound::record_events(conn, vec![payloads::campaign_event(kind, &model)]).await?;
    Ok(model)
}

async fn dispatch_now<C: ConnectionTrait>(conn: &C, c: &campaign::Model) -> DomainResult<()> {
    jobs::enqueue(
        conn,
        &DispatchCampaign {
            tenant_id: c.tenant_id,
            campaign_id: c.id,
        },
        Utc::now(),
    )
    .await?;
    Ok(())
}

/// DRAFT -> RUNNING: dialling begins.
pub async fn start(
    services: &Services,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<campaign::Model> {
    scope.require(Role::Member)?;
    let txn = crate::db::begin_write(services.db()).await?;
    let c = move_status(
        &txn,
        scope,
        id,
        &[CampaignStatus::Draft],
        CampaignStatus::Running,
        None,
        "started",
    )
    .await?;
    dispatch_now(&txn, &c).await?;
    txn.commit().await?;
    jobs::wake(DispatchCampaign::LANE);
    jobs::wake(Lane::Webhooks);
    publish_progress(services, c.tenant_id, c.id).await;
    Ok(c)
}

/// RUNNING -> PAUSED: no new dials; calls in flight finish and are recorded.
pub async fn pause(
    services: &Services,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<campaign::Model> {
    scope.require(Role::Member)?;
    let txn = crate::db::begin_write(services.db()).await?;
    // A campaign paused for want of credit stays paused after a top-up once a user pauses it.
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE campaigns SET paused_reason = {}, updated_at = {} WHERE id = {} AND tenant_id = {} \
         AND status = 'PAUSED' AND paused_reason = {}",
        b.bind("paused by request"),
        b.bind(Utc::now()),
        b.bind(id),
        b.bind(scope.tenant_id()),
        b.bind(crate::credits::PAUSED_FOR_BALANCE),
    );
    if txn.execute_raw(b.statement(sql)).await?.rows_affected() > 0 {
        let c = campaign::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(DomainError::not_found("campaign"))?;
        txn.commit().await?;
        return Ok(c);
    }
    let c = move_status(
        &txn,
        scope,
        id,
        &[CampaignStatus::Running],
        CampaignStatus::Paused,
        Some("paused by request"),
        "paused",
    )
    .await?;
    txn.commit().await?;
    jobs::wake(Lane::Webhooks);
    publish_progress(services, c.tenant_id, c.id).await;
    Ok(c)
}

/// PAUSED -> RUNNING, whatever paused it.
pub async fn resume(
    services: &Services,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<campaign::Model> {
    scope.require(Role::Member)?;
    let txn = crate::db::begin_write(services.db()).await?;
    let c = move_status(
        &txn,
        scope,
        id,
        &[CampaignStatus::Paused],
        CampaignStatus::Running,
        None,
        "resumed",
    )
    .await?;
    dispatch_now(&txn, &c).await?;
    txn.commit().await?;
    jobs::wake(DispatchCampaign::LANE);
    jobs::wake(Lane::Webhooks);
    publish_progress(services, c.tenant_id, c.id).await;
    Ok(c)
}

/// -> CANCELED: pending items are canceled; calls in flight finish and are recorded.
pub async fn cancel(
    services: &Services,
    scope: &TenantScope,
    id: Uuid,
) -> DomainResult<campaign::Model> {
    scope.require(Role::Member)?;
    let txn = crate::db::begin_write(services.db()).await?;
    let c = move_status(
        &txn,
        scope,
        id,
        &[
            CampaignStatus::Draft,
            CampaignStatus::Running,
            CampaignStatus::Paused,
        ],
        CampaignStatus::Canceled,
        None,
        "canceled",
    )
    .await?;
    let mut b = Binder::new(txn.get_database_backend());
    let sql = format!(
        "UPDATE campaign_items SET status = 'CANCELED', updated_at = {} WHERE campaign_id = {} AND status = 'PENDING'",
        b.bind(Utc::now()),
        b.bind(c.id)
    );
    txn.execute_raw(b.statement(sql)).await?;
    txn.commit().await?;
    jobs::wake(Lane::Webhooks);
    publish_progress(services, c.tenant_id, c.id).await;
    Ok(c)
}

/// The statuses a campaign retries.
pub(crate) fn retry_on(c: &campaign::Model) -> HashSet<CallStatus> {
    c.retry_on
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_else(|| DEFAULT_RETRY_ON.into_iter().collect())
}

/// Minutes before retry number `n` (1 for the first retry).
pub(crate) fn retry_delay_minutes(c: &campaign::Model, n: i32) -> i64 {
    let delays: Vec<i64> = c
        .retry_delays
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
        .unwrap_or_default();
    let i = (n.max(1) as usize - 1).min(delays.len().saturating_sub(1));
    delays.get(i).copied().unwrap_or(60).clamp(1, 10_080)
}

pub(crate) fn window_of(c: &campaign::Model) -> Option<Window> {
    let w: CallingWindow = serde_json::from_value(c.calling_window.clone()?).ok()?;
    Window::parse(&w).ok()
}
