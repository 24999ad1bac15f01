//! Bearer-token guard for `/api/*`: tokens from `API_TOKENS` (comma-separated),
//! compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

pub async fn require_api_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let known = state
        .api_tokens
        .iter()
        .fold(false, |found, token| found | bool::from(token.expose_secret().as_bytes().ct_eq(presented.as_bytes())));
    if known { Ok(next.run(request).await) } else { Err(ApiError::Unauthorized) }
}
