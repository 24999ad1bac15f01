//! The operator API for inbound calls: agents, departments, IVR menus, calls
//! and statistics. Bodies that do not parse, or values out of range, are 422
//! naming the field.

pub(super) mod agents;
pub(super) mod calls;
pub(super) mod departments;
pub(super) mod ivr_menus;
pub(super) mod stats;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(agents::routes())
        .merge(departments::routes())
        .merge(ivr_menus::routes())
        .merge(calls::routes())
        .merge(stats::routes())
}

/// A JSON body whose parse errors are 422s naming the field when serde does.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(unparsable(rejection)),
        }
    }
}

fn unparsable(rejection: JsonRejection) -> ApiError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return rejection.into();
    }
    let message = rejection.body_text();
    let field = message
        .split_once("field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map_or("body", |(field, _)| field)
        .to_owned();
    ApiError::validation(field, message)
}

/// Maps constraint violations to what the caller did wrong: a duplicate is a
/// 409, a reference to a missing row is a 422 on `reference_field`.
fn refused(error: sqlx::Error, reference_field: &str) -> ApiError {
    let code = error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    match code.as_deref() {
        Some("23505") => ApiError::Conflict("already exists".into()),
        Some("23503") => ApiError::validation(reference_field, "refers to something that does not exist"),
        _ => error.into(),
    }
}

fn check(ok: bool, field: &str, message: &str) -> Result<(), ApiError> {
    if ok { Ok(()) } else { Err(ApiError::validation(field, message)) }
}
