//! The queue's contract: transactional enqueue, durable backoff, dead jobs and
//! replay, snooze, rate limits, undecodable payloads, and surviving lost
//! connections; its promises under real processes and a restarting database
//! in the submodules.

mod database_restart;
pub(crate) mod processes;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use switchboard_jobs::noop::Noop;
use switchboard_jobs::ports::Ports;
use switchboard_jobs::queue::{self, EnqueueOptions, Job, JobContext, JobError, Registry, RetryPolicy};

use crate::support::{Workers, binary, job_state, migrate, wait_until};

const LONG: Duration = Duration::from_secs(20);

/// Fails its first `failures` runs, then succeeds; counts runs in `runs`.
#[derive(Serialize, Deserialize)]
struct Flaky {
    key: String,
    failures: i32,
}

impl Job for Flaky {
    const KIND: &'static str = "test-flaky";

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let runs = count_run(&ctx.pool, &self.key).await?;
        let fixed: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM fixed WHERE key = $1)")
            .bind(&self.key)
            .fetch_one(&ctx.pool)
            .await?;
        if runs <= self.failures && !fixed {
            return Err(JobError::retry(format!("upstream down (run {runs})")));
        }
        Ok(())
    }
}

/// Counts one more run of the job with `key`; returns how many so far.
async fn count_run(pool: &PgPool, key: &str) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "WITH logged AS (INSERT INTO run_log (key) VALUES ($1))
         INSERT INTO runs (key, n) VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET n = runs.n + 1 RETURNING n",
    )
    .bind(key)
    .fetch_one(pool)
    .await
}

/// Snoozes for an hour on its first run, then succeeds.
#[derive(Serialize, Deserialize)]
struct SnoozeOnce {
    key: String,
}

impl Job for SnoozeOnce {
    const KIND: &'static str = "test-snooze";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let runs = count_run(&ctx.pool, &self.key).await?;
        if runs == 1 {
            return Err(JobError::snooze(
                chrono::Utc::now() + chrono::Duration::hours(1),
                "outside the calling window",
            ));
        }
        Ok(())
    }
}

async fn setup(pool: &PgPool) {
    migrate(pool).await;
    sqlx::raw_sql(
        "CREATE TABLE runs (key text PRIMARY KEY, n int NOT NULL); CREATE TABLE fixed (key text PRIMARY KEY);
         CREATE TABLE run_log (key text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());",
    )
    .execute(pool)
    .await
    .unwrap();
}

fn registry() -> Registry {
    Registry::default().with::<Noop>().with::<Flaky>().with::<SnoozeOnce>()
}

