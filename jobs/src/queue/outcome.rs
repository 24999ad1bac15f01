//! What became of a run, and storing it: one statement per batch of outcomes
//! that both records the verdict (done; retry at its backoff; dead; snoozed)
//! and releases the claim, fenced by the claim's token. A job is never
//! claimable again before its verdict is in place, and a verdict that cannot
//! be stored keeps the job claimed by its live worker until it can: it never
//! runs early.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backoff::backoff::Backoff;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgPool, Postgres};
use tokio::sync::Notify;

use super::claim::{Claim, Held};
use super::policy::MIN_DELAY;
use super::{JobError, RetryPolicy};
use crate::phone;

/// The verdict on one run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Done,
    /// Failed with attempts left: run again after this delay.
    Retry(Duration),
    /// Out of attempts, or failed permanently.
    Dead,
    /// Not now: run again at this time; the attempt is not counted.
    Snoozed(DateTime<Utc>),
    /// The other side asked us to wait (`Retry-After`): run again after this
    /// delay, not counted as an attempt; the wait adds to the job's total.
    Throttled(Duration),
}

impl Verdict {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retry(_) => "retry",
            Self::Dead => "dead",
            Self::Snoozed(_) => "snoozed",
            Self::Throttled(_) => "throttled",
        }
    }

    fn delay(&self) -> Option<f64> {
        match self {
            Self::Retry(delay) | Self::Throttled(delay) => Some(delay.max(&MIN_DELAY).as_secs_f64()),
            _ => None,
        }
    }
}

/// The policy's verdict on a run that ended with `result`.
pub(crate) fn decide(policy: &RetryPolicy, claim: &Claim, result: &Result<(), JobError>) -> Verdict {
    let last_attempt = claim.attempt >= claim.max_attempts;
    match result {
        Ok(()) => Verdict::Done,
        Err(JobError::Permanent { .. }) => Verdict::Dead,
        Err(JobError::Snooze { until, .. }) => Verdict::Snoozed(*until),
        Err(JobError::Retry { retry_after: Some(wait), .. })
            if claim.throttled + *wait <= policy.max_throttled_wait =>
        {
            Verdict::Throttled(*wait)
        }
        Err(JobError::Retry { .. }) if last_attempt => Verdict::Dead,
        Err(JobError::Retry { retry_after, .. }) => {
            Verdict::Retry(policy.delay_honouring(claim.attempt as u32, *retry_after))
        }
    }
}

/// One run's outcome, waiting to be stored.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub claim: Claim,
    pub verdict: Verdict,
    /// The error, for every verdict but `Done`.
    pub message: Option<String>,
}

/// How long an outcome waits for a claim to carry it before the storer
/// stores it: a few claim round trips.
const GROUPING_WINDOW: Duration = Duration::from_millis(10);

/// The outcomes of a worker generation not yet stored, and a wakeup for the
/// task that stores them. A claim starting meanwhile carries them in its own
/// statement (one commit for both); what no claim carried within
/// `GROUPING_WINDOW` the storer stores itself.
#[derive(Clone, Default)]
pub(crate) struct Outbox {
    pending: Arc<Mutex<Vec<Outcome>>>,
    ready: Arc<Notify>,
}

impl Outbox {
    pub fn push(&self, outcome: Outcome) {
        self.pending.lock().expect("outbox lock").push(outcome);
        self.ready.notify_one();
    }

    /// Everything waiting, for the storer or for a claim to carry.
    pub fn take(&self) -> Vec<Outcome> {
        std::mem::take(&mut *self.pending.lock().expect("outbox lock"))
    }

    /// Outcomes a failed statement did not store, to be stored again.
    pub fn put_back(&self, mut outcomes: Vec<Outcome>) {
        if outcomes.is_empty() {
            return;
        }
        {
            let mut pending = self.pending.lock().expect("outbox lock");
            outcomes.append(&mut pending);
            *pending = outcomes;
        }
        self.ready.notify_one();
    }

