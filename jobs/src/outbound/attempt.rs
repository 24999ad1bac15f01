//! The payload of `retry-scheduled-call`, one attempt of a scheduled call,
//! and how an attempt is planned: planning lives here, below both the
//! scheduling that plans attempts and the job that places them
//! (`crate::retry_scheduled_call`, which implements the kind).

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::queue::{EnqueueOptions, enqueue_with};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryScheduledCall {
    pub scheduled_call_id: Uuid,
    /// Which attempt this job places (1-based).
    pub attempt: i32,
}

impl RetryScheduledCall {
    /// Enqueues this attempt to run at `at`, on the caller's transaction; the
    /// same attempt of the same call is enqueued at most once.
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, sqlx::Error> {
        self.enqueue_as(conn, at, format!("{}/{}", self.scheduled_call_id, self.attempt)).await
    }

    /// Enqueues this attempt's watchdog (this job again) to run at `at`, once.
    pub(crate) async fn enqueue_watchdog(
        &self,
        conn: &mut PgConnection,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, sqlx::Error> {
        self.enqueue_as(conn, at, format!("{}/{}/watchdog", self.scheduled_call_id, self.attempt)).await
    }

    async fn enqueue_as(
        &self,
        conn: &mut PgConnection,
        at: chrono::DateTime<chrono::Utc>,
        dedupe_key: String,
    ) -> Result<Option<String>, sqlx::Error> {
        enqueue_with(conn, self, EnqueueOptions { run_at: Some(at), dedupe_key: Some(dedupe_key) }).await
    }
}
