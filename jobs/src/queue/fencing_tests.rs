//! The claim token at the SQL level: outcomes and hand-backs of an older run
//! of a job never touch a newer claim of it, even by the same worker, and a
//! job that lost its worker on its last attempt goes dead; a claim whose
//! worker row is gone is recovered; only ULIDs are job ids; a batch of
//! outcomes, or of hand-backs, is matched to its claims by id, whatever the
//! table's statistics.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use super::claim::{self, Claim};
use super::liveness::{self, Names};
use super::next;
use super::outcome::{self, Outcome, Verdict, store_outcomes};
use crate::noop::Noop;

const WORKER: &str = "host-1-abc:noop";

async fn world(pool: &PgPool) -> (Arc<str>, String) {
    crate::migrate(pool).await.unwrap();
    let names = Names { workers: vec![WORKER.to_owned()], kinds: vec!["noop".to_owned()] };
    liveness::register(pool, &names).await.unwrap();
    let id = super::enqueue(&mut pool.acquire().await.unwrap(), &Noop::default()).await.unwrap().unwrap();
    (WORKER.into(), id)
}

async fn claim_one(pool: &PgPool, worker: &Arc<str>) -> Claim {
    let mut claimed = next::claim_due(pool, "noop", worker, 1, &[]).await.unwrap().jobs;
    assert_eq!(claimed.len(), 1, "one job to claim");
    claimed.remove(0).0
}

/// The worker looks dead to the others: its jobs are recovered.
async fn lose_worker(pool: &PgPool) -> u64 {
    sqlx::query("UPDATE apalis.workers SET last_seen = now() - interval '1 hour'").execute(pool).await.unwrap();
    let recovered = liveness::recover_orphans(pool, Duration::from_secs(15)).await.unwrap();
    sqlx::query("UPDATE apalis.workers SET last_seen = now()").execute(pool).await.unwrap();
    recovered
}

fn outcome(claim: &Claim, verdict: Verdict) -> Outcome {
    let message = (verdict != Verdict::Done).then(|| "stale".to_owned());
    Outcome { claim: claim.clone(), verdict, message }
}

