//! The Jobs and Workers pages: counts per kind and state (refreshed live),
//! the oldest pending job, failures grouped by error, one job's whole story,
//! replay and discard of one job or of a filter after a preview, and the
//! workers with what they hold.

use std::time::Duration;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use switchboard_jobs::queue::admin::{self, JobState, JobSummary, ListFilter};

use super::charts;
use super::layout::{masked, page, time};
use super::session::Operator;
use crate::web::{ApiError, AppState};

/// A worker silent this long is dead (3 heartbeats at the default 5 s).
const LIVENESS: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub struct Flash {
    done: Option<String>,
}

pub async fn overview(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Query(flash): Query<Flash>,
) -> Result<Markup, ApiError> {
    let groups = admin::errors(&state.pool).await?;
    let failed =
        admin::list(&state.pool, &ListFilter { state: Some(JobState::Dead), limit: 20, ..Default::default() }).await?;
    let per_minute = charts::jobs_per_minute(&state.pool).await?;
    Ok(page(
        "Jobs",
        &operator,
        html! {
            @if let Some(done) = &flash.done { p.flash { (done) } }
            (counts(&state).await?)
            h2 { "Failures by error" }
            @if groups.is_empty() { p.muted { "No dead or retrying jobs." } } @else {
                table #errors {
                    tr { th { "count" } th { "kind" } th { "state" } th { "error" } th { "sample" } th { "last failed" } th {} }
                    @for g in &groups {
                        tr {
                            td.n { (g.count) } td { (g.kind) } td class=(g.state.0.as_str()) { (g.state.0.as_str()) }
                            td { (masked(&g.message)) }
                            td { a href=(format!("/console/jobs/{}", g.sample_id)) { (g.sample_id) } }
                            td { (time(g.last_at)) }
                            td {
                                a href=(bulk_link("replay", &g.kind, g.state.0, &g.message)) { "replay…" } " "
                                a href=(bulk_link("discard", &g.kind, g.state.0, &g.message)) { "discard…" }
                            }
                        }
                    }
                }
            }
            h2 { "Recently dead" }
            (summary_table(&failed))
            h2 { "Throughput" }
            div.charts {
                @for chart in &per_minute { (chart.svg(charts::by_outcome)) }
                @if per_minute.is_empty() { p.muted { "Nothing ran in the last 30 minutes." } }
            }
        },
    ))
}

fn bulk_link(action: &str, kind: &str, state: JobState, error: &str) -> String {
    let query =
        serde_urlencoded::to_string([("action", action), ("kind", kind), ("state", state.as_str()), ("error", error)])
            .expect("strings encode");
    format!("/console/jobs/bulk?{query}")
}

/// The kind x state table, which asks for itself again every two seconds.
pub async fn counts_fragment(State(state): State<AppState>) -> Result<Markup, ApiError> {
    counts(&state).await
}

async fn counts(state: &AppState) -> Result<Markup, ApiError> {
    let stats = admin::stats(&state.pool).await?;
    let paused = admin::paused(&state.pool).await?;
    let mut kinds: Vec<&str> = switchboard_jobs::registry().kinds().collect();
    kinds.extend(stats.counts.iter().map(|c| c.kind.as_str()));
    kinds.sort_unstable();
    kinds.dedup();
    let count = |kind: &str, state: JobState| {
        stats.counts.iter().find(|c| c.kind == kind && c.state == state.as_str()).map_or(0, |c| c.count)
    };
    Ok(html! {
        div #counts hx-get="/console/jobs/counts" hx-trigger="every 2s" hx-swap="outerHTML" {
            table {
                tr { th { "kind" } @for s in JobState::ALL { th { (s.as_str()) } } th { "claiming" } }
                @for kind in &kinds {
                    tr {
                        td { a href=(format!("/console/jobs/list?kind={kind}")) { (kind) } }
                        @for s in JobState::ALL {
                            @let n = count(kind, s);
                            td.n.zero[n == 0] { a href=(format!("/console/jobs/list?kind={kind}&state={}", s.as_str())) { (n) } }
                        }
                        @match paused.iter().find(|(k, _)| k == kind) {
                            Some((_, since)) => td {
                                span.dead id=(format!("paused-{kind}")) { "paused" } " since " (time(Some(*since))) " "
                                button.act id=(format!("resume-{kind}")) hx-post=(format!("/console/kinds/{kind}/resume")) { "Resume" }
                            },
                            None => td {
                                button.act id=(format!("pause-{kind}")) hx-post=(format!("/console/kinds/{kind}/pause"))
                                    hx-confirm=(format!("Pause {kind}? Its jobs wait until resumed; running ones finish.")) { "Pause" }
                            },
                        }
                    }
                }
            }
            p.muted {
                "Oldest pending job: "
                (stats.oldest_pending_age_s.map_or("none".to_owned(), |s| format!("{s:.1} s")))
                " · finished in the last 5 minutes: " (stats.finished_last_5m)
            }
        }
    })
}

