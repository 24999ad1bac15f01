//! `/api/departments`: create, list, read, replace and delete departments
//! (routing strategy, required skills, max wait, overflow action).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use switchboard_jobs::routing::Strategy;

use super::{Body, check, refused};
use crate::web::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/departments", get(list).post(create))
        .route("/departments/{id}", get(read).put(replace).delete(remove))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct Department {
    id: i64,
    name: String,
    inbound_number: Option<String>,
    strategy: String,
    required_skills: Vec<String>,
    max_wait_secs: i32,
    overflow_action: String,
    overflow_number: Option<String>,
}

const COLUMNS: &str =
    "id, name, inbound_number, strategy, required_skills, max_wait_secs, overflow_action, overflow_number";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DepartmentBody {
    name: String,
    inbound_number: Option<String>,
    #[serde(default = "round_robin")]
    strategy: String,
    #[serde(default)]
    required_skills: Vec<String>,
    #[serde(default = "two_minutes")]
    max_wait_secs: i32,
    #[serde(default = "voicemail")]
    overflow_action: String,
    overflow_number: Option<String>,
}

fn round_robin() -> String {
    Strategy::RoundRobin.as_str().into()
}

fn two_minutes() -> i32 {
    120
}

fn voicemail() -> String {
    "voicemail".into()
}

/// The body checked field by field, numbers in E.164.
fn validated(body: DepartmentBody) -> Result<DepartmentBody, ApiError> {
    check(!body.name.trim().is_empty(), "name", "must not be empty")?;
    body.strategy.parse::<Strategy>().map_err(|e| ApiError::validation("strategy", e))?;
    check(body.required_skills.iter().all(|s| !s.trim().is_empty()), "required_skills", "must be non-empty names")?;
    check((1..=3600).contains(&body.max_wait_secs), "max_wait_secs", "must be between 1 and 3600")?;
    let overflow_ok = matches!(body.overflow_action.as_str(), "voicemail" | "callback" | "transfer");
    check(overflow_ok, "overflow_action", "must be voicemail, callback or transfer")?;
    let e164 = |field: &str, raw: Option<String>| raw.map(|n| ApiError::e164(field, &n).map(String::from)).transpose();
    let inbound_number = e164("inbound_number", body.inbound_number)?;
    let overflow_number = e164("overflow_number", body.overflow_number)?;
    let transfer_ok = body.overflow_action != "transfer" || overflow_number.is_some();
    check(transfer_ok, "overflow_number", "is required when overflow_action is transfer")?;
    Ok(DepartmentBody { inbound_number, overflow_number, name: body.name.trim().to_owned(), ..body })
}

#[utoipa::path(post, path = "/api/departments", operation_id = "post_departments", tag = "departments", request_body = DepartmentBody, responses((status = 201, body = Department, links(("get_departments_id" = (operation_id = "get_departments_id", parameters(("id" = "$response.body#/id")))), ("delete_departments_id" = (operation_id = "delete_departments_id", parameters(("id" = "$response.body#/id")))))), (status = 409, body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals))]
async fn create(
    State(state): State<AppState>,
    Body(body): Body<DepartmentBody>,
) -> Result<(StatusCode, Json<Department>), ApiError> {
    let body = validated(body)?;
    let sql = format!(
        "INSERT INTO departments (name, inbound_number, strategy, required_skills, max_wait_secs, overflow_action, overflow_number)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    let department = with_fields(&sql, &body).fetch_one(&state.pool).await.map_err(|e| refused(e, "name"))?;
    Ok((StatusCode::CREATED, Json(department)))
}

/// `sql` with the body's fields bound as `$1` to `$7`, in the table's column order.
fn with_fields<'q>(
    sql: &'q str,
    body: &'q DepartmentBody,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Department, sqlx::postgres::PgArguments> {
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&body.name)
        .bind(&body.inbound_number)
        .bind(&body.strategy)
        .bind(&body.required_skills)
        .bind(body.max_wait_secs)
        .bind(&body.overflow_action)
        .bind(&body.overflow_number)
}

#[utoipa::path(get, path = "/api/departments", operation_id = "get_departments", tag = "departments", responses((status = 200, body = Vec<Department>), crate::web::openapi::Refusals))]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<Department>>, ApiError> {
    let departments = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM departments ORDER BY id")))
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(departments))
}

#[utoipa::path(get, path = "/api/departments/{id}", operation_id = "get_departments_id", tag = "departments", params(("id" = i64, Path, description = "the id")), responses((status = 200, body = Department), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn read(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<Department>, ApiError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM departments WHERE id = $1")))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("department {id}")))
}

#[utoipa::path(put, path = "/api/departments/{id}", operation_id = "put_departments_id", tag = "departments", params(("id" = i64, Path, description = "the id")), request_body = DepartmentBody, responses((status = 200, body = Department), (status = 409, body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn replace(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Body(body): Body<DepartmentBody>,
) -> Result<Json<Department>, ApiError> {
    let body = validated(body)?;
    let sql = format!(
        "UPDATE departments SET name = $1, inbound_number = $2, strategy = $3, required_skills = $4,
            max_wait_secs = $5, overflow_action = $6, overflow_number = $7
         WHERE id = $8 RETURNING {COLUMNS}"
    );
    with_fields(&sql, &body)
        .bind(id)
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| refused(e, "name"))?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("department {id}")))
}

#[utoipa::path(delete, path = "/api/departments/{id}", operation_id = "delete_departments_id", tag = "departments", params(("id" = i64, Path, description = "the id")), responses((status = 204, description = "deleted"), (status = 409, body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn remove(State(state): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query("DELETE FROM departments WHERE id = $1").bind(id).execute(&state.pool).await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!("department {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
