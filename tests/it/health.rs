//! Liveness and readiness of the web process.

use sqlx::PgPool;

use crate::support::{API_TOKEN, migrate, spawn_app};

#[sqlx::test(migrations = false)]
async fn readyz_is_503_until_migrated_then_200(pool: PgPool) {
    let app = spawn_app(&pool).await;
    let healthz = app.client.get(format!("{}/healthz", app.base_url)).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    let before = app.client.get(format!("{}/readyz", app.base_url)).send().await.unwrap();
    assert_eq!(before.status(), 503);
    let said: serde_json::Value = before.json().await.unwrap();
    assert_eq!(said["status"], "not migrated: run `switchboard migrate`", "reachable, but not migrated");

    migrate(&pool).await;
    let after = app.client.get(format!("{}/readyz", app.base_url)).send().await.unwrap();
    assert_eq!(after.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn api_without_a_valid_bearer_token_is_401(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let missing = app.client.get(format!("{}/api/jobs/stats", app.base_url)).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let wrong = app.client.get(format!("{}/api/jobs/stats", app.base_url)).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.client.get(format!("{}/api/jobs/stats", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(right.status(), 200);
}
