//! The tower service apalis calls for one job kind: decode the payload, run
//! the handler in a span with a timeout and a panic guard, then hand its
//! verdict to the outbox, which stores it and releases the claim.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use apalis_core::task::Task;
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;
use tracing::Instrument;

use super::claim::Claim;
use super::outcome::{self, Outbox, Outcome, Verdict};
use super::pace::Running;
use super::{Job, JobContext, JobError};
use crate::ports::Ports;

/// The longest error message kept: a provider's page-long answer is cut here.
const MAX_MESSAGE_CHARS: usize = 2_000;

pub(crate) struct JobService<J> {
    pool: PgPool,
    ports: Arc<Ports>,
    outbox: Outbox,
    running: Running,
    kind: PhantomData<fn() -> J>,
}

impl<J> JobService<J> {
    pub(crate) fn new(pool: PgPool, ports: Arc<Ports>, outbox: Outbox, running: Running) -> Self {
        Self { pool, ports, outbox, running, kind: PhantomData }
    }
}

impl<J> Clone for JobService<J> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            ports: self.ports.clone(),
            outbox: self.outbox.clone(),
            running: self.running.clone(),
            kind: PhantomData,
        }
    }
}

impl<J: Job> apalis_core::layers::Service<Task<Vec<u8>>> for JobService<J> {
    type Response = ();
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<(), Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Vec<u8>>) -> Self::Future {
        let running = self.running.start();
        let this = self.clone();
        let claim = task.data().get::<Claim>().cloned().expect("the fetcher attaches its claim to every task");
        let span = tracing::info_span!("job", job.kind = J::KIND, job.id = %claim.job_id, attempt = claim.attempt);
        async move {
            let ctx = JobContext {
                pool: this.pool.clone(),
                ports: this.ports.clone(),
                job_id: claim.job_id.clone(),
                attempt: claim.attempt as u32,
                max_attempts: claim.max_attempts as u32,
            };
            let started = std::time::Instant::now();
            let result = match serde_json::from_slice::<J>(&task.args) {
                Ok(job) => run_guarded(job, ctx).await,
                Err(e) => Err(JobError::permanent(format!("undecodable payload for {}: {e}", J::KIND))),
            };
            let verdict = outcome::decide(&J::policy(), &claim, &result);
            record_run(J::KIND, started.elapsed(), &verdict);
            let message = result.err().map(|error| storable(error.message()));
            if verdict != Verdict::Done {
                tracing::debug!(error = message.as_deref().map(crate::phone::mask_in_text), "run failed");
            }
            this.outbox.push(Outcome { claim, verdict, message });
            drop(running);
            Ok(())
        }
        .instrument(span)
        .boxed()
    }
}

/// Runs, failures by outcome and durations per kind, for `/metrics` and the worker's log metrics.
fn record_run(kind: &'static str, took: std::time::Duration, verdict: &Verdict) {
    metrics::counter!("switchboard_job_runs_total", "kind" => kind).increment(1);
    metrics::histogram!("switchboard_job_duration_seconds", "kind" => kind).record(took);
    if *verdict != Verdict::Done {
        metrics::counter!("switchboard_job_failures_total", "kind" => kind, "outcome" => verdict.name()).increment(1);
    }
}

/// An error message PostgreSQL can store: no NUL, bounded length.
fn storable(message: &str) -> String {
    message.chars().take(MAX_MESSAGE_CHARS).map(|c| if c == '\0' { '\u{FFFD}' } else { c }).collect()
}

async fn run_guarded<J: Job>(job: J, ctx: JobContext) -> Result<(), JobError> {
    let timeout = J::policy().timeout;
    let run = AssertUnwindSafe(job.run(ctx)).catch_unwind();
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(panic)) => Err(JobError::retry(format!("handler panicked: {}", panic_message(&panic)))),
        Err(_) => Err(JobError::retry(format!("timed out after {}s", timeout.as_secs_f64()))),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

#[cfg(test)]
mod tests {
    use super::storable;

    #[test]
    fn a_stored_message_has_no_nul_and_a_bounded_length() {
        let message = format!("bad\0byte {}", "x".repeat(10_000));
        let stored = storable(&message);
        assert!(!stored.contains('\0'));
        assert_eq!(stored.chars().count(), super::MAX_MESSAGE_CHARS);
    }
}
