//! Liveness, independent of apalis's poll loop: while a worker generation is
//! alive (slots full, draining, waiting on the database) a task of its own
//! moves `last_seen` of its workers every heartbeat; when the process dies it
//! stops, and any other process recovers the jobs after
//! `heartbeat * missed_heartbeats`. Each beat also recovers other workers'
//! orphans (dead once their attempts are spent) and gives back rows this
//! generation holds in the database but not in memory (a write whose reply
//! was lost).

use std::time::Duration;

use sqlx::PgPool;

use super::claim::Held;
use super::wakeup::notify_released;

/// The names a generation runs under, each `{generation}:{kind}`, and their kinds.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub workers: Vec<String>,
    pub kinds: Vec<String>,
}

/// Registers the generation's workers (`apalis.workers`, whose `last_seen`
/// tells other workers that the jobs they hold are alive) before any of them
/// claims.
pub(crate) async fn register(pool: &PgPool, names: &Names) -> Result<(), sqlx::Error> {
    beat(pool, names).await
}

/// One heartbeat: `last_seen = now()` for every worker of the generation
/// (inserting any row pruned meanwhile).
async fn beat(pool: &PgPool, names: &Names) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen, started_at)
         SELECT id, kind, 'switchboard', '', now(), now() FROM unnest($1::text[], $2::text[]) AS w(id, kind)
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
    )
    .bind(&names.workers)
    .bind(&names.kinds)
    .execute(pool)
    .await?;
    Ok(())
}

/// Beats every `heartbeat` until dropped, recovering orphans and lost rows on each beat.
///
/// Orphans are recovered only once this process's own beats have succeeded
/// for `dead_after` in a row: right after a database outage every worker
/// looks silent, and none should take the others' running jobs for orphans.
pub(crate) async fn run(pool: PgPool, names: Names, held: Held, heartbeat: Duration, dead_after: Duration) {
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beating_since: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        if let Err(error) = beat(&pool, &names).await {
            tracing::warn!(%error, "heartbeat failed; will beat again");
            beating_since = None;
            continue;
        }
        let beating_since = *beating_since.get_or_insert_with(tokio::time::Instant::now);
        if beating_since.elapsed() >= dead_after {
            match recover_orphans(&pool, dead_after).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(jobs = n, "recovered jobs of workers that stopped beating"),
                Err(error) => tracing::warn!(%error, "orphan recovery failed; will try again"),
            }
        }
        match give_back_lost(&pool, &names, &held, heartbeat).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "gave back jobs this worker held without knowing (a lost write)"),
            Err(error) => tracing::warn!(%error, "could not check this worker's claims; will try again"),
        }
    }
}

/// Jobs claimed by workers silent for `dead_after`, or by a worker with no
/// row (`lock_by` has no foreign key), go back to pending, or dead when that
/// run was their last attempt (the attempt was counted at the claim). Each
/// recovery is kept in `job_errors` as `lost`.
pub(crate) async fn recover_orphans(pool: &PgPool, dead_after: Duration) -> Result<u64, sqlx::Error> {
    let recovered: Vec<String> = sqlx::query_scalar(concat!(
        "WITH stale AS (
            SELECT j.id, j.lock_by AS worker FROM apalis.jobs j LEFT JOIN apalis.workers w ON w.id = j.lock_by
            WHERE j.lock_by IS NOT NULL AND j.status IN ('Queued', 'Running')
              AND (w.id IS NULL OR w.last_seen < now() - make_interval(secs => $1))
            FOR UPDATE OF j SKIP LOCKED),
         lost AS (
            SELECT s.id, s.worker, 1 + (SELECT count(*) FROM job_errors e WHERE e.job_id = s.id AND e.outcome = 'lost') AS times
            FROM stale s),
         recovered AS (
            UPDATE apalis.jobs j SET
                status = CASE WHEN j.attempts >= j.max_attempts THEN 'Killed' ELSE 'Pending' END,
                done_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
                last_result = jsonb_build_object('Err', CASE WHEN j.attempts >= j.max_attempts
                    THEN format('worker lost while running it, %s times', l.times)
                    ELSE format('worker %s lost while running it', l.worker) END),
                lock_by = NULL, lock_at = NULL
            FROM lost l WHERE j.id = l.id
            RETURNING j.id, j.job_type, j.status, j.attempts, l.worker, j.last_result ->> 'Err' AS message),
         logged AS (
            INSERT INTO job_errors (job_id, attempt, outcome, message, worker)
            SELECT id, attempts, 'lost', message, worker FROM recovered),
         released AS (SELECT id, job_type FROM recovered WHERE status = 'Pending')",
        notify_released!(),
        " UNION ALL SELECT id FROM recovered WHERE status = 'Killed'"
    ))
    .bind(dead_after.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(recovered.len() as u64)
}

/// Rows held by this generation's workers that it does not hold in memory,
/// claimed longer than `grace` ago: an outcome or hand-back whose reply was
/// lost, or a claim whose reply never came. Back to pending now.
async fn give_back_lost(pool: &PgPool, names: &Names, held: &Held, grace: Duration) -> Result<u64, sqlx::Error> {
    let given: Vec<String> = sqlx::query_scalar(concat!(
        "WITH released AS (
            UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL
            WHERE lock_by = ANY($1) AND status IN ('Queued', 'Running')
              AND lock_at < now() - make_interval(secs => $3) AND NOT (id = ANY($2))
            RETURNING id, job_type)",
        notify_released!()
    ))
    .bind(&names.workers)
    .bind(held.job_ids())
    .bind(grace.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(given.len() as u64)
}

/// At the end of a generation: everything its workers still hold goes back
/// to pending now (nothing of theirs runs any more). Best effort: if the
/// database is away, other workers recover them once the heartbeat stops.
pub(crate) async fn hand_back_all(pool: &PgPool, names: &Names) {
    let released = sqlx::query_scalar::<_, String>(concat!(
        "WITH released AS (
            UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL
            WHERE lock_by = ANY($1) AND status IN ('Queued', 'Running')
            RETURNING id, job_type)",
        notify_released!()
    ))
    .bind(&names.workers)
    .fetch_all(pool)
    .await;
    match released {
        Ok(ids) if !ids.is_empty() => tracing::info!(jobs = ids.len(), "handed unfinished jobs back to the queue"),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not hand jobs back; other workers' heartbeats will recover them"),
    }
}

/// Keeps a generation's liveness until `stop` is notified.
pub(crate) fn spawn(pool: PgPool, names: Names, held: Held, heartbeat: Duration, dead_after: Duration) -> LivenessTask {
    LivenessTask(tokio::spawn(run(pool, names, held, heartbeat, dead_after)))
}

/// The running liveness task; its heartbeats stop when it is dropped.
pub(crate) struct LivenessTask(tokio::task::JoinHandle<()>);

impl Drop for LivenessTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
