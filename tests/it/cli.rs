//! `switchboard jobs ...` run as operators run it: the real binary against a
//! real database, checking what it prints and what it changed.

use serde_json::Value;
use sqlx::PgPool;
use switchboard_jobs::noop::Noop;
use switchboard_jobs::queue;

use crate::support::{binary, job_state, migrate};

async fn jobs(pool: &PgPool, args: &[&str]) -> (String, String, bool) {
    let mut full = vec!["jobs"];
    full.extend_from_slice(args);
    let out = binary::run(pool, &full).await;
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

async fn json(pool: &PgPool, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let (stdout, stderr, ok) = jobs(pool, &with_json).await;
    assert!(ok, "jobs {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("jobs {args:?} printed no JSON ({e}): {stdout}"))
}

/// A dead `noop` job with two recorded errors, as a failing handler leaves it.
async fn dead_job(pool: &PgPool) -> String {
    let mut conn = pool.acquire().await.unwrap();
    let id = queue::enqueue(&mut conn, &Noop { sleep_ms: 7 }).await.unwrap().unwrap();
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Killed', attempts = 2, done_at = now() - interval '1 minute',
                last_result = '{\"Err\": \"recording not found\"}' WHERE id = $1",
    )
    .bind(&id)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_errors (job_id, attempt, outcome, message, worker) VALUES
         ($1, 1, 'retry', 'provider timed out', 'worker.1-41-0a1b2c3d:noop'),
         ($1, 2, 'dead', 'recording not found', 'worker.2-77-9e8f7a6b:noop')",
    )
    .bind(&id)
    .execute(&mut *conn)
    .await
    .unwrap();
    id
}

async fn pending_job(pool: &PgPool) -> String {
    let mut conn = pool.acquire().await.unwrap();
    queue::enqueue(&mut conn, &Noop::default()).await.unwrap().unwrap()
}

#[sqlx::test(migrations = false)]
async fn list_filters_by_state_and_prints_a_table_or_json(pool: PgPool) {
    migrate(&pool).await;
    let dead = dead_job(&pool).await;
    let pending = pending_job(&pool).await;

    let listed = json(&pool, &["list", "--state", "dead"]).await;
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![dead.as_str()]);
    assert_eq!(listed[0]["last_error"], "recording not found");

    let all = json(&pool, &["list", "--kind", "noop", "--since", "2h"]).await;
    assert_eq!(all.as_array().unwrap().len(), 2);

    let (table, _, ok) = jobs(&pool, &["list"]).await;
    assert!(ok);
    assert!(table.contains(&dead) && table.contains(&pending), "{table}");
    assert!(table.contains("dead") && table.contains("pending"), "{table}");

    let (_, stderr, ok) = jobs(&pool, &["list", "--state", "stuck"]).await;
    assert!(!ok);
    assert!(stderr.contains("unknown state \"stuck\""), "{stderr}");
}