async fn status(pool: &PgPool, id: &str) -> (String, i32, Option<chrono::DateTime<chrono::Utc>>) {
    sqlx::query_as("SELECT status, attempts, lock_at FROM apalis.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_stale_runs_outcome_or_hand_back_cannot_touch_the_same_workers_newer_claim(pool: PgPool) {
    let (worker, id) = world(&pool).await;
    let stale = claim_one(&pool, &worker).await;
    assert_eq!(lose_worker(&pool).await, 1);
    let newer = claim_one(&pool, &worker).await;
    assert_eq!((newer.job_id.as_str(), newer.attempt), (id.as_str(), 2));

    for verdict in [Verdict::Done, Verdict::Retry(Duration::from_secs(60)), Verdict::Dead] {
        let stored = outcome::store(&pool, &[outcome(&stale, verdict)]).await.unwrap();
        assert!(stored.is_empty(), "a stale outcome was stored");
    }
    assert_eq!(claim::hand_back_unstarted(&pool, std::slice::from_ref(&stale)).await.unwrap(), 0);
    assert_eq!(status(&pool, &id).await, ("Running".to_owned(), 2, Some(newer.claimed_at)));

    let stored = outcome::store(&pool, &[outcome(&newer, Verdict::Done)]).await.unwrap();
    assert_eq!(stored, vec![id.clone()]);
    assert_eq!(status(&pool, &id).await, ("Done".to_owned(), 2, None));
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_errors WHERE outcome <> 'lost'").fetch_one(&pool).await.unwrap();
    assert_eq!(errors, 0, "no stale failure was recorded");
}

#[sqlx::test(migrations = false)]
async fn a_job_that_lost_its_worker_on_its_last_attempt_is_dead_and_never_claimed_again(pool: PgPool) {
    let (worker, id) = world(&pool).await;
    sqlx::query("UPDATE apalis.jobs SET max_attempts = 2 WHERE id = $1").bind(&id).execute(&pool).await.unwrap();
    for _ in 0..2 {
        claim_one(&pool, &worker).await;
        assert_eq!(lose_worker(&pool).await, 1);
    }
    let (status, attempts, _) = status(&pool, &id).await;
    assert_eq!((status.as_str(), attempts), ("Killed", 2));
    let error: String = sqlx::query_scalar("SELECT last_result ->> 'Err' FROM apalis.jobs WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(error, "worker lost while running it, 2 times");
    assert!(next::claim_due(&pool, "noop", &worker, 10, &[]).await.unwrap().jobs.is_empty());
}

#[sqlx::test(migrations = false)]
async fn a_claim_whose_worker_row_is_gone_is_recovered_and_a_live_workers_is_not(pool: PgPool) {
    let (worker, id) = world(&pool).await;
    claim_one(&pool, &worker).await;
    assert_eq!(liveness::recover_orphans(&pool, Duration::from_secs(15)).await.unwrap(), 0, "its worker is alive");

    sqlx::query("DELETE FROM apalis.workers").execute(&pool).await.unwrap();
    assert_eq!(liveness::recover_orphans(&pool, Duration::from_secs(15)).await.unwrap(), 1);
    assert_eq!(status(&pool, &id).await, ("Pending".to_owned(), 1, None));
}

#[sqlx::test(migrations = false)]
async fn an_id_that_is_not_a_ulid_is_refused_at_the_insert(pool: PgPool) {
    world(&pool).await;
    let refused = sqlx::query("INSERT INTO apalis.jobs (job, id, job_type) VALUES ('{}', $1, 'noop')")
        .bind("01ARZ3NDEKTSV4RRFFQ69G5FAu")
        .execute(&pool)
        .await
        .expect_err("a lowercase letter is not Crockford base32");
    let code = refused.as_database_error().and_then(|e| e.code()).map(|code| code.into_owned());
    assert_eq!(code.as_deref(), Some("23514"), "a check violation: {refused}");
}

#[sqlx::test(migrations = false)]
async fn a_snooze_or_a_rate_limit_gives_the_attempt_back_and_records_why(pool: PgPool) {
    let (worker, id) = world(&pool).await;
    let first = claim_one(&pool, &worker).await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    outcome::store(&pool, &[outcome(&first, Verdict::Snoozed(later))]).await.unwrap();
    assert_eq!(status(&pool, &id).await.1, 0);

    sqlx::query("UPDATE apalis.jobs SET run_at = now() WHERE id = $1").bind(&id).execute(&pool).await.unwrap();
    let second = claim_one(&pool, &worker).await;
    assert_eq!(second.attempt, 1);
    outcome::store(&pool, &[outcome(&second, Verdict::Throttled(Duration::from_secs(30)))]).await.unwrap();
    sqlx::query("UPDATE apalis.jobs SET run_at = now() WHERE id = $1").bind(&id).execute(&pool).await.unwrap();
    let third = claim_one(&pool, &worker).await;
    assert_eq!((third.attempt, third.throttled), (1, Duration::from_secs(30)));
    let outcomes: Vec<String> = sqlx::query_scalar("SELECT outcome FROM job_errors WHERE job_id = $1 ORDER BY id")
        .bind(&id)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(outcomes, ["snoozed", "throttled"]);
}

#[sqlx::test(migrations = false)]
async fn a_claim_carrying_a_stale_outcome_claims_the_job_anew_and_stores_nothing_of_the_older_run(pool: PgPool) {
    let (worker, id) = world(&pool).await;
    let stale = claim_one(&pool, &worker).await;
    assert_eq!(lose_worker(&pool).await, 1);

    let claimed = next::claim_due(&pool, "noop", &worker, 1, &[outcome(&stale, Verdict::Done)]).await.unwrap();
    assert!(claimed.stored.is_empty(), "a stale outcome was stored");
    let [(newer, _)] = claimed.jobs.as_slice() else { panic!("one job claimed: {claimed:?}") };
    assert_eq!((newer.job_id.as_str(), newer.attempt), (id.as_str(), 2));
    assert_eq!(status(&pool, &id).await, ("Running".to_owned(), 2, Some(newer.claimed_at)));

    let after = next::claim_due(&pool, "noop", &worker, 1, &[outcome(newer, Verdict::Done)]).await.unwrap();
    assert_eq!((after.stored, after.jobs.len()), (vec![id.clone()], 0));
    assert_eq!(status(&pool, &id).await, ("Done".to_owned(), 2, None));
}

#[sqlx::test(migrations = false)]
async fn a_claim_stores_the_outcomes_it_carries_and_takes_the_next_jobs_in_one_statement(pool: PgPool) {
    let (worker, first_id) = world(&pool).await;
    let first = claim_one(&pool, &worker).await;
    let second_id = super::enqueue(&mut pool.acquire().await.unwrap(), &Noop::default()).await.unwrap().unwrap();
    let failed =
        Outcome { message: Some("boom".to_owned()), ..outcome(&first, Verdict::Retry(Duration::from_secs(60))) };

    let claimed = next::claim_due(&pool, "noop", &worker, 10, &[failed]).await.unwrap();
    assert_eq!(claimed.stored, vec![first_id.clone()]);
    let ids: Vec<&str> = claimed.jobs.iter().map(|(claim, _)| claim.job_id.as_str()).collect();
    assert_eq!(ids, [second_id.as_str()], "the released job is not due again before its backoff");
    assert_eq!(status(&pool, &first_id).await, ("Failed".to_owned(), 1, None));
    let errors: Vec<String> = sqlx::query_scalar("SELECT message FROM job_errors WHERE job_id = $1")
        .bind(&first_id)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(errors, ["boom"]);
}

/// 50 claims of `worker` in a table of 5,000 finished jobs analysed before
/// any job was claimed: the statistics say no row has a `lock_by`.
async fn claims_among_finished_jobs(pool: &PgPool, worker: &Arc<str>) -> Vec<Claim> {
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, done_at)
         SELECT upper(lpad(to_hex(n), 26, '0')), 'history', convert_to('null', 'UTF8'), 'Done', 1, 8, now(), 0, now()
         FROM generate_series(1, 5000) n",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE apalis.jobs").execute(pool).await.unwrap();
    super::enqueue_many(&mut pool.acquire().await.unwrap(), &vec![Noop::default(); 49]).await.unwrap();
    let claimed = next::claim_due(pool, "noop", worker, 50, &[]).await.unwrap().jobs;
    assert_eq!(claimed.len(), 50);
    claimed.into_iter().map(|(claim, _)| claim).collect()
}

