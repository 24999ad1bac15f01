//! The console over HTTP, as a browser meets it: the login and its cookie,
//! CSRF on every action, masked numbers, no secrets in pages.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sqlx::PgPool;

use crate::support::{API_TOKEN, TestApp, job_state, migrate, spawn_app};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Logs in and returns the session cookie (`name=value`) and the page's CSRF token.
async fn log_in(app: &TestApp) -> (String, String) {
    let client = no_redirects();
    let response =
        client.post(format!("{}/console/login", app.base_url)).form(&[("token", API_TOKEN)]).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(attribute), "{attribute} missing: {set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let page = client.get(format!("{}/console/jobs", app.base_url)).header(COOKIE, &cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    let csrf = html.split("X-CSRF-Token&quot;: &quot;").nth(1).and_then(|rest| rest.split("&quot;").next());
    let csrf = csrf.unwrap_or_else(|| panic!("no CSRF token in the page: {html}")).to_owned();
    (cookie, csrf)
}

async fn dead_job(pool: &PgPool) -> String {
    super::dead_noop(pool, "The number +919812345678 is unreachable").await
}

#[sqlx::test(migrations = false)]
async fn strangers_are_sent_to_the_login_and_a_wrong_token_is_refused(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let client = no_redirects();
    let page = client.get(format!("{}/console/jobs", app.base_url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/console/login");
    let action = client.post(format!("{}/console/jobs/bulk", app.base_url)).send().await.unwrap();
    assert_eq!(action.status(), StatusCode::UNAUTHORIZED);

    let refused =
        client.post(format!("{}/console/login", app.base_url)).form(&[("token", "guess")]).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get(SET_COOKIE).is_none());
    let forged = client
        .get(format!("{}/console/jobs", app.base_url))
        .header(COOKIE, "switchboard_console=99999999999.00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::SEE_OTHER, "a forged cookie is no session");
}

#[sqlx::test(migrations = false)]
async fn every_action_needs_the_sessions_csrf_token(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let id = dead_job(&pool).await;
    let (cookie, csrf) = log_in(&app).await;
    let client = no_redirects();
    let replay = format!("{}/console/jobs/{id}/replay", app.base_url);

    let without = client.post(&replay).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let wrong =
        client.post(&replay).header(COOKIE, &cookie).header("x-csrf-token", "0".repeat(64)).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(job_state(&pool, &id).await, "dead", "refused actions change nothing");

    let with = client.post(&replay).header(COOKIE, &cookie).header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(with.status(), StatusCode::OK);
    assert_eq!(with.headers()["hx-redirect"], format!("/console/jobs/{id}"));
    assert_eq!(job_state(&pool, &id).await, "pending");
}

#[sqlx::test(migrations = false)]
async fn pages_mask_phone_numbers_and_never_show_the_token(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let id = dead_job(&pool).await;
    sqlx::query(
        "INSERT INTO calls (provider, call_sid, direction, from_number, to_number, status)
         VALUES ('twilio', 'CA00000000000000000000000000000001', 'inbound', '+919812345678', '+918047110000', 'completed')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (cookie, _) = log_in(&app).await;
    let client = no_redirects();
    for path in [
        "/console/jobs",
        &format!("/console/jobs/{id}"),
        "/console/calls",
        "/console/leads",
        "/console/agents",
        "/console/workers",
    ] {
        let response = client.get(format!("{}{path}", app.base_url)).header(COOKIE, &cookie).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let html = response.text().await.unwrap();
        assert!(!html.contains("+919812345678"), "{path} shows a number in full: {html}");
        assert!(!html.contains(API_TOKEN), "{path} shows the token");
    }
    let calls = client.get(format!("{}/console/calls", app.base_url)).header(COOKIE, &cookie).send().await.unwrap();
    assert!(calls.text().await.unwrap().contains("+91******5678"));
    let revealed = client
        .get(format!("{}/console/calls/CA00000000000000000000000000000001/reveal/from", app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(revealed.text().await.unwrap().contains("+919812345678"), "asked for, the number shows");
}
