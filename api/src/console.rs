//! The operator console at `GET /console`: a few pages of plain HTML, CSS and JavaScript
//! modules (`api/assets/console`), embedded at build time so the binary serves them
//! offline, under a Content-Security-Policy that allows nothing but this server. The pages
//! speak the public GraphQL API (and its graphql-transport-ws socket) with the API key the
//! user enters, kept in the tab's session storage.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Scripts and styles from this origin only (no inline code, no eval); requests, and the
/// live socket, to this origin only.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../assets/console/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// (name, content type, bytes) of every asset under `/console/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/console/console.css"),
    ),
    ("app.js", JS, include_bytes!("../assets/console/app.js")),
    ("ui.js", JS, include_bytes!("../assets/console/ui.js")),
    ("ws.js", JS, include_bytes!("../assets/console/ws.js")),
    ("calls.js", JS, include_bytes!("../assets/console/calls.js")),
    (
        "customers.js",
        JS,
        include_bytes!("../assets/console/customers.js"),
    ),
    (
        "campaigns.js",
        JS,
        include_bytes!("../assets/console/campaigns.js"),
    ),
    ("sync.js", JS, include_bytes!("../assets/console/sync.js")),
    (
        "integrations.js",
        JS,
        include_bytes!("../assets/console/integrations.js"),
    ),
];

fn secure(response: Response) -> Response {
    crate::graphiql::with_policy(CSP, response)
}

/// `GET /console`: the page (every section is a route inside it).
pub async fn page() -> Response {
    secure(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            INDEX,
        )
            .into_response(),
    )
}

/// `GET /console/{file}`: one embedded asset. Revalidated on every load, so a new binary's
/// pages are never mixed with an old one's.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => secure(
            (
                [
                    (header::CONTENT_TYPE, *content_type),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                *bytes,
            )
                .into_response(),
        ),
        None => secure(
            (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({ "error": "no such console file" })),
            )
                .into_response(),
        ),
    }
}
