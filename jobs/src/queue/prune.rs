//! Deleting finished jobs past their retention, in small batches, on a
//! schedule (a growing table of done rows slows every claim). Dead jobs stay
//! until an operator replays or discards them.

use std::time::Duration;

use sqlx::PgPool;

#[derive(Debug, Clone)]
pub struct PruneSchedule {
    /// Done jobs older than this are deleted.
    pub retention: Duration,
    pub every: Duration,
}

const BATCH: i64 = 5_000;

/// Deletes done jobs finished more than `older_than` ago; returns how many.
pub async fn prune_done(pool: &PgPool, older_than: Duration) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = sqlx::query(
            "DELETE FROM apalis.jobs WHERE id IN (
                SELECT id FROM apalis.jobs
                WHERE status = 'Done' AND done_at < now() - make_interval(secs => $1)
                LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(older_than.as_secs_f64())
        .bind(BATCH)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Forgets worker rows silent for a day that hold no job.
async fn prune_workers(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM apalis.workers w WHERE last_seen < now() - interval '1 day'
         AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

pub(crate) async fn run_on_schedule(pool: PgPool, schedule: PruneSchedule) {
    let mut tick = tokio::time::interval(schedule.every);
    loop {
        tick.tick().await;
        match prune_done(&pool, schedule.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "pruned finished jobs"),
            Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed; will try again"),
        }
        if let Err(e) = prune_workers(&pool).await {
            tracing::warn!(error = %e, "pruning worker rows failed");
        }
    }
}
