//! Outbound calls scheduled inside the legal calling window: the stored
//! calling policies, contacts and opt-outs that gate them ([`rules`]),
//! scheduling and cancelling ([`schedule`]), and what a call's outcome does to
//! the next attempt ([`outcome`]), which agent an attempt reaches ([`reach`]),
//! when an attempt whose final status never comes is given up ([`watchdog`]),
//! and the callback an overflowing inbound caller is promised ([`callback`]).
//! The dialling itself is the `retry-scheduled-call` job.

pub mod attempt;
pub mod callback;
pub mod contacts;
pub mod outcome;
pub mod reach;
pub mod rules;
pub mod schedule;
pub mod watchdog;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::window::Purpose;

pub use outcome::{Outcome, Report, record_outcome};
pub use rules::{Rules, Verdict};
pub use schedule::{Cancelled, NewScheduledCall, RetrySettings, ScheduleError, Scheduled, cancel, schedule};

/// Where a scheduled call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum CallStatus {
    /// Waiting for its next attempt (possibly snoozed until the window opens).
    Scheduled,
    /// An attempt is with the provider; its outcome is awaited.
    Dialing,
    Completed,
    /// The last attempt allowed went unanswered.
    Exhausted,
    /// The provider refused the call, or it can never be placed.
    Failed,
    /// An opt-out or the NCPR registry forbids this purpose's calls to the number.
    Blocked,
    Cancelled,
}

impl CallStatus {
    pub const ALL: [CallStatus; 7] = [
        Self::Scheduled,
        Self::Dialing,
        Self::Completed,
        Self::Exhausted,
        Self::Failed,
        Self::Blocked,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Dialing => "dialing",
            Self::Completed => "completed",
            Self::Exhausted => "exhausted",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for CallStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `scheduled_calls` row.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ScheduledCall {
    pub id: Uuid,
    pub customer_phone: String,
    /// A number outside the agents table: dialled as is, no slot reserved.
    pub agent_phone: Option<String>,
    /// The department's name when the call was scheduled.
    pub department: Option<String>,
    /// The agent to reach; their slot is reserved at dial time.
    pub agent_id: Option<i64>,
    /// The department whose agent, chosen at dial time by its strategy, is reached.
    pub department_id: Option<i64>,
    /// Since when the next attempt waits for a free agent.
    pub agent_wait_started_at: Option<DateTime<Utc>>,
    pub purpose: Purpose,
    pub context: serde_json::Value,
    pub preferred_time: DateTime<Utc>,
    pub max_attempts: i32,
    pub retry_initial_delay_s: i32,
    pub retry_multiplier: f64,
    pub retry_max_delay_s: i32,
    pub status: CallStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ScheduledCall {
    /// The row, locked until the end of the caller's transaction.
    pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM scheduled_calls WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(conn).await
    }

    pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM scheduled_calls WHERE id = $1").bind(id).fetch_optional(conn).await
    }

    /// Moves call `id` to `status`; `last_error` is kept when `None` is given.
    pub async fn set_status(
        conn: &mut PgConnection,
        id: Uuid,
        status: CallStatus,
        next_attempt_at: Option<DateTime<Utc>>,
        last_error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE scheduled_calls
             SET status = $2, next_attempt_at = $3, last_error = COALESCE($4, last_error), updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(next_attempt_at)
        .bind(last_error)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The backoff between this call's attempts.
    pub fn retry_settings(&self) -> RetrySettings {
        RetrySettings {
            initial_delay_s: self.retry_initial_delay_s,
            multiplier: self.retry_multiplier,
            max_delay_s: self.retry_max_delay_s,
        }
    }
}

/// A `scheduled_call_attempts` row: one call placed (or being placed).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Attempt {
    pub id: Uuid,
    pub scheduled_call_id: Uuid,
    pub number: i32,
    pub dialed_at: DateTime<Utc>,
    pub provider_call_sid: Option<String>,
    /// The agent whose slot the attempt reserved (its call's row takes it over).
    pub agent_id: Option<i64>,
    /// `completed`, `busy`, `no-answer`, `failed`, `canceled` (the provider's
    /// final status), `rejected` (refused by the provider), `no-agent` (nobody
    /// free, nothing dialled), `no-outcome` (given up by the watchdog); `None`
    /// while the final status is awaited.
    pub outcome: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl Attempt {
    /// Every attempt of a scheduled call, first to last.
    pub async fn all_for(conn: &mut PgConnection, scheduled_call_id: Uuid) -> Result<Vec<Self>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM scheduled_call_attempts WHERE scheduled_call_id = $1 ORDER BY number")
            .bind(scheduled_call_id)
            .fetch_all(conn)
            .await
    }
}
