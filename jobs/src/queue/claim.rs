//! Claims: one claimed run of a job and its token, handing back claims that
//! never started, and the set of claims a worker generation holds. The claim
//! statement itself is in `next`.
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

/// The condition that row `j` of `apalis.jobs` is still held by the claim in
/// row `$claim` (columns `id`, `worker`, `claimed_at`): the claim's token.
/// It implies `status = 'Running'`: only a claim sets `lock_by`, always with
/// that status, and every write that changes the status clears it.
///
/// Every part of it is a join condition, none a filter on `j` alone, and
/// `lock_by` is compared with `IS NOT DISTINCT FROM` (the same as `=` here:
/// a claim always names its worker), which the planner cannot use for the
/// partial `lock_by` index. So no statistic of the table can make
/// PostgreSQL compare every claimed row with every claim: once the
/// statistics of a table of finished jobs saw no claimed row, it took a
/// filter on `status` or that index for one row and rescanned the batch for
/// each of the 200 claimed rows (17-28 ms for 100 outcomes with 1,000,000
/// finished rows, against 1-4 ms when each claim is looked up by its id).
macro_rules! held_by {
    ($claim:literal) => {
        concat!(
            "j.id = ",
            $claim,
            ".id AND j.lock_by IS NOT DISTINCT FROM ",
            $claim,
            ".worker AND j.lock_at = ",
            $claim,
            ".claimed_at"
        )
    };
}
pub(crate) use held_by;

/// The hand-back of claims bound as `$1` (ids), `$2` (workers) and `$3`
/// (claim times) whose claims still hold; returns the ids handed back.
pub(super) const HAND_BACK: &str = concat!(
    "WITH given AS (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS g(id, worker, claimed_at)),
     released AS (
        UPDATE apalis.jobs j SET status = 'Pending', lock_by = NULL, lock_at = NULL, attempts = j.attempts - 1
        FROM given g WHERE ",
    held_by!("g"),
    "
        RETURNING j.id, j.job_type)",
    notify_released!()
);

/// Gives back claims whose jobs never started (a stopping worker's
/// buffer): pending again, due now, and the attempt not counted.
pub(crate) async fn hand_back_unstarted(pool: &PgPool, claims: &[Claim]) -> Result<u64, sqlx::Error> {
    if claims.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = claims.iter().map(|c| c.job_id.as_str()).collect();
    let workers: Vec<&str> = claims.iter().map(|c| &*c.worker).collect();
    let claimed_at: Vec<DateTime<Utc>> = claims.iter().map(|c| c.claimed_at).collect();
    let handed: Vec<String> =
        sqlx::query_scalar(HAND_BACK).bind(&ids).bind(&workers).bind(&claimed_at).fetch_all(pool).await?;
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
