//! `POST /campaigns/import`: `createCampaign` for files too large for a GraphQL request
//! (up to 20 MiB and 200,000 rows). The body is the CSV itself; the other fields of
//! `CreateCampaignInput` are query parameters with the same names (lists comma-separated,
//! the window as `callingWindow.start`, `callingWindow.end`, `callingWindow.days`). Same
//! bearer key, same roles (MEMBER or ADMIN), and the same report as JSON.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::DomainError;
use domain::campaigns::{self, CallingWindow, CreateCampaign, ImportReport};
use domain::types::CallStatus;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::graphql::context::Caller;
use crate::graphql::error::{BAD_USER_INPUT, FORBIDDEN, INTERNAL, UNAUTHENTICATED, refusal};

/// The query parameters: `CreateCampaignInput` without `csv`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Params {
    name: String,
    agent_id: Option<String>,
    /// CALL (default) or WHATSAPP.
    channel: Option<String>,
    #[serde(rename = "template.name")]
    template_name: Option<String>,
    #[serde(rename = "template.language")]
    template_language: Option<String>,
    /// Comma-separated.
    #[serde(rename = "template.parameterColumns")]
    template_parameter_columns: Option<String>,
    concurrency_limit: Option<i32>,
    max_attempts: Option<i32>,
    /// One delay, or several comma-separated.
    retry_delay_minutes: Option<String>,
    retry_delays_minutes: Option<String>,
    retry_on: Option<String>,
    #[serde(rename = "callingWindow.start")]
    window_start: Option<String>,
    #[serde(rename = "callingWindow.end")]
    window_end: Option<String>,
    #[serde(rename = "callingWindow.days")]
    window_days: Option<String>,
    timezone: Option<String>,
    dry_run: Option<bool>,
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    (status, Json(refusal(code, message))).into_response()
}

