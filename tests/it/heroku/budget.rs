//! The connections one web and one worker hold at their defaults under load,
//! as the database counts them (`pg_stat_activity`, by the application name
//! each process gives its connections): at most 15, so that a release phase,
//! a `jobs` command and `heroku pg:psql` still fit in an Essential plan's 20;
//! one of them LISTENs, none when the worker polls only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use switchboard_jobs::probe;
use tokio::task::JoinSet;

use crate::queue::processes::{enqueue_probes, setup};
use crate::support::throwaway_pg::free_port;
use crate::support::{binary, count, wait_until};

const PROBES: usize = 2000;
const WEB_CLIENTS: usize = 32;

/// Connections of this test's database sitting in LISTEN.
const LISTENING: &str = "SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND query ILIKE 'LISTEN%'";

/// Connections by application name, in this test's database, right now.
async fn connections(pool: &PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT application_name, count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE 'switchboard-%'
         GROUP BY application_name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[sqlx::test(migrations = false)]
async fn one_web_and_one_worker_at_defaults_hold_at_most_15_connections_under_load(pool: PgPool) {
    setup(&pool).await;
    let port = free_port();
    let _web = binary::command(&pool, &["web"]).env("PORT", port.to_string()).spawn().unwrap();
    let _worker = binary::command(&pool, &["worker"]).env(probe::ENABLE_VAR, "1").spawn().unwrap();
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "the web to be ready", || async {
        client.get(&readyz).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    let loaded = Arc::new(AtomicBool::new(true));
    let mut load = JoinSet::new();
    for _ in 0..WEB_CLIENTS {
        let (client, readyz, loaded) = (client.clone(), readyz.clone(), loaded.clone());
        load.spawn(async move {
            while loaded.load(Ordering::Relaxed) {
                let _ = client.get(&readyz).send().await;
            }
        });
    }
    let sampler = tokio::spawn({
        let (pool, loaded) = (pool.clone(), loaded.clone());
        async move {
            let (mut peak, mut listening) = ((0, HashMap::new()), 0);
            while loaded.load(Ordering::Relaxed) {
                let now = connections(&pool).await;
                let total: i64 = now.values().sum();
                if total > peak.0 {
                    peak = (total, now);
                }
                listening = listening.max(count(&pool, LISTENING).await);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (peak, listening)
        }
    });
    enqueue_probes(&pool, PROBES, 0).await;
    let done = "SELECT count(*) FROM job_overview WHERE kind = 'queue-probe' AND state = 'done'";
    wait_until(Duration::from_secs(120), "the worker to finish every probe", || async {
        count(&pool, done).await == PROBES as i64
    })
    .await;
    loaded.store(false, Ordering::Relaxed);
    load.join_all().await;
    let ((peak, by_process), listening) = sampler.await.unwrap();

    eprintln!("peak connections of one web and one worker at defaults: {peak} {by_process:?}");
    assert!(
        by_process.contains_key("switchboard-web") && by_process.contains_key("switchboard-worker"),
        "both processes' connections are counted: {by_process:?}"
    );
    assert!(peak <= 15, "one web and one worker held {peak} connections: {by_process:?}");
    assert_eq!(listening, 1, "the worker's LISTEN connection");
}

#[sqlx::test(migrations = false)]
async fn a_worker_polling_only_listens_nowhere_and_still_runs_its_jobs(pool: PgPool) {
    setup(&pool).await;
    let _worker =
        binary::command(&pool, &["worker"]).env(probe::ENABLE_VAR, "1").env("WORKER_POLL_ONLY", "1").spawn().unwrap();
    wait_until(Duration::from_secs(30), "the worker to connect", || async {
        connections(&pool).await.contains_key("switchboard-worker")
    })
    .await;
    enqueue_probes(&pool, 20, 0).await;
    let done = "SELECT count(*) FROM job_overview WHERE kind = 'queue-probe' AND state = 'done'";
    let listening = std::cell::Cell::new(0);
    wait_until(Duration::from_secs(60), "the worker to run every probe by polling", || async {
        listening.set(listening.get().max(count(&pool, LISTENING).await));
        count(&pool, done).await == 20
    })
    .await;
    assert_eq!(listening.get(), 0);
}
