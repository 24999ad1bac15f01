//! The queue's promises with real worker processes (the binary), short
//! heartbeats (1 s, so a worker silent for 3 s is dead) and jobs that outlast
//! that: one run of a job at a time, SIGTERM and kill -9 in the middle, and a
//! job that kills its own process.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use switchboard_jobs::noop::Noop;
use switchboard_jobs::probe::{self, Probe};
use switchboard_jobs::queue;
use tokio::process::Child;

use crate::support::{binary, count, migrate, wait_until};

const HEARTBEAT_S: i64 = 1;
const DEAD_AFTER_S: i64 = 3 * HEARTBEAT_S;
const LIMIT: Duration = Duration::from_secs(90);

/// One run of a probe job, as it recorded itself.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct Run {
    pub key: String,
    pub attempt: i32,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

pub(crate) async fn setup(pool: &PgPool) {
    migrate(pool).await;
    sqlx::raw_sql(probe::TABLE).execute(pool).await.unwrap();
}

/// Enqueues `n` probes sleeping `sleep_ms`, keyed `p0`, `p1`...
pub(crate) async fn enqueue_probes(pool: &PgPool, n: usize, sleep_ms: u64) {
    let probes: Vec<Probe> = (0..n).map(|i| Probe { key: format!("p{i}"), sleep_ms, abort: false }).collect();
    queue::enqueue_many(&mut pool.acquire().await.unwrap(), &probes).await.unwrap();
}

/// The runs by key, each key's runs in start order.
pub(super) async fn runs(pool: &PgPool) -> HashMap<String, Vec<Run>> {
    let all: Vec<Run> = sqlx::query_as("SELECT * FROM probe_runs ORDER BY started_at").fetch_all(pool).await.unwrap();
    let mut by_key: HashMap<String, Vec<Run>> = HashMap::new();
    for run in all {
        by_key.entry(run.key.clone()).or_default().push(run);
    }
    by_key
}

/// No run of a job started before the one before it had ended. (A run that
/// never recorded its end died with its process, or failed to write it.)
pub(super) fn assert_no_overlap(runs: &HashMap<String, Vec<Run>>) {
    for (key, runs) in runs {
        for pair in runs.windows(2) {
            if let Some(ended) = pair[0].ended_at {
                assert!(pair[1].started_at >= ended, "{key}: runs overlap: {pair:?}");
            }
        }
    }
}

/// `switchboard worker` running probes (and `noop`) with 1 s heartbeats.
pub(super) fn spawn_worker(database_url: &str, pool: &PgPool, env: &[(&str, &str)]) -> Child {
    let mut command = binary::command(pool, &["worker", "--queues", "queue-probe,noop"]);
    command
        .env("DATABASE_URL", database_url)
        .env(probe::ENABLE_VAR, "1")
        .env("WORKER_HEARTBEAT", format!("{HEARTBEAT_S}s"))
        .env("SHUTDOWN_GRACE", "20s")
        .envs(env.iter().copied());
    command.spawn().expect("the worker starts")
}

async fn done(pool: &PgPool, kind: &str) -> i64 {
    count(pool, &format!("SELECT count(*) FROM job_overview WHERE kind = '{kind}' AND state = 'done'")).await
}

async fn started_runs(pool: &PgPool) -> i64 {
    count(pool, "SELECT count(*) FROM probe_runs").await
}

/// Waits until a worker of process `pid` has registered.
async fn wait_for_registration(pool: &PgPool, pid: u32) {
    let pattern = format!("%-{pid}-%");
    wait_until(LIMIT, "the worker to register", || async {
        sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM apalis.workers WHERE id LIKE $1)")
            .bind(&pattern)
            .fetch_one(pool)
            .await
            .unwrap()
    })
    .await;
}

/// Waits until every worker of process `pid` has been silent long enough
/// that any other worker would have taken it for dead (and two beats more).
async fn wait_until_taken_for_dead(pool: &PgPool, pid: u32) {
    let pattern = format!("%-{pid}-%");
    wait_until(LIMIT, "the worker to be silent past the orphan timeout", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT bool_and(last_seen < now() - make_interval(secs => $2)) FROM apalis.workers WHERE id LIKE $1",
        )
        .bind(&pattern)
        .bind((DEAD_AFTER_S + 2 * HEARTBEAT_S) as f64)
        .fetch_one(pool)
        .await
        .unwrap()
    })
    .await;
}

