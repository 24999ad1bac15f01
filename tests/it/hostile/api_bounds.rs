//! The API's other refusals, each a JSON 4xx like every API error: a
//! preferred time in year 9999 (422 naming it), a path parameter that does
//! not parse, and a body over `BODY_LIMIT_BYTES` (413, not 422).

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{API_TOKEN, TestApp, migrate, spawn_app};

async fn post(app: &TestApp, path: &str, body: String) -> (StatusCode, Option<String>, Value) {
    let response = app
        .client
        .post(format!("{}/api{path}", app.base_url))
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (StatusCode, Option<String>, Value) {
    let status = response.status();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, content_type, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = false)]
async fn a_preferred_time_years_away_is_a_422_naming_it_and_stores_nothing(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    for when in ["9999-12-31T10:30:00+05:30", "0001-01-01T00:00:00Z"] {
        let call = json!({
            "customer_phone": "+919876543210", "agent_phone": "+919880000101",
            "purpose": "service", "preferred_time": when,
        });
        let (status, _, body) = post(&app, "/scheduled-calls", call.to_string()).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("preferred_time")),
            "{body}"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_calls").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 0);
}

#[sqlx::test(migrations = false)]
async fn a_path_parameter_that_does_not_parse_is_a_json_4xx(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    for path in ["/api/departments/abc", "/api/agents/99999999999999999999", "/api/scheduled-calls/not-a-uuid"] {
        let response = app.client.get(format!("{}{path}", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
        let (status, content_type, body) = answer(response).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert_eq!(content_type.as_deref(), Some("application/json"), "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[sqlx::test(migrations = false)]
async fn an_api_body_over_the_limit_is_413(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let name = "x".repeat(100 * 1024);
    let (status, content_type, body) =
        post(&app, "/agents", json!({ "name": name, "phone": "+919876543210" }).to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let agents: i64 = sqlx::query_scalar("SELECT count(*) FROM agents").fetch_one(&pool).await.unwrap();
    assert_eq!(agents, 0);
}
