//! Claims: taking due jobs for a worker, fenced by a token (and storing the
//! outcomes of finished runs in the same statement), and the set of claims
//! a worker generation holds.
//!
//! A claim sets `status = 'Running'`, `lock_by` to the worker and `lock_at` to
//! the moment of the claim (microseconds), and counts the attempt. `(lock_by,
//! lock_at)` is the claim's token: every later write about that run (its
//! outcome, a hand-back) names it, so nothing from an older run can touch a
//! newer claim of the same job. How many jobs a worker claims (its free
//! slots, and for fast jobs what it starts within one round trip) is the
//! fetcher's and `pace`'s business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::outcome::{Outcome, OutcomeColumns, store_outcomes};
use super::wakeup::notify_released;

/// One claimed run of a job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claim {
    pub job_id: String,
    pub kind: &'static str,
    /// The worker holding it (`lock_by`).
    pub worker: Arc<str>,
    /// When it was claimed (`lock_at`): with `worker`, the claim's token.
    pub claimed_at: DateTime<Utc>,
    /// This run's number, 1 for the first.
    pub attempt: i32,
    pub max_attempts: i32,
    /// How long this job has waited on rate limits so far (not attempts).
    pub throttled: Duration,
}

/// What one claim statement did: the jobs it claimed, with their payloads,
/// and the ids of the outcomes it carried that it stored.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    pub jobs: Vec<(Claim, Vec<u8>)>,
    pub stored: Vec<String>,
}

/// tag ('claimed' or 'stored'), id, then for a claim: payload, lock_at,
/// attempts, max_attempts, milliseconds throttled.
type ClaimRow = (String, String, Option<Vec<u8>>, Option<DateTime<Utc>>, Option<i32>, Option<i32>, Option<i64>);

/// Claims up to `limit` due jobs of `kind` for `worker`, oldest first, unless
/// the kind is paused, and stores the outcomes `carried` in the same
/// statement (one commit for both; each still fenced by its own claim's
/// token). A job whose attempts are spent is never claimed.
pub(crate) async fn claim_due(
    pool: &PgPool,
    kind: &'static str,
    worker: &Arc<str>,
    limit: usize,
    carried: &[Outcome],
) -> Result<Claimed, sqlx::Error> {
    let columns = OutcomeColumns::new(carried);
    // The first condition is the predicate of apalis's partial fetch index,
    // repeated exactly so that the index serves this query. Rows the carried
    // outcomes release were 'Running' when the statement began, so the claim
    // never takes them.
    let query = sqlx::query_as(concat!(
        "WITH ",
        store_outcomes!(),
        ", next AS (
            SELECT id FROM apalis.jobs
            WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
              AND job_type = $9 AND attempts < max_attempts AND run_at <= now()
              AND NOT EXISTS (SELECT 1 FROM paused_kinds WHERE kind = $9)
            ORDER BY priority DESC, run_at
            LIMIT $11
            FOR UPDATE SKIP LOCKED),
         claimed AS (
            UPDATE apalis.jobs j
            SET status = 'Running', lock_by = $10, lock_at = clock_timestamp(), attempts = j.attempts + 1
            FROM next WHERE j.id = next.id
            RETURNING j.id, j.job, j.lock_at, j.attempts, j.max_attempts,
                      COALESCE((j.metadata -> 'throttled_ms')::bigint, 0) AS throttled_ms)
         SELECT 'claimed', id, job, lock_at, attempts, max_attempts, throttled_ms FROM claimed
         UNION ALL
         SELECT 'stored', id, NULL, NULL, NULL, NULL, NULL FROM stored"
    ));
    let rows: Vec<ClaimRow> = columns.bind(query).bind(kind).bind(&**worker).bind(limit as i64).fetch_all(pool).await?;
    let mut claimed = Claimed::default();
    for (tag, job_id, payload, claimed_at, attempt, max_attempts, throttled_ms) in rows {
        match (tag.as_str(), payload, claimed_at, attempt, max_attempts) {
            ("claimed", Some(payload), Some(claimed_at), Some(attempt), Some(max_attempts)) => {
                let throttled = Duration::from_millis(throttled_ms.unwrap_or(0).max(0) as u64);
                let claim =
                    Claim { job_id, kind, worker: worker.clone(), claimed_at, attempt, max_attempts, throttled };
                claimed.jobs.push((claim, payload));
            }
            _ => claimed.stored.push(job_id),
        }
    }
    Ok(claimed)
}

/// Gives back claims whose jobs never started (a stopping worker's
/// buffer): pending again, due now, and the attempt not counted.
pub(crate) async fn hand_back_unstarted(pool: &PgPool, claims: &[Claim]) -> Result<u64, sqlx::Error> {
    if claims.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = claims.iter().map(|c| c.job_id.as_str()).collect();
    let workers: Vec<&str> = claims.iter().map(|c| &*c.worker).collect();
    let claimed_at: Vec<DateTime<Utc>> = claims.iter().map(|c| c.claimed_at).collect();
    let handed: Vec<String> = sqlx::query_scalar(concat!(
        "WITH given AS (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS g(id, worker, claimed_at)),
         released AS (
            UPDATE apalis.jobs j SET status = 'Pending', lock_by = NULL, lock_at = NULL, attempts = j.attempts - 1
            FROM given g WHERE j.id = g.id AND j.lock_by = g.worker AND j.lock_at = g.claimed_at
            RETURNING j.id, j.job_type)",
        notify_released!()
    ))
    .bind(&ids)
    .bind(&workers)
    .bind(&claimed_at)
    .fetch_all(pool)
    .await?;
    Ok(handed.len() as u64)
}

/// The claims a worker generation holds: from the claim until its outcome is
/// stored (or the job is handed back). Liveness reads it to tell the rows it
/// holds on purpose from rows a lost write left claimed.
#[derive(Clone, Default)]
pub(crate) struct Held {
    claims: Arc<Mutex<HashMap<String, Claim>>>,
}

impl Held {
    pub fn insert(&self, claim: &Claim) {
        self.claims.lock().expect("held claims lock").insert(claim.job_id.clone(), claim.clone());
    }

    /// Forgets the claim of `job_id` if it is still the one given.
    pub fn release(&self, claim: &Claim) {
        let mut claims = self.claims.lock().expect("held claims lock");
        if claims.get(&claim.job_id) == Some(claim) {
            claims.remove(&claim.job_id);
        }
    }

    pub fn job_ids(&self) -> Vec<String> {
        self.claims.lock().expect("held claims lock").keys().cloned().collect()
    }
}
