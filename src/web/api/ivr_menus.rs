//! `/api/ivr-menus`: IVR menus with their key options (a digit leads to a
//! department or a sub-menu), created, listed, read, replaced and deleted.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use super::{Body, check, refused};
use crate::web::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ivr-menus", get(list).post(create))
        .route("/ivr-menus/{id}", get(read).put(replace).delete(remove))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MenuOption {
    digit: String,
    department_id: Option<i64>,
    submenu_id: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
struct Menu {
    id: i64,
    phone_number: Option<String>,
    prompt: String,
    timeout_secs: i32,
    max_retries: i32,
    fallback_department_id: Option<i64>,
    #[sqlx(skip)]
    options: Vec<MenuOption>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MenuBody {
    /// Set on root menus only: the called number this menu answers.
    phone_number: Option<String>,
    prompt: String,
    #[serde(default = "five")]
    timeout_secs: i32,
    #[serde(default = "two")]
    max_retries: i32,
    fallback_department_id: Option<i64>,
    #[serde(default)]
    options: Vec<MenuOption>,
}

fn five() -> i32 {
    5
}

fn two() -> i32 {
    2
}

fn validated(body: MenuBody) -> Result<MenuBody, ApiError> {
    check(!body.prompt.trim().is_empty(), "prompt", "must not be empty")?;
    check((1..=60).contains(&body.timeout_secs), "timeout_secs", "must be between 1 and 60")?;
    check((0..=10).contains(&body.max_retries), "max_retries", "must be between 0 and 10")?;
    for option in &body.options {
        let one_key =
            option.digit.len() == 1 && option.digit.chars().all(|c| c.is_ascii_digit() || c == '*' || c == '#');
        check(one_key, "options.digit", "must be one key: 0-9, * or #")?;
        let one_target = option.department_id.is_some() != option.submenu_id.is_some();
        check(one_target, "options", "each option needs exactly one of department_id or submenu_id")?;
    }
    let mut digits: Vec<&str> = body.options.iter().map(|o| o.digit.as_str()).collect();
    digits.sort_unstable();
    check(digits.windows(2).all(|w| w[0] != w[1]), "options.digit", "each key may appear once")?;
    let phone_number = body.phone_number.map(|n| ApiError::e164("phone_number", &n).map(String::from)).transpose()?;
    Ok(MenuBody { phone_number, ..body })
}

const COLUMNS: &str = "id, phone_number, prompt, timeout_secs, max_retries, fallback_department_id";

async fn with_options(pool: &PgPool, mut menus: Vec<Menu>) -> Result<Vec<Menu>, sqlx::Error> {
    let ids: Vec<i64> = menus.iter().map(|m| m.id).collect();
    let rows: Vec<(i64, String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT menu_id, digit, department_id, submenu_id FROM ivr_options WHERE menu_id = ANY($1) ORDER BY digit",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for menu in &mut menus {
        menu.options = rows
            .iter()
            .filter(|(menu_id, ..)| *menu_id == menu.id)
            .map(|(_, digit, department_id, submenu_id)| MenuOption {
                digit: digit.clone(),
                department_id: *department_id,
                submenu_id: *submenu_id,
            })
            .collect();
    }
    Ok(menus)
}

async fn one(pool: &PgPool, id: i64) -> Result<Json<Menu>, ApiError> {
    let menu: Option<Menu> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ivr_menus WHERE id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let menu = menu.ok_or_else(|| ApiError::NotFound(format!("IVR menu {id}")))?;
    Ok(Json(with_options(pool, vec![menu]).await?.remove(0)))
}

async fn write_options(conn: &mut PgConnection, menu_id: i64, options: &[MenuOption]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ivr_options WHERE menu_id = $1").bind(menu_id).execute(&mut *conn).await?;
    for option in options {
        sqlx::query("INSERT INTO ivr_options (menu_id, digit, department_id, submenu_id) VALUES ($1, $2, $3, $4)")
            .bind(menu_id)
            .bind(&option.digit)
            .bind(option.department_id)
            .bind(option.submenu_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/ivr-menus", operation_id = "post_ivr_menus", tag = "ivr-menus", request_body = MenuBody, responses((status = 201, body = Menu, links(("get_ivr_menus_id" = (operation_id = "get_ivr_menus_id", parameters(("id" = "$response.body#/id")))), ("delete_ivr_menus_id" = (operation_id = "delete_ivr_menus_id", parameters(("id" = "$response.body#/id")))))), (status = 409, body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals))]
async fn create(
    State(state): State<AppState>,
    Body(body): Body<MenuBody>,
) -> Result<(StatusCode, Json<Menu>), ApiError> {
    let body = validated(body)?;
    let mut tx = state.pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO ivr_menus (phone_number, prompt, timeout_secs, max_retries, fallback_department_id)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&body.phone_number)
    .bind(body.prompt.trim())
    .bind(body.timeout_secs)
    .bind(body.max_retries)
    .bind(body.fallback_department_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| refused(e, "fallback_department_id"))?;
    write_options(&mut tx, id, &body.options).await.map_err(|e| refused(e, "options"))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, one(&state.pool, id).await?))
}

#[utoipa::path(put, path = "/api/ivr-menus/{id}", operation_id = "put_ivr_menus_id", tag = "ivr-menus", params(("id" = i64, Path, description = "the id")), request_body = MenuBody, responses((status = 200, body = Menu), (status = 409, body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn replace(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Body(body): Body<MenuBody>,
) -> Result<Json<Menu>, ApiError> {
    let body = validated(body)?;
    let mut tx = state.pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE ivr_menus SET phone_number = $2, prompt = $3, timeout_secs = $4, max_retries = $5,
            fallback_department_id = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(&body.phone_number)
    .bind(body.prompt.trim())
    .bind(body.timeout_secs)
    .bind(body.max_retries)
    .bind(body.fallback_department_id)
    .execute(&mut *tx)
    .await
    .map_err(|e| refused(e, "fallback_department_id"))?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!("IVR menu {id}")));
    }
    write_options(&mut tx, id, &body.options).await.map_err(|e| refused(e, "options"))?;
    tx.commit().await?;
    one(&state.pool, id).await
}

#[utoipa::path(get, path = "/api/ivr-menus", operation_id = "get_ivr_menus", tag = "ivr-menus", responses((status = 200, body = Vec<Menu>), crate::web::openapi::Refusals))]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<Menu>>, ApiError> {
    let menus = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM ivr_menus ORDER BY id")))
        .fetch_all(&state.pool)
        .await?;
    Ok(Json(with_options(&state.pool, menus).await?))
}

#[utoipa::path(get, path = "/api/ivr-menus/{id}", operation_id = "get_ivr_menus_id", tag = "ivr-menus", params(("id" = i64, Path, description = "the id")), responses((status = 200, body = Menu), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn read(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<Menu>, ApiError> {
    one(&state.pool, id).await
}

#[utoipa::path(delete, path = "/api/ivr-menus/{id}", operation_id = "delete_ivr_menus_id", tag = "ivr-menus", params(("id" = i64, Path, description = "the id")), responses((status = 204, description = "deleted"), (status = 409, body = crate::web::openapi::ErrorBody), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn remove(State(state): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    let deleted = sqlx::query("DELETE FROM ivr_menus WHERE id = $1").bind(id).execute(&state.pool).await?;
    if deleted.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!("IVR menu {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
