//! `/api/opt-outs/{phone}` (our do-not-call list: no promotional or service
//! calls) and `/api/contacts/{phone}` (a contact's own zone and NCPR/DND flag).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono_tz::Tz;
use serde::Deserialize;
use switchboard_jobs::outbound::contacts::{Contact, OptOut};

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/opt-outs/{phone}", post(opt_out).get(show_opt_out).delete(remove_opt_out))
        .route("/contacts/{phone}", get(show_contact).put(save_contact))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OptOutRequest {
    reason: Option<String>,
}

/// 201 with the record; opting out a number already on the list is a 200 with the first record.
#[utoipa::path(post, path = "/api/opt-outs/{phone}", operation_id = "post_opt_outs_phone", tag = "scheduled-calls", params(("phone" = String, Path, description = "E.164 number, e.g. +919812345678")), request_body = Option<OptOutRequest>, responses((status = 201, body = crate::web::openapi::OptOut, description = "added"), (status = 200, body = crate::web::openapi::OptOut, description = "already on the list: the first record"), crate::web::openapi::Refusals))]
async fn opt_out(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Option<Json<OptOutRequest>>,
) -> Result<(StatusCode, Json<OptOut>), ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let request = body.map(|Json(b)| b).unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let existed = OptOut::find(&mut tx, &phone).await?.is_some();
    let record = OptOut::add(&mut tx, &phone, request.reason.as_deref()).await?;
    tx.commit().await?;
    Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(record)))
}

#[utoipa::path(get, path = "/api/opt-outs/{phone}", operation_id = "get_opt_outs_phone", tag = "scheduled-calls", params(("phone" = String, Path, description = "E.164 number, e.g. +919812345678")), responses((status = 200, body = crate::web::openapi::OptOut), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn show_opt_out(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<OptOut>, ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let mut conn = state.pool.acquire().await?;
    OptOut::find(&mut conn, &phone).await?.map(Json).ok_or_else(|| ApiError::NotFound("opt-out".into()))
}

#[utoipa::path(delete, path = "/api/opt-outs/{phone}", operation_id = "delete_opt_outs_phone", tag = "scheduled-calls", params(("phone" = String, Path, description = "E.164 number, e.g. +919812345678")), responses((status = 204, description = "removed"), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn remove_opt_out(State(state): State<AppState>, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let mut conn = state.pool.acquire().await?;
    if OptOut::remove(&mut conn, &phone).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("opt-out".into()))
    }
}

#[utoipa::path(get, path = "/api/contacts/{phone}", operation_id = "get_contacts_phone", tag = "scheduled-calls", params(("phone" = String, Path, description = "E.164 number, e.g. +919812345678")), responses((status = 200, body = crate::web::openapi::Contact), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn show_contact(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Contact>, ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let mut conn = state.pool.acquire().await?;
    Contact::find(&mut conn, &phone).await?.map(Json).ok_or_else(|| ApiError::NotFound("contact".into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ContactRequest {
    /// IANA zone; calls to this contact follow it instead of the policy's.
    timezone: Option<String>,
    #[serde(default)]
    ncpr_registered: bool,
}

/// Creates or replaces a contact (fields left out are cleared).
#[utoipa::path(put, path = "/api/contacts/{phone}", operation_id = "put_contacts_phone", tag = "scheduled-calls", params(("phone" = String, Path, description = "E.164 number, e.g. +919812345678")), request_body = ContactRequest, responses((status = 200, body = crate::web::openapi::Contact), crate::web::openapi::Refusals))]
async fn save_contact(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Result<Json<ContactRequest>, JsonRejection>,
) -> Result<Json<Contact>, ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let Json(request) = body?;
    let timezone = request
        .timezone
        .map(|name| name.parse::<Tz>())
        .transpose()
        .map_err(|_| ApiError::validation("timezone", "must be an IANA time zone, e.g. Asia/Kolkata"))?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(Contact::save(&mut conn, &phone, timezone, request.ncpr_registered).await?))
}