#[sqlx::test(migrations = false)]
async fn show_prints_payload_attempts_and_every_error(pool: PgPool) {
    migrate(&pool).await;
    let id = dead_job(&pool).await;
    let shown = json(&pool, &["show", &id]).await;
    assert_eq!(shown["payload"]["sleep_ms"], 7);
    assert_eq!(shown["attempts"], 2);
    let messages: Vec<&str> =
        shown["errors"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(messages, vec!["provider timed out", "recording not found"]);
    assert_eq!(shown["errors"][1]["worker"], "worker.2-77-9e8f7a6b:noop");

    let (text, _, ok) = jobs(&pool, &["show", &id]).await;
    assert!(ok);
    assert!(text.contains("attempts 2/") && text.contains("provider timed out"), "{text}");
    assert!(text.contains("worker.1-41-0a1b2c3d:noop"), "each error names the worker that ran it: {text}");

    let (_, stderr, ok) = jobs(&pool, &["show", "01KAKZ0000000000000000000Z"]).await;
    assert!(!ok);
    assert!(stderr.contains("no job with id 01KAKZ0000000000000000000Z"), "{stderr}");
}

#[sqlx::test(migrations = false)]
async fn replay_by_id_resets_attempts_and_says_what_changed(pool: PgPool) {
    migrate(&pool).await;
    let id = dead_job(&pool).await;
    let (text, _, ok) = jobs(&pool, &["replay", &id]).await;
    assert!(ok);
    assert!(text.starts_with("replayed 1 job(s)"), "{text}");
    assert!(text.contains(&id) && text.contains("dead"), "prints the job as it was: {text}");
    assert_eq!(job_state(&pool, &id).await, "pending");
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM apalis.jobs WHERE id = $1").bind(&id).fetch_one(&pool).await.unwrap();
    assert_eq!(attempts, 0);
}

#[sqlx::test(migrations = false)]
async fn replay_by_kind_and_state_dry_run_changes_nothing_then_replays_only_dead_jobs(pool: PgPool) {
    migrate(&pool).await;
    let dead = [dead_job(&pool).await, dead_job(&pool).await];
    let pending = pending_job(&pool).await;

    let dry = json(&pool, &["replay", "--kind", "noop", "--state", "dead", "--since", "2h", "--dry-run"]).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["replayed"].as_array().unwrap().len(), 2);
    for id in &dead {
        assert_eq!(job_state(&pool, id).await, "dead", "dry run changed nothing");
    }

    let done = json(&pool, &["replay", "--kind", "noop", "--state", "dead"]).await;
    assert_eq!(done["replayed"].as_array().unwrap().len(), 2);
    for id in &dead {
        assert_eq!(job_state(&pool, id).await, "pending");
    }
    assert_eq!(job_state(&pool, &pending).await, "pending");

    let (_, stderr, ok) = jobs(&pool, &["replay"]).await;
    assert!(!ok);
    assert!(stderr.contains("nothing to replay"), "{stderr}");
}

#[sqlx::test(migrations = false)]
async fn replay_by_kind_without_a_state_replays_the_dead_and_never_redoes_finished_work(pool: PgPool) {
    migrate(&pool).await;
    let dead = dead_job(&pool).await;
    let finished = pending_job(&pool).await;
    sqlx::query("UPDATE apalis.jobs SET status = 'Done', attempts = 1, done_at = now() WHERE id = $1")
        .bind(&finished)
        .execute(&pool)
        .await
        .unwrap();

    let replayed = json(&pool, &["replay", "--kind", "noop"]).await;
    let ids: Vec<&str> = replayed["replayed"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![dead.as_str()]);
    assert_eq!(job_state(&pool, &finished).await, "done");

    let (_, stderr, ok) = jobs(&pool, &["replay", &dead, "--since", "2h"]).await;
    assert!(!ok && stderr.contains("not both"), "ids and a selection together are refused: {stderr}");
}

#[sqlx::test(migrations = false)]
async fn discard_removes_dead_jobs_and_their_errors(pool: PgPool) {
    migrate(&pool).await;
    let id = dead_job(&pool).await;
    let discarded = json(&pool, &["discard", &id, "01KAKZ0000000000000000000Z"]).await;
    assert_eq!(discarded["discarded"], serde_json::json!([id]));
    assert_eq!(discarded["not_discarded"], serde_json::json!(["01KAKZ0000000000000000000Z"]));
    let left: (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM apalis.jobs), (SELECT count(*) FROM job_errors)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, (0, 0));
}

#[sqlx::test(migrations = false)]
async fn stats_counts_per_kind_and_state_with_the_oldest_pending_age(pool: PgPool) {
    migrate(&pool).await;
    dead_job(&pool).await;
    let old = pending_job(&pool).await;
    pending_job(&pool).await;
    sqlx::query("UPDATE apalis.jobs SET run_at = now() - interval '90 seconds' WHERE id = $1")
        .bind(&old)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, done_at)
         VALUES ('01KAKZ0000000000000000000D', 'noop', convert_to('{}', 'UTF8'), 'Done', 1, 3, now(), 0, now())",
    )
    .execute(&pool)
    .await
    .unwrap();

    let stats = json(&pool, &["stats"]).await;
    let counts: Vec<(String, String, i64)> = stats["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (c["kind"].as_str().unwrap().into(), c["state"].as_str().unwrap().into(), c["count"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("noop".into(), "dead".into(), 1),
            ("noop".into(), "done".into(), 1),
            ("noop".into(), "pending".into(), 2)
        ]
    );
    let age = stats["oldest_pending_age_s"].as_f64().unwrap();
    assert!((90.0..120.0).contains(&age), "{age}");
    assert_eq!(stats["finished_last_5m"], 1);

    let (table, _, ok) = jobs(&pool, &["stats"]).await;
    assert!(ok && table.contains("oldest pending job: 9"), "{table}");
}

