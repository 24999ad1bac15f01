//! The Calls page (recent calls, transcript search, calls per hour and the
//! after-call latency) and one call's page: the recording playable in the
//! page, its transcript, insight and lead. Numbers are masked; an operator
//! reveals one at a time, and each reveal is logged.

use axum::Extension;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;
use switchboard_jobs::phone::mask;

use super::charts;
use super::layout::{masked, page, time};
use super::session::Operator;
use crate::web::call_key::{self, Which};
use crate::web::{ApiError, AppState};

#[derive(sqlx::FromRow)]
struct CallRow {
    call_sid: String,
    provider: String,
    direction: String,
    from_number: Option<String>,
    to_number: Option<String>,
    status: String,
    agent: Option<String>,
    duration_secs: Option<i32>,
    created_at: DateTime<Utc>,
    recorded: bool,
    transcribed: bool,
    lead_id: Option<i64>,
}

const CALLS: &str = "SELECT c.call_sid, c.provider, c.direction, c.from_number, c.to_number, c.status, a.name AS agent,
        c.duration_secs, c.created_at,
        EXISTS (SELECT 1 FROM recordings r WHERE r.provider = c.provider AND r.call_sid = c.call_sid
                AND r.status = 'stored') AS recorded,
        EXISTS (SELECT 1 FROM transcripts t JOIN recordings r ON r.id = t.recording_id
                WHERE r.provider = c.provider AND r.call_sid = c.call_sid AND t.status = 'transcribed') AS transcribed,
        (SELECT lc.lead_id FROM lead_calls lc JOIN insights i ON i.id = lc.insight_id
                JOIN transcripts t ON t.id = i.transcript_id JOIN recordings r ON r.id = t.recording_id
                WHERE r.provider = c.provider AND r.call_sid = c.call_sid LIMIT 1) AS lead_id
    FROM calls c LEFT JOIN agents a ON a.id = c.agent_id";

#[derive(Deserialize)]
pub struct Search {
    q: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Query(search): Query<Search>,
) -> Result<Markup, ApiError> {
    let q = search.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let hits = match q {
        Some(q) => crate::web::transcripts_api::search_hits(&state.pool, q, 20).await?,
        None => Vec::new(),
    };
    let calls: Vec<CallRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{CALLS} ORDER BY c.id DESC LIMIT 50")))
        .fetch_all(&state.pool)
        .await?;
    let per_hour = charts::calls_per_hour(&state.pool).await?;
    let latency = charts::pipeline_latency(&state.pool).await?;
    Ok(page(
        "Calls",
        &operator,
        html! {
            form method="get" action="/console/calls" {
                input type="search" name="q" value=(q.unwrap_or("")) placeholder="Search transcripts, e.g. Whitefield";
                " " button.act type="submit" { "Search" }
            }
            @if let Some(q) = q {
                h2 { "Transcripts matching “" (q) "”" }
                @if hits.is_empty() { p.muted { "No transcript matches." } }
                table {
                    @for hit in &hits {
                        tr {
                            td { a href=(format!("/console/calls/{}", hit.call_sid)) { (hit.call_sid) } }
                            td { (hit.language.as_deref().unwrap_or("")) }
                            // Escaped by the search: only its <mark> tags are markup.
                            td { (PreEscaped(masked(&hit.snippet))) }
                        }
                    }
                }
            }
            div.charts {
                (per_hour.svg(charts::by_outcome))
                (latency.svg(charts::by_position))
            }
            h2 { "Recent calls" }
            table #calls {
                tr {
                    th { "when" } th { "call" } th { "direction" } th { "from" } th { "to" } th { "status" }
                    th { "agent" } th { "duration" } th { "after the call" }
                }
                @for c in &calls {
                    tr {
                        td { (time(Some(c.created_at))) }
                        td { a href=(c.page()) { (c.call_sid) } br; span.muted { (c.provider) } }
                        td { (c.direction) }
                        td { (number(c, "from", c.from_number.as_deref())) }
                        td { (number(c, "to", c.to_number.as_deref())) }
                        td { (c.status) }
                        td { (c.agent.as_deref().unwrap_or("-")) }
                        td.n { (c.duration_secs.map_or("-".to_owned(), |d| format!("{d} s"))) }
                        td {
                            @if c.recorded { "recording " }
                            @if c.transcribed { "transcript " }
                            @if let Some(lead) = c.lead_id { a href=(format!("/console/leads#lead-{lead}")) { "lead" } }
                        }
                    }
                }
            }
        },
    ))
}

impl CallRow {
    /// The call's page, by provider and sid.
    fn page(&self) -> String {
        format!("/console/calls/{}?provider={}", self.call_sid, self.provider)
    }
}

