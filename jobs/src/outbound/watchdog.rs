//! The watchdog of a placed attempt. An attempt whose final status never
//! comes (the worker died around the provider request, the request's outcome
//! is unknown, the provider dropped its status callback) is given up once its
//! call cannot still be going on: counted as failed with outcome `no-outcome`,
//! its agent's slot given back once, and the next attempt planned by the
//! backoff. The watchdog is the attempt's own job delivered a second time,
//! enqueued with the attempt and due at [`first_look`]; a run before the
//! attempt's [`Unsettled::deadline`] snoozes until it. Whichever of the watchdog
//! and the status webhook comes first settles the attempt; the other changes
//! nothing, and a late webhook's `calls` row takes over no slot (migration
//! `20261201001000_attempt_watchdog`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::outcome::after_failed_attempt;
use super::{CallStatus, Outcome, ScheduledCall};
use crate::{calls, routing};

/// How long an attempt the provider never confirmed (no call sid from its
/// answer, no status webhook about it) may go without a final status.
pub const NO_OUTCOME_AFTER: Duration = Duration::from_secs(10 * 60);

/// The longest a call may last: sent to the provider as the call's time limit
/// (Twilio's default, Exotel's maximum `TimeLimit`). A call the provider
/// confirmed may be in conversation without telling us (Exotel reports only
/// the end), so it is given up only [`NO_OUTCOME_AFTER`] past this limit.
pub const CALL_TIME_LIMIT: Duration = Duration::from_secs(4 * 3600);

/// When the watchdog first looks at an attempt dialled at `dialed_at`.
pub fn first_look(dialed_at: DateTime<Utc>) -> DateTime<Utc> {
    dialed_at + delta(NO_OUTCOME_AFTER)
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).expect("the watchdog's durations fit a TimeDelta")
}

/// A recorded attempt without an outcome yet.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Unsettled {
    pub id: Uuid,
    pub number: i32,
    pub dialed_at: DateTime<Utc>,
    /// The agent whose slot the attempt reserved.
    pub agent_id: Option<i64>,
    /// The provider answered with a call sid, or a status webhook named the attempt.
    pub confirmed: bool,
}

impl Unsettled {
    /// Attempt `number` of call `scheduled_call_id`, if it is recorded and has no outcome.
    pub async fn find(
        conn: &mut PgConnection,
        scheduled_call_id: Uuid,
        number: i32,
    ) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "SELECT a.id, a.number, a.dialed_at, a.agent_id,
                    a.provider_call_sid IS NOT NULL
                        OR EXISTS (SELECT 1 FROM calls c WHERE c.attempt_id = a.id::text) AS confirmed
             FROM scheduled_call_attempts a
             WHERE a.scheduled_call_id = $1 AND a.number = $2 AND a.outcome IS NULL",
        )
        .bind(scheduled_call_id)
        .bind(number)
        .fetch_optional(conn)
        .await
    }

    /// When the attempt is given up if no final status has come by then.
    pub fn deadline(&self) -> DateTime<Utc> {
        let limit = if self.confirmed { CALL_TIME_LIMIT } else { Duration::ZERO };
        first_look(self.dialed_at) + delta(limit)
    }
}

/// Gives `attempt` of `call` up at `now`: outcome `no-outcome`, its slot given
/// back, and (while the call is still dialling) the next attempt planned or the
/// call exhausted. `Ignored` when the attempt was settled meanwhile. Run it in
/// a transaction holding the call's row lock, as `record_outcome` does.
pub async fn give_up(
    conn: &mut PgConnection,
    call: &ScheduledCall,
    attempt: &Unsettled,
    now: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    let waited = (attempt.deadline() - attempt.dialed_at).num_minutes();
    let failure = format!("attempt {}: no final status from the provider within {waited} min", attempt.number);
    let settled: Option<Option<i64>> = sqlx::query_scalar(
        "UPDATE scheduled_call_attempts SET outcome = 'no-outcome', outcome_at = $2, error = $3
         WHERE id = $1 AND outcome IS NULL RETURNING agent_id",
    )
    .bind(attempt.id)
    .bind(now)
    .bind(&failure)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(agent_id) = settled else { return Ok(Outcome::Ignored) };
    give_back_slot(conn, attempt.id, agent_id).await?;
    if call.status != CallStatus::Dialing {
        return Ok(Outcome::Stopped);
    }
    after_failed_attempt(conn, call, attempt.number, &failure, now).await
}

/// The slot is held by the attempt's `calls` row once a status webhook created
/// it (and released there at most once), else still by the attempt itself.
async fn give_back_slot(conn: &mut PgConnection, attempt_id: Uuid, agent_id: Option<i64>) -> Result<(), sqlx::Error> {
    let holding_call: Option<i64> =
        sqlx::query_scalar("SELECT id FROM calls WHERE attempt_id = $1 AND agent_id IS NOT NULL LIMIT 1")
            .bind(attempt_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    match (holding_call, agent_id) {
        (Some(call_id), _) => calls::release_agent(conn, call_id).await.map(drop),
        (None, Some(agent_id)) => routing::unreserve(conn, agent_id).await,
        (None, None) => Ok(()),
    }
}
