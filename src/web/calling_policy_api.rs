//! `GET/PUT /api/calling-policy`: the calling window every outbound call
//! passes, a default plus the purposes that differ. A policy that is malformed
//! or leaves a purpose no time to call is refused with a 422 naming the field.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::get;
use axum::{Json, Router};
use switchboard_jobs::outbound::rules::PolicySet;

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/calling-policy", get(show).put(replace))
}

#[utoipa::path(get, path = "/api/calling-policy", operation_id = "get_calling_policy", tag = "scheduled-calls", responses((status = 200, body = crate::web::openapi::PolicySet), crate::web::openapi::Refusals))]
async fn show(State(state): State<AppState>) -> Result<Json<PolicySet>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(PolicySet::load(&mut conn).await?))
}

/// Replaces the whole set: purposes left out of `overrides` follow `default` again.
#[utoipa::path(put, path = "/api/calling-policy", operation_id = "put_calling_policy", tag = "scheduled-calls", request_body = crate::web::openapi::PolicySet, responses((status = 200, body = crate::web::openapi::PolicySet), crate::web::openapi::Refusals))]
async fn replace(
    State(state): State<AppState>,
    body: Result<Json<PolicySet>, JsonRejection>,
) -> Result<Json<PolicySet>, ApiError> {
    let Json(policies) = body?;
    policies.validate().map_err(|e| ApiError::validation(e.field, e.message))?;
    let mut tx = state.pool.begin().await?;
    policies.save(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(policies))
}