/// `EXPLAIN (ANALYZE, FORMAT JSON)` of `statement` (parameters typed
/// `types`) run with `arguments`, on a connection of the queue's own pool,
/// which plans generically, as the worker's statements are planned.
/// EXPLAIN EXECUTE takes no bound parameters: the arguments go as literals.
async fn explain_on_the_queue_pool(pool: &PgPool, statement: &str, types: &str, arguments: &[String]) -> Value {
    let mut conn = super::queue_pool(pool.connect_options().as_ref().clone()).acquire().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE explained ({types}) AS {statement}")))
        .execute(&mut *conn)
        .await
        .unwrap();
    let explain = format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE explained({})", arguments.join(", "));
    let (plan,): (Value,) = sqlx::query_as(sqlx::AssertSqlSafe(explain)).fetch_one(&mut *conn).await.unwrap();
    plan
}

/// An array literal of `items` (ids, worker names, numbers and quoted
/// timestamps: nothing that needs escaping).
fn array(items: impl Iterator<Item = String>) -> String {
    format!("'{{{}}}'", items.collect::<Vec<_>>().join(","))
}

/// The claims' ids, workers and claim times as array literals.
fn claim_arrays<'a>(claims: impl Iterator<Item = &'a Claim> + Clone) -> Vec<String> {
    vec![
        array(claims.clone().map(|c| c.job_id.clone())),
        array(claims.clone().map(|c| c.worker.to_string())),
        array(claims.map(|c| format!("\"{}\"", c.claimed_at.to_rfc3339()))),
    ]
}

async fn noop_jobs_in(pool: &PgPool, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'noop' AND status = $1")
        .bind(status)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn outcomes_meet_only_their_own_claims_when_the_statistics_see_no_claimed_row(pool: PgPool) {
    let (worker, _) = world(&pool).await;
    let claims = claims_among_finished_jobs(&pool, &worker).await;
    let outcomes: Vec<Outcome> = claims.iter().map(|claim| outcome(claim, Verdict::Done)).collect();

    let nulls = || array(outcomes.iter().map(|_| "NULL".to_owned()));
    let mut arguments = claim_arrays(claims.iter());
    arguments.push(array(claims.iter().map(|c| c.attempt.to_string())));
    arguments.push(array(outcomes.iter().map(|o| o.verdict.name().to_owned())));
    arguments.extend([nulls(), nulls(), nulls()]);
    let plan = explain_on_the_queue_pool(
        &pool,
        concat!("WITH ", store_outcomes!(), " SELECT id FROM stored"),
        "text[], text[], timestamptz[], int[], text[], float8[], timestamptz[], text[]",
        &arguments,
    )
    .await;

    assert_eq!(rows_removed_by_join_filters(&plan), 0, "rows compared with claims not theirs: {plan}");
    assert_eq!(noop_jobs_in(&pool, "Done").await, 50);
}

#[sqlx::test(migrations = false)]
async fn a_hand_back_meets_only_its_own_claims_when_the_statistics_see_no_claimed_row(pool: PgPool) {
    let (worker, _) = world(&pool).await;
    let claims = claims_among_finished_jobs(&pool, &worker).await;

    let plan = explain_on_the_queue_pool(
        &pool,
        claim::HAND_BACK,
        "text[], text[], timestamptz[]",
        &claim_arrays(claims.iter()),
    )
    .await;

    assert_eq!(rows_removed_by_join_filters(&plan), 0, "rows compared with claims not theirs: {plan}");
    assert_eq!(noop_jobs_in(&pool, "Pending").await, 50);
}

/// Every "Rows Removed by Join Filter" in an `EXPLAIN (ANALYZE, FORMAT JSON)`.
fn rows_removed_by_join_filters(plan: &Value) -> u64 {
    match plan {
        Value::Object(node) => node
            .iter()
            .map(|(key, value)| match key.as_str() {
                "Rows Removed by Join Filter" => value.as_u64().unwrap_or(0),
                _ => rows_removed_by_join_filters(value),
            })
            .sum(),
        Value::Array(nodes) => nodes.iter().map(rows_removed_by_join_filters).sum(),
        _ => 0,
    }
}
