//! The Leads page (hot leads first: scores, next action and when) and the
//! Agents page (status and load against their maximum, changed in place).

use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use switchboard_jobs::phone::mask;

use super::layout::{page, time};
use super::session::Operator;
use crate::web::{ApiError, AppState};

#[derive(sqlx::FromRow)]
struct Lead {
    id: i64,
    name: Option<String>,
    phone: String,
    score: Option<i32>,
    hot: bool,
    preferred_locations: Vec<String>,
    summary: Option<String>,
    next_best_action: Option<String>,
    follow_up_due_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
}

pub async fn leads(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
) -> Result<Markup, ApiError> {
    let leads: Vec<Lead> = sqlx::query_as(
        "SELECT id, name, phone, score, hot, preferred_locations, summary, next_best_action, follow_up_due_at, updated_at
         FROM leads ORDER BY hot DESC, score DESC NULLS LAST, updated_at DESC LIMIT 100",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(page(
        "Leads",
        &operator,
        html! {
            @if leads.is_empty() { p.muted { "No leads yet." } }
            table #leads {
                tr { th { "lead" } th { "phone" } th { "score" } th { "wants" } th { "next action" } th { "due" } th { "updated" } }
                @for l in &leads {
                    tr id=(format!("lead-{}", l.id)) {
                        td { (l.name.as_deref().unwrap_or("(no name)")) @if l.hot { " " strong.dead { "hot" } } br;
                             span.muted { (super::layout::masked(l.summary.as_deref().unwrap_or(""))) } }
                        td { (mask(&l.phone)) }
                        td.n { (l.score.map_or("-".to_owned(), |s| s.to_string())) }
                        td { (l.preferred_locations.join(", ")) }
                        td { (l.next_best_action.as_deref().unwrap_or("-")) }
                        td { (time(l.follow_up_due_at)) }
                        td { (time(Some(l.updated_at))) }
                    }
                }
            }
        },
    ))
}

#[derive(sqlx::FromRow)]
struct Agent {
    id: i64,
    name: String,
    department: Option<String>,
    status: String,
    current_calls: i32,
    max_concurrent_calls: i32,
}

const STATUSES: [&str; 3] = ["available", "break", "offline"];

pub async fn agents(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
) -> Result<Markup, ApiError> {
    let agents: Vec<Agent> = sqlx::query_as(
        "SELECT a.id, a.name, d.name AS department, a.status, a.current_calls, a.max_concurrent_calls
         FROM agents a LEFT JOIN departments d ON d.id = a.department_id ORDER BY d.name NULLS LAST, a.name",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(page(
        "Agents",
        &operator,
        html! {
            table #agents hx-get="/console/agents" hx-select="#agents" hx-swap="outerHTML" hx-trigger="every 5s [!document.activeElement.closest('#agents')]" {
                tr { th { "agent" } th { "department" } th { "status" } th { "load" } th { "max at once" } }
                @for a in &agents {
                    tr {
                        td { (a.name) } td { (a.department.as_deref().unwrap_or("-")) }
                        td {
                            select name="status" hx-post=(format!("/console/agents/{}", a.id)) hx-trigger="change" {
                                @for s in STATUSES { option value=(s) selected[a.status == s] { (s) } }
                            }
                        }
                        td {
                            span.bar style=(format!("width:{}em", 6.0 * f64::from(a.current_calls) / f64::from(a.max_concurrent_calls.max(1)))) {}
                            " " (a.current_calls) " / " (a.max_concurrent_calls)
                        }
                        td {
                            input type="number" name="max_concurrent_calls" min="1" max="100" value=(a.max_concurrent_calls)
                                hx-post=(format!("/console/agents/{}", a.id)) hx-trigger="change" style="width:4em";
                        }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct AgentChange {
    status: Option<String>,
    max_concurrent_calls: Option<i32>,
}

/// Sets an agent's status or maximum, with the API's rules.
pub async fn change_agent(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Form(change): Form<AgentChange>,
) -> Result<Response, ApiError> {
    if let Some(status) = &change.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::validation("status", "must be available, break or offline"));
    }
    if let Some(max) = change.max_concurrent_calls
        && !(1..=100).contains(&max)
    {
        return Err(ApiError::validation("max_concurrent_calls", "must be between 1 and 100"));
    }
    let updated = sqlx::query(
        "UPDATE agents SET status = COALESCE($2, status), max_concurrent_calls = COALESCE($3, max_concurrent_calls),
                updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(&change.status)
    .bind(change.max_concurrent_calls)
    .execute(&state.pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!("agent {id}")));
    }
    tracing::info!(agent_id = id, status = ?change.status, max = ?change.max_concurrent_calls, "console: agent changed");
    Ok([("hx-redirect", "/console/agents")].into_response())
}
