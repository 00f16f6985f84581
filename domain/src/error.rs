//! The one error type of the gateway. Every failure a caller can see is one of these variants;
//! the api maps each to `extensions.code` in exactly one place (api/src/graphql/error.rs).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Machine-readable, SCREAMING_SNAKE_CASE.
    pub code: String,
    pub message: String,
}

impl Reason {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_owned(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("you do not have permission to do this")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadUserInput { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("not eligible: {}", .0.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; "))]
    NotEligible(Vec<Reason>),
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: i64 },
    /// The message is logged, never shown to callers.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::Forbidden => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::Conflict(_) => "CONFLICT",
            AppError::NotEligible(_) => "NOT_ELIGIBLE",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        AppError::BadUserInput { field: field.to_owned(), message: message.into() }
    }

    pub fn not_eligible(code: &str, message: impl Into<String>) -> Self {
        AppError::NotEligible(vec![Reason::new(code, message)])
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => AppError::NotFound("record"),
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                // Constraint names are ours; say which fact collided without leaking SQL.
                AppError::Conflict(format!(
                    "already exists ({})",
                    info.constraint_name().unwrap_or("unique constraint")
                ))
            }
            Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AppError::Conflict("concurrent update, please retry".into())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        AppError::Internal(format!("database pool: {e}"))
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_code() {
        let cases = [
            (AppError::Unauthenticated, "UNAUTHENTICATED"),
            (AppError::Forbidden, "FORBIDDEN"),
            (AppError::NotFound("partner"), "NOT_FOUND"),
            (AppError::bad_input("email", "bad"), "BAD_USER_INPUT"),
            (AppError::Conflict("x".into()), "CONFLICT"),
            (AppError::not_eligible("X", "y"), "NOT_ELIGIBLE"),
            (AppError::RateLimited { retry_after_secs: 3 }, "RATE_LIMITED"),
            (AppError::internal("boom"), "INTERNAL"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn internal_detail_is_not_in_the_message() {
        let e = AppError::internal("relation \"partners\" does not exist");
        assert_eq!(e.to_string(), "internal error");
    }

    #[test]
    fn unique_violation_maps_to_conflict() {
        let e: AppError = diesel::result::Error::NotFound.into();
        assert_eq!(e.code(), "NOT_FOUND");
    }
}
