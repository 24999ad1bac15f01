//! Scheduling a call (its row and its first attempt's job, in the caller's
//! transaction, at the first moment the gate allows) and cancelling one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::attempt::RetryScheduledCall;
use super::{CallStatus, Rules};
use crate::phone::PhoneNumber;
use crate::queue::RetryPolicy;
use crate::window::Purpose;

/// Attempts per scheduled call unless the request says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// The backoff between attempts: `initial_delay * multiplier^(n-1)`, capped at `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    pub initial_delay_s: i32,
    pub multiplier: f64,
    pub max_delay_s: i32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self { initial_delay_s: 300, multiplier: 2.0, max_delay_s: 3600 }
    }
}

/// How far each wait between attempts may stray from its nominal value, either way.
const JITTER: f64 = 0.2;

impl RetrySettings {
    /// The longest wait between two attempts.
    pub fn max_delay(&self) -> Duration {
        Duration::from_secs(self.max_delay_s.max(0) as u64)
    }

    /// The wait after failed attempt `number` (1-based): the nominal delay
    /// +-20%, never past `max_delay_s`.
    pub fn delay_after(&self, number: i32) -> Duration {
        let policy = RetryPolicy {
            initial_delay: Duration::from_secs(self.initial_delay_s.max(0) as u64),
            multiplier: self.multiplier,
            max_delay: self.max_delay(),
            jitter: JITTER,
            ..RetryPolicy::default()
        };
        policy.delay(number.max(1) as u32)
    }
}

/// A call to schedule, parsed and checked at the edge.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScheduledCall {
    pub customer_phone: PhoneNumber,
    /// Whom to reach, one of: a number outside the agents table, an agent, or
    /// a department whose agent is chosen at dial time.
    pub agent_phone: Option<PhoneNumber>,
    pub agent_id: Option<i64>,
    pub department_id: Option<i64>,
    pub purpose: Purpose,
    /// Not before this; now when absent or past.
    pub preferred_time: Option<DateTime<Utc>>,
    pub context: serde_json::Value,
    pub max_attempts: i32,
    pub retry: RetrySettings,
}

/// A scheduled call's id and when its first attempt is planned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scheduled {
    pub id: Uuid,
    pub planned_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("the calling policy for {0} calls never opens")]
    NeverOpens(Purpose),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Stores `call` and enqueues its first attempt at the first open moment at or
/// after its preferred time (`now` at the earliest). Run it in a transaction.
pub async fn schedule(
    conn: &mut PgConnection,
    call: &NewScheduledCall,
    now: DateTime<Utc>,
) -> Result<Scheduled, ScheduleError> {
    let preferred = call.preferred_time.unwrap_or(now);
    let wanted = preferred.max(now);
    let rules = Rules::load(&mut *conn, call.customer_phone.as_str(), call.purpose).await?;
    let planned_at = rules.next_opening(wanted).ok_or(ScheduleError::NeverOpens(call.purpose))?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO scheduled_calls (id, customer_phone, agent_phone, agent_id, department_id, department, purpose,
             context, preferred_time, max_attempts, retry_initial_delay_s, retry_multiplier, retry_max_delay_s,
             next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, (SELECT name FROM departments WHERE id = $5), $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(call.customer_phone.as_str())
    .bind(call.agent_phone.as_ref().map(PhoneNumber::as_str))
    .bind(call.agent_id)
    .bind(call.department_id)
    .bind(call.purpose)
    .bind(&call.context)
    .bind(preferred)
    .bind(call.max_attempts)
    .bind(call.retry.initial_delay_s)
    .bind(call.retry.multiplier)
    .bind(call.retry.max_delay_s)
    .bind(planned_at)
    .execute(&mut *conn)
    .await?;
    RetryScheduledCall { scheduled_call_id: id, attempt: 1 }.enqueue(conn, planned_at).await?;
    Ok(Scheduled { id, planned_at })
}

/// What a cancel request found.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// No future attempt will be placed (one already with the provider finishes).
    Now,
    /// It had ended already, with this status.
    AlreadyEnded(CallStatus),
    NotFound,
}

/// Stops every future attempt: the jobs still queued (snoozed ones included)
/// find the call cancelled and end without dialling.
pub async fn cancel(conn: &mut PgConnection, id: Uuid) -> Result<Cancelled, sqlx::Error> {
    let cancelled = sqlx::query(
        "UPDATE scheduled_calls SET status = 'cancelled', next_attempt_at = NULL, updated_at = now()
         WHERE id = $1 AND status IN ('scheduled', 'dialing')",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if cancelled.rows_affected() > 0 {
        return Ok(Cancelled::Now);
    }
    let status: Option<CallStatus> =
        sqlx::query_scalar("SELECT status FROM scheduled_calls WHERE id = $1").bind(id).fetch_optional(conn).await?;
    Ok(status.map_or(Cancelled::NotFound, Cancelled::AlreadyEnded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_between_attempts_never_passes_the_cap_whatever_the_jitter() {
        let retry = RetrySettings { initial_delay_s: 300, multiplier: 2.0, max_delay_s: 600 };
        for number in 1..=5 {
            for _ in 0..300 {
                let wait = retry.delay_after(number);
                assert!(wait <= Duration::from_secs(600), "attempt {number}: {wait:?}");
            }
        }
        let at_cap: Vec<Duration> = (0..300).map(|_| retry.delay_after(4)).collect();
        assert!(at_cap.iter().all(|d| *d >= Duration::from_secs(480)), "the cap is still jittered downwards");
    }
}
