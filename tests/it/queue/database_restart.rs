//! The database restarting under a running worker process (a throwaway
//! server of the test's own): `pg_ctl restart -m fast`, then `-m immediate`
//! (a crash), with jobs running. Every job completes exactly once, no two
//! runs of a job overlap, and the worker never exits.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::processes::{assert_no_overlap, enqueue_probes, runs, setup, spawn_worker};
use crate::support::throwaway_pg::{StopMode, ThrowawayPg, wait_until_accepting};
use crate::support::wait_until;

const JOBS: usize = 150;

/// Done probes, or `None` while the server is away.
async fn done(pool: &PgPool) -> Option<i64> {
    sqlx::query_scalar("SELECT count(*) FROM job_overview WHERE state = 'done'").fetch_one(pool).await.ok()
}

async fn wait_for_done(pool: &PgPool, at_least: i64) {
    wait_until(Duration::from_secs(120), &format!("{at_least} probes done"), || async {
        done(pool).await.is_some_and(|n| n >= at_least)
    })
    .await;
}

#[tokio::test]
async fn the_database_restarting_fast_then_crashing_mid_run_loses_no_job_and_runs_none_twice_at_once() {
    let server = ThrowawayPg::start();
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .test_before_acquire(true)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&server.url())
        .unwrap();
    setup(&pool).await;
    enqueue_probes(&pool, JOBS, 300).await;
    let mut worker = spawn_worker(&server.url(), &pool, &[("QUEUE_QUEUE_PROBE_CONCURRENCY", "10")]);

    wait_for_done(&pool, 20).await;
    server.restart(StopMode::Fast);
    wait_until_accepting(&server.url(), Duration::from_secs(30)).await;
    let before_crash = done(&pool).await.unwrap_or(0) + 20;
    wait_for_done(&pool, before_crash).await;
    server.restart(StopMode::Immediate);
    wait_until_accepting(&server.url(), Duration::from_secs(30)).await;
    wait_for_done(&pool, JOBS as i64).await;

    assert!(worker.try_wait().unwrap().is_none(), "the worker kept running through both restarts");
    let runs = runs(&pool).await;
    assert_eq!(runs.len(), JOBS, "every job ran");
    assert_no_overlap(&runs);
    for (key, runs) in &runs {
        let completed = runs.iter().filter(|r| r.ended_at.is_some()).count();
        assert_eq!(completed, 1, "{key} completed once: {runs:?}");
    }
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_overview WHERE state = 'dead'").fetch_one(&pool).await.unwrap();
    assert_eq!(dead, 0);
    worker.start_kill().unwrap();
}
