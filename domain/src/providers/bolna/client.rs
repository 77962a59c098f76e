//! Bolna's REST API: `POST /call`, `GET /executions/{id}`, `GET /v2/agent/{id}/executions`.

use chrono::SecondsFormat;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;

use super::dto::{AgentItem, ExecutionList, PlaceCallResponse};
use super::transform::parse_execution;
use crate::http::{Auth, HttpClient, path_segment};
use crate::providers::{
    AgentListing, CallProvider, CallReport, ExecutionPage, ListQuery, PlaceCall, PlacedCall,
    ProviderError, ProviderResult,
};
use crate::types::Provider;

/// Bolna allows at most 50 executions a page.
pub const PAGE_SIZE: u32 = 50;
/// Bolna rejects `from`/`to` windows wider than this.
pub const MAX_WINDOW: chrono::Duration = chrono::Duration::days(7);

pub struct Bolna {
    http: HttpClient,
    base_url: String,
    auth: Auth,
}

impl Bolna {
    pub fn new(http: HttpClient, base_url: &str, api_key: &str) -> Self {
        Bolna {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth: Auth::Bearer(api_key.to_owned()),
        }
    }

    async fn place(&self, call: PlaceCall) -> ProviderResult<PlacedCall> {
        let mut body = json!({
            "agent_id": call.provider_agent_id,
            "recipient_phone_number": call.to_number,
        });
        if let Some(from) = call.from_number {
            body["from_phone_number"] = json!(from);
        }
        if let Some(vars) = call.variables.as_object().filter(|o| !o.is_empty()) {
            body["user_data"] = json!(vars);
        }
        let url = format!("{}/call", self.base_url);
        let res: PlaceCallResponse = self.http.post_json_once(&url, &body, &self.auth).await?;
        if res.execution_id.trim().is_empty() {
            return Err(ProviderError::Decode("empty execution_id".into()));
        }
        Ok(PlacedCall {
            execution_id: res.execution_id,
        })
    }

    async fn fetch(&self, execution_id: String) -> ProviderResult<CallReport> {
        let url = format!(
            "{}/executions/{}",
            self.base_url,
            path_segment(&execution_id)?
        );
        let raw: serde_json::Value = self.http.get_json(&url, &[], &self.auth).await?;
        parse_execution(raw)
    }

    async fn list(&self, q: ListQuery) -> ProviderResult<ExecutionPage> {
        let agent = q.provider_agent_id.ok_or(ProviderError::Unsupported(
            "Bolna lists executions per agent",
        ))?;
        if q.to - q.from > MAX_WINDOW {
            return Err(ProviderError::Unsupported(
                "Bolna windows are at most 7 days",
            ));
        }
        let page: u32 = match q.cursor.as_deref() {
            None => 1,
            Some(c) => c
                .parse()
                .map_err(|_| ProviderError::Decode(format!("bad cursor {c:?}")))?,
        };
        let url = format!(
            "{}/v2/agent/{}/executions",
            self.base_url,
            path_segment(&agent)?
        );
        let query = [
            ("page_number", page.to_string()),
            ("page_size", PAGE_SIZE.to_string()),
            ("from", q.from.to_rfc3339_opts(SecondsFormat::Secs, true)),
            ("to", q.to.to_rfc3339_opts(SecondsFormat::Secs, true)),
        ];
        let list: ExecutionList = self.http.get_json(&url, &query, &self.auth).await?;
        let mut reports = Vec::with_capacity(list.data.len());
        for item in list.data {
            match parse_execution(item) {
                Ok(r) => reports.push(r),
                Err(e) => tracing::warn!(error = %e, "skipped an unreadable Bolna execution"),
            }
        }
        Ok(ExecutionPage {
            reports,
            next: list
                .has_more
                .then(|| (list.page_number.unwrap_or(page) + 1).to_string()),
        })
    }
}

impl Bolna {
    async fn agents(&self) -> ProviderResult<AgentListing> {
        let url = format!("{}/v2/agent/all", self.base_url);
        let items: Vec<AgentItem> = self.http.get_json(&url, &[], &self.auth).await?;
        Ok(AgentListing::PerAgent(
            items.into_iter().map(|a| a.id).collect(),
        ))
    }
}

impl CallProvider for Bolna {
    fn kind(&self) -> Provider {
        Provider::Bolna
    }

    fn place_call(&self, call: PlaceCall) -> BoxFuture<'_, ProviderResult<PlacedCall>> {
        self.place(call).boxed()
    }

    fn fetch_execution(&self, execution_id: &str) -> BoxFuture<'_, ProviderResult<CallReport>> {
        self.fetch(execution_id.to_owned()).boxed()
    }

    fn list_executions(&self, query: ListQuery) -> BoxFuture<'_, ProviderResult<ExecutionPage>> {
        self.list(query).boxed()
    }

    fn list_agents(&self) -> BoxFuture<'_, ProviderResult<AgentListing>> {
        self.agents().boxed()
    }
}