#[sqlx::test(migrations = false)]
async fn two_busy_workers_run_each_job_once_though_every_job_outlasts_the_orphan_timeout(pool: PgPool) {
    setup(&pool).await;
    enqueue_probes(&pool, 12, 5_000).await;
    let url = binary::database_url(&pool);
    // A batch larger than the free slots, and one equal to them.
    let _a =
        spawn_worker(&url, &pool, &[("QUEUE_QUEUE_PROBE_CONCURRENCY", "2"), ("QUEUE_QUEUE_PROBE_BATCH_SIZE", "6")]);
    let _b =
        spawn_worker(&url, &pool, &[("QUEUE_QUEUE_PROBE_CONCURRENCY", "2"), ("QUEUE_QUEUE_PROBE_BATCH_SIZE", "2")]);

    wait_until(LIMIT, "all 12 probes done", || async { done(&pool, "queue-probe").await == 12 }).await;
    let runs = runs(&pool).await;
    assert_eq!(runs.len(), 12);
    assert!(runs.values().all(|r| r.len() == 1 && r[0].ended_at.is_some() && r[0].attempt == 1), "{runs:?}");
    let pids: std::collections::HashSet<i32> = runs.values().map(|r| r[0].pid).collect();
    assert_eq!(pids.len(), 2, "both workers ran jobs");
    let attempts = count(&pool, "SELECT max(attempts)::bigint FROM apalis.jobs").await;
    assert_eq!(attempts, 1);
}

#[sqlx::test(migrations = false)]
async fn sigterm_on_a_busy_worker_beside_an_idle_one_finishes_each_job_once(pool: PgPool) {
    setup(&pool).await;
    enqueue_probes(&pool, 2, 4_000).await;
    let url = binary::database_url(&pool);
    let mut busy = spawn_worker(&url, &pool, &[("QUEUE_QUEUE_PROBE_CONCURRENCY", "2")]);
    wait_until(LIMIT, "both probes to start", || async { started_runs(&pool).await == 2 }).await;
    let idle = spawn_worker(&url, &pool, &[]);
    wait_for_registration(&pool, idle.id().unwrap()).await;

    let busy_pid = busy.id().unwrap();
    assert_eq!(binary::send_signal(busy_pid, "TERM"), 0);
    let status = tokio::time::timeout(Duration::from_secs(30), busy.wait()).await.expect("exits in the grace").unwrap();
    assert!(status.success(), "exit status {status}");
    wait_until_taken_for_dead(&pool, busy_pid).await;

    let runs = runs(&pool).await;
    assert_eq!(runs.len(), 2);
    assert!(runs.values().all(|r| r.len() == 1 && r[0].ended_at.is_some() && r[0].pid == busy_pid as i32), "{runs:?}");
    assert_eq!(done(&pool, "queue-probe").await, 2);
}

#[sqlx::test(migrations = false)]
async fn sigterm_on_a_worker_claiming_fast_jobs_ahead_runs_each_once_and_gives_its_buffer_back_unspent(pool: PgPool) {
    setup(&pool).await;
    // Runs of a few milliseconds: the worker claims ahead of its free slots.
    enqueue_probes(&pool, 3_000, 0).await;
    let url = binary::database_url(&pool);
    let mut first = spawn_worker(&url, &pool, &[]);
    wait_until(LIMIT, "300 probes to start", || async { started_runs(&pool).await >= 300 }).await;
    assert_eq!(binary::send_signal(first.id().unwrap(), "TERM"), 0);
    let status =
        tokio::time::timeout(Duration::from_secs(30), first.wait()).await.expect("exits in the grace").unwrap();
    assert!(status.success(), "exit status {status}");
    let held = count(&pool, "SELECT count(*) FROM apalis.jobs WHERE lock_by IS NOT NULL").await;
    assert_eq!(held, 0, "a stopped worker holds nothing");

    let mut second = spawn_worker(&url, &pool, &[]);
    wait_until(LIMIT, "all 3,000 probes done", || async { done(&pool, "queue-probe").await == 3_000 }).await;
    second.start_kill().unwrap();
    let runs = runs(&pool).await;
    assert_eq!(runs.len(), 3_000);
    assert!(runs.values().all(|r| r.len() == 1 && r[0].ended_at.is_some() && r[0].attempt == 1), "a job ran twice");
    let attempts = count(&pool, "SELECT max(attempts)::bigint FROM apalis.jobs").await;
    assert_eq!(attempts, 1, "a job given back unstarted spent an attempt");
    assert_eq!(count(&pool, "SELECT count(*) FROM job_errors").await, 0);
}

