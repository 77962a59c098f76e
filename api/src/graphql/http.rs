//! `POST /graphql` and `GET /graphql`, written out rather than taken from
//! async-graphql-axum so the edge can be closed: body cap, batch cap, JSON only
//! (no multipart, so no CSRF through simple requests), no mutations over GET, a limit on
//! failed authentications per client address, and the GraphQL-over-HTTP
//! `application/graphql-response+json` media type for clients that ask for it.

use std::net::SocketAddr;
use std::time::Instant;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{BatchRequest, BatchResponse, Request, Response as GqlResponse};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::context::Caller;
use super::document;
use super::error::{BAD_USER_INPUT, FORBIDDEN, QUERY_TOO_COMPLEX, assign_codes, refusal};
use crate::app::AppState;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    (status, Json(refusal(code, message))).into_response()
}

/// `Authorization: Bearer <key>`, if present.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Reads the bearer token into a caller; a bad key is simply unauthenticated (and counted
/// against the client), an address over its failures is answered 429.
pub(crate) async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Caller, Response> {
    let Some(token) = bearer(headers) else {
        return Ok(Caller::Anonymous);
    };
    let client = crate::limits::client_ip(peer.ip(), headers, &state.settings.trusted_proxies);
    if let Some(admin) = &state.settings.admin_token
        && domain::tenancy::secrets_match(token, admin.expose())
    {
        return Ok(Caller::Operator);
    }
    if let Some(scope) = state.auth.cached(token) {
        return Ok(Caller::tenant(state.db.clone(), scope));
    }
    // A token with spaces is GraphiQL's "<paste your API key>" hint, not a
    // guess at a key or at the operator token (which may not contain spaces).
    let counted = !token.contains(char::is_whitespace);
    if counted && !state.auth_failures.try_begin(client) {
        return Err(too_many_failures());
    }
    Ok(match state.auth.authenticate(&state.db, token).await {
        Ok(scope) => {
            if counted {
                state.auth_failures.succeeded(client);
            }
            Caller::tenant(state.db.clone(), scope)
        }
        Err(domain::DomainError::Unauthenticated) => {
            if counted {
                state.auth_failures.failed(client);
            }
            Caller::Anonymous
        }
        Err(err) => {
            if counted {
                state.auth_failures.succeeded(client);
            }
            tracing::error!(error = %err, "authentication lookup failed");
            Caller::Unverifiable
        }
    })
}

fn too_many_failures() -> Response {
    refuse(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "too many failed authentications from this address; wait a minute",
    )
}

pub async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with(GRAPHQL_RESPONSE_JSON));
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BAD_USER_INPUT,
            "send the request as JSON with Content-Type: application/json",
        );
    }
    // U+0000 cannot be stored on PostgreSQL: refused at the edge rather than failing the
    // write as an internal error (`\u0000` in the JSON covers variables and escapes inside
    // the document's own strings).
    if body.windows(6).any(|w| w == b"\\u0000") {
        return refuse(
            StatusCode::BAD_REQUEST,
            BAD_USER_INPUT,
            "NUL characters (\\u0000) are not accepted",
        );
    }
    if let Err(message) = has_queries(&body) {
        return refuse(StatusCode::BAD_REQUEST, BAD_USER_INPUT, message);
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
    execute(&state, &headers, peer, batch).await
}

pub async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(qs) = query.filter(|q| q.contains("query=")) else {
        return crate::graphiql::page();
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
    let variables = serde_json::to_string(&request.variables).unwrap_or_default();
    if request.query.contains(['\0'])
        || request.query.contains("\\u0000")
        || variables.contains("\\u0000")
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            BAD_USER_INPUT,
            "NUL characters (\\u0000) are not accepted",
        );
    }
    if is_mutation(&request) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            BAD_USER_INPUT,
            "mutations are not allowed over GET; use POST",
        );
    }
    execute(&state, &headers, peer, BatchRequest::Single(request)).await
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

/// A request (or every request of a batch) must carry a `query` string: `{"qeury": ...}`
/// is a client's bug to report, not an empty document to run. Other fields are skipped
/// unread, so this costs one quick pass over the body.
fn has_queries(body: &[u8]) -> Result<(), &'static str> {
    #[derive(serde::Deserialize)]
    struct Item {
        query: Option<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Items {
        One(Item),
        Many(Vec<Item>),
    }
    const MISSING: &str = "a GraphQL request needs a \"query\" string";
    match serde_json::from_slice::<Items>(body) {
        Ok(Items::One(Item { query: None })) => Err(MISSING),
        Ok(Items::Many(items)) if items.iter().any(|i| i.query.is_none()) => Err(MISSING),
        // Well-formed, or malformed in a way the full parse below reports precisely.
        _ => Ok(()),
    }
}

