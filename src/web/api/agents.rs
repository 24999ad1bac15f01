//! `/api/agents`: create, list, read, update (skills, max concurrent calls,
//! department), delete, and `PUT /api/agents/{id}/status`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Body, check, refused};
use crate::web::{ApiError, AppState, Params};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list).post(create))
        .route("/agents/{id}", get(read).patch(update).delete(remove))
        .route("/agents/{id}/status", put(set_status))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct Agent {
    id: i64,
    name: String,
    phone: String,
    department_id: Option<i64>,
    skills: Vec<String>,
    status: String,
    max_concurrent_calls: i32,
    current_calls: i32,
    last_assigned_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, phone, department_id, skills, status, max_concurrent_calls, current_calls, \
                       last_assigned_at, created_at, updated_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    name: String,
    phone: String,
    department_id: Option<i64>,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default = "one")]
    max_concurrent_calls: i32,
    #[serde(default = "offline")]
    status: String,
}

fn one() -> i32 {
    1
}

fn offline() -> String {
    "offline".into()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AgentChanges {
    name: Option<String>,
    department_id: Option<i64>,
    skills: Option<Vec<String>>,
    max_concurrent_calls: Option<i32>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    #[schema(pattern = "^(available|break|offline)$")]
    status: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Filters {
    department_id: Option<i64>,
    #[param(pattern = "^(available|break|offline)$")]
    status: Option<String>,
}

fn valid_status(status: &str) -> Result<(), ApiError> {
    check(matches!(status, "available" | "break" | "offline"), "status", "must be available, break or offline")
}

fn valid_skills(skills: &[String]) -> Result<(), ApiError> {
    check(skills.iter().all(|s| !s.trim().is_empty() && s.len() <= 64), "skills", "must be non-empty names")
}

fn valid_max(max: i32) -> Result<(), ApiError> {
    check((1..=100).contains(&max), "max_concurrent_calls", "must be between 1 and 100")
}

fn valid_name(name: &str) -> Result<(), ApiError> {
    check(!name.trim().is_empty(), "name", "must not be empty")
}

#[utoipa::path(post, path = "/api/agents", operation_id = "post_agents", tag = "agents", request_body = NewAgent, responses((status = 201, body = Agent, links(("get_agents_id" = (operation_id = "get_agents_id", parameters(("id" = "$response.body#/id")))), ("delete_agents_id" = (operation_id = "delete_agents_id", parameters(("id" = "$response.body#/id")))))), (status = 409, body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals))]
async fn create(
    State(state): State<AppState>,
    Body(new): Body<NewAgent>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    valid_name(&new.name)?;
    let phone = ApiError::e164("phone", &new.phone)?;
    valid_skills(&new.skills)?;
    valid_max(new.max_concurrent_calls)?;
    valid_status(&new.status)?;
    let agent = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO agents (name, phone, department_id, skills, max_concurrent_calls, status)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(new.name.trim())
    .bind(phone.as_str())
    .bind(new.department_id)
    .bind(&new.skills)
    .bind(new.max_concurrent_calls)
    .bind(&new.status)
    .fetch_one(&state.pool)
    .await
    .map_err(|e| refused(e, "department_id"))?;
    Ok((StatusCode::CREATED, Json(agent)))
}

#[utoipa::path(get, path = "/api/agents", operation_id = "get_agents", tag = "agents", params(Filters), responses((status = 200, body = Vec<Agent>), crate::web::openapi::Refusals))]
async fn list(State(state): State<AppState>, Params(filters): Params<Filters>) -> Result<Json<Vec<Agent>>, ApiError> {
    if let Some(status) = &filters.status {
        valid_status(status)?;
    }
    let agents = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM agents
         WHERE ($1::bigint IS NULL OR department_id = $1) AND ($2::text IS NULL OR status = $2) ORDER BY id"
    )))
    .bind(filters.department_id)
    .bind(filters.status)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(agents))
}

#[utoipa::path(get, path = "/api/agents/{id}", operation_id = "get_agents_id", tag = "agents", params(("id" = i64, Path, description = "the id")), responses((status = 200, body = Agent), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn read(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<Agent>, ApiError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM agents WHERE id = $1")))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("agent {id}")))
}

#[utoipa::path(patch, path = "/api/agents/{id}", operation_id = "patch_agents_id", tag = "agents", params(("id" = i64, Path, description = "the id")), request_body = AgentChanges, responses((status = 200, body = Agent), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Body(changes): Body<AgentChanges>,
) -> Result<Json<Agent>, ApiError> {
    if let Some(name) = &changes.name {
        valid_name(name)?;
    }
    if let Some(skills) = &changes.skills {
        valid_skills(skills)?;
    }
    if let Some(max) = changes.max_concurrent_calls {
        valid_max(max)?;
    }
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE agents SET name = COALESCE($2, name), department_id = COALESCE($3, department_id),
            skills = COALESCE($4, skills), max_concurrent_calls = COALESCE($5, max_concurrent_calls), updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(changes.name.as_deref().map(str::trim))
    .bind(changes.department_id)
    .bind(changes.skills)
    .bind(changes.max_concurrent_calls)
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| refused(e, "department_id"))?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound(format!("agent {id}")))
}

#[utoipa::path(put, path = "/api/agents/{id}/status", operation_id = "put_agents_id_status", tag = "agents", params(("id" = i64, Path, description = "the id")), request_body = StatusChange, responses((status = 200, body = Agent), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn set_status(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Body(change): Body<StatusChange>,
) -> Result<Json<Agent>, ApiError> {
    valid_status(&change.status)?;
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE agents SET status = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&change.status)
    .fetch_optional(&state.pool)
    .await?
    .map(Json)
    .ok_or_else(|| ApiError::NotFound(format!("agent {id}")))
}

#[utoipa::path(delete, path = "/api/agents/{id}", operation_id = "delete_agents_id", tag = "agents", params(("id" = i64, Path, description = "the id")), responses((status = 204, description = "deleted"), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn remove(State(state): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query("DELETE FROM agents WHERE id = $1").bind(id).execute(&state.pool).await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!("agent {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
