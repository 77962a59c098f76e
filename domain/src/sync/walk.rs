//! Walking everything a provider account holds for a time range: every agent (or the
//! whole organisation), 7-day windows, page after page; each execution visited once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entity::{agent, tenant};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::phone::Region;
use crate::providers::registry::ProviderLookupError;
use crate::providers::{AgentListing, CallReport, DynProvider, ListQuery, ProviderError};
use crate::services::Services;
use crate::types::Provider;

/// Bolna rejects windows over 7 days; every provider is walked in such windows.
const WINDOW: Duration = Duration::days(7);
/// Pages walked for one window before giving up on it (a provider that never says "no more").
const MAX_PAGES: usize = 10_000;

/// One tenant's account at one provider, ready to walk.
pub(crate) struct Account {
    pub client: DynProvider,
    pub tenant: tenant::Model,
    pub region: Region,
    /// Agents registered here, by provider agent id.
    pub registered: HashMap<String, agent::Model>,
    targets: Vec<Option<String>>,
}

/// Connects to the account. `Err` means nothing can be walked (bad credentials, ...).
pub(crate) async fn open(
    services: &Services,
    tenant_id: Uuid,
    provider: Provider,
) -> Result<Account, String> {
    let db = services.db();
    let tenant = tenant::Entity::find_by_id(tenant_id)
        .one(db)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the tenant no longer exists")?;
    let region = Region::parse(&tenant.default_region).map_err(|e| e.to_string())?;
    let client = match services.providers().for_tenant(tenant.id, provider).await {
        Ok(c) => c,
        Err(ProviderLookupError::Provider(e)) => return Err(e.to_string()),
        Err(ProviderLookupError::Domain(e)) => return Err(e.to_string()),
    };
    let registered: HashMap<String, agent::Model> = agent::Entity::find()
        .filter(agent::Column::TenantId.eq(tenant.id))
        .filter(agent::Column::Provider.eq(provider))
        .all(db)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|a| (a.provider_agent_id.clone(), a))
        .collect();
    // Every agent the account has, not only those registered here: calls of the others
    // are counted so nothing goes unnoticed.
    let targets = match client.list_agents().await {
        Ok(AgentListing::PerAgent(ids)) => {
            let mut all: Vec<String> = ids;
            all.extend(registered.keys().cloned());
            all.sort();
            all.dedup();
            all.into_iter().map(Some).collect()
        }
        Ok(AgentListing::OrganizationWide) => vec![None],
        Err(e @ ProviderError::Credentials { .. }) => return Err(e.to_string()),
        Err(e) => return Err(format!("listing the provider's agents: {e}")),
    };
    Ok(Account {
        client,
        tenant,
        region,
        registered,
        targets,
    })
}

pub(crate) enum Step {
    Report(Box<CallReport>),
    PageDone,
}

/// Visits every execution in `[since, until)` once: `next()` yields the executions of a
/// page, then `PageDone`, page after page. Pages that fail (after the client's retries)
/// are skipped and kept in `errors`.
pub(crate) struct Walker {
    account: Arc<Account>,
    until: DateTime<Utc>,
    since: DateTime<Utc>,
    target: usize,
    from: DateTime<Utc>,
    cursor: Option<String>,
    pages: usize,
    /// The current window has no more pages.
    window_done: bool,
    buffer: std::collections::VecDeque<CallReport>,
    page_pending: bool,
    seen: HashSet<String>,
    /// The first `MAX_ERRORS` errors; `errors_dropped` counts the rest.
    pub errors: Vec<String>,
    pub errors_dropped: usize,
    /// Executions listed but not readable (their detail failed); they are in `errors`.
    pub unreadable: i32,
}

impl Walker {
    pub(crate) fn new(account: Arc<Account>, since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Walker {
            account,
            until,
            since,
            target: 0,
            from: since,
            cursor: None,
            pages: 0,
            window_done: false,
            buffer: Default::default(),
            page_pending: false,
            seen: HashSet::new(),
            errors: Vec::new(),
            errors_dropped: 0,
            unreadable: 0,
        }
    }

    fn error(&mut self, e: String) {
        const MAX_ERRORS: usize = 100;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(e);
        } else {
            self.errors_dropped += 1;
        }
    }

    pub(crate) async fn next(&mut self) -> Option<Step> {
        loop {
            while let Some(report) = self.buffer.pop_front() {
                // Offset paging can show a row twice.
                if !self.seen.insert(report.execution_id.clone()) {
                    continue;
                }
                match complete(&self.account, report).await {
                    Ok(r) => return Some(Step::Report(Box::new(r))),
                    Err(e) => {
                        self.unreadable += 1;
                        self.error(e);
                    }
                }
            }
            if self.page_pending {
                self.page_pending = false;
                return Some(Step::PageDone);
            }
            if !self.advance() {
                return None;
            }
            self.fetch().await;
        }
    }

    /// Moves to the next window or agent when the current window is done; false at the end.
    fn advance(&mut self) -> bool {
        if self.window_done || self.pages >= MAX_PAGES {
            self.window_done = false;
            self.pages = 0;
            self.cursor = None;
            self.from = (self.from + WINDOW).min(self.until);
        }
        if self.from >= self.until {
            self.target += 1;
            self.from = self.since;
        }
        self.target < self.account.targets.len() && self.from < self.until
    }

    async fn fetch(&mut self) {
        let target = self.account.targets[self.target].clone();
        let to = (self.from + WINDOW).min(self.until);
        let query = ListQuery {
            provider_agent_id: target.clone(),
            from: self.from,
            to,
            cursor: self.cursor.clone(),
        };
        self.pages += 1;
        match self.account.client.list_executions(query).await {
            Ok(page) => {
                self.buffer.extend(page.reports);
                self.page_pending = true;
                match page.next {
                    Some(n) => self.cursor = Some(n),
                    None => self.window_done = true,
                }
            }
            Err(e) => {
                self.error(format!(
                    "agent {} window {} to {}: {e}",
                    target.as_deref().unwrap_or("(all)"),
                    self.from.to_rfc3339(),
                    to.to_rfc3339()
                ));
                self.window_done = true;
            }
        }
    }
}

/// List items of some providers (Teli) carry no numbers or transcript: fetch the call.
async fn complete(account: &Account, report: CallReport) -> Result<CallReport, String> {
    if report.provider == Provider::Teli
        && report.to_number.is_none()
        && report.from_number.is_none()
    {
        return account
            .client
            .fetch_execution(&report.execution_id)
            .await
            .map_err(|e| format!("call {}: {e}", report.execution_id));
    }
    Ok(report)
}