/// True when the client asked for `application/graphql-response+json`.
fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(GRAPHQL_RESPONSE_JSON))
}

/// A request that never reached execution (it did not parse or validate, or its variables
/// did not coerce): no data, and every error without a path.
pub fn failed_before_execution(response: &GqlResponse) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    batch: BatchRequest,
) -> Response {
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
    let caller = match caller(state, headers, peer).await {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        let started = Instant::now();
        let (response, label) = run_one(state, &caller, request).await;
        crate::metrics::record_operation(&label, response.errors.is_empty(), started.elapsed());
        responses.push(response);
    }
    if !wants_graphql_response(headers) {
        // application/json: serialized straight from the responses (no JSON tree built).
        let body = if !was_batch && responses.len() == 1 {
            BatchResponse::Single(responses.remove(0))
        } else {
            BatchResponse::Batch(responses)
        };
        return Json(body).into_response();
    }
    let status = if !was_batch && responses.first().is_some_and(failed_before_execution) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut values: Vec<serde_json::Value> = responses
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            // The spec's media type omits `data` for requests that never executed.
            if failed_before_execution(r)
                && let Some(map) = v.as_object_mut()
            {
                map.remove("data");
            }
            v
        })
        .collect();
    let body = if !was_batch && values.len() == 1 {
        values.remove(0)
    } else {
        serde_json::Value::Array(values)
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/graphql-response+json; charset=utf-8"),
    );
    response
}

/// Runs one operation: the parse from the cache (or parsed now), introspection-only
/// documents on the schema that allows their depth, the result cached only for a tenant
/// whose document validated. Returns the response and its metrics label.
async fn run_one(state: &AppState, caller: &Caller, request: Request) -> (GqlResponse, String) {
    let authenticated = matches!(caller, Caller::Tenant { .. });
    let (doc, from_cache) = match state.parse_cache.get(&request.query) {
        Some(doc) => (Some(doc), true),
        None => (
            async_graphql::parser::parse_query(&request.query).ok(),
            false,
        ),
    };
    let Some(doc) = doc else {
        // Unparsable: execution reports the syntax error.
        let mut response = state.schema.execute(request.data(caller.clone())).await;
        assign_codes(&mut response);
        return (response, crate::metrics::INVALID.to_owned());
    };
    let shape = document::Shape::of(&doc, request.operation_name.as_deref());
    let limits = &state.settings.graphql;
    let refused = if shape.introspection_fields > 0 && !limits.introspection {
        Some((FORBIDDEN, "introspection is disabled on this server (GRAPHQL_INTROSPECTION); the schema is in schema.graphql".to_owned()))
    } else if shape.introspection_fields > limits.max_introspection_fields {
        Some((
            QUERY_TOO_COMPLEX,
            format!(
                "a document may select __schema or __type at most {} times",
                limits.max_introspection_fields
            ),
        ))
    } else {
        None
    };
    if let Some((code, message)) = refused {
        let mut response =
            GqlResponse::from_errors(vec![async_graphql::ServerError::new(message, None)]);
        response.errors[0]
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
        return (response, crate::metrics::INVALID.to_owned());
    }
    let operation_name = request.operation_name.clone();
    // Kept only once it validated, for a tenant: anonymous junk never stays.
    let to_cache = (authenticated && !from_cache).then(|| (request.query.clone(), doc.clone()));
    let mut request = request;
    request.set_parsed_query(doc);
    let schema = if shape.introspection_only {
        &state.introspection_schema
    } else {
        &state.schema
    };
    let mut response = schema.execute(request.data(caller.clone())).await;
    assign_codes(&mut response);
    let validated = !failed_before_execution(&response);
    if validated && let Some((query, doc)) = to_cache {
        state.parse_cache.insert(&query, doc);
    }
    let label = crate::metrics::operation_label(
        &state.operation_labels,
        authenticated,
        validated,
        operation_name.as_deref(),
    );
    (response, label)
}
