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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptOutRequest {
    reason: Option<String>,
}

/// 201 with the record; opting out a number already on the list is a 200 with the first record.
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

async fn show_opt_out(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<OptOut>, ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let mut conn = state.pool.acquire().await?;
    OptOut::find(&mut conn, &phone).await?.map(Json).ok_or_else(|| ApiError::NotFound("opt-out".into()))
}

async fn remove_opt_out(State(state): State<AppState>, Path(raw): Path<String>) -> Result<StatusCode, ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let mut conn = state.pool.acquire().await?;
    if OptOut::remove(&mut conn, &phone).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("opt-out".into()))
    }
}

async fn show_contact(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Contact>, ApiError> {
    let phone = ApiError::e164("phone", &raw)?;
    let mut conn = state.pool.acquire().await?;
    Contact::find(&mut conn, &phone).await?.map(Json).ok_or_else(|| ApiError::NotFound("contact".into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactRequest {
    /// IANA zone; calls to this contact follow it instead of the policy's.
    timezone: Option<String>,
    #[serde(default)]
    ncpr_registered: bool,
}

/// Creates or replaces a contact (fields left out are cleared).
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