#[sqlx::test(migrations = false)]
async fn prune_deletes_only_finished_jobs_older_than_asked(pool: PgPool) {
    migrate(&pool).await;
    let dead = dead_job(&pool).await;
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, done_at) VALUES
         ('01KAKZ0000000000000000000E', 'noop', convert_to('{}', 'UTF8'), 'Done', 1, 3, now(), 0, now() - interval '8 days'),
         ('01KAKZ0000000000000000000F', 'noop', convert_to('{}', 'UTF8'), 'Done', 1, 3, now(), 0, now() - interval '1 day')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE apalis.jobs SET done_at = now() - interval '30 days' WHERE id = $1")
        .bind(&dead)
        .execute(&pool)
        .await
        .unwrap();

    let pruned = json(&pool, &["prune", "--older-than", "7d"]).await;
    assert_eq!(pruned["deleted"], 1);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT id FROM apalis.jobs ORDER BY id").fetch_all(&pool).await.unwrap();
    let mut expected = vec![dead, "01KAKZ0000000000000000000F".to_owned()];
    expected.sort();
    assert_eq!(left, expected, "dead jobs are kept whatever their age");
}

/// Marks a job dead with `message` as its last error.
async fn kill(pool: &PgPool, id: &str, message: &str) {
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Killed', attempts = 1, done_at = now(), last_result = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(serde_json::json!({ "Err": message }))
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = false)]
async fn errors_groups_dead_and_retrying_jobs_by_message_with_counts_and_a_sample(pool: PgPool) {
    migrate(&pool).await;
    let timeouts = [pending_job(&pool).await, pending_job(&pool).await, pending_job(&pool).await];
    for id in &timeouts {
        kill(&pool, id, "OpenAI timed out").await;
    }
    let retrying = pending_job(&pool).await;
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Failed', attempts = 1, max_attempts = 5, done_at = now(),
                last_result = '{\"Err\": \"OpenAI timed out\"}' WHERE id = $1",
    )
    .bind(&retrying)
    .execute(&pool)
    .await
    .unwrap();
    let other = dead_job(&pool).await;
    pending_job(&pool).await;

    let groups = json(&pool, &["errors"]).await;
    let groups = groups.as_array().unwrap();
    let rows: Vec<(&str, &str, i64)> = groups
        .iter()
        .map(|g| (g["state"].as_str().unwrap(), g["message"].as_str().unwrap(), g["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        rows,
        vec![("dead", "OpenAI timed out", 3), ("retrying", "OpenAI timed out", 1), ("dead", "recording not found", 1)],
        "biggest group first, then the most recent failure"
    );
    assert!(timeouts.contains(&groups[0]["sample_id"].as_str().unwrap().to_owned()), "{groups:?}");
    assert_eq!((groups[1]["sample_id"].as_str(), groups[2]["sample_id"].as_str()), (Some(&*retrying), Some(&*other)));

    let (table, _, ok) = jobs(&pool, &["errors"]).await;
    assert!(ok && table.contains("OpenAI timed out") && table.contains(&other), "{table}");
}

#[sqlx::test(migrations = false)]
async fn workers_lists_live_workers_with_the_jobs_they_hold_and_orphans_holding_jobs(pool: PgPool) {
    migrate(&pool).await;
    let held = pending_job(&pool).await;
    let orphaned = pending_job(&pool).await;
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) VALUES
         ('web.1-10-aaaa:noop', 'noop', 'PostgresStorage', '', now()),
         ('web.1-11-bbbb:noop', 'noop', 'PostgresStorage', '', now() - interval '10 minutes'),
         ('web.1-12-cccc:noop', 'noop', 'PostgresStorage', '', now() - interval '1 hour')",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (id, worker) in [(&held, "web.1-10-aaaa:noop"), (&orphaned, "web.1-11-bbbb:noop")] {
        sqlx::query("UPDATE apalis.jobs SET status = 'Running', lock_by = $2, lock_at = now() WHERE id = $1")
            .bind(id)
            .bind(worker)
            .execute(&pool)
            .await
            .unwrap();
    }

    let workers = json(&pool, &["workers"]).await;
    let rows: Vec<(&str, bool, Vec<&str>)> = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let holding = w["holding"].as_array().unwrap().iter().map(|j| j.as_str().unwrap()).collect();
            (w["name"].as_str().unwrap(), w["alive"].as_bool().unwrap(), holding)
        })
        .collect();
    assert_eq!(
        rows,
        vec![("web.1-10-aaaa:noop", true, vec![held.as_str()]), ("web.1-11-bbbb:noop", false, vec![orphaned.as_str()])],
        "the idle worker silent for an hour is left out"
    );
    let (table, _, ok) = jobs(&pool, &["workers"]).await;
    assert!(ok && table.contains("web.1-10-aaaa:noop") && table.contains(&held), "{table}");
}

