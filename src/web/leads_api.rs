//! `GET /api/leads` (filters: hot, score range, creation dates, location;
//! newest first, keyset pagination with `before`) and `GET /api/leads/{id}`
//! with the calls it came from.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Params};

pub fn routes() -> Router<AppState> {
    Router::new().route("/leads", get(list)).route("/leads/{id}", get(show))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LeadFilter {
    hot: Option<bool>,
    #[param(minimum = 0, maximum = 100)]
    min_score: Option<i32>,
    #[param(minimum = 0, maximum = 100)]
    max_score: Option<i32>,
    created_after: Option<DateTime<Utc>>,
    created_before: Option<DateTime<Utc>>,
    /// Matches any preferred location containing this text, case-insensitively.
    location: Option<String>,
    /// Only leads with a smaller id (the previous page's `next_before`).
    before: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/leads", operation_id = "get_leads", tag = "leads", params(LeadFilter), responses((status = 200, body = crate::web::openapi::Leads), crate::web::openapi::Refusals))]
async fn list(State(state): State<AppState>, Params(filter): Params<LeadFilter>) -> Result<Json<Value>, ApiError> {
    let limit = filter.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 200"));
    }
    for (field, score) in [("min_score", filter.min_score), ("max_score", filter.max_score)] {
        if score.is_some_and(|s| !(0..=100).contains(&s)) {
            return Err(ApiError::validation(field, "must be between 0 and 100"));
        }
    }
    let rows: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT l.id, to_jsonb(l) FROM leads l
         WHERE ($1::boolean IS NULL OR l.hot = $1)
           AND ($2::integer IS NULL OR l.score >= $2)
           AND ($3::integer IS NULL OR l.score <= $3)
           AND ($4::timestamptz IS NULL OR l.created_at >= $4)
           AND ($5::timestamptz IS NULL OR l.created_at < $5)
           AND ($6::text IS NULL OR EXISTS (
                SELECT 1 FROM unnest(l.preferred_locations) AS loc WHERE strpos(lower(loc), lower($6)) > 0))
           AND ($7::bigint IS NULL OR l.id < $7)
         ORDER BY l.id DESC
         LIMIT $8",
    )
    .bind(filter.hot)
    .bind(filter.min_score)
    .bind(filter.max_score)
    .bind(filter.created_after)
    .bind(filter.created_before)
    .bind(filter.location.as_deref().map(str::trim).filter(|l| !l.is_empty()))
    .bind(filter.before)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|(id, _)| *id)).flatten();
    let leads: Vec<Value> = rows.into_iter().map(|(_, lead)| lead).collect();
    Ok(Json(json!({ "leads": leads, "next_before": next_before })))
}

#[utoipa::path(get, path = "/api/leads/{id}", operation_id = "get_leads_id", tag = "leads", params(("id" = i64, Path, description = "the id")), responses((status = 200, body = crate::web::openapi::LeadWithCalls), crate::web::openapi::Refusals, crate::web::openapi::Missing))]
async fn show(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let lead: Option<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(l) || jsonb_build_object('calls', COALESCE((
            SELECT jsonb_agg(jsonb_build_object(
                'call_sid', lc.call_sid, 'insight_id', lc.insight_id, 'linked_at', lc.linked_at,
                'crm_delivered_at', lc.crm_delivered_at, 'lead_score', i.lead_score, 'sentiment', i.sentiment,
                'summary', i.data ->> 'summary', 'cost_micro_usd', i.cost_micro_usd) ORDER BY lc.linked_at)
            FROM lead_calls lc JOIN insights i ON i.id = lc.insight_id WHERE lc.lead_id = l.id), '[]'))
         FROM leads l WHERE l.id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    lead.map(Json).ok_or_else(|| ApiError::NotFound(format!("lead {id}")))
}
