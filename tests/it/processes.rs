//! The processes as the Procfile runs them: `migrate` from several dynos at
//! once, `web` logging JSON and stopping on SIGTERM, bad config refused at start.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::binary;
use crate::support::throwaway_pg::free_port;

#[sqlx::test(migrations = false)]
async fn two_migrations_at_once_both_succeed_and_apply_everything_once(pool: PgPool) {
    let (first, second) = tokio::join!(binary::run(&pool, &["migrate"]), binary::run(&pool, &["migrate"]));
    for out in [&first, &second] {
        assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (ours, apalis): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM public._sqlx_migrations WHERE success),
                (SELECT count(*) FROM apalis._sqlx_migrations WHERE success)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ours as usize, switchboard_jobs::MIGRATOR.iter().count());
    assert_eq!(apalis as usize, apalis_postgres::PostgresStorage::migrations().iter().count());

    let again = binary::run(&pool, &["migrate"]).await;
    assert!(again.status.success(), "a third run is a no-op: {}", String::from_utf8_lossy(&again.stderr));
}

#[sqlx::test(migrations = false)]
async fn the_web_logs_json_lines_and_stops_cleanly_on_sigterm(pool: PgPool) {
    let port = free_port();
    let mut web = binary::command(&pool, &["web"])
        .env("PORT", port.to_string())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut logs = BufReader::new(web.stderr.take().unwrap()).lines();
    binary::web_answering(port).await;

    assert_eq!(binary::send_signal(web.id().unwrap(), "TERM"), 0);
    let status = tokio::time::timeout(Duration::from_secs(10), web.wait()).await.expect("stops promptly").unwrap();
    assert!(status.success(), "exit status {status}");
    let mut lines = Vec::new();
    while let Some(line) = logs.next_line().await.unwrap() {
        lines.push(line);
    }
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    let messages: Vec<&str> = events.iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.contains(&"web listening"), "{messages:?}");
    assert!(messages.contains(&"stop signal received"), "{messages:?}");
    assert!(events.iter().all(|e| e["level"].is_string() && e["timestamp"].is_string()), "{lines:?}");
}

#[sqlx::test(migrations = false)]
async fn a_zero_poll_interval_is_refused_at_start_naming_the_variable(pool: PgPool) {
    let out = binary::command(&pool, &["worker"]).env("WORKER_POLL_INTERVAL", "0s").output().await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WORKER_POLL_INTERVAL must be longer than zero"), "{stderr}");
}