#[sqlx::test(migrations = false)]
async fn a_worker_killed_mid_job_has_its_jobs_run_once_more_after_the_orphan_timeout(pool: PgPool) {
    setup(&pool).await;
    enqueue_probes(&pool, 2, 3_000).await;
    let url = binary::database_url(&pool);
    let mut doomed = spawn_worker(&url, &pool, &[("QUEUE_QUEUE_PROBE_CONCURRENCY", "2")]);
    wait_until(LIMIT, "both probes to start", || async { started_runs(&pool).await == 2 }).await;
    let survivor = spawn_worker(&url, &pool, &[]);
    wait_for_registration(&pool, survivor.id().unwrap()).await;

    doomed.start_kill().unwrap(); // SIGKILL
    doomed.wait().await.unwrap();
    wait_until(Duration::from_secs(30), "both probes done by the survivor", || async {
        done(&pool, "queue-probe").await == 2
    })
    .await;

    let runs = runs(&pool).await;
    assert_no_overlap(&runs);
    for (key, runs) in &runs {
        assert_eq!(runs.len(), 2, "{key}: killed once, run once more: {runs:?}");
        assert!(runs[0].ended_at.is_none() && runs[1].ended_at.is_some(), "{runs:?}");
        assert_eq!(runs[1].pid, survivor.id().unwrap() as i32);
        let silent = (runs[1].started_at - runs[0].started_at).num_milliseconds();
        assert!(silent >= DEAD_AFTER_S * 1000, "{key}: run again before its worker was dead: {silent} ms");
    }
    let lost = count(&pool, "SELECT count(*) FROM job_errors WHERE outcome = 'lost'").await;
    assert_eq!(lost, 2);
}

#[sqlx::test(migrations = false)]
async fn a_job_that_aborts_its_process_goes_dead_after_its_attempts_and_other_kinds_complete(pool: PgPool) {
    setup(&pool).await;
    let crasher = Probe { key: "crasher".into(), sleep_ms: 0, abort: true };
    let crasher_id = queue::enqueue(&mut pool.acquire().await.unwrap(), &crasher).await.unwrap().unwrap();
    let noops: Vec<Noop> = (0..40).map(|_| Noop { sleep_ms: 200 }).collect();
    queue::enqueue_many(&mut pool.acquire().await.unwrap(), &noops).await.unwrap();
    let url = binary::database_url(&pool);

    // Like a dyno manager: a worker that dies is started again.
    let dead = || async { crate::support::job_state(&pool, &crasher_id).await == "dead" };
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut restarts = 0;
    while !dead().await {
        assert!(tokio::time::Instant::now() < deadline, "the crasher never went dead ({restarts} restarts)");
        let mut worker = spawn_worker(&url, &pool, &[]);
        tokio::select! {
            _ = worker.wait() => restarts += 1,
            _ = wait_until(LIMIT, "the crasher to be dead", dead) => worker.start_kill().unwrap(),
        }
    }

    assert!(done(&pool, "noop").await > 0, "other kinds completed between the crashes");
    let crashes = runs(&pool).await.remove("crasher").unwrap_or_default();
    assert_eq!(crashes.len(), 3, "one run per attempt: {crashes:?}");
    let error: String = sqlx::query_scalar("SELECT last_error FROM job_overview WHERE id = $1")
        .bind(&crasher_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(error, "worker lost while running it, 3 times");

    let mut worker = spawn_worker(&url, &pool, &[]);
    wait_until(LIMIT, "every noop done", || async { done(&pool, "noop").await == 40 }).await;
    worker.start_kill().unwrap();
}
