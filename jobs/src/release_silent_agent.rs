//! `release-silent-agent`: the safety net for a final status that never comes
//! (Exotel drops a StatusCallback after its third try; any provider's can be
//! lost). Enqueued when a call takes an agent's slot, due when the longest
//! call could have ended; a call that still holds the slot then, and has not
//! been heard of for that long, gives it back, once, as its final status would
//! have. A call heard of since is looked at again that long after it was.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::calls;
use crate::outbound::watchdog::CALL_TIME_LIMIT;
use crate::queue::{EnqueueOptions, Job, JobContext, JobError, enqueue_with};

/// A call lasts at most [`CALL_TIME_LIMIT`] (Twilio's default and Exotel's
/// maximum `TimeLimit`), and a final status is retried for minutes after:
/// silence beyond this means it was lost.
pub const LONGEST_SILENCE: Duration = CALL_TIME_LIMIT.saturating_add(Duration::from_secs(15 * 60));

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseSilentAgent {
    pub call_id: i64,
}

impl ReleaseSilentAgent {
    /// One per call: a call rerouted to another agent is watched by the same job.
    pub async fn enqueue(conn: &mut PgConnection, call_id: i64) -> Result<(), sqlx::Error> {
        let options = EnqueueOptions { run_at: Some(after_silence(Utc::now())), dedupe_key: Some(call_id.to_string()) };
        enqueue_with(conn, &Self { call_id }, options).await?;
        Ok(())
    }
}

fn after_silence(heard_at: DateTime<Utc>) -> DateTime<Utc> {
    heard_at + chrono::Duration::from_std(LONGEST_SILENCE).expect("a few hours")
}

impl Job for ReleaseSilentAgent {
    const KIND: &'static str = "release-silent-agent";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let mut tx = ctx.pool.begin().await?;
        let held: Option<(DateTime<Utc>, String)> = sqlx::query_as(
            "SELECT updated_at, call_sid FROM calls
             WHERE id = $1 AND agent_id IS NOT NULL AND agent_released_at IS NULL FOR UPDATE",
        )
        .bind(self.call_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((heard_at, call_sid)) = held else { return Ok(()) };
        if after_silence(heard_at) > Utc::now() {
            return Err(JobError::snooze(after_silence(heard_at), "the call was heard of since; looking again later"));
        }
        if let Some(agent_id) = calls::release_agent(&mut tx, self.call_id).await? {
            tracing::warn!(%call_sid, agent_id, silent_for_s = LONGEST_SILENCE.as_secs(), "no final status heard: the agent's slot is given back");
        }
        tx.commit().await?;
        Ok(())
    }
}