#[sqlx::test(migrations = false)]
async fn discard_by_filter_previews_with_dry_run_then_deletes_only_the_matching_dead_jobs(pool: PgPool) {
    migrate(&pool).await;
    let timeouts = [pending_job(&pool).await, pending_job(&pool).await];
    for id in &timeouts {
        kill(&pool, id, "OpenAI timed out").await;
    }
    let other_dead = dead_job(&pool).await;
    let pending = pending_job(&pool).await;

    let preview = json(&pool, &["discard", "--kind", "noop", "--error", "OpenAI timed out", "--dry-run"]).await;
    assert_eq!(preview["dry_run"], true);
    let mut previewed: Vec<&str> =
        preview["discarded"].as_array().unwrap().iter().map(|id| id.as_str().unwrap()).collect();
    previewed.sort_unstable();
    let mut expected: Vec<&str> = timeouts.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(previewed, expected);
    assert_eq!(crate::support::count(&pool, "SELECT count(*) FROM apalis.jobs").await, 4, "a dry run deletes nothing");

    let done = json(&pool, &["discard", "--kind", "noop", "--error", "OpenAI timed out"]).await;
    assert_eq!(done["discarded"].as_array().unwrap().len(), 2);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT id FROM apalis.jobs ORDER BY id").fetch_all(&pool).await.unwrap();
    let mut expected_left = vec![other_dead, pending];
    expected_left.sort();
    assert_eq!(left, expected_left);

    let (_, stderr, ok) = jobs(&pool, &["discard"]).await;
    assert!(!ok && stderr.contains("nothing to discard"), "{stderr}");
}

#[sqlx::test(migrations = false)]
async fn pause_and_resume_a_kind_say_what_changed_and_refuse_unknown_kinds(pool: PgPool) {
    migrate(&pool).await;
    let paused = json(&pool, &["pause", "noop"]).await;
    assert_eq!(
        (paused["changed"].as_bool(), paused["paused_kinds"].clone()),
        (Some(true), serde_json::json!(["noop"]))
    );
    let again = json(&pool, &["pause", "noop"]).await;
    assert_eq!(again["changed"], false, "pausing twice changes nothing");
    let (text, _, ok) = jobs(&pool, &["resume", "noop"]).await;
    assert!(ok && text.contains("noop: resumed; paused kinds now: none"), "{text}");
    assert_eq!(crate::support::count(&pool, "SELECT count(*) FROM paused_kinds").await, 0);
    let (_, stderr, ok) = jobs(&pool, &["pause", "nope"]).await;
    assert!(!ok && stderr.contains("unknown queue \"nope\""), "{stderr}");
}
