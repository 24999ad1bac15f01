//! `GET /api/calls` (filters: status, direction, agent, phone, date range;
//! cursor pagination, newest first) and `GET /api/calls/{sid}` with its webhook events.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::check;
use crate::web::call_key::{self, Which};
use crate::web::{ApiError, AppState, Params};

pub fn routes() -> Router<AppState> {
    Router::new().route("/calls", get(list)).route("/calls/{sid}", get(read))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct Call {
    id: i64,
    provider: String,
    call_sid: String,
    direction: String,
    from_number: Option<String>,
    to_number: Option<String>,
    status: String,
    department_id: Option<i64>,
    agent_id: Option<i64>,
    routing_state: String,
    overflow_action: Option<String>,
    queued_at: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    duration_secs: Option<i32>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, provider, call_sid, direction, from_number, to_number, status, department_id, agent_id, \
                       routing_state, overflow_action, queued_at, answered_at, ended_at, duration_secs, created_at, updated_at";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Filters {
    status: Option<String>,
    #[param(pattern = "^(inbound|outbound)$")]
    direction: Option<String>,
    agent_id: Option<i64>,
    phone: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CallPage)]
struct Page {
    calls: Vec<Call>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

pub fn instant(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|r| {
        DateTime::parse_from_rfc3339(r)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::validation(field, "must be an RFC 3339 time, e.g. 2026-11-21T09:00:00Z"))
    })
    .transpose()
}

#[utoipa::path(get, path = "/api/calls", operation_id = "get_calls", tag = "calls", params(Filters), responses((status = 200, body = Page), crate::web::openapi::Refusals))]
async fn list(State(state): State<AppState>, Params(filters): Params<Filters>) -> Result<Json<Page>, ApiError> {
    let limit = filters.limit.unwrap_or(50);
    check((1..=200).contains(&limit), "limit", "must be between 1 and 200")?;
    if let Some(direction) = &filters.direction {
        check(matches!(direction.as_str(), "inbound" | "outbound"), "direction", "must be inbound or outbound")?;
    }
    let phone = filters.phone.as_deref().map(|p| ApiError::e164("phone", p)).transpose()?;
    let cursor = filters
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().map_err(|_| ApiError::validation("cursor", "is not a cursor from a previous page")))
        .transpose()?;
    let (since, until) = (instant("since", filters.since.as_deref())?, instant("until", filters.until.as_deref())?);
    let mut calls: Vec<Call> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM calls
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR direction = $2)
           AND ($3::bigint IS NULL OR agent_id = $3) AND ($4::text IS NULL OR from_number = $4 OR to_number = $4)
           AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)
           AND ($7::bigint IS NULL OR id < $7)
         ORDER BY id DESC LIMIT $8"
    )))
    .bind(&filters.status)
    .bind(&filters.direction)
    .bind(filters.agent_id)
    .bind(phone.as_ref().map(|p| p.as_str()))
    .bind(since)
    .bind(until)
    .bind(cursor)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let next_cursor = if calls.len() as i64 > limit {
        calls.truncate(limit as usize);
        calls.last().map(|c| c.id.to_string())
    } else {
        None
    };
    Ok(Json(Page { calls, next_cursor }))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = CallEvent)]
struct Event {
    id: i64,
    endpoint: String,
    dedupe_key: String,
    received_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CallWithEvents {
    #[serde(flatten)]
    call: Call,
    events: Vec<Event>,
    /// Recordings (without their provider source URL), transcripts,
    /// insights and the lead (see `call_outcome`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    outcome: serde_json::Map<String, serde_json::Value>,
}

#[utoipa::path(get, path = "/api/calls/{sid}", operation_id = "get_calls_sid", tag = "calls", params(("sid" = String, Path, description = "the provider's call sid"), crate::web::call_key::Which), responses((status = 200, body = CallWithEvents, description = "the call, its webhook events, and its recordings, transcripts, insights and lead"), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn read(
    State(state): State<AppState>,
    Path(sid): Path<String>,
    Params(which): Params<Which>,
) -> Result<Json<CallWithEvents>, ApiError> {
    let provider = call_key::resolve(&state.pool, &sid, &which).await?;
    let call: Call = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM calls WHERE provider = $1 AND call_sid = $2"
    )))
    .bind(provider)
    .bind(&sid)
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("call {sid}")))?;
    let events = sqlx::query_as(
        "SELECT id, endpoint, dedupe_key, received_at FROM webhook_events WHERE provider = $1 AND call_sid = $2 ORDER BY id",
    )
    .bind(&call.provider)
    .bind(&sid)
    .fetch_all(&state.pool)
    .await?;
    let outcome = match crate::web::call_outcome::for_call(&state.pool, provider, &sid).await? {
        serde_json::Value::Object(outcome) => without_source_urls(outcome),
        _ => serde_json::Map::new(),
    };
    Ok(Json(CallWithEvents { call, events, outcome }))
}

/// The provider's recording URL can carry credentials or a signature
/// (Exotel's pre-signed links), and is of no use to an operator: the audio is
/// at `GET /api/calls/{sid}/recording`.
fn without_source_urls(
    mut outcome: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    if let Some(serde_json::Value::Array(recordings)) = outcome.get_mut("recordings") {
        for recording in recordings.iter_mut().filter_map(serde_json::Value::as_object_mut) {
            recording.remove("source_url");
        }
    }
    outcome
}
