//! What a placed call's outcome does to its scheduled call. The outcome comes
//! from what each leg did ([`Report`]): `completed` only when the agent and
//! the customer both talked; a machine answering the customer is `voicemail`,
//! an agent who never answers `agent-no-answer` (`agent-busy`, ...), a call
//! both answered without a second of conversation `no-conversation`.
//! Completed ends the scheduled call; canceled cancels it (only our side
//! cancels a call it created: Twilio's `Status=canceled` on a queued or
//! ringing call, telephony.md 1.2 and 2); every other outcome plans the next
//! attempt after the backoff, through the gate again, until the attempts run
//! out. Called by the provider's webhooks (and reconciliation) with the
//! attempt id it echoes back (`CustomField`).

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::attempt::RetryScheduledCall;
use super::{CallStatus, Rules, ScheduledCall};

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

/// What the provider reported about an attempt's call, one report at a time.
/// Statuses are in Twilio's or Exotel's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report<'a> {
    /// The call's status and nothing about its legs (an Exotel StatusCallback
    /// without `Legs`): taken as the outcome.
    Call(&'a str),
    /// Twilio: the status of the call we placed to the customer. Its
    /// `completed` says only that the customer answered: the outcome waits
    /// for the agent's leg.
    CustomerCall(&'a str),
    /// Twilio `<Dial action>`: how the agent's leg ended (`DialCallStatus`);
    /// the customer had answered, or the agent would not have been dialled.
    AgentLeg(&'a str),
    /// Answering-machine detection: a machine (voicemail, fax) answered the customer.
    Machine,
    /// Exotel Connect with its `Legs`: the agent's leg (dialled first), the
    /// customer's (`null` when never dialled), whether a machine answered the
    /// customer's, and the seconds both were connected (`ConversationDuration`).
    Legs { agent: &'a str, customer: &'a str, customer_machine: bool, conversation_secs: Option<i32> },
}

impl Report<'_> {
    /// The attempt's outcome this report settles, or `None` when it settles
    /// nothing yet (a progress status, a customer who answered while the
    /// agent's leg is still to be heard of).
    pub fn outcome(&self) -> Option<&'static str> {
        match *self {
            Report::Call(status) => final_outcome(status),
            Report::CustomerCall(status) => final_outcome(status).filter(|outcome| *outcome != "completed"),
            Report::AgentLeg(status) => agent_leg_outcome(status),
            Report::Machine => Some("voicemail"),
            Report::Legs { agent, customer, customer_machine, conversation_secs } => {
                let agent = agent_leg_outcome(agent)?;
                if agent != "completed" {
                    return Some(agent);
                }
                if customer_machine {
                    return Some("voicemail");
                }
                match final_outcome(customer) {
                    Some("completed") if conversation_secs != Some(0) => Some("completed"),
                    // Both answered without a second together, or the customer was never dialled (`null`).
                    Some("completed") | None => Some("no-conversation"),
                    customer => customer,
                }
            }
        }
    }
}

/// The outcome of an attempt whose agent's leg ended with `status`; `None` while it goes on.
fn agent_leg_outcome(status: &str) -> Option<&'static str> {
    Some(match final_outcome(status)? {
        "completed" => "completed",
        "busy" => "agent-busy",
        "no-answer" => "agent-no-answer",
        "canceled" => "agent-canceled",
        _ => "agent-failed",
    })
}

/// Records what `report` settles about attempt `attempt_id`, observed at
/// `at`, and plans what follows, enqueueing the next attempt on `conn`: run
/// it in the webhook's transaction. Safe to repeat; the first report that
/// settles the attempt wins.
pub async fn record_outcome(
    conn: &mut PgConnection,
    attempt_id: Uuid,
    report: &Report<'_>,
    at: DateTime<Utc>,
) -> Result<Outcome, sqlx::Error> {
    let Some(outcome) = report.outcome() else { return Ok(Outcome::Ignored) };
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

#[cfg(test)]
mod tests {
    use super::Report;

    fn legs(agent: &'static str, customer: &'static str, machine: bool, talked: Option<i32>) -> Option<&'static str> {
        Report::Legs { agent, customer, customer_machine: machine, conversation_secs: talked }.outcome()
    }

    #[test]
    fn a_twilio_follow_up_completes_only_when_the_agents_leg_did() {
        assert_eq!(Report::CustomerCall("completed").outcome(), None, "the customer answered; the agent is unknown");
        assert_eq!(Report::CustomerCall("no-answer").outcome(), Some("no-answer"));
        assert_eq!(Report::CustomerCall("in-progress").outcome(), None);
        assert_eq!(Report::AgentLeg("completed").outcome(), Some("completed"));
        assert_eq!(Report::AgentLeg("no-answer").outcome(), Some("agent-no-answer"));
        assert_eq!(Report::AgentLeg("busy").outcome(), Some("agent-busy"));
        assert_eq!(Report::AgentLeg("failed").outcome(), Some("agent-failed"));
        assert_eq!(Report::Machine.outcome(), Some("voicemail"));
    }

    #[test]
    fn an_exotel_connect_completes_only_when_both_legs_talked() {
        assert_eq!(legs("completed", "completed", false, Some(65)), Some("completed"));
        assert_eq!(legs("completed", "completed", false, None), Some("completed"));
        assert_eq!(legs("no-answer", "null", false, Some(0)), Some("agent-no-answer"));
        assert_eq!(legs("completed", "busy", false, Some(0)), Some("busy"));
        assert_eq!(legs("completed", "completed", true, Some(20)), Some("voicemail"));
        assert_eq!(legs("completed", "completed", false, Some(0)), Some("no-conversation"));
        assert_eq!(legs("completed", "null", false, None), Some("no-conversation"));
        assert_eq!(Report::Call("completed").outcome(), Some("completed"), "without legs, the call's status");
    }
}