async fn runs(pool: &PgPool, key: &str) -> i32 {
    sqlx::query_scalar("SELECT COALESCE((SELECT n FROM runs WHERE key = $1), 0)")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn enqueue<J: Job>(pool: &PgPool, job: &J) -> String {
    let mut conn = pool.acquire().await.unwrap();
    queue::enqueue(&mut conn, job).await.unwrap().expect("new job")
}

/// Makes a waiting job due now, standing in for the clock moving on.
async fn make_due(pool: &PgPool, id: &str) {
    sqlx::query("UPDATE apalis.jobs SET run_at = now() WHERE id = $1").bind(id).execute(pool).await.unwrap();
}

async fn wait_for_state(pool: &PgPool, id: &str, state: &str) {
    wait_until(LONG, &format!("job {id} to be {state}"), || async { job_state(pool, id).await == state }).await;
}

#[sqlx::test(migrations = false)]
async fn a_job_enqueued_in_a_rolled_back_transaction_does_not_exist(pool: PgPool) {
    setup(&pool).await;
    let mut tx = pool.begin().await.unwrap();
    queue::enqueue(&mut tx, &Noop::default()).await.unwrap();
    tx.rollback().await.unwrap();
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(jobs, 0);

    let mut tx = pool.begin().await.unwrap();
    let id = queue::enqueue(&mut tx, &Noop::default()).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    let workers = Workers::start(&pool, registry(), Ports::default());
    wait_for_state(&pool, &id, "done").await;
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_duplicate_dedupe_key_enqueues_nothing_and_keeps_the_transaction_usable(pool: PgPool) {
    setup(&pool).await;
    let mut tx = pool.begin().await.unwrap();
    let first = queue::enqueue_with(&mut tx, &Noop::default(), EnqueueOptions::deduped("call-1")).await.unwrap();
    let second = queue::enqueue_with(&mut tx, &Noop::default(), EnqueueOptions::deduped("call-1")).await.unwrap();
    sqlx::query("INSERT INTO runs (key, n) VALUES ('after-duplicate', 1)").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert!(first.is_some());
    assert_eq!(second, None);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(jobs, 1);
    assert_eq!(runs(&pool, "after-duplicate").await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_job_failing_twice_runs_three_times_with_run_at_pushed_out_by_the_policy(pool: PgPool) {
    setup(&pool).await;
    let workers = Workers::start(&pool, registry(), Ports::default());
    let id = enqueue(&pool, &Flaky { key: "k".into(), failures: 2 }).await;

    for (attempt, expected_delay) in [(1, 10.0), (2, 20.0)] {
        wait_until(LONG, "the failed attempt to be recorded", || async {
            job_state(&pool, &id).await == "retrying" && runs(&pool, "k").await == attempt
        })
        .await;
        let (delay, attempts): (f64, i32) = sqlx::query_as(
            "SELECT extract(epoch FROM j.run_at - e.at)::float8, j.attempts FROM apalis.jobs j
             JOIN job_errors e ON e.job_id = j.id AND e.attempt = $2 WHERE j.id = $1",
        )
        .bind(&id)
        .bind(attempt)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(attempts, attempt);
        assert!(
            (delay - expected_delay).abs() < 0.5,
            "attempt {attempt}: run_at pushed {delay}s, expected {expected_delay}s"
        );
        make_due(&pool, &id).await;
    }
    wait_for_state(&pool, &id, "done").await;
    assert_eq!(runs(&pool, "k").await, 3);
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_job_that_always_fails_goes_dead_keeping_every_error_and_completes_after_replay(pool: PgPool) {
    setup(&pool).await;
    let workers = Workers::start(&pool, registry(), Ports::default());
    let id = enqueue(&pool, &Flaky { key: "always".into(), failures: i32::MAX }).await;
    for attempt in 1..5 {
        wait_until(LONG, "a retry", || async { runs(&pool, "always").await == attempt }).await;
        wait_for_state(&pool, &id, "retrying").await;
        make_due(&pool, &id).await;
    }
    wait_for_state(&pool, &id, "dead").await;
    let errors: Vec<(i32, String, String)> =
        sqlx::query_as("SELECT attempt, outcome, message FROM job_errors WHERE job_id = $1 ORDER BY attempt")
            .bind(&id)
            .fetch_all(&pool)
            .await
            .unwrap();
    let attempts: Vec<i32> = errors.iter().map(|e| e.0).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4, 5]);
    assert_eq!(errors[4].1, "dead");
    assert_eq!(errors[4].2, "upstream down (run 5)");
    let named: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_errors WHERE job_id = $1 AND worker LIKE '%:test-flaky'")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(named, 5, "every failed run names its worker");

    sqlx::query("INSERT INTO fixed VALUES ('always')").execute(&pool).await.unwrap();
    let replay = binary::run(&pool, &["jobs", "replay", &id]).await;
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    wait_for_state(&pool, &id, "done").await;
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM apalis.jobs WHERE id = $1").bind(&id).fetch_one(&pool).await.unwrap();
    assert_eq!(attempts, 1, "replay resets attempts");
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_snoozed_job_keeps_its_attempt_count_and_runs_at_the_new_time(pool: PgPool) {
    setup(&pool).await;
    let workers = Workers::start(&pool, registry(), Ports::default());
    let id = enqueue(&pool, &SnoozeOnce { key: "s".into() }).await;
    wait_for_state(&pool, &id, "scheduled").await;
    let (attempts, wait): (i32, f64) =
        sqlx::query_as("SELECT attempts, extract(epoch FROM run_at - now())::float8 FROM apalis.jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 0, "a snooze is not an attempt");
    assert!((3590.0..=3600.0).contains(&wait), "snoozed for an hour, got {wait}s");

    make_due(&pool, &id).await;
    wait_for_state(&pool, &id, "done").await;
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM apalis.jobs WHERE id = $1").bind(&id).fetch_one(&pool).await.unwrap();
    assert_eq!(attempts, 1);
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_undecodable_payload_goes_dead_with_a_readable_error_and_the_worker_goes_on(pool: PgPool) {
    setup(&pool).await;
    let workers = Workers::start(&pool, registry(), Ports::default());
    let bad: String = sqlx::query_scalar(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         VALUES ('01KAKZ0000000000000000000B', 'noop', convert_to('{\"sleep_ms\": \"soon\"}', 'UTF8'), 'Pending', 0, 3, now(), 0)
         RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    wait_for_state(&pool, &bad, "dead").await;
    let error: String = sqlx::query_scalar("SELECT message FROM job_errors WHERE job_id = $1")
        .bind(&bad)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.starts_with("undecodable payload for noop: invalid type: string \"soon\""), "{error}");

    let good = enqueue(&pool, &Noop::default()).await;
    wait_for_state(&pool, &good, "done").await;
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_payload_that_is_not_json_goes_dead_with_the_decoding_error(pool: PgPool) {
    setup(&pool).await;
    let workers = Workers::start(&pool, registry(), Ports::default());
    let bad: String = sqlx::query_scalar(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         VALUES ('01KAKZ0000000000000000000C', 'noop', '\\xff00'::bytea, 'Pending', 0, 3, now(), 0) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    wait_for_state(&pool, &bad, "dead").await;
    let error: String = sqlx::query_scalar("SELECT message FROM job_errors WHERE job_id = $1")
        .bind(&bad)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.starts_with("undecodable payload for noop"), "{error}");
    let good = enqueue(&pool, &Noop::default()).await;
    wait_for_state(&pool, &good, "done").await;
    workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn terminating_the_workers_connections_does_not_stop_them(pool: PgPool) {
    setup(&pool).await;
    let workers = Workers::start(&pool, registry(), Ports::default());
    let before = enqueue(&pool, &Noop::default()).await;
    wait_for_state(&pool, &before, "done").await;

    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(terminated > 0, "the workers had connections to terminate");

    let after = enqueue(&pool, &Noop::default()).await;
    wait_for_state(&pool, &after, "done").await;
    workers.stop().await;
}

/// Answers its first run like a rate-limited API (`Retry-After: 2`), then succeeds.
#[derive(Serialize, Deserialize)]
struct RateLimitedOnce {
    key: String,
}

impl Job for RateLimitedOnce {
    const KIND: &'static str = "test-rate-limited";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        if count_run(&ctx.pool, &self.key).await? == 1 {
            return Err(JobError::retry_after("429 Too Many Requests", Duration::from_secs(2)));
        }
        Ok(())
    }
}

/// When each run of `key` started, in order.
async fn run_starts(pool: &PgPool, key: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar("SELECT at FROM run_log WHERE key = $1 ORDER BY at").bind(key).fetch_all(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_rate_limit_waits_its_retry_after_without_spending_an_attempt(pool: PgPool) {
    setup(&pool).await;
    let workers = Workers::start(&pool, Registry::default().with::<RateLimitedOnce>(), Ports::default());
    let id = enqueue(&pool, &RateLimitedOnce { key: "limited".into() }).await;
    wait_for_state(&pool, &id, "done").await;
    workers.stop().await;

    let (attempts, throttled): (i32, String) = sqlx::query_as(
        "SELECT j.attempts, e.outcome FROM apalis.jobs j JOIN job_errors e ON e.job_id = j.id WHERE j.id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((attempts, throttled.as_str()), (1, "throttled"), "the wait was not an attempt");
    let starts = run_starts(&pool, "limited").await;
    assert_eq!(starts.len(), 2);
    let waited = (starts[1] - starts[0]).num_milliseconds();
    assert!(waited >= 2_000, "ran again {waited} ms after the 429, before its Retry-After");
}

/// Fails its first run after the test opens `gate`, then succeeds.
#[derive(Serialize, Deserialize)]
struct FailAtGate {
    key: String,
}

impl Job for FailAtGate {
    const KIND: &'static str = "test-fail-at-gate";

    fn policy() -> RetryPolicy {
        RetryPolicy { initial_delay: Duration::from_secs(3), jitter: 0.0, ..RetryPolicy::default() }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        if count_run(&ctx.pool, &self.key).await? > 1 {
            return Ok(());
        }
        while !sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM fixed WHERE key = 'gate')")
            .fetch_one(&ctx.pool)
            .await?
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sqlx::query("INSERT INTO fixed (key) VALUES ('failed')").execute(&ctx.pool).await?;
        Err(JobError::retry("upstream down"))
    }
}

#[sqlx::test(migrations = false)]
async fn a_failure_that_cannot_be_stored_at_once_still_waits_out_its_backoff(pool: PgPool) {
    setup(&pool).await;
    let queue_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    let pools = queue::QueuePools { handlers: pool.clone(), queue: queue_pool.clone(), listen: None };
    let workers = Workers::start_with_pools(pools, Registry::default().with::<FailAtGate>(), Ports::default());
    let id = enqueue(&pool, &FailAtGate { key: "gated".into() }).await;
    wait_until(LONG, "the first run to start", || async { runs(&pool, "gated").await == 1 }).await;

    // The queue's pool is exhausted while the run fails: its outcome cannot
    // be written for a while (a brownout of two seconds).
    let held = (queue_pool.acquire().await.unwrap(), queue_pool.acquire().await.unwrap());
    sqlx::query("INSERT INTO fixed (key) VALUES ('gate')").execute(&pool).await.unwrap();
    wait_until(LONG, "the first run to fail", || async {
        crate::support::count(&pool, "SELECT count(*) FROM fixed WHERE key = 'failed'").await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let released_at = chrono::Utc::now();
    drop(held);

    wait_for_state(&pool, &id, "done").await;
    workers.stop().await;
    let starts = run_starts(&pool, "gated").await;
    assert_eq!(starts.len(), 2);
    let after_release = (starts[1] - released_at).num_milliseconds();
    assert!(
        after_release >= 3_000,
        "ran again {after_release} ms after its failure could be stored, before the 3 s backoff"
    );
    let outcome: String = sqlx::query_scalar("SELECT outcome FROM job_errors WHERE job_id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outcome, "retry");
}

#[sqlx::test(migrations = false)]
async fn a_job_that_finds_the_handlers_pool_busy_waits_2s_without_spending_an_attempt(pool: PgPool) {
    setup(&pool).await;
    let handlers = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    let busy = handlers.acquire().await.unwrap();
    let pools =
        queue::QueuePools { handlers, queue: queue::queue_pool(pool.connect_options().as_ref().clone()), listen: None };
    let workers = Workers::start_with_pools(pools, Registry::default().with::<Flaky>(), Ports::default());
    let id = enqueue(&pool, &Flaky { key: "busy".into(), failures: 0 }).await;

    let throttled = format!("SELECT count(*) FROM job_errors WHERE job_id = '{id}' AND outcome = 'throttled'");
    wait_until(LONG, "two runs to find the handlers' pool busy", || async {
        crate::support::count(&pool, &throttled).await >= 2
    })
    .await;
    drop(busy);
    wait_for_state(&pool, &id, "done").await;
    workers.stop().await;

    let (attempts, errors): (i32, Vec<(String, String)>) = (
        sqlx::query_scalar("SELECT attempts FROM job_overview WHERE id = $1").bind(&id).fetch_one(&pool).await.unwrap(),
        sqlx::query_as("SELECT outcome, message FROM job_errors WHERE job_id = $1")
            .bind(&id)
            .fetch_all(&pool)
            .await
            .unwrap(),
    );
    assert_eq!(attempts, 1, "only the run that got a connection counts: {errors:?}");
    assert!(
        errors.iter().all(|(outcome, message)| outcome == "throttled" && message.contains("pool busy")),
        "{errors:?}"
    );
}
