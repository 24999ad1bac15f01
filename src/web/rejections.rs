//! axum's own refusals on `/api` (a path parameter that does not parse, a
//! body over the limit or of the wrong type, a wrong method) answered in the
//! API's one error shape, as the OpenAPI document promises: `{"error": ...}`,
//! and on a 422 the `field` (`body`) and `message` too.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

/// Rejections are short plain text; anything longer is cut.
const LIMIT: usize = 16 * 1024;

pub async fn as_json(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_json = response.headers().get(CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !response.status().is_client_error() || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, LIMIT).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let text =
        if text.trim().is_empty() { parts.status.canonical_reason().unwrap_or("refused").to_owned() } else { text };
    let body = if parts.status.as_u16() == 422 {
        json!({ "error": format!("body: {text}"), "field": "body", "message": text })
    } else {
        json!({ "error": text })
    };
    parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}
