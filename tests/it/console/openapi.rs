//! `/api/openapi.json`: the contract schemathesis fuzzes (tests/console-checks.sh);
//! here, that it is served, covers the API and promises the one error shape.

use serde_json::Value;
use sqlx::PgPool;

use crate::support::{API_TOKEN, migrate, spawn_app};

#[sqlx::test(migrations = false)]
async fn the_openapi_document_covers_every_operation_with_its_refusals(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let document: Value =
        app.client.get(format!("{}/api/openapi.json", app.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let operations: Vec<(&String, &String, &Value)> = paths
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().iter().map(move |(method, op)| (path, method, op)))
        .collect();
    assert_eq!(operations.len(), 38, "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, method, operation) in operations {
        for status in ["401", "422"] {
            let schema = &operation["responses"][status]["content"]["application/json"]["schema"]["$ref"];
            assert!(
                schema.as_str().is_some_and(|s| s.ends_with("ErrorBody") || s.ends_with("ValidationError")),
                "{method} {path} {status}"
            );
        }
    }
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // Each documented operation answers: an unknown id is the documented 404, not a 405.
    let agent = app.client.get(format!("{}/api/agents/999", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(agent.status(), 404);
}

#[sqlx::test(migrations = false)]
async fn the_frameworks_own_refusals_answer_in_the_one_error_shape(pool: PgPool) {
    migrate(&pool).await;
    let app = spawn_app(&pool).await;
    let bad_path = app
        .client
        .get(format!("{}/api/agents/9223372036854775808", app.base_url))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_path.status(), 400);
    assert_eq!(bad_path.headers()["content-type"], "application/json");
    let body: Value = bad_path.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("9223372036854775808"), "{body}");

    let wrong_method =
        app.client.patch(format!("{}/api/leads", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let body: Value = wrong_method.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
}
