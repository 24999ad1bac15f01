//! Who may use the console: an operator logs in with one of the API tokens
//! and gets a session cookie (HttpOnly, SameSite=Strict, Secure behind
//! HTTPS) that is an expiry signed with that token, so any web dyno can check
//! it and removing the token from `API_TOKENS` ends its sessions. Every action
//! (anything but GET) must carry the session's CSRF token in `X-CSRF-Token`,
//! which htmx sends from the page's `hx-headers`.

use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use maud::html;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::web::AppState;

const COOKIE: &str = "switchboard_console";
const LIFETIME_SECS: i64 = 12 * 3600;

/// The logged-in operator, as pages see it: the CSRF token their actions carry.
#[derive(Clone)]
pub struct Operator {
    pub csrf: String,
}

fn sign(key: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// `{expiry}.{signature}` for a session opened with `token`.
fn session_value(token: &str, expires_at: i64) -> String {
    format!("{expires_at}.{}", sign(token, &format!("switchboard-console-session:{expires_at}")))
}

/// The operator whose cookie is valid and unexpired under one of `tokens`.
fn operator(tokens: &[SecretString], headers: &HeaderMap) -> Option<Operator> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let (expiry, _) = value.split_once('.')?;
    let expires_at: i64 = expiry.parse().ok()?;
    if expires_at <= Utc::now().timestamp() {
        return None;
    }
    let token = tokens.iter().map(|t| t.expose_secret()).find(|t| equal(&session_value(t, expires_at), value))?;
    Some(Operator { csrf: sign(token, &format!("switchboard-console-csrf:{value}")) })
}

/// Lets a request through with its [`Operator`], or sends a stranger to the
/// login page; refuses an action without the session's CSRF token.
pub async fn require_operator(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(operator) = operator(&state.api_tokens, request.headers()) else {
        if request.method() == Method::GET {
            return Redirect::to("/console/login").into_response();
        }
        return (StatusCode::UNAUTHORIZED, [("hx-redirect", "/console/login")], "log in again").into_response();
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let presented = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !equal(presented, &operator.csrf) {
            return (StatusCode::FORBIDDEN, "missing or wrong CSRF token: reload the page").into_response();
        }
    }
    request.extensions_mut().insert(operator);
    next.run(request).await
}

pub async fn login_page() -> maud::Markup {
    login_form(None)
}

fn login_form(error: Option<&str>) -> maud::Markup {
    super::layout::bare(
        "Log in",
        html! {
            form.login method="post" action="/console/login" {
                h1 { "Switchboard console" }
                @if let Some(error) = error { p.error { (error) } }
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" autofocus required;
                button type="submit" { "Log in" }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap, Form(login): Form<Login>) -> Response {
    let presented = login.token.trim();
    let known = state.api_tokens.iter().map(|t| t.expose_secret()).find(|token| equal(token, presented));
    let Some(token) = known else {
        tracing::warn!("console login refused: unknown token");
        return (StatusCode::UNAUTHORIZED, login_form(Some("That token is not one of API_TOKENS."))).into_response();
    };
    let expires_at = Utc::now().timestamp() + LIFETIME_SECS;
    let secure = headers.get("x-forwarded-proto").is_some_and(|p| p == "https");
    let cookie = format!(
        "{COOKIE}={}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}{}",
        session_value(token, expires_at),
        if secure { "; Secure" } else { "" }
    );
    tracing::info!("console login");
    let mut response = Redirect::to("/console/jobs").into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ASCII cookie"));
    response
}

pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], [("hx-redirect", "/console/login")], "logged out").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {COOKIE}={value}")).unwrap());
        headers
    }

    #[test]
    fn a_session_holds_under_its_token_only_until_it_expires() {
        let tokens: Vec<SecretString> = vec!["alpha".into(), "beta".into()];
        let later = Utc::now().timestamp() + 60;
        let session = session_value("beta", later);
        let operator = operator(&tokens, &with_cookie(&session)).expect("valid under beta");
        assert_eq!(operator.csrf.len(), 64);
        assert!(super::operator(&["alpha".into()], &with_cookie(&session)).is_none(), "token removed: no session");
        let forged = format!("{}.{}", later + 3600, session.split_once('.').unwrap().1);
        assert!(super::operator(&tokens, &with_cookie(&forged)).is_none(), "a changed expiry breaks the signature");
        let expired = session_value("beta", Utc::now().timestamp() - 1);
        assert!(super::operator(&tokens, &with_cookie(&expired)).is_none());
    }
}
