//! The operator's surfaces beyond the CLI: `/metrics`, the OpenAPI document
//! and the web console.

mod browser;
mod metrics;
mod openapi;
mod pages;

use sqlx::PgPool;
use switchboard::demo::{self, DemoOptions};
use switchboard_jobs::noop::Noop;
use switchboard_jobs::ports::Provider;
use switchboard_jobs::queue;

/// A demo-sized run (six Twilio calls through the whole system) on `pool`,
/// its recordings in `recordings_dir`.
async fn demo_run(pool: &PgPool, recordings_dir: &std::path::Path) {
    let options = DemoOptions {
        calls: 6,
        provider: Provider::Twilio,
        rate: 20.0,
        recordings_dir: recordings_dir.to_owned(),
        api_token: "demo-test-token".into(),
        progress: false,
    };
    demo::run_on(pool, &options).await.expect("the demo runs");
}

/// A dead `noop` job whose last error is `message`; a worker can run it once replayed.
async fn dead_noop(pool: &PgPool, message: &str) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let id = queue::enqueue(&mut conn, &Noop::default()).await.unwrap().unwrap();
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Killed', attempts = 1, done_at = now(), last_result = $2 WHERE id = $1",
    )
    .bind(&id)
    .bind(serde_json::json!({ "Err": message }))
    .execute(&mut *conn)
    .await
    .unwrap();
    id
}