fn invalid(field: &'static str, message: &str) -> Response {
    let body = json!({ "errors": [ {
        "message": format!("{field}: {message}"),
        "extensions": { "code": BAD_USER_INPUT, "field": field },
    } ] });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// A query parameter that cannot be used: its name and why.
struct BadParam(&'static str, String);

fn minutes(field: &'static str, s: &str) -> Result<Vec<i32>, BadParam> {
    list(s)
        .map(|p| {
            p.parse()
                .map_err(|_| BadParam(field, "must be whole minutes, comma-separated".into()))
        })
        .collect()
}

impl Params {
    fn into_domain(self) -> Result<CreateCampaign, BadParam> {
        let agent_id = self
            .agent_id
            .as_deref()
            .map(|a| {
                uuid::Uuid::try_parse(a)
                    .map_err(|_| BadParam("agentId", "is not a valid ID".into()))
            })
            .transpose()?;
        let channel = match self.channel.as_deref() {
            None | Some("CALL") => campaigns::Channel::Call,
            Some("WHATSAPP") => campaigns::Channel::WhatsApp,
            Some(_) => return Err(BadParam("channel", "must be CALL or WHATSAPP".into())),
        };
        let template = match (self.template_name, self.template_language) {
            (None, None) if self.template_parameter_columns.is_none() => None,
            (Some(name), language) => Some(campaigns::TemplateChoice {
                name,
                language: language.unwrap_or_else(|| "en_US".into()),
                parameter_columns: self
                    .template_parameter_columns
                    .as_deref()
                    .map(|c| list(c).map(str::to_owned).collect())
                    .unwrap_or_default(),
            }),
            _ => return Err(BadParam("template", "give template.name".into())),
        };
        let retry_delay_minutes = match (&self.retry_delays_minutes, &self.retry_delay_minutes) {
            (Some(list), _) => minutes("retryDelaysMinutes", list)?,
            (None, Some(one)) => minutes("retryDelayMinutes", one)?,
            (None, None) => vec![60],
        };
        let retry_on = self
            .retry_on
            .as_deref()
            .map(|s| {
                list(s)
                    .map(|p| p.parse::<CallStatus>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| BadParam("retryOn", e.to_string()))
            })
            .transpose()?;
        let calling_window = match (self.window_start, self.window_end, self.window_days) {
            (None, None, None) => None,
            (Some(start), Some(end), days) => Some(CallingWindow {
                start,
                end,
                days: days.as_deref().map_or_else(
                    || {
                        ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
                            .map(String::from)
                            .to_vec()
                    },
                    |d| list(d).map(str::to_owned).collect(),
                ),
            }),
            _ => {
                return Err(BadParam(
                    "callingWindow",
                    "give callingWindow.start and callingWindow.end together".into(),
                ));
            }
        };
        Ok(CreateCampaign {
            name: self.name,
            agent_id,
            channel,
            template,
            concurrency_limit: self.concurrency_limit,
            max_attempts: Some(self.max_attempts.unwrap_or(1)),
            retry_delay_minutes,
            retry_on,
            calling_window,
            timezone: self.timezone,
            dry_run: self.dry_run.unwrap_or(false),
        })
    }
}

/// The domain's refusal as HTTP: the status that says who is at fault, the GraphQL-style
/// error body the rest of the API uses.
fn refuse_domain(err: &DomainError) -> Response {
    match err {
        DomainError::Unauthenticated => {
            refuse(StatusCode::UNAUTHORIZED, UNAUTHENTICATED, &err.to_string())
        }
        DomainError::Forbidden(_) => refuse(StatusCode::FORBIDDEN, FORBIDDEN, &err.to_string()),
        DomainError::NotFound { .. } => {
            refuse(StatusCode::NOT_FOUND, "NOT_FOUND", &err.to_string())
        }
        DomainError::InvalidInput { field, message } => match field {
            Some(f) => invalid(f, message),
            None => refuse(StatusCode::BAD_REQUEST, BAD_USER_INPUT, message),
        },
        DomainError::Conflict { message, .. } => refuse(StatusCode::CONFLICT, "CONFLICT", message),
        DomainError::Database(_) | DomainError::Internal(_) => {
            tracing::error!(error = %err, "campaign import failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL,
                "internal error",
            )
        }
    }
}

fn report_json(r: &ImportReport) -> serde_json::Value {
    json!({
        "campaign": r.campaign.as_ref().map(|c| json!({
            "id": c.id,
            "name": c.name,
            "status": c.status,
            "concurrencyLimit": c.concurrency_limit,
            "maxAttempts": c.max_attempts,
            "timezone": c.timezone,
            "createdAt": c.created_at,
        })),
        "accepted": r.accepted,
        "rejected": r.rejected.iter().map(|e| json!({
            "line": e.line,
            "phoneNumber": e.phone_number,
            "reason": e.problem.reason(),
            "code": e.problem.code(),
        })).collect::<Vec<_>>(),
        "rejectedCount": r.rejected_count,
        "duplicates": r.duplicates,
        "doNotCall": r.do_not_call,
    })
}

pub async fn import(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let scope = match crate::graphql::http::caller(&state, &headers, peer).await {
        Err(response) => return response,
        Ok(Caller::Tenant { scope, .. }) => scope,
        Ok(Caller::Unverifiable) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL,
                "internal error",
            );
        }
        Ok(Caller::Operator) => {
            return refuse(
                StatusCode::FORBIDDEN,
                FORBIDDEN,
                "the operator token only creates tenants; use a tenant's API key",
            );
        }
        Ok(Caller::Anonymous) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                UNAUTHENTICATED,
                "send a tenant API key as Authorization: Bearer <key>",
            );
        }
    };
    let params: Params = match serde_urlencoded::from_str(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                BAD_USER_INPUT,
                &format!("query parameters: {e} (name and agentId are required)"),
            );
        }
    };
    let input = match params.into_domain() {
        Ok(i) => i,
        Err(BadParam(field, message)) => return invalid(field, &message),
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!(
                    "the file is larger than {} bytes",
                    campaigns::MAX_FILE_BYTES
                )
            } else {
                rejection.body_text()
            };
            return refuse(status, BAD_USER_INPUT, &message);
        }
    };
    match campaigns::create(&state.services, &scope, input, &body).await {
        Ok(report) => (StatusCode::OK, Json(report_json(&report))).into_response(),
        Err(e) => refuse_domain(&e),
    }
}