/// A masked number of `call` with a button that asks for it in full.
fn number(call: &CallRow, field: &str, value: Option<&str>) -> Markup {
    let (sid, provider) = (&call.call_sid, &call.provider);
    match value {
        None => html! { "-" },
        Some(value) => html! {
            span.number {
                (mask(value)) " "
                button.act hx-get=(format!("/console/calls/{sid}/reveal/{field}?provider={provider}")) hx-target="closest .number" hx-swap="outerHTML"
                    title="Show the full number (logged)" { "reveal" }
            }
        },
    }
}

pub async fn reveal(
    State(state): State<AppState>,
    Path((sid, field)): Path<(String, String)>,
    Query(which): Query<Which>,
) -> Result<Markup, ApiError> {
    let provider = call_key::resolve(&state.pool, &sid, &which).await?;
    let column = match field.as_str() {
        "from" => "from_number",
        "to" => "to_number",
        _ => return Err(ApiError::NotFound(format!("number {field}"))),
    };
    let number: Option<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {column} FROM calls WHERE provider = $1 AND call_sid = $2"
    )))
    .bind(provider)
    .bind(&sid)
    .fetch_optional(&state.pool)
    .await?;
    let number = number.flatten().ok_or_else(|| ApiError::NotFound(format!("a {field} number of call {sid}")))?;
    tracing::info!(call_sid = %sid, field, "console: an operator revealed a phone number");
    Ok(html! { span.number.revealed { (number) } })
}

pub async fn detail(
    State(state): State<AppState>,
    Extension(operator): Extension<Operator>,
    Path(sid): Path<String>,
    Query(which): Query<Which>,
) -> Result<Markup, ApiError> {
    let provider = call_key::resolve(&state.pool, &sid, &which).await?;
    let call: Option<CallRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{CALLS} WHERE c.provider = $1 AND c.call_sid = $2")))
            .bind(provider)
            .bind(&sid)
            .fetch_optional(&state.pool)
            .await?;
    let outcome = crate::web::call_outcome::for_call(&state.pool, provider, &sid).await?;
    let recordings = outcome["recordings"].as_array().cloned().unwrap_or_default();
    if call.is_none() && recordings.is_empty() {
        return Err(ApiError::NotFound(format!("call {sid}")));
    }
    let stored = recordings.iter().any(|r| r["status"] == "stored");
    let transcripts = outcome["transcripts"].as_array().cloned().unwrap_or_default();
    let insights = outcome["insights"].as_array().cloned().unwrap_or_default();
    let lead = &outcome["lead"];
    let text = |v: &Value| v.as_str().map(masked).unwrap_or_default();
    Ok(page(
        &format!("Call {sid}"),
        &operator,
        html! {
            @if let Some(c) = &call {
                table {
                    tr { th { "when" } td { (time(Some(c.created_at))) } }
                    tr { th { "provider" } td { (c.provider) " · " (c.direction) } }
                    tr { th { "status" } td { (c.status) } }
                    tr { th { "from" } td { (number(c, "from", c.from_number.as_deref())) } }
                    tr { th { "to" } td { (number(c, "to", c.to_number.as_deref())) } }
                    tr { th { "agent" } td { (c.agent.as_deref().unwrap_or("-")) } }
                    tr { th { "duration" } td { (c.duration_secs.map_or("-".to_owned(), |d| format!("{d} s"))) } }
                }
            }
            h2 { "Recording" }
            @if stored {
                audio #recording controls preload="metadata" src=(format!("/console/calls/{sid}/recording?provider={}", provider.as_str())) {}
            } @else { p.muted { "No stored recording." } }
            h2 { "Transcript" }
            @for t in &transcripts {
                @if t["status"] == "skipped" { p.muted { "Skipped: " (text(&t["skip_reason"])) } }
                @else { div #transcript { p.muted { (text(&t["language"])) " · " (text(&t["model"])) } pre { (text(&t["text"])) } } }
            }
            @if transcripts.is_empty() { p.muted { "No transcript yet." } }
            h2 { "Insight" }
            @for i in &insights {
                table #insight {
                    tr { th { "score" } td { (i["lead_score"]) } }
                    tr { th { "sentiment" } td { (text(&i["sentiment"])) } }
                    tr { th { "summary" } td { (text(&i["data"]["summary"])) } }
                    tr { th { "next action" } td { (text(&i["data"]["next_best_action"])) } }
                    tr { th { "cost" } td { "$" (format!("{:.4}", i["cost_micro_usd"].as_f64().unwrap_or(0.0) / 1e6)) } }
                }
            }
            @if insights.is_empty() { p.muted { "No insight yet." } }
            h2 { "Lead" }
            @if lead.is_object() {
                p {
                    a href=(format!("/console/leads#lead-{}", lead["id"])) { (lead["name"].as_str().map_or("(no name)".to_owned(), masked)) }
                    " · score " (lead["score"]) @if lead["hot"] == true { " · " strong.dead { "hot" } }
                    " · " (text(&lead["next_best_action"]))
                }
            } @else { p.muted { "No lead from this call." } }
        },
    ))
}
