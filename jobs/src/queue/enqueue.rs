//! Enqueueing typed jobs on the caller's connection or transaction, so a row
//! and the job about it commit or roll back together. A job due now wakes a
//! worker of its kind from the same statement (NOTIFY is delivered at commit).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::Job;
use super::wakeup::{after_waking, wake_kinds_in};

/// Options beyond "run this now".
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Run no earlier than this (stored to the microsecond).
    pub run_at: Option<DateTime<Utc>>,
    /// At most one job per kind with this key, ever; a second enqueue is a no-op.
    pub dedupe_key: Option<String>,
}

impl EnqueueOptions {
    pub fn deduped(key: impl Into<String>) -> Self {
        Self { dedupe_key: Some(key.into()), ..Self::default() }
    }
}

/// Enqueue `job` to run now. See [`enqueue_with`].
pub async fn enqueue<J: Job>(conn: &mut PgConnection, job: &J) -> Result<Option<String>, sqlx::Error> {
    enqueue_with(conn, job, EnqueueOptions::default()).await
}

/// Enqueue `job` on `conn` (pass `&mut *tx` to join the caller's transaction).
/// Returns the new job's id, or `None` when a job of this kind with the same
/// dedupe key exists already: a duplicate never raises an error, so it never
/// aborts the caller's transaction.
pub async fn enqueue_with<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    options: EnqueueOptions,
) -> Result<Option<String>, sqlx::Error> {
    let payload = serde_json::to_vec(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let id = ulid::Ulid::generate().to_string();
    sqlx::query_scalar(concat!(
        "WITH released AS (
            INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, idempotency_key)
            VALUES ($1, $2, $3, 'Pending', 0, $4, COALESCE($5, now()), 0, $6)
            ON CONFLICT (job_type, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id, job_type, run_at),
         due AS (SELECT job_type FROM released WHERE run_at <= clock_timestamp())",
        wake_kinds_in!("due"),
        " SELECT id FROM released WHERE ",
        after_waking!()
    ))
    .bind(&id)
    .bind(J::KIND)
    .bind(payload)
    .bind(J::policy().max_attempts as i32)
    .bind(options.run_at)
    .bind(options.dedupe_key)
    .fetch_optional(conn)
    .await
}

/// Enqueue many jobs of one kind in one statement, to run now.
pub async fn enqueue_many<J: Job>(conn: &mut PgConnection, jobs: &[J]) -> Result<u64, sqlx::Error> {
    let mut ids = Vec::with_capacity(jobs.len());
    let mut payloads = Vec::with_capacity(jobs.len());
    for job in jobs {
        ids.push(ulid::Ulid::generate().to_string());
        payloads.push(serde_json::to_vec(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
    }
    let inserted: i64 = sqlx::query_scalar(concat!(
        "WITH released AS (
            INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
            SELECT id, $2, job, 'Pending', 0, $4, now(), 0 FROM unnest($1::text[], $3::bytea[]) AS t(id, job)
            RETURNING id, job_type),
         due AS (SELECT job_type FROM released LIMIT 1)",
        wake_kinds_in!("due"),
        " SELECT count(*) FROM released WHERE ",
        after_waking!()
    ))
    .bind(&ids)
    .bind(J::KIND)
    .bind(&payloads)
    .bind(J::policy().max_attempts as i32)
    .fetch_one(conn)
    .await?;
    Ok(inserted as u64)
}
