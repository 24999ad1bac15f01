//! `GET /api/jobs/stats`: the queue's counts for dashboards and alerting.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use switchboard_jobs::queue::admin::{self, Stats};

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/jobs/stats", get(stats))
}

#[utoipa::path(get, path = "/api/jobs/stats", operation_id = "get_jobs_stats", tag = "jobs", responses((status = 200, body = crate::web::openapi::JobStats), crate::web::openapi::Refusals))]
async fn stats(State(state): State<AppState>) -> Result<Json<Stats>, ApiError> {
    Ok(Json(admin::stats(&state.pool).await?))
}
