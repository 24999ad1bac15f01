//! Provider webhooks, each handled in the same order: authenticate (403, a
//! log line saying why, nothing stored), parse (400), then ONE transaction
//! that stores the raw event under its dedupe key, upserts the call and
//! enqueues the job, then the answer. A duplicate stores and enqueues nothing
//! and gets the same answer. A database unreachable or going away is a 503
//! (the provider retries), never a 200 or a 500.

mod exotel;
mod twilio;
mod twilio_legs;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use switchboard_jobs::calls;
use switchboard_jobs::ports::Provider;
use switchboard_jobs::route_call;

use super::AppState;

/// The largest webhook body: Twilio's and Exotel's are a few kilobytes.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(twilio::routes())
        .merge(twilio_legs::routes())
        .merge(exotel::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
}

/// Request headers worth keeping with the raw event (never credentials), each
/// when no longer than [`MAX_KEPT_HEADER`]: they are unsigned, and a 60 kB
/// idempotency token must not be stored as is.
const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "user-agent",
    "i-twilio-idempotency-token",
    "x-forwarded-for",
    "exotel-version",
    "x-twilio-webhooks-signature-settings",
];
const MAX_KEPT_HEADER: usize = 256;

/// A webhook as received, about to be stored.
struct RawEvent<'a> {
    provider: Provider,
    endpoint: &'static str,
    dedupe_key: String,
    call_sid: &'a str,
    headers: &'a HeaderMap,
    query: &'a str,
    body: &'a [u8],
}

/// Stores the event; `false` when its dedupe key was seen before. Never
/// raises on a duplicate, so the caller's transaction stays usable.
async fn store_event(conn: &mut PgConnection, event: &RawEvent<'_>) -> Result<bool, sqlx::Error> {
    let headers: Map<String, Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| event.headers.get(*name).and_then(|v| v.to_str().ok()).map(|v| (name.to_string(), v)))
        .filter(|(_, value)| value.len() <= MAX_KEPT_HEADER)
        .map(|(name, value)| (name, value.into()))
        .collect();
    let stored: Option<i64> = sqlx::query_scalar(
        "INSERT INTO webhook_events (provider, endpoint, dedupe_key, call_sid, headers, query, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (provider, dedupe_key) DO NOTHING
         RETURNING id",
    )
    .bind(event.provider)
    .bind(event.endpoint)
    .bind(&event.dedupe_key)
    .bind(event.call_sid)
    .bind(Value::Object(headers))
    .bind(event.query)
    .bind(storable_text(event.body))
    .fetch_optional(conn)
    .await?;
    Ok(stored.is_some())
}

/// The raw body as text a column can hold: bytes that are not UTF-8, and
/// NUL (which PostgreSQL text refuses), become U+FFFD. Form bodies carry NUL
/// only percent-encoded, so they are stored exactly.
fn storable_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\0', "\u{FFFD}")
}

/// Puts the call in `department_id`'s queue and enqueues its `route-call` (one per call).
async fn queue_and_route(conn: &mut PgConnection, call_id: i64, department_id: i64) -> Result<(), sqlx::Error> {
    calls::queue_for(conn, call_id, department_id).await?;
    route_call::enqueue(conn, call_id, 0).await
}

/// The department answering calls to `number` when it has no IVR menu.
async fn department_for_number(conn: &mut PgConnection, number: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM departments WHERE inbound_number = $1").bind(number).fetch_optional(conn).await
}
