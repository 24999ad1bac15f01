//! `X-Request-ID`: Heroku's router gives every request an id; each log line
//! of the request carries it (`request_id`, a span field) and the response
//! echoes it. A request without one, or with one that is not a plain token of
//! at most 200 characters, gets a fresh UUID instead.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// Runs the rest of the request inside a `request` span with its id.
pub async fn in_span(request: Request, next: Next) -> Response {
    let id = request.headers().get(HEADER).and_then(|v| v.to_str().ok()).filter(|v| is_plain_token(v));
    let id = id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// What Heroku sends (a UUID) and what other routers do (20-200 of `[A-Za-z0-9+/=-]`).
fn is_plain_token(value: &str) -> bool {
    (1..=200).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=-_.".contains(&b))
}
