//! NUL in what an API caller sends: PostgreSQL text cannot hold it, so it is a
//! 422 (naming the query parameter when it is one), never a 500, and nothing
//! is stored.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{API_TOKEN, migrate, spawn_app};

#[sqlx::test(migrations = false)]
async fn a_nul_in_a_query_parameter_is_a_422_naming_it(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    for (path, field) in [
        ("/api/transcripts/search?q=a%00b", "q"),
        ("/api/calls?status=completed%00", "status"),
        ("/api/leads?location=x%00&limit=5", "location"),
    ] {
        let response = app.client.get(format!("{}{path}", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!((status, body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(field)), "{path}: {body}");
    }
}

#[sqlx::test(migrations = false)]
async fn a_nul_in_a_json_body_is_a_422_and_stores_nothing(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let agent = json!({ "name": "Asha\u{0}", "phone": "+919876543210" });
    let response = app
        .client
        .post(format!("{}/api/agents", app.base_url))
        .bearer_auth(API_TOKEN)
        .json(&agent)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let agents: i64 = sqlx::query_scalar("SELECT count(*) FROM agents").fetch_one(&pool).await.unwrap();
    assert_eq!(agents, 0);
}
