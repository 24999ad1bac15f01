//! The tower service apalis calls for one job kind: decode the payload, run the
//! handler in a span with a timeout and a panic guard, then settle the outcome.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::PgPool;
use tracing::Instrument;

use super::settle::{self, Settled};
use super::{Job, JobContext, JobError, RetryPolicy};
use crate::phone;
use crate::ports::Ports;

pub(crate) struct JobService<J> {
    pool: PgPool,
    ports: Arc<Ports>,
    worker: Arc<str>,
    kind: PhantomData<fn() -> J>,
}

impl<J> JobService<J> {
    pub(crate) fn new(pool: PgPool, ports: Arc<Ports>, worker: &str) -> Self {
        Self { pool, ports, worker: worker.into(), kind: PhantomData }
    }
}

impl<J> Clone for JobService<J> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), ports: self.ports.clone(), worker: self.worker.clone(), kind: PhantomData }
    }
}

impl<J: Job> apalis_core::layers::Service<Task<serde_json::Value>> for JobService<J> {
    type Response = ();
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<(), BoxDynError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<serde_json::Value>) -> Self::Future {
        let this = self.clone();
        let job_id = task.ctx().task_id().map(ToString::to_string).unwrap_or_default();
        let span = tracing::info_span!("job", job.kind = J::KIND, job.id = %job_id, attempt = tracing::field::Empty);
        async move {
            // apalis counts the run when our future is first polled, so read it here.
            let attempt = task.ctx().attempt() as u32;
            let max_attempts = task.ctx().max_attempts().map_or(J::policy().max_attempts, |m| m as u32);
            tracing::Span::current().record("attempt", attempt);
            let ctx = JobContext { pool: this.pool.clone(), ports: this.ports.clone(), job_id, attempt, max_attempts };
            let outcome = match serde_json::from_value::<J>(task.args) {
                Ok(job) => run_guarded(job, ctx.clone()).await,
                Err(e) => Err(JobError::permanent(format!("undecodable payload for {}: {e}", J::KIND))),
            };
            match outcome {
                Ok(()) => Ok(()),
                Err(error) => Err(this.settle(&ctx, error).await),
            }
        }
        .instrument(span)
        .boxed()
    }
}

impl<J: Job> JobService<J> {
    /// Stores what happens next and returns the error for apalis to report.
    async fn settle(&self, ctx: &JobContext, error: JobError) -> BoxDynError {
        let decision = decide(&J::policy(), ctx, &error);
        let stored =
            settle::record(&self.pool, &ctx.job_id, &self.worker, ctx.attempt, &decision, error.message()).await;
        // Handlers quote the other side's messages, which may name a number.
        let logged = phone::mask_in_text(&error.to_string());
        match (&stored, &decision) {
            (Err(db), _) => {
                tracing::error!(error = logged, db_error = %db, "could not record the job's failure; apalis will retry it")
            }
            (Ok(()), Settled::RetryIn(delay)) => {
                tracing::warn!(error = logged, retry_in_s = delay.as_secs_f64(), "job failed, will retry")
            }
            (Ok(()), Settled::Dead) => tracing::error!(error = logged, "job is dead"),
            (Ok(()), Settled::Snoozed(until)) => tracing::info!(%until, reason = logged, "job snoozed"),
        }
        Box::new(error)
    }
}

/// The policy's verdict on a failed run.
pub(crate) fn decide(policy: &RetryPolicy, ctx: &JobContext, error: &JobError) -> Settled {
    match error {
        JobError::Snooze { until, .. } => Settled::Snoozed(*until),
        JobError::Permanent { .. } => Settled::Dead,
        JobError::Retry { .. } if ctx.is_last_attempt() => Settled::Dead,
        JobError::Retry { retry_after, .. } => Settled::RetryIn(policy.delay_honouring(ctx.attempt, *retry_after)),
    }
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
