//! Domain errors. The API maps each variant to one GraphQL `extensions.code` / HTTP status.

use sea_orm::{DbErr, SqlErr};

pub type DomainResult<T> = Result<T, DomainError>;

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("a valid API key is required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{entity} not found")]
    NotFound { entity: &'static str },
    #[error("{message}")]
    InvalidInput {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: Some(field),
            message: message.into(),
        }
    }

    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }

    pub fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: Some(field),
            message: message.into(),
        }
    }
}

/// Turns a unique-constraint violation into a `Conflict` on `field`; any other
/// database error stays a `Database` error.
pub trait OnConflict<T> {
    fn on_conflict(self, field: &'static str, message: &str) -> DomainResult<T>;
}

impl<T> OnConflict<T> for Result<T, DbErr> {
    fn on_conflict(self, field: &'static str, message: &str) -> DomainResult<T> {
        self.map_err(|err| match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => DomainError::conflict(field, message),
            _ => DomainError::Database(err),
        })
    }
}
