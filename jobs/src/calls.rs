//! The `calls` table: one row per provider call, its status kept at the newest
//! status callback, and the agent slot it holds given back exactly once.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::ports::Provider;

/// A call's status as both providers report it (Exotel uses a subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl CallStatus {
    pub const TERMINAL: [&'static str; 5] = ["completed", "busy", "failed", "no-answer", "canceled"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::NoAnswer => "no-answer",
            Self::Canceled => "canceled",
        }
    }

    /// The call is over: its agent slot, if any, is free again.
    pub fn is_terminal(self) -> bool {
        Self::TERMINAL.contains(&self.as_str())
    }
}

impl FromStr for CallStatus {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let status = match raw.trim().to_ascii_lowercase().as_str() {
            "queued" => Self::Queued,
            "initiated" => Self::Initiated,
            "ringing" => Self::Ringing,
            "in-progress" | "answered" => Self::InProgress,
            "completed" => Self::Completed,
            "busy" => Self::Busy,
            "failed" => Self::Failed,
            "no-answer" => Self::NoAnswer,
            "canceled" | "cancelled" => Self::Canceled,
            other => return Err(format!("unknown call status {other:?}")),
        };
        Ok(status)
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// What a webhook tells us about a call when it first mentions it.
#[derive(Debug, Clone)]
pub struct CallSeen<'a> {
    pub provider: Provider,
    pub call_sid: &'a str,
    pub direction: Direction,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub status: CallStatus,
    pub attempt_id: Option<&'a str>,
}

/// Inserts the call or fills in what the row lacks; returns its id. The row
/// stays locked until the caller's transaction ends. The call of an outbound
/// attempt takes over the slot of the agent the attempt reserved (recorded
/// before the provider was asked), so its terminal status releases it.
pub async fn upsert(conn: &mut PgConnection, call: &CallSeen<'_>) -> Result<i64, sqlx::Error> {
    let attempt: Option<uuid::Uuid> = call.attempt_id.and_then(|id| id.parse().ok());
    sqlx::query_scalar(
        "INSERT INTO calls (provider, call_sid, direction, from_number, to_number, status, attempt_id, agent_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT agent_id FROM scheduled_call_attempts WHERE id = $8))
         ON CONFLICT (provider, call_sid) DO UPDATE SET
            from_number = COALESCE(calls.from_number, EXCLUDED.from_number),
            to_number = COALESCE(calls.to_number, EXCLUDED.to_number),
            attempt_id = COALESCE(calls.attempt_id, EXCLUDED.attempt_id),
            agent_id = COALESCE(calls.agent_id, EXCLUDED.agent_id)
         RETURNING id",
    )
    .bind(call.provider)
    .bind(call.call_sid)
    .bind(call.direction.as_str())
    .bind(call.from)
    .bind(call.to)
    .bind(call.status.as_str())
    .bind(call.attempt_id)
    .bind(attempt)
    .fetch_one(conn)
    .await
}

/// One status callback about a call.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    pub status: CallStatus,
    /// Twilio's `SequenceNumber`; `None` (Exotel) applies unless the call is over already.
    pub sequence: Option<i32>,
    pub duration_secs: Option<i32>,
    pub at: DateTime<Utc>,
}

/// Applies `update` when it is newer than what the row holds; returns whether
/// it was applied. On a terminal status the agent's slot is released (once),
/// and a caller who had not reached an agent (waiting, or their agent's leg
/// still being placed) has abandoned the call.
pub async fn apply_status(conn: &mut PgConnection, call_id: i64, update: &StatusUpdate) -> Result<bool, sqlx::Error> {
    let applied = sqlx::query(
        "UPDATE calls SET
            status = $2,
            last_sequence = COALESCE($3, last_sequence),
            duration_secs = COALESCE($4, duration_secs),
            answered_at = CASE WHEN $2 = 'in-progress' THEN COALESCE(answered_at, $5) ELSE answered_at END,
            ended_at = CASE WHEN $2 = ANY($6) THEN COALESCE(ended_at, $5) ELSE ended_at END,
            routing_state = CASE WHEN $2 = ANY($6) AND routing_state IN ('waiting', 'reserved') THEN 'abandoned'
                ELSE routing_state END,
            updated_at = now()
         WHERE id = $1
           AND (($3::int IS NOT NULL AND $3 > last_sequence) OR ($3::int IS NULL AND ended_at IS NULL))",
    )
    .bind(call_id)
    .bind(update.status.as_str())
    .bind(update.sequence)
    .bind(update.duration_secs)
    .bind(update.at)
    .bind(&CallStatus::TERMINAL[..])
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if applied && update.status.is_terminal() {
        release_agent(conn, call_id).await?;
    }
    Ok(applied)
}

/// Gives the call's agent their slot back, the first time only; returns the
/// agent released, if this call was the one to do it.
pub async fn release_agent(conn: &mut PgConnection, call_id: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH released AS (
            UPDATE calls SET agent_released_at = now(), updated_at = now()
            WHERE id = $1 AND agent_id IS NOT NULL AND agent_released_at IS NULL
            RETURNING agent_id)
         UPDATE agents SET current_calls = GREATEST(current_calls - 1, 0), updated_at = now()
         FROM released WHERE agents.id = released.agent_id
         RETURNING agents.id",
    )
    .bind(call_id)
    .fetch_optional(conn)
    .await
}

/// Puts the call in its department's queue, waiting for an agent from now on.
pub async fn queue_for(conn: &mut PgConnection, call_id: i64, department_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE calls SET department_id = $2, routing_state = 'waiting', queued_at = COALESCE(queued_at, now()),
            updated_at = now()
         WHERE id = $1 AND routing_state = 'none'",
    )
    .bind(call_id)
    .bind(department_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::CallStatus;

    #[test]
    fn terminal_statuses_are_exactly_the_five_final_ones() {
        let all =
            ["queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"];
        let terminal: Vec<_> = all.iter().filter(|s| s.parse::<CallStatus>().unwrap().is_terminal()).collect();
        assert_eq!(terminal, [&"completed", &"busy", &"failed", &"no-answer", &"canceled"]);
    }

    #[test]
    fn exotel_spellings_parse() {
        assert_eq!("Cancelled".parse::<CallStatus>(), Ok(CallStatus::Canceled));
        assert_eq!("answered".parse::<CallStatus>(), Ok(CallStatus::InProgress));
        assert!("hold".parse::<CallStatus>().is_err());
    }
}
