//! `/api/scheduled-calls`: schedule outbound calls inside the calling window,
//! list and inspect them with every attempt, cancel them, and count them
//! (`/api/stats/scheduled-calls`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_jobs::outbound::schedule::DEFAULT_MAX_ATTEMPTS;
use switchboard_jobs::outbound::{
    self, Attempt, CallStatus, Cancelled, NewScheduledCall, RetrySettings, ScheduleError, ScheduledCall,
};
use switchboard_jobs::window::Purpose;
use uuid::Uuid;

use super::{ApiError, AppState, Params};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scheduled-calls", post(create).get(list))
        .route("/scheduled-calls/{id}", get(show))
        .route("/scheduled-calls/{id}/cancel", post(cancel))
        .route("/stats/scheduled-calls", get(stats))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewScheduledCall)]
struct CreateRequest {
    customer_phone: Option<String>,
    agent_id: Option<i64>,
    department_id: Option<i64>,
    /// A department by its name, instead of `department_id`.
    department: Option<String>,
    agent_phone: Option<String>,
    purpose: Option<String>,
    preferred_time: Option<String>,
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    max_attempts: Option<i64>,
    #[schema(value_type = Option<crate::web::openapi::RetrySettings>)]
    retry: Option<RetrySettings>,
}

/// How far from now a call may be asked for: further is a typo or a probe (year 9999).
const PREFERRED_TIME_REACH: chrono::TimeDelta = chrono::TimeDelta::days(5 * 365);

impl CreateRequest {
    /// The call, and the name of its department when it was given by name.
    fn parse(self) -> Result<(NewScheduledCall, Option<String>), ApiError> {
        let customer_phone = self
            .customer_phone
            .as_deref()
            .map(|raw| ApiError::e164("customer_phone", raw))
            .transpose()?
            .ok_or_else(|| ApiError::validation("customer_phone", "is required"))?;
        let agent_phone = self.agent_phone.as_deref().map(|raw| ApiError::e164("agent_phone", raw)).transpose()?;
        let whom = [
            ("agent_id", self.agent_id.is_some()),
            ("department_id", self.department_id.is_some()),
            ("department", self.department.is_some()),
            ("agent_phone", agent_phone.is_some()),
        ];
        let given: Vec<&str> = whom.into_iter().filter_map(|(field, given)| given.then_some(field)).collect();
        match given[..] {
            [_] => {}
            [] => {
                return Err(ApiError::validation(
                    "agent_id",
                    "give agent_id, department_id, department or agent_phone",
                ));
            }
            [_, second, ..] => {
                return Err(ApiError::validation(
                    second,
                    "give only one of agent_id, department_id, department, agent_phone",
                ));
            }
        }
        let purpose =
            purpose(self.purpose.as_deref())?.ok_or_else(|| ApiError::validation("purpose", "is required"))?;
        let preferred_time =
            self.preferred_time.map(|raw| DateTime::parse_from_rfc3339(&raw).map(|t| t.to_utc())).transpose().map_err(
                |_| ApiError::validation("preferred_time", "must be an RFC 3339 time, e.g. 2026-11-21T09:30:00+05:30"),
            )?;
        if preferred_time.is_some_and(|at| (at - Utc::now()).abs() > PREFERRED_TIME_REACH) {
            return Err(ApiError::validation("preferred_time", "must be within 5 years of now"));
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS.into());
        if !(1..=10).contains(&max_attempts) {
            return Err(ApiError::validation("max_attempts", "must be between 1 and 10"));
        }
        let retry = self.retry.unwrap_or_default();
        check_retry(&retry)?;
        let call = NewScheduledCall {
            customer_phone,
            agent_phone,
            agent_id: self.agent_id,
            department_id: self.department_id,
            purpose,
            preferred_time,
            context: self.context.unwrap_or_else(|| json!({})),
            max_attempts: max_attempts as i32,
            retry,
        };
        Ok((call, self.department))
    }
}

fn purpose(raw: Option<&str>) -> Result<Option<Purpose>, ApiError> {
    raw.map(|name| {
        Purpose::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| ApiError::validation("purpose", "must be transactional, service or promotional"))
    })
    .transpose()
}

