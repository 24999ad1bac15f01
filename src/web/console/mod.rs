//! The operator console at `/console`: server-rendered pages (maud) with a
//! little htmx (vendored, served from here) for live refresh and actions;
//! behind a login with an API token (see `session`).

mod calls;
mod charts;
mod jobs;
mod layout;
mod people;
mod session;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};

use super::AppState;

const HTMX_PATH: &str = "/console/assets/htmx-2.0.11.min.js";
const HTMX: &str = include_str!("assets/htmx-2.0.11.min.js");

pub fn routes(state: AppState) -> Router<AppState> {
    let pages = Router::new()
        .route("/console", get(|| async { Redirect::to("/console/jobs") }))
        .route("/console/jobs", get(jobs::overview))
        .route("/console/jobs/counts", get(jobs::counts_fragment))
        .route("/console/jobs/list", get(jobs::list))
        .route("/console/jobs/bulk", get(jobs::bulk_preview).post(jobs::bulk_apply))
        .route("/console/jobs/{id}", get(jobs::detail))
        .route("/console/jobs/{id}/replay", post(jobs::replay_one))
        .route("/console/jobs/{id}/discard", post(jobs::discard_one))
        .route("/console/kinds/{kind}/{action}", post(jobs::pause_or_resume))
        .route("/console/workers", get(jobs::workers))
        .route("/console/calls", get(calls::list))
        .route("/console/calls/{sid}", get(calls::detail))
        .route("/console/calls/{sid}/reveal/{field}", get(calls::reveal))
        .route("/console/calls/{sid}/recording", get(super::recordings_api::recording))
        .route("/console/leads", get(people::leads))
        .route("/console/agents", get(people::agents))
        .route("/console/agents/{id}", post(people::change_agent))
        .route("/console/logout", post(session::logout))
        .route_layer(axum::middleware::from_fn_with_state(state, session::require_operator));
    Router::new()
        .route("/console/login", get(session::login_page).post(session::login))
        .route(HTMX_PATH, get(htmx))
        .merge(pages)
}

async fn htmx() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        HTMX,
    )
}
