//! The one error type of the gateway. Every failure a caller can see is one of these variants;
//! each maps to `extensions.code` in exactly one place (`From<AppError> for async_graphql::Error`
//! below). `AppError` is deliberately not `Display`: async-graphql would turn any `Display`
//! error into one without a code, so the coded conversion is the only one.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Machine-readable, SCREAMING_SNAKE_CASE.
    pub code: String,
    pub message: String,
    /// When the reason stops applying (for example the date a renewal window opens), as an
    /// ISO 8601 date or date-time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

impl Reason {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            at: None,
        }
    }

    pub fn until(mut self, at: impl std::fmt::Display) -> Self {
        self.at = Some(at.to_string());
        self
    }
}

/// Deliberately not `Display`: async-graphql converts any `Display` type into an error without
/// a code, so only the coded conversion below must apply. Use [`AppError::message`].
#[derive(Debug)]
pub enum AppError {
    Unauthenticated,
    Forbidden,
    NotFound(&'static str),
    BadUserInput {
        field: String,
        message: String,
    },
    Conflict(String),
    NotEligible(Vec<Reason>),
    RateLimited {
        retry_after_secs: i64,
    },
    /// A wait ran out of time (`waitForIdle`); the message says what was still going on.
    Timeout(String),
    /// The detail is logged, never shown to callers.
    Internal(String),
}

impl AppError {
    /// What the caller reads.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated => "authentication required".into(),
            AppError::Forbidden => "you do not have permission to do this".into(),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::BadUserInput { message, .. } => message.clone(),
            AppError::Conflict(m) | AppError::Timeout(m) => m.clone(),
            AppError::NotEligible(reasons) => {
                format!(
                    "not eligible: {}",
                    reasons
                        .iter()
                        .map(|r| r.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
            AppError::RateLimited { retry_after_secs } => {
                format!("too many requests; retry in {retry_after_secs} s")
            }
            AppError::Internal(_) => "internal error".into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "UNAUTHENTICATED",
            AppError::Forbidden => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::Conflict(_) => "CONFLICT",
            AppError::NotEligible(_) => "NOT_ELIGIBLE",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::Timeout(_) => "TIMEOUT",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            field: field.to_owned(),
            message: message.into(),
        }
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

/// The one mapping to GraphQL: `extensions.code` always, plus `field` (bad input), `reasons`
/// (not eligible) and `retryAfter` (rate limited). Internal details are logged, not returned.
/// Redis is infrastructure: its failures are internal (the detail is logged, not returned).
impl From<redis::RedisError> for AppError {
    fn from(e: redis::RedisError) -> Self {
        AppError::Internal(format!("redis: {e}"))
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        use async_graphql::ErrorExtensions;
        if let AppError::Internal(detail) = &e {
            tracing::error!(error = %detail, "internal error");
        }
        let code = e.code();
        async_graphql::Error::new(e.message()).extend_with(|_, ext| {
            ext.set("code", code);
            match &e {
                AppError::BadUserInput { field, .. } => ext.set("field", field.as_str()),
                AppError::NotEligible(reasons) => {
                    let list: Vec<async_graphql::Value> = reasons
                        .iter()
                        .map(|r| {
                            let mut m = async_graphql::indexmap::IndexMap::new();
                            m.insert(
                                async_graphql::Name::new("code"),
                                async_graphql::Value::from(r.code.as_str()),
                            );
                            m.insert(
                                async_graphql::Name::new("message"),
                                async_graphql::Value::from(r.message.as_str()),
                            );
                            if let Some(at) = &r.at {
                                m.insert(
                                    async_graphql::Name::new("at"),
                                    async_graphql::Value::from(at.as_str()),
                                );
                            }
                            async_graphql::Value::Object(m)
                        })
                        .collect();
                    ext.set("reasons", async_graphql::Value::List(list));
                }
                AppError::RateLimited { retry_after_secs } => {
                    ext.set("retryAfter", *retry_after_secs)
                }
                AppError::NotFound(what) => ext.set("entity", *what),
                _ => {}
            }
        })
    }
}

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
            (
                AppError::RateLimited {
                    retry_after_secs: 3,
                },
                "RATE_LIMITED",
            ),
            (AppError::Timeout("still busy".into()), "TIMEOUT"),
            (AppError::internal("boom"), "INTERNAL"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn internal_detail_is_not_in_the_message() {
        let e = AppError::internal("relation \"partners\" does not exist");
        assert_eq!(e.message(), "internal error");
    }

    #[test]
    fn graphql_errors_carry_code_and_details() {
        let e: async_graphql::Error = AppError::not_eligible("TOKEN_USED", "used").into();
        let ext = e.extensions.unwrap();
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("NOT_ELIGIBLE"))
        );
        assert!(ext.get("reasons").is_some());
        let e: async_graphql::Error = AppError::internal("SELECT secret FROM x").into();
        assert_eq!(e.message, "internal error");
        let e: async_graphql::Error = AppError::RateLimited {
            retry_after_secs: 7,
        }
        .into();
        assert_eq!(
            e.extensions.unwrap().get("retryAfter"),
            Some(&async_graphql::Value::from(7))
        );
    }

    #[test]
    fn not_found_maps_from_diesel() {
        let e: AppError = diesel::result::Error::NotFound.into();
        assert_eq!(e.code(), "NOT_FOUND");
    }
}
