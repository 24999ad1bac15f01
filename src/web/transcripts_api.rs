//! `GET /api/transcripts/search?q=&limit=`: calls whose transcript matches a
//! web-search style query, best first, with highlighted snippets.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new().route("/transcripts/search", get(search))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Hit {
    call_sid: String,
    transcript_id: i64,
    recording_id: i64,
    language: Option<String>,
    /// The matching passages, terms wrapped in `<mark>`.
    snippet: String,
    rank: f32,
}

async fn search(State(state): State<AppState>, Query(query): Query<SearchQuery>) -> Result<Json<Vec<Hit>>, ApiError> {
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let q = q.ok_or_else(|| ApiError::validation("q", "is required"))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 100"));
    }
    let hits = sqlx::query_as(
        "SELECT t.call_sid, t.id AS transcript_id, t.recording_id, t.language,
                ts_headline('simple', t.text, query, 'StartSel=<mark>, StopSel=</mark>, MaxFragments=2, MaxWords=20, MinWords=5') AS snippet,
                ts_rank(t.search, query) AS rank
         FROM transcripts t, websearch_to_tsquery('simple', $1) AS query
         WHERE t.search @@ query
         ORDER BY rank DESC, t.id DESC
         LIMIT $2",
    )
    .bind(q)
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(hits))
}
