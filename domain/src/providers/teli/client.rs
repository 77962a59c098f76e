//! Teli's call history: `GET /v1/voice/calls` and `GET /v1/voice/calls/{id}`.

use chrono::{SecondsFormat, TimeZone, Utc};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::dto::{CallEnvelope, CallList};
use super::transform::parse_call;
use crate::http::{Auth, HttpClient, path_segment};
use crate::providers::{
    AgentListing, CallProvider, CallReport, ExecutionPage, ListQuery, PlaceCall, PlacedCall,
    ProviderError, ProviderResult,
};
use crate::types::Provider;

/// Teli returns at most 100 calls a request.
pub const PAGE_SIZE: usize = 100;

pub struct Teli {
    http: HttpClient,
    base_url: String,
    auth: Auth,
    organization_id: Option<String>,
}

impl Teli {
    pub fn new(
        http: HttpClient,
        base_url: &str,
        api_key: &str,
        organization_id: Option<String>,
    ) -> Self {
        Teli {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth: Auth::Header("X-API-Key", api_key.to_owned()),
            organization_id,
        }
    }

    fn org(&self) -> ProviderResult<String> {
        self.organization_id
            .clone()
            .ok_or(ProviderError::Unsupported(
                "Teli needs an organizationId in its credentials",
            ))
    }

    async fn fetch(&self, id: String) -> ProviderResult<CallReport> {
        let url = format!("{}/v1/voice/calls/{}", self.base_url, path_segment(&id)?);
        let query = [("organization_id", self.org()?)];
        let env: CallEnvelope = self.http.get_json(&url, &query, &self.auth).await?;
        parse_call(env.call)
    }

    /// Newest first, no cursor: the next page is the same query with its upper bound
    /// moved to just before the oldest call seen (`cursor` = that bound in epoch ms).
    async fn list(&self, q: ListQuery) -> ProviderResult<ExecutionPage> {
        let upper = match q.cursor.as_deref() {
            None => q.to,
            Some(c) => c
                .parse::<i64>()
                .ok()
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
                .ok_or_else(|| ProviderError::Decode(format!("bad cursor {c:?}")))?,
        };
        let mut query = vec![
            ("organization_id", self.org()?),
            ("is_admin", "true".to_owned()),
            ("limit", PAGE_SIZE.to_string()),
            (
                "start_date",
                q.from.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
            (
                "end_date",
                upper.to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        ];
        if let Some(agent) = q.provider_agent_id {
            query.push(("agent_id", agent));
        }
        let url = format!("{}/v1/voice/calls", self.base_url);
        let list: CallList = self.http.get_json(&url, &query, &self.auth).await?;
        let full_page = list.calls.len() >= PAGE_SIZE;
        let mut reports = Vec::with_capacity(list.calls.len());
        for item in list.calls {
            match parse_call(item) {
                Ok(r) => reports.push(r),
                Err(e) => tracing::warn!(error = %e, "skipped an unreadable Teli call"),
            }
        }
        let oldest = reports.iter().filter_map(|r| r.started_at).min();
        let next = match oldest {
            // Calls sharing the oldest millisecond may straddle pages: the overlap of one
            // millisecond is re-read, and ingestion dedupes it.
            Some(t) if full_page && t > q.from && t < upper => {
                Some(t.timestamp_millis().to_string())
            }
            _ => None,
        };
        Ok(ExecutionPage { reports, next })
    }
}

impl CallProvider for Teli {
    fn kind(&self) -> Provider {
        Provider::Teli
    }

    fn place_call(&self, _call: PlaceCall) -> BoxFuture<'_, ProviderResult<PlacedCall>> {
        async {
            Err(ProviderError::Unsupported(
                "Teli has no API to start a single call (only campaigns)",
            ))
        }
        .boxed()
    }

    fn fetch_execution(&self, execution_id: &str) -> BoxFuture<'_, ProviderResult<CallReport>> {
        self.fetch(execution_id.to_owned()).boxed()
    }

    fn list_executions(&self, query: ListQuery) -> BoxFuture<'_, ProviderResult<ExecutionPage>> {
        self.list(query).boxed()
    }

    /// `is_admin=true` lists the whole organisation's calls without naming agents.
    fn list_agents(&self) -> BoxFuture<'_, ProviderResult<AgentListing>> {
        async { Ok(AgentListing::OrganizationWide) }.boxed()
    }
}