/// Pauses or resumes claiming a kind's jobs.
pub async fn pause_or_resume(
    State(state): State<AppState>,
    Path((kind, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    switchboard_jobs::registry().only(std::slice::from_ref(&kind)).map_err(ApiError::NotFound)?;
    let changed = match action.as_str() {
        "pause" => admin::pause(&state.pool, &kind).await?,
        "resume" => admin::resume(&state.pool, &kind).await?,
        _ => return Err(ApiError::NotFound(format!("action {action}"))),
    };
    tracing::info!(kind = %kind, action = %action, changed, "console: queue");
    Ok(redirect("/console/jobs"))
}

fn summary_table(jobs: &[JobSummary]) -> Markup {
    html! {
        @if jobs.is_empty() { p.muted { "No jobs." } } @else {
            table {
                tr { th { "id" } th { "kind" } th { "state" } th { "attempts" } th { "run at" } th { "last error" } }
                @for j in jobs {
                    tr {
                        td { a href=(format!("/console/jobs/{}", j.id)) { (j.id) } }
                        td { (j.kind) } td class=(j.state.0.as_str()) { (j.state.0.as_str()) }
                        td.n { (j.attempts) "/" (j.max_attempts) } td { (time(Some(j.run_at))) }
                        td { (masked(j.last_error.as_deref().unwrap_or(""))) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    kind: Option<String>,
    state: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Query(query): Query<ListQuery>,
) -> Result<Markup, ApiError> {
    let job_state = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let kind = query.kind.filter(|k| !k.is_empty());
    let jobs = admin::list(
        &state.pool,
        &ListFilter { state: job_state, kind: kind.clone(), limit: 100, ..Default::default() },
    )
    .await?;
    let title = format!("Jobs: {} {}", kind.as_deref().unwrap_or("every kind"), job_state.map_or("", JobState::as_str));
    Ok(page(&title, &operator, summary_table(&jobs)))
}

pub async fn detail(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Path(id): Path<String>,
) -> Result<Markup, ApiError> {
    let job = admin::show(&state.pool, &id).await?.ok_or_else(|| ApiError::NotFound(format!("job {id}")))?;
    let s = &job.summary;
    let payload = serde_json::to_string_pretty(&job.payload).unwrap_or_default();
    let url = format!("/console/jobs/{id}");
    Ok(page(
        &format!("Job {id}"),
        &operator,
        html! {
            div #job hx-get=(url) hx-select="#job" hx-target="#job" hx-swap="outerHTML" hx-trigger="every 1s" {
                table {
                    tr { th { "kind" } td { (s.kind) } }
                    tr { th { "state" } td #job-state class=(s.state.0.as_str()) { (s.state.0.as_str()) } }
                    tr { th { "attempts" } td { (s.attempts) " of " (s.max_attempts) } }
                    tr { th { "run at" } td { (time(Some(s.run_at))) } }
                    tr { th { "finished" } td { (time(s.done_at)) } }
                    tr { th { "worker" } td { (s.worker.as_deref().unwrap_or("-")) } }
                }
                @if s.state.0 != JobState::Running {
                    p {
                        button.act #replay hx-post=(format!("{url}/replay")) hx-confirm="Run this job again now, attempts reset?" { "Replay" } " "
                        button.act.danger #discard hx-post=(format!("{url}/discard")) hx-confirm="Delete this job for good?" { "Discard" }
                    }
                }
                h2 { "Errors" }
                @if job.errors.is_empty() { p.muted { "None." } } @else {
                    table {
                        tr { th { "at" } th { "attempt" } th { "outcome" } th { "worker" } th { "message" } }
                        @for e in &job.errors {
                            tr {
                                td { (time(Some(e.at))) } td.n { (e.attempt) } td { (e.outcome) }
                                td { (e.worker.as_deref().unwrap_or("-")) } td { (masked(&e.message)) }
                            }
                        }
                    }
                }
            }
            h2 { "Payload" }
            pre { (masked(&payload)) }
        },
    ))
}

fn redirect(to: &str) -> Response {
    [("hx-redirect", to.to_owned())].into_response()
}

pub async fn replay_one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let replayed = admin::replay(&state.pool, std::slice::from_ref(&id)).await?;
    tracing::info!(job.id = %id, replayed = replayed.len(), "console: replay");
    Ok(redirect(&format!("/console/jobs/{id}")))
}

pub async fn discard_one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let discarded = admin::discard(&state.pool, std::slice::from_ref(&id)).await?;
    tracing::info!(job.id = %id, discarded = discarded.len(), "console: discard");
    Ok(redirect(&format!("/console/jobs?done={}", urlencode(&format!("Discarded {} job.", discarded.len())))))
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).expect("a string encodes").trim_start_matches('=').to_owned()
}

/// A bulk replay or discard: the action and the filter it applies to.
#[derive(Deserialize)]
pub struct Bulk {
    action: String,
    kind: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

impl Bulk {
    fn filter(&self) -> Result<ListFilter, ApiError> {
        if !matches!(self.action.as_str(), "replay" | "discard") {
            return Err(ApiError::validation("action", "must be replay or discard"));
        }
        let state = self.state.as_deref().filter(|s| !s.is_empty()).unwrap_or("dead");
        Ok(ListFilter {
            state: Some(state.parse().map_err(|e: String| ApiError::validation("state", e))?),
            kind: self.kind.clone().filter(|k| !k.is_empty()),
            error: self.error.clone(),
            since: None,
            limit: i64::MAX,
        })
    }
}

/// What a bulk action would change, with the button that does it.
pub async fn bulk_preview(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Query(bulk): Query<Bulk>,
) -> Result<Markup, ApiError> {
    let filter = bulk.filter()?;
    let jobs = admin::list(&state.pool, &filter).await?;
    let vals = serde_json::json!({
        "action": bulk.action, "kind": filter.kind, "state": filter.state.map(JobState::as_str), "error": filter.error,
    });
    Ok(page(
        &format!("{} {} job(s)?", capitalised(&bulk.action), jobs.len()),
        &operator,
        html! {
            p {
                "Kind " strong { (filter.kind.as_deref().unwrap_or("any")) } ", state "
                strong { (filter.state.map_or("", JobState::as_str)) }
                @if let Some(error) = &filter.error { ", last error " strong { (masked(error)) } }
                ". The jobs matching when you confirm are the ones changed."
            }
            @if !jobs.is_empty() {
                p {
                    button.act.danger[bulk.action == "discard"] #confirm hx-post="/console/jobs/bulk" hx-vals=(vals.to_string()) {
                        (capitalised(&bulk.action)) " " (jobs.len()) " job(s)"
                    }
                    " " a href="/console/jobs" { "cancel" }
                }
            }
            (summary_table(&jobs[..jobs.len().min(200)]))
            @if jobs.len() > 200 { p.muted { "… and " (jobs.len() - 200) " more." } }
        },
    ))
}

pub async fn bulk_apply(State(state): State<AppState>, Form(bulk): Form<Bulk>) -> Result<Response, ApiError> {
    let filter = bulk.filter()?;
    let ids = admin::matching_ids(&state.pool, &filter).await?;
    let mut changed = 0;
    for chunk in ids.chunks(500) {
        changed += if bulk.action == "replay" {
            admin::replay(&state.pool, chunk).await?.len()
        } else {
            admin::discard(&state.pool, chunk).await?.len()
        };
    }
    tracing::info!(action = %bulk.action, kind = ?filter.kind, changed, "console: bulk action");
    let verb = if bulk.action == "replay" { "Replayed" } else { "Discarded" };
    Ok(redirect(&format!("/console/jobs?done={}", urlencode(&format!("{verb} {changed} job(s).")))))
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

pub async fn workers(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
) -> Result<Markup, ApiError> {
    let workers = admin::workers(&state.pool, LIVENESS).await?;
    Ok(page(
        "Workers",
        &operator,
        html! {
            div #workers hx-get="/console/workers" hx-select="#workers" hx-target="#workers" hx-swap="outerHTML" hx-trigger="every 3s" {
                @if workers.is_empty() { p.muted { "No worker seen in the last 15 seconds." } } @else {
                    table {
                        tr { th { "worker" } th { "kind" } th { "last seen" } th { "alive" } th { "holding" } }
                        @for w in &workers {
                            tr {
                                td { (w.name) } td { (w.kind) } td { (time(Some(w.last_seen))) }
                                td class=(if w.alive { "done" } else { "dead" }) { (if w.alive { "yes" } else { "no: its jobs are orphans" }) }
                                td {
                                    @for id in &w.holding { a href=(format!("/console/jobs/{id}")) { (id) } " " }
                                    @if w.holding.is_empty() { span.muted { "nothing" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}
