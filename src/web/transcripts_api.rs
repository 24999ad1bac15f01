//! `GET /api/transcripts/search?q=&limit=`: calls whose transcript matches a
//! web-search style query, best first, with highlighted snippets: the
//! transcript's own text HTML-escaped, only our `<mark>` tags left as markup.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Params};

pub fn routes() -> Router<AppState> {
    Router::new().route("/transcripts/search", get(search))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// Web-search syntax: words, "quoted phrases", -excluded.
    #[param(required = true, min_length = 1, pattern = "\\S")]
    q: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = TranscriptHit)]
pub(crate) struct Hit {
    pub call_sid: String,
    transcript_id: i64,
    recording_id: i64,
    pub language: Option<String>,
    /// The matching passages, HTML-escaped, terms wrapped in `<mark>`.
    pub snippet: String,
    rank: f32,
}

/// Where `ts_headline` starts and stops a match: private-use characters,
/// removed from the text first, so they mark our highlights and nothing else.
const START: char = '\u{E000}';
const STOP: char = '\u{E001}';

/// `headline` HTML-escaped, its START/STOP markers turned into `<mark>` tags.
fn highlighted(headline: &str) -> String {
    let mut html = String::with_capacity(headline.len() + 32);
    for c in headline.chars() {
        match c {
            START => html.push_str("<mark>"),
            STOP => html.push_str("</mark>"),
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            c => html.push(c),
        }
    }
    html
}

#[utoipa::path(get, path = "/api/transcripts/search", operation_id = "get_transcripts_search", tag = "calls", params(SearchQuery), responses((status = 200, body = Vec<Hit>), crate::web::openapi::Refusals))]
async fn search(State(state): State<AppState>, Params(query): Params<SearchQuery>) -> Result<Json<Vec<Hit>>, ApiError> {
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let q = q.ok_or_else(|| ApiError::validation("q", "is required"))?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation("limit", "must be between 1 and 100"));
    }
    Ok(Json(search_hits(&state.pool, q, limit).await?))
}

/// Transcripts matching `q`, best first, with highlighted snippets (the console's search too).
pub(crate) async fn search_hits(pool: &sqlx::PgPool, q: &str, limit: i64) -> Result<Vec<Hit>, sqlx::Error> {
    let mut hits: Vec<Hit> = sqlx::query_as(
        "SELECT t.call_sid, t.id AS transcript_id, t.recording_id, t.language,
                ts_headline('simple', translate(t.text, $3, ''), query,
                            'StartSel=' || $4 || ', StopSel=' || $5 || ', MaxFragments=2, MaxWords=20, MinWords=5') AS snippet,
                ts_rank(t.search, query) AS rank
         FROM transcripts t, websearch_to_tsquery('simple', $1) AS query
         WHERE t.search @@ query
         ORDER BY rank DESC, t.id DESC
         LIMIT $2",
    )
    .bind(q)
    .bind(limit)
    .bind(format!("{START}{STOP}"))
    .bind(START.to_string())
    .bind(STOP.to_string())
    .fetch_all(pool)
    .await?;
    for hit in &mut hits {
        hit.snippet = highlighted(&hit.snippet);
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_escaped_except_for_our_marks() {
        let headline = format!("<script>alert(\"x\" & 'y')</script> {START}Whitefield{STOP} flat");
        assert_eq!(
            highlighted(&headline),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt; <mark>Whitefield</mark> flat"
        );
    }
}
