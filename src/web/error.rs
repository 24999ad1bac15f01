//! One error type for every handler, one way to answer it: client errors say
//! what was wrong; server errors are logged with their chain and answered
//! without internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_jobs::phone::PhoneNumber;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    /// The request is bigger than this endpoint takes (bytes or fields).
    #[error("{0}")]
    TooLarge(String),
    /// The database is unreachable or going away: the caller should retry later.
    #[error("temporarily unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation { field: field.into(), message: message.into() }
    }

    /// `raw` parsed as an E.164 number, or a 422 naming `field`.
    pub fn e164(field: &str, raw: &str) -> Result<PhoneNumber, Self> {
        PhoneNumber::parse(raw).map_err(|e| Self::validation(field, e))
    }
}

impl From<crate::providers::fields::FieldsError> for ApiError {
    fn from(error: crate::providers::fields::FieldsError) -> Self {
        match error {
            crate::providers::fields::FieldsError::TooMany => Self::TooLarge(error.to_string()),
            crate::providers::fields::FieldsError::Malformed(message) => Self::BadRequest(message),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            Self::Unavailable(error)
        } else if is_unstorable_text(&error) {
            Self::validation("text", "must not contain NUL (U+0000)")
        } else {
            Self::Internal(error.into())
        }
    }
}

/// Text PostgreSQL cannot store, whichever value the caller put it in: a NUL
/// in `text` (22021) or `\u0000` in `jsonb` (22P05). The extractors name the
/// field when they can; this keeps a value they do not see from being a 500.
fn is_unstorable_text(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "22021" || code == "22P05")
}

/// The database is going away or cannot be reached, so a retry later may
/// succeed: no connection from the pool in time, a closed pool, I/O failure,
/// SQLSTATE class 08 (connection exception) or 57P (shutting down, not yet
/// accepting connections, database dropped).
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = match &self {
            Self::Validation { field, message } => {
                json!({ "error": self.to_string(), "field": field, "message": message })
            }
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                json!({ "error": self.to_string() })
            }
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                json!({ "error": "internal error" })
            }
            _ => json!({ "error": self.to_string() }),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", "Bearer".parse().expect("static header"));
        }
        response
    }
}

/// A JSON body that does not fit the expected shape is a 422 on `body`; one
/// that is not JSON at all is a 400; one over `BODY_LIMIT_BYTES` a 413.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        match rejection {
            too_large if too_large.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge(too_large.body_text()),
            axum::extract::rejection::JsonRejection::JsonDataError(e) => Self::validation("body", e.body_text()),
            other => Self::BadRequest(other.body_text()),
        }
    }
}
