//! What a placed call's outcome does to its scheduled call: completed ends it;
//! canceled cancels it (only our side cancels a call it created: Twilio's
//! `Status=canceled` on a queued or ringing call, telephony.md 1.2 and 2); busy,
//! no answer or failed plans the next attempt after the backoff, through the
//! gate again, until the attempts run out. Called by the provider's status
//! webhook with the attempt id it echoes back (`CustomField`).

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{CallStatus, Rules, ScheduledCall};
use crate::retry_scheduled_call::RetryScheduledCall;

/// What recording an outcome did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not a final status (queued, ringing, in-progress), or this attempt's
    /// outcome was recorded already: nothing changed.
    Ignored,
    /// No attempt has this id.
    UnknownAttempt,
    Completed,
    /// The provider reports the call canceled, which only our account can do
    /// to a call it created: the scheduled call is cancelled, not retried.
    Cancelled,
    /// The next attempt is planned for this instant.
    NextAttemptAt(DateTime<Utc>),
    /// That was the last attempt allowed.
    Exhausted,
    /// Stored, but the call takes no further attempt (cancelled meanwhile, or
    /// its policy never opens again).
    Stopped,
}

/// Records the provider's final `status` (Twilio/Exotel spelling) of attempt
/// `attempt_id`, observed at `at`, and plans what follows, enqueueing the next
/// attempt on `conn`: run it in the webhook's transaction. Safe to repeat.
pub async fn record_outcome(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    status: &str,
    at: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    let Some(outcome) = final_outcome(status) else { return Ok(Outcome::Ignored) };
    let call_id: Option<Uuid> =
        sqlx::query_scalar("SELECT scheduled_call_id FROM scheduled_call_attempts WHERE id = $1")
            .bind(attempt_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(call) = (match call_id {
        Some(id) => ScheduledCall::lock(&mut *conn, id).await?,
        None => None,
    }) else {
        return Ok(Outcome::UnknownAttempt);
    };
    let number: Option<i32> = sqlx::query_scalar(
        "UPDATE scheduled_call_attempts SET outcome = $2, outcome_at = $3 WHERE id = $1 AND outcome IS NULL
         RETURNING number",
    )
    .bind(attempt_id)
    .bind(outcome)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(number) = number else { return Ok(Outcome::Ignored) };
    if call.status != CallStatus::Dialing {
        return Ok(Outcome::Stopped);
    }
    match outcome {
        "completed" => {
            ScheduledCall::set_status(conn, call.id, CallStatus::Completed, None, None).await?;
            Ok(Outcome::Completed)
        }
        "canceled" => {
            let reason = format!("attempt {number}: canceled at the provider by our side");
            ScheduledCall::set_status(conn, call.id, CallStatus::Cancelled, None, Some(&reason)).await?;
            Ok(Outcome::Cancelled)
        }
        failed => after_failed_attempt(conn, &call, number, &format!("attempt {number}: {failed}"), at).await,
    }
}

/// Plans the attempt after attempt `number` of `call`, which failed with
/// `failure` at `at`, past the backoff and through the gate; or ends the call
/// when that was its last attempt or its policy never opens again.
pub(crate) async fn after_failed_attempt(
    conn: &mut PgConnection,
    call: &ScheduledCall,
    number: i32,
    failure: &str,
    at: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    if number >= call.max_attempts {
        ScheduledCall::set_status(conn, call.id, CallStatus::Exhausted, None, Some(failure)).await?;
        return Ok(Outcome::Exhausted);
    }
    let retry = call.retry_settings();
    let wanted = due_after(at, retry.delay_after(number), retry.max_delay());
    let rules = Rules::load(&mut *conn, &call.customer_phone, call.purpose).await?;
    let Some(planned_at) = rules.next_opening(wanted) else {
        ScheduledCall::set_status(
            conn,
            call.id,
            CallStatus::Failed,
            None,
            Some("the calling policy never opens again"),
        )
        .await?;
        return Ok(Outcome::Stopped);
    };
    RetryScheduledCall { scheduled_call_id: call.id, attempt: number + 1 }.enqueue(&mut *conn, planned_at).await?;
    ScheduledCall::set_status(conn, call.id, CallStatus::Scheduled, Some(planned_at), Some(failure)).await?;
    Ok(Outcome::NextAttemptAt(planned_at))
}

/// `at` plus `delay`, rounded up to the second, yet never past `at + max_delay`.
fn due_after(at: DateTime<Utc>, delay: Duration, max_delay: Duration) -> DateTime<Utc> {
    let plus =
        |wait: Duration| TimeDelta::from_std(wait).ok().and_then(|wait| at.checked_add_signed(wait)).unwrap_or(at);
    let due = plus(delay);
    due.duration_round_up(TimeDelta::seconds(1)).unwrap_or(due).min(plus(max_delay))
}

/// The stored outcome for a provider's final status; `None` for progress statuses.
fn final_outcome(status: &str) -> Option<&'static str> {
    match status.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "completed" => Some("completed"),
        "busy" => Some("busy"),
        "no-answer" => Some("no-answer"),
        "failed" => Some("failed"),
        "canceled" | "cancelled" => Some("canceled"),
        _ => None,
    }
}
