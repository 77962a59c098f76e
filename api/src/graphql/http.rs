//! `POST /graphql` and `GET /graphql`, written out rather than taken from
//! async-graphql-axum so the edge can be closed: body cap, batch cap, JSON only
//! (no multipart, so no CSRF through simple requests), no mutations over GET.

use std::time::Instant;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, BatchResponse, Request};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::context::Caller;
use super::error::{BAD_USER_INPUT, assign_codes, refusal};
use crate::app::AppState;

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    (status, Json(refusal(code, message))).into_response()
}

/// Reads `Authorization: Bearer <key>` into a caller; a bad key is simply unauthenticated.
async fn caller(state: &AppState, headers: &HeaderMap) -> Caller {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
    else {
        return Caller::Anonymous;
    };
    if let Some(admin) = &state.settings.admin_token
        && domain::tenancy::secrets_match(token, admin.expose())
    {
        return Caller::Operator;
    }
    match state.auth.authenticate(&state.db, token).await {
        Ok(scope) => Caller::tenant(state.db.clone(), scope),
        Err(domain::DomainError::Unauthenticated) => Caller::Anonymous,
        Err(err) => {
            tracing::error!(error = %err, "authentication lookup failed");
            Caller::Unverifiable
        }
    }
}

pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            return refuse(rejection.status(), BAD_USER_INPUT, &rejection.body_text());
        }
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/graphql-response+json")
        });
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BAD_USER_INPUT,
            "send the request as JSON with Content-Type: application/json",
        );
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                BAD_USER_INPUT,
                &format!("invalid GraphQL request: {e}"),
            );
        }
    };
    execute(&state, &headers, batch).await
}

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(qs) = query.filter(|q| q.contains("query=")) else {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .finish(),
        )
        .into_response();
    };
    let request = match async_graphql::http::parse_query_string(&qs) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                BAD_USER_INPUT,
                &format!("invalid GraphQL request: {e}"),
            );
        }
    };
    if is_mutation(&request) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            BAD_USER_INPUT,
            "mutations are not allowed over GET; use POST",
        );
    }
    execute(&state, &headers, BatchRequest::Single(request)).await
}

/// True when the operation that would run is a mutation (unparsable queries fail later, in execution).
fn is_mutation(request: &Request) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    match doc.operations {
        DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
        DocumentOperations::Multiple(ops) => match &request.operation_name {
            Some(name) => ops
                .iter()
                .any(|(n, op)| n.as_str() == name && op.node.ty == OperationType::Mutation),
            None => ops.values().any(|op| op.node.ty == OperationType::Mutation),
        },
    }
}

async fn execute(state: &AppState, headers: &HeaderMap, batch: BatchRequest) -> Response {
    let max = state.settings.graphql.max_batch;
    let was_batch = matches!(batch, BatchRequest::Batch(_));
    let requests = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(v) if v.is_empty() => {
            return refuse(StatusCode::BAD_REQUEST, BAD_USER_INPUT, "empty batch");
        }
        BatchRequest::Batch(v) if v.len() > max => {
            return refuse(
                StatusCode::BAD_REQUEST,
                BAD_USER_INPUT,
                &format!("a batch may hold at most {max} operations"),
            );
        }
        BatchRequest::Batch(v) => v,
    };
    let caller = caller(state, headers).await;
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        let operation = crate::metrics::operation_label(request.operation_name.as_deref());
        let started = Instant::now();
        let request = state.parse_cache.attach(request);
        let mut response = state.schema.execute(request.data(caller.clone())).await;
        assign_codes(&mut response);
        crate::metrics::record_operation(&operation, response.errors.is_empty(), started.elapsed());
        responses.push(response);
    }
    let body = if !was_batch && responses.len() == 1 {
        BatchResponse::Single(responses.remove(0))
    } else {
        BatchResponse::Batch(responses)
    };
    Json(body).into_response()
}
