//! The statement a fetcher runs: store the outcomes it carries and claim the
//! next due jobs, one commit for both, each outcome fenced by its own
//! claim's token.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::claim::Claim;
use super::outcome::{Outcome, OutcomeColumns, store_outcomes};

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
