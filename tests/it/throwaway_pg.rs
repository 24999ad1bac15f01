//! The throwaway-server helper itself: other tests crash and restart it.

use std::time::Duration;

use crate::support::throwaway_pg::{StopMode, ThrowawayPg, wait_until_accepting};

#[tokio::test]
async fn a_throwaway_server_keeps_committed_rows_across_a_crash_and_a_fast_restart() {
    let server = ThrowawayPg::start();
    let pool = sqlx::PgPool::connect(&server.url()).await.expect("connects");
    sqlx::query("CREATE TABLE kept (n int)").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO kept VALUES (1)").execute(&pool).await.unwrap();
    pool.close().await;

    server.restart(StopMode::Immediate);
    wait_until_accepting(&server.url(), Duration::from_secs(30)).await;
    server.restart(StopMode::Fast);
    wait_until_accepting(&server.url(), Duration::from_secs(30)).await;

    let pool = sqlx::PgPool::connect(&server.url()).await.expect("connects again");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM kept").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 1);
    assert_eq!(server.psql("SELECT current_setting('port')"), server.port.to_string());
}
