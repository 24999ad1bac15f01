//! `GET /api/stats/calls` (totals by status and direction, average duration,
//! calls per agent, over an optional date range) and `GET /api/stats/queue`
//! (callers waiting for an agent now, and the oldest wait).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::calls::instant;
use crate::web::{ApiError, AppState, Params};

pub fn routes() -> Router<AppState> {
    Router::new().route("/stats/calls", get(call_stats)).route("/stats/queue", get(queue_stats))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Range {
    since: Option<String>,
    until: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct AgentCount {
    agent_id: i64,
    name: String,
    calls: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CallStats {
    total: i64,
    by_status: BTreeMap<String, i64>,
    by_direction: BTreeMap<String, i64>,
    /// Over calls that reported a duration; `null` when none did.
    average_duration_secs: Option<f64>,
    per_agent: Vec<AgentCount>,
}

const IN_RANGE: &str =
    "($1::timestamptz IS NULL OR c.created_at >= $1) AND ($2::timestamptz IS NULL OR c.created_at < $2)";

#[utoipa::path(get, path = "/api/stats/calls", operation_id = "get_stats_calls", tag = "calls", params(Range), responses((status = 200, body = CallStats), crate::web::openapi::Refusals))]
async fn call_stats(State(state): State<AppState>, Params(range): Params<Range>) -> Result<Json<CallStats>, ApiError> {
    let (since, until) = (instant("since", range.since.as_deref())?, instant("until", range.until.as_deref())?);
    let grouped: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT c.status, c.direction, count(*) FROM calls c WHERE {IN_RANGE} GROUP BY 1, 2"
    )))
    .bind(since)
    .bind(until)
    .fetch_all(&state.pool)
    .await?;
    let average_duration_secs: Option<f64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT avg(c.duration_secs)::float8 FROM calls c WHERE {IN_RANGE}"
    )))
    .bind(since)
    .bind(until)
    .fetch_one(&state.pool)
    .await?;
    let per_agent = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT a.id AS agent_id, a.name, count(*) AS calls FROM calls c JOIN agents a ON a.id = c.agent_id
         WHERE {IN_RANGE} GROUP BY a.id, a.name ORDER BY a.id"
    )))
    .bind(since)
    .bind(until)
    .fetch_all(&state.pool)
    .await?;
    let mut stats = CallStats {
        total: 0,
        by_status: BTreeMap::new(),
        by_direction: BTreeMap::new(),
        average_duration_secs,
        per_agent,
    };
    for (status, direction, count) in grouped {
        stats.total += count;
        *stats.by_status.entry(status).or_default() += count;
        *stats.by_direction.entry(direction).or_default() += count;
    }
    Ok(Json(stats))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct DepartmentQueue {
    department_id: i64,
    name: String,
    waiting: i64,
    oldest_wait_secs: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct QueueStats {
    waiting: i64,
    oldest_wait_secs: Option<f64>,
    by_department: Vec<DepartmentQueue>,
}

#[utoipa::path(get, path = "/api/stats/queue", operation_id = "get_stats_queue", tag = "calls", responses((status = 200, body = QueueStats), crate::web::openapi::Refusals))]
async fn queue_stats(State(state): State<AppState>) -> Result<Json<QueueStats>, ApiError> {
    let by_department: Vec<DepartmentQueue> = sqlx::query_as(
        "SELECT d.id AS department_id, d.name, count(*) AS waiting,
                extract(epoch FROM now() - min(c.queued_at))::float8 AS oldest_wait_secs
         FROM calls c JOIN departments d ON d.id = c.department_id
         WHERE c.routing_state = 'waiting'
         GROUP BY d.id, d.name ORDER BY d.id",
    )
    .fetch_all(&state.pool)
    .await?;
    let waiting = by_department.iter().map(|d| d.waiting).sum();
    let oldest_wait_secs = by_department.iter().map(|d| d.oldest_wait_secs).reduce(f64::max);
    Ok(Json(QueueStats { waiting, oldest_wait_secs, by_department }))
}
