//! `queue-probe`: a job for the queue's own process tests. Each run records
//! its start and end (with the process id) in a table the test creates,
//! `probe_runs`, sleeps, and may abort its whole process. A worker runs it
//! only when `SWITCHBOARD_PROBE_JOBS=1` is set: it is never part of a
//! production worker.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::queue::{Job, JobContext, JobError, RetryPolicy};

/// The variable that adds this kind to a worker.
pub const ENABLE_VAR: &str = "SWITCHBOARD_PROBE_JOBS";

/// The table a test creates for the probe to write to.
pub const TABLE: &str = "CREATE TABLE probe_runs (
    key text NOT NULL, attempt int NOT NULL, pid int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(), ended_at timestamptz)";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probe {
    pub key: String,
    #[serde(default)]
    pub sleep_ms: u64,
    /// Abort the worker process after recording the start.
    #[serde(default)]
    pub abort: bool,
}

impl Job for Probe {
    const KIND: &'static str = "queue-probe";

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, initial_delay: Duration::from_secs(1), jitter: 0.0, ..RetryPolicy::default() }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        sqlx::query("INSERT INTO probe_runs (key, attempt, pid) VALUES ($1, $2, $3)")
            .bind(&self.key)
            .bind(ctx.attempt as i32)
            .bind(std::process::id() as i32)
            .execute(&ctx.pool)
            .await?;
        if self.abort {
            std::process::abort();
        }
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        sqlx::query("UPDATE probe_runs SET ended_at = clock_timestamp() WHERE key = $1 AND attempt = $2 AND pid = $3")
            .bind(&self.key)
            .bind(ctx.attempt as i32)
            .bind(std::process::id() as i32)
            .execute(&ctx.pool)
            .await?;
        Ok(())
    }
}
