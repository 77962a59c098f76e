//! The one place domain errors become GraphQL errors with `extensions.code`.

use async_graphql::{Error, ErrorExtensions, Response, ServerError, Value};
use domain::DomainError;

pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
pub const FORBIDDEN: &str = "FORBIDDEN";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const CONFLICT: &str = "CONFLICT";
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
pub const INTERNAL: &str = "INTERNAL";

pub fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// Maps a domain error; internal ones are logged here once and answered opaquely.
pub fn to_gql(err: &DomainError) -> Error {
    match err {
        DomainError::Unauthenticated => coded(UNAUTHENTICATED, err.to_string()),
        DomainError::Forbidden(_) => coded(FORBIDDEN, err.to_string()),
        DomainError::NotFound { .. } => coded(NOT_FOUND, err.to_string()),
        DomainError::InvalidInput { field, message } => with_field(BAD_USER_INPUT, *field, message),
        DomainError::Conflict { field, message } => with_field(CONFLICT, *field, message),
        DomainError::Database(_) | DomainError::Internal(_) => {
            tracing::error!(error = %err, "request failed");
            coded(INTERNAL, "internal error")
        }
    }
}

fn with_field(code: &'static str, field: Option<&'static str>, message: &str) -> Error {
    let message = match field {
        Some(f) => format!("{f}: {message}"),
        None => message.to_owned(),
    };
    Error::new(message).extend_with(|_, e| {
        e.set("code", code);
        if let Some(f) = field {
            e.set("field", f);
        }
    })
}

/// `result.gql()?` in resolvers: the only way a `DomainError` leaves the domain.
pub trait GqlResultExt<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResultExt<T> for Result<T, DomainError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| to_gql(&e))
    }
}

impl<T> GqlResultExt<T> for Result<T, std::sync::Arc<DomainError>> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| to_gql(&e))
    }
}

/// Parses an `ID` argument; garbage is a user error naming the argument.
pub fn parse_id(field: &'static str, id: &async_graphql::ID) -> async_graphql::Result<uuid::Uuid> {
    uuid::Uuid::try_parse(id.as_str())
        .map_err(|_| with_field(BAD_USER_INPUT, Some(field), "is not a valid ID"))
}

/// Gives every error a code. Errors raised by async-graphql itself (parse, validation,
/// limits) carry none; an uncoded error from a resolver is a bug and is made opaque.
pub fn assign_codes(response: &mut Response) {
    for err in &mut response.errors {
        if has_code(err) {
            continue;
        }
        let msg = err.message.to_ascii_lowercase();
        let code = if msg.contains("too deep")
            || msg.contains("too complex")
            || msg.contains("directive") && msg.contains("too many")
            || msg.contains("recursive")
        {
            QUERY_TOO_COMPLEX
        } else if err.path.is_empty() || is_input_error(&msg) {
            BAD_USER_INPUT
        } else {
            tracing::error!(error = %err.message, path = ?err.path, "resolver error without a code");
            err.message = "internal error".into();
            INTERNAL
        };
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

/// Argument and variable coercion errors are raised while resolving, so they carry a path.
fn is_input_error(lowercase_message: &str) -> bool {
    ["invalid value for argument", "failed to parse", "variable "]
        .iter()
        .any(|p| lowercase_message.starts_with(p))
}

fn has_code(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some_and(|v| !matches!(v, Value::Null)))
}

/// A response carrying one coded error and no data, for requests refused before execution.
pub fn refusal(code: &'static str, message: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [ { "message": message, "extensions": { "code": code } } ] })
}
