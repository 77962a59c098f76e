//! Prometheus metrics of the HTTP edge: per-operation GraphQL counts and latencies, per-route
//! HTTP counts. The recorder and statement counts live in `workers::metrics`, shared with the
//! standalone worker.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Label of requests that did not parse or validate.
pub const INVALID: &str = "invalid";
/// Label of validated operations from callers without a tenant key.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// Label of named operations beyond the cap, and of anonymous operations.
pub const OTHER: &str = "other";
/// Distinct operation names that become labels, per process.
const MAX_OPERATION_LABELS: usize = 200;

/// The operation names seen so far (bounded): a label is a client-chosen string, so only
/// authenticated, validated operations get one, and only the first few hundred names.
#[derive(Default)]
pub struct OperationLabels {
    names: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn tame(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn operation_label(
    labels: &OperationLabels,
    authenticated: bool,
    validated: bool,
    name: Option<&str>,
) -> String {
    if !validated {
        return INVALID.to_owned();
    }
    if !authenticated {
        return UNAUTHENTICATED.to_owned();
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return OTHER.to_owned();
    };
    let name = tame(name);
    let Ok(mut names) = labels.names.lock() else {
        return OTHER.to_owned();
    };
    if names.contains(&name) {
        return name;
    }
    if names.len() >= MAX_OPERATION_LABELS {
        return OTHER.to_owned();
    }
    names.insert(name.clone());
    name
}

/// HTTP methods as labels: a fixed list, anything else is `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub fn record_operation(operation: &str, ok: bool, elapsed: Duration) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("graphql_operations_total", "operation" => operation.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("graphql_operation_duration_seconds", "operation" => operation.to_owned())
        .record(elapsed.as_secs_f64());
}

/// Counts and times every HTTP request by route template and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed();
    tracing::debug!(http.method = %method, http.route = %route, http.status = %status, elapsed_ms = elapsed.as_millis() as u64, "request");
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        let labels = OperationLabels::default();
        assert_eq!(
            operation_label(&labels, false, true, Some("X")),
            UNAUTHENTICATED
        );
        assert_eq!(operation_label(&labels, true, false, Some("X")), INVALID);
        assert_eq!(operation_label(&labels, true, true, Some("a-b")), "a_b");
        for i in 0..(MAX_OPERATION_LABELS * 2) {
            let _ = operation_label(&labels, true, true, Some(&format!("op{i}")));
        }
        assert_eq!(operation_label(&labels, true, true, Some("late")), OTHER);
        assert_eq!(operation_label(&labels, true, true, Some("op1")), "op1");
        assert_eq!(
            method_label(&axum::http::Method::from_bytes(b"FOO").unwrap()),
            "other"
        );
    }
}