    /// Stores outcomes as they come, until `stop` is notified and nothing is
    /// left. A failed write is retried with backoff, the jobs staying claimed
    /// meanwhile (their worker is alive, so nobody recovers them early).
    pub async fn store_until_stopped(self, pool: PgPool, held: Held, stop: Arc<Notify>) {
        let mut retry = write_retry();
        let mut stopping = false;
        loop {
            let outcomes = self.take();
            if outcomes.is_empty() {
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = self.ready.notified() => {}
                    _ = stop.notified() => stopping = true,
                }
                // Give a claim starting meanwhile the chance to carry them.
                if !stopping {
                    tokio::select! {
                        _ = tokio::time::sleep(GROUPING_WINDOW) => {}
                        _ = stop.notified() => stopping = true,
                    }
                }
                continue;
            }
            match store(&pool, &outcomes).await {
                Ok(stored) => {
                    retry.reset();
                    settle(&held, &outcomes, &stored);
                }
                Err(error) => {
                    let wait = retry.next_backoff().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(%error, outcomes = outcomes.len(), retry_in_ms = wait.as_millis() as u64,
                        "could not store job outcomes; their jobs stay claimed until stored");
                    self.put_back(outcomes);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

fn write_retry() -> backoff::ExponentialBackoff {
    backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(5),
        max_elapsed_time: None,
        ..Default::default()
    }
}

/// The CTEs that store the outcomes bound as `$1`..`$8` (see
/// [`OutcomeColumns::bind`]) whose claims still hold, and release those
/// claims: `stored(id)` names the jobs stored. An outcome whose claim was
/// lost (the job was recovered from a worker taken for dead, and claimed
/// anew) changes nothing: the newer claim decides.
macro_rules! store_outcomes {
    () => {
        concat!(
            "outcome AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[],
                                 $6::float8[], $7::timestamptz[], $8::text[])
                AS o(id, worker, claimed_at, attempt, verdict, delay_s, snooze_until, message)),
         stored AS (
            UPDATE apalis.jobs j SET
                status = CASE o.verdict WHEN 'done' THEN 'Done' WHEN 'retry' THEN 'Failed'
                                        WHEN 'dead' THEN 'Killed' ELSE 'Pending' END,
                -- A snooze or a rate limit is not an attempt.
                attempts = CASE WHEN o.verdict IN ('snoozed', 'throttled') THEN j.attempts - 1 ELSE j.attempts END,
                run_at = CASE
                    WHEN o.delay_s IS NOT NULL THEN now() + make_interval(secs => o.delay_s)
                    -- Never sooner than a second: a snooze to a time already past would spin.
                    WHEN o.snooze_until IS NOT NULL THEN GREATEST(o.snooze_until, now() + interval '1 second')
                    ELSE j.run_at END,
                done_at = CASE WHEN o.verdict IN ('snoozed', 'throttled') THEN NULL ELSE now() END,
                last_result = CASE WHEN o.verdict = 'done' THEN '{\"Ok\": null}'::jsonb
                                   WHEN o.verdict IN ('snoozed', 'throttled') THEN j.last_result
                                   ELSE jsonb_build_object('Err', o.message) END,
                metadata = CASE WHEN o.verdict = 'throttled' THEN COALESCE(j.metadata, '') || hstore('throttled_ms',
                    (COALESCE((j.metadata -> 'throttled_ms')::bigint, 0) + (o.delay_s * 1000)::bigint)::text)
                    ELSE j.metadata END,
                lock_by = NULL, lock_at = NULL
            FROM outcome o
            WHERE ",
            $crate::queue::claim::held_by!("o"),
            "
            RETURNING j.id),
         errors AS (
            INSERT INTO job_errors (job_id, attempt, outcome, message, worker)
            SELECT o.id, o.attempt, o.verdict, o.message, o.worker
            FROM outcome o JOIN stored USING (id) WHERE o.verdict <> 'done')"
        )
    };
}
pub(crate) use store_outcomes;

/// Outcomes as the arrays [`store_outcomes!`] reads.
pub(crate) struct OutcomeColumns {
    ids: Vec<String>,
    workers: Vec<String>,
    claimed_at: Vec<DateTime<Utc>>,
    attempts: Vec<i32>,
    verdicts: Vec<&'static str>,
    delays: Vec<Option<f64>>,
    snoozes: Vec<Option<DateTime<Utc>>>,
    messages: Vec<Option<String>>,
}

impl OutcomeColumns {
    pub fn new(outcomes: &[Outcome]) -> Self {
        Self {
            ids: outcomes.iter().map(|o| o.claim.job_id.clone()).collect(),
            workers: outcomes.iter().map(|o| o.claim.worker.to_string()).collect(),
            claimed_at: outcomes.iter().map(|o| o.claim.claimed_at).collect(),
            attempts: outcomes.iter().map(|o| o.claim.attempt).collect(),
            verdicts: outcomes.iter().map(|o| o.verdict.name()).collect(),
            delays: outcomes.iter().map(|o| o.verdict.delay()).collect(),
            snoozes: outcomes
                .iter()
                .map(|o| if let Verdict::Snoozed(at) = o.verdict { Some(at) } else { None })
                .collect(),
            messages: outcomes.iter().map(|o| o.message.clone()).collect(),
        }
    }

