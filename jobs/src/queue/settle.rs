//! Recording a run that did not succeed: the next `run_at` (durable backoff),
//! dead, or snoozed, with the error kept in `job_errors`.
//!
//! The decision is stored in `job_settlements` and applied by a trigger when
//! apalis acknowledges the run (see the migration `settle_on_ack`): until then
//! the job stays claimed by this worker, so no late ack can land on a newer
//! claim of it. Success is left to apalis's batched ack: it costs nothing extra.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// What became of a failed run.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    RetryIn(Duration),
    Dead,
    Snoozed(DateTime<Utc>),
}

impl Settled {
    fn outcome(&self) -> &'static str {
        match self {
            Self::RetryIn(_) => "retry",
            Self::Dead => "dead",
            Self::Snoozed(_) => "snoozed",
        }
    }
}

/// Stores `settled` for the run `attempt` of job `job_id` held by `worker`,
/// for apalis's ack of that run to apply. A job no longer held by `worker`
/// (handed to another after a lost heartbeat) is left alone; the row is
/// share-locked meanwhile, so it cannot be handed on before the decision is
/// stored for the hand-over to apply. A snooze leaves
/// `attempts` as it was before this run: it is not an attempt.
pub(crate) async fn record(
    pool: &PgPool,
    job_id: &str,
    worker: &str,
    attempt: u32,
    settled: &Settled,
    message: &str,
) -> Result<(), sqlx::Error> {
    let (retry_in, snooze_until) = match settled {
        Settled::RetryIn(delay) => (Some(delay.as_secs_f64()), None),
        Settled::Snoozed(until) => (None, Some(*until)),
        Settled::Dead => (None, None),
    };
    sqlx::query(
        "INSERT INTO job_settlements (job_id, worker, attempt, outcome, message, retry_in, snooze_until)
         SELECT id, lock_by, $3, $4, $5, make_interval(secs => $6), $7 FROM apalis.jobs
         WHERE id = $1 AND lock_by = $2 AND status IN ('Queued', 'Running')
         FOR SHARE
         ON CONFLICT (job_id) DO UPDATE SET
            worker = EXCLUDED.worker, attempt = EXCLUDED.attempt, outcome = EXCLUDED.outcome, message = EXCLUDED.message,
            retry_in = EXCLUDED.retry_in, snooze_until = EXCLUDED.snooze_until, decided_at = now()",
    )
    .bind(job_id)
    .bind(worker)
    .bind(attempt as i32)
    .bind(settled.outcome())
    .bind(message)
    .bind(retry_in)
    .bind(snooze_until)
    .execute(pool)
    .await?;
    Ok(())
}