fn check_retry(retry: &RetrySettings) -> Result<(), ApiError> {
    if !(1..=86_400).contains(&retry.initial_delay_s) {
        return Err(ApiError::validation("retry.initial_delay_s", "must be between 1 and 86400 seconds"));
    }
    if !(retry.multiplier.is_finite() && (1.0..=10.0).contains(&retry.multiplier)) {
        return Err(ApiError::validation("retry.multiplier", "must be between 1 and 10"));
    }
    if !(retry.initial_delay_s..=7 * 86_400).contains(&retry.max_delay_s) {
        return Err(ApiError::validation("retry.max_delay_s", "must be at least initial_delay_s and at most 7 days"));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/scheduled-calls", operation_id = "post_scheduled_calls", tag = "scheduled-calls", request_body = CreateRequest, responses((status = 201, body = crate::web::openapi::ScheduledCallCreated), crate::web::openapi::Refusals))]
async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = body?;
    let (mut call, department) = request.parse()?;
    let mut tx = state.pool.begin().await?;
    if let Some(name) = department {
        let id = sqlx::query_scalar("SELECT id FROM departments WHERE name = $1").bind(&name).fetch_optional(&mut *tx);
        call.department_id =
            Some(id.await?.ok_or_else(|| ApiError::validation("department", format!("no department named {name:?}")))?);
    }
    let known = |table| format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)");
    for (field, id, table) in
        [("agent_id", call.agent_id, "agents"), ("department_id", call.department_id, "departments")]
    {
        let Some(id) = id else { continue };
        let exists: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(known(table))).bind(id).fetch_one(&mut *tx).await?;
        if !exists {
            return Err(ApiError::validation(field, format!("no {} with id {id}", table.trim_end_matches('s'))));
        }
    }
    let scheduled = outbound::schedule(&mut tx, &call, Utc::now()).await.map_err(|e| match e {
        ScheduleError::NeverOpens(_) => ApiError::validation("purpose", e.to_string()),
        ScheduleError::Database(db) => db.into(),
    })?;
    tx.commit().await?;
    let body = json!({ "id": scheduled.id, "status": CallStatus::Scheduled, "planned_at": scheduled.planned_at });
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    status: Option<String>,
    purpose: Option<String>,
    /// The UTC day the call was requested for (`preferred_time`), `YYYY-MM-DD`.
    #[param(format = Date)]
    date: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/scheduled-calls", operation_id = "get_scheduled_calls", tag = "scheduled-calls", params(ListQuery), responses((status = 200, body = crate::web::openapi::ScheduledCalls), crate::web::openapi::Refusals))]
async fn list(State(state): State<AppState>, Params(query): Params<ListQuery>) -> Result<Json<Value>, ApiError> {
    let status = query
        .status
        .map(|name| {
            CallStatus::ALL.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
                let names: Vec<&str> = CallStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::validation("status", format!("must be one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let purpose = purpose(query.purpose.as_deref())?;
    let date = query
        .date
        .map(|raw| raw.parse::<NaiveDate>())
        .transpose()
        .map_err(|_| ApiError::validation("date", "must be YYYY-MM-DD"))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 500"));
    }
    let calls: Vec<ScheduledCall> = sqlx::query_as(
        "SELECT * FROM scheduled_calls
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR purpose = $2)
           AND ($3::date IS NULL OR (preferred_time AT TIME ZONE 'UTC')::date = $3)
         ORDER BY preferred_time, id LIMIT $4",
    )
    .bind(status)
    .bind(purpose.map(Purpose::as_str))
    .bind(date)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({ "scheduled_calls": calls })))
}

fn call_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound("scheduled call".into()))
}

#[utoipa::path(get, path = "/api/scheduled-calls/{id}", operation_id = "get_scheduled_calls_id", tag = "scheduled-calls", params(("id" = String, Path, description = "the scheduled call's id (a UUID)")), responses((status = 200, body = crate::web::openapi::ScheduledCallDetail), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = call_id(&id)?;
    let mut conn = state.pool.acquire().await?;
    let call = ScheduledCall::find(&mut conn, id).await?.ok_or_else(|| ApiError::NotFound("scheduled call".into()))?;
    let attempts = Attempt::all_for(&mut conn, id).await?;
    let mut body = serde_json::to_value(call).map_err(anyhow::Error::from)?;
    body["attempts"] = serde_json::to_value(attempts).map_err(anyhow::Error::from)?;
    Ok(Json(body))
}

#[utoipa::path(post, path = "/api/scheduled-calls/{id}/cancel", operation_id = "post_scheduled_calls_id_cancel", tag = "scheduled-calls", params(("id" = String, Path, description = "the scheduled call's id (a UUID)")), responses((status = 200, body = crate::web::openapi::ScheduledCallCancelled), (status = 409, body = crate::web::openapi::ErrorBody, description = "the call has already ended"), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = call_id(&id)?;
    let mut conn = state.pool.acquire().await?;
    match outbound::cancel(&mut conn, id).await? {
        Cancelled::Now => Ok(Json(json!({ "id": id, "status": CallStatus::Cancelled }))),
        Cancelled::AlreadyEnded(status) => {
            Err(ApiError::Conflict(format!("the scheduled call has already ended: {status}")))
        }
        Cancelled::NotFound => Err(ApiError::NotFound("scheduled call".into())),
    }
}

#[utoipa::path(get, path = "/api/stats/scheduled-calls", operation_id = "get_stats_scheduled_calls", tag = "scheduled-calls", responses((status = 200, body = crate::web::openapi::ScheduledCallStats), crate::web::openapi::Refusals))]
async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM scheduled_calls GROUP BY status").fetch_all(&state.pool).await?;
    let by_outcome: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT outcome, count(*) FROM scheduled_call_attempts GROUP BY outcome")
            .fetch_all(&state.pool)
            .await?;
    let mut statuses: serde_json::Map<String, Value> =
        CallStatus::ALL.iter().map(|s| (s.as_str().to_owned(), json!(0))).collect();
    statuses.extend(by_status.into_iter().map(|(status, n)| (status, json!(n))));
    let outcomes: serde_json::Map<String, Value> =
        by_outcome.into_iter().map(|(outcome, n)| (outcome.unwrap_or_else(|| "pending".into()), json!(n))).collect();
    Ok(Json(json!({ "scheduled_calls": statuses, "attempts": outcomes })))
}