    /// Binds them as `$1`..`$8`.
    pub fn bind<'q, O>(
        &'q self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.workers)
            .bind(&self.claimed_at)
            .bind(&self.attempts)
            .bind(&self.verdicts)
            .bind(&self.delays)
            .bind(&self.snoozes)
            .bind(&self.messages)
    }
}

/// Stores every outcome whose claim still holds, in one statement, and
/// returns the ids of those stored (see [`store_outcomes!`]).
pub(crate) async fn store(pool: &PgPool, outcomes: &[Outcome]) -> Result<Vec<String>, sqlx::Error> {
    let columns = OutcomeColumns::new(outcomes);
    let stored: Vec<(String,)> = columns
        .bind(sqlx::query_as(concat!("WITH ", store_outcomes!(), " SELECT id FROM stored")))
        .fetch_all(pool)
        .await?;
    Ok(stored.into_iter().map(|(id,)| id).collect())
}

/// After a statement stored `stored` of `outcomes`: logs them, and forgets
/// their claims (stored, or lost to a newer claim).
pub(crate) fn settle(held: &Held, outcomes: &[Outcome], stored: &[String]) {
    report(outcomes, stored);
    for outcome in outcomes {
        held.release(&outcome.claim);
    }
}

/// Logs each stored verdict, and each that was not stored because its claim was lost.
fn report(outcomes: &[Outcome], stored: &[String]) {
    let stored: HashSet<&str> = stored.iter().map(String::as_str).collect();
    for Outcome { claim, verdict, message } in outcomes {
        let span = tracing::info_span!("job", job.kind = claim.kind, job.id = %claim.job_id, attempt = claim.attempt);
        let _entered = span.enter();
        // Handlers quote the other side's messages, which may name a number.
        let error = message.as_deref().map(phone::mask_in_text).unwrap_or_default();
        if !stored.contains(claim.job_id.as_str()) {
            tracing::warn!(
                verdict = verdict.name(),
                error,
                "claim lost before the outcome was stored; the newer claim decides"
            );
            continue;
        }
        match verdict {
            Verdict::Done => tracing::debug!("job done"),
            Verdict::Retry(delay) => tracing::warn!(error, retry_in_s = delay.as_secs_f64(), "job failed, will retry"),
            Verdict::Dead => tracing::error!(error, "job is dead"),
            Verdict::Snoozed(until) => tracing::info!(%until, reason = error, "job snoozed"),
            Verdict::Throttled(delay) => {
                tracing::info!(
                    wait_s = delay.as_secs_f64(),
                    reason = error,
                    "job rate-limited; waiting, not an attempt"
                )
            }
        }
    }
}
