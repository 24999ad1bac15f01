//! `retry-scheduled-call`: place one attempt of a scheduled call if the gate
//! allows it at the moment of dialling, and see it through. Closed: snooze to
//! the window's next opening (not an attempt). Blocked (opt-out, NCPR): end the
//! call. Open: reserve the agent to reach ([`reach`]; nobody free: snooze
//! shortly, not an attempt, until the max wait, then count a `no-agent`
//! attempt) and record the attempt in the same transaction, since creating a
//! call is not idempotent, together with its watchdog: this job once more, due
//! when the attempt may be given up ([`watchdog`]). Then ask the provider. A
//! run that finds its attempt recorded without an outcome never dials: it
//! waits for the attempt's deadline and gives it up. The reserved slot is freed
//! by the call's terminal status webhook (its `calls` row takes the attempt's
//! agent) or, when that is lost, by `reconcile-call` (enqueued with the placed
//! call) from the provider's REST API; here when the provider refuses the call
//! or certainly did not take the request; or by the watchdog. A request whose
//! outcome is unknown keeps both the attempt and the slot: the status webhook
//! or the watchdog settles it.

use sqlx::PgConnection;
use uuid::Uuid;

pub use crate::outbound::attempt::RetryScheduledCall;
use crate::outbound::outcome::after_failed_attempt;
use crate::outbound::reach::{Reach, reach};
use crate::outbound::watchdog::{self, Unsettled};
use crate::outbound::{CallStatus, Rules, ScheduledCall, Verdict};
use crate::phone::mask_in_text;
use crate::ports::{OutboundCall, OutboundLine, PortError};
use crate::queue::{Job, JobContext, JobError, RetryPolicy};
use crate::reconcile_call::ReconcileCall;
use crate::route_call::LOOK_AGAIN_EVERY;
use crate::routing;

impl Job for RetryScheduledCall {
    const KIND: &'static str = "retry-scheduled-call";

    /// Retries are for requests that never reached the provider (no
    /// connection, 429, 503), not for unanswered calls.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: std::time::Duration::from_secs(30),
            max_delay: std::time::Duration::from_secs(900),
            timeout: std::time::Duration::from_secs(60),
            ..RetryPolicy::default()
        }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        match self.record_attempt(&ctx).await? {
            Some((attempt_id, call)) => self.place(&ctx, attempt_id, &call).await,
            None => Ok(()),
        }
    }
}

impl RetryScheduledCall {
    /// Passes the gate and stores the attempt with its watchdog, in one
    /// transaction; `None` when there is nothing to dial. An attempt recorded
    /// already and still unsettled is watched instead, never dialled again.
    async fn record_attempt(&self, ctx: &JobContext) -> Result<Option<(Uuid, OutboundCall)>, JobError> {
        // Without a provider there is nothing to record: fail before touching the call.
        ctx.ports.telephony()?;
        let line = ctx.ports.outbound_line()?;
        let now = ctx.ports.now();
        let mut tx = ctx.pool.begin().await?;
        let call = ScheduledCall::lock(&mut tx, self.scheduled_call_id)
            .await?
            .ok_or_else(|| JobError::permanent(format!("scheduled call {} does not exist", self.scheduled_call_id)))?;
        if let Some(unsettled) = Unsettled::find(&mut tx, call.id, self.attempt).await? {
            return watch(tx, &call, &unsettled, now).await;
        }
        let attempts_made: i32 = sqlx::query_scalar(
            "SELECT COALESCE(max(number), 0) FROM scheduled_call_attempts WHERE scheduled_call_id = $1",
        )
        .bind(call.id)
        .fetch_one(&mut *tx)
        .await?;
        if call.status != CallStatus::Scheduled || attempts_made >= self.attempt {
            tracing::info!(scheduled_call = %call.id, status = call.status.as_str(), attempts_made, "nothing to dial");
            return Ok(None);
        }
        match Rules::load(&mut tx, &call.customer_phone, call.purpose).await?.verdict(now) {
            Verdict::Open => {}
            Verdict::ClosedUntil(Some(until)) => {
                ScheduledCall::set_status(&mut tx, call.id, CallStatus::Scheduled, Some(until), None).await?;
                tx.commit().await?;
                return Err(JobError::snooze(until, "outside the calling window"));
            }
            Verdict::ClosedUntil(None) => {
                return end(tx, call.id, CallStatus::Failed, "the calling policy never opens again").await;
            }
            Verdict::Blocked(reason) => return end(tx, call.id, CallStatus::Blocked, reason).await,
        }
        let attempt_id = Uuid::now_v7();
        let (dialled, agent_id) = match reach(&mut tx, &call, now).await? {
            Reach::Number(phone) => (phone, None),
            Reach::Agent(agent) => (agent.phone, Some(agent.id)),
            Reach::WaitUntil(wait_ends) => return wait_for_agent(tx, call.id, now, wait_ends).await,
            Reach::NobodyFreeWithin(max_wait_secs) => {
                return self.count_unreached(tx, &call, max_wait_secs, now).await;
            }
            Reach::Nobody => {
                return end(tx, call.id, CallStatus::Failed, "the call's agent or department no longer exists").await;
            }
        };
        let outbound = outbound_call(&call.customer_phone, &dialled, line, attempt_id);
        sqlx::query(
            "INSERT INTO scheduled_call_attempts (id, scheduled_call_id, number, dialed_at, agent_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(attempt_id)
        .bind(call.id)
        .bind(self.attempt)
        .bind(now)
        .bind(agent_id)
        .execute(&mut *tx)
        .await?;
        ScheduledCall::set_status(&mut tx, call.id, CallStatus::Dialing, None, None).await?;
        self.enqueue_watchdog(&mut tx, watchdog::first_look(now)).await?;
        tx.commit().await?;
        Ok(Some((attempt_id, outbound)))
    }

    /// Nobody was free within the max wait: this attempt is spent without
    /// dialling (outcome `no-agent`) and the next one planned like after a no-answer.
    async fn count_unreached(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        call: &ScheduledCall,
        max_wait_secs: i32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<(Uuid, OutboundCall)>, JobError> {
        let failure = format!("attempt {}: no agent was free within {max_wait_secs}s", self.attempt);
        sqlx::query(
            "INSERT INTO scheduled_call_attempts (id, scheduled_call_id, number, dialed_at, outcome, outcome_at, error)
             VALUES ($1, $2, $3, $4, 'no-agent', $4, $5)",
        )
        .bind(Uuid::now_v7())
        .bind(call.id)
        .bind(self.attempt)
        .bind(now)
        .bind(&failure)
        .execute(&mut *tx)
        .await?;
        let next = after_failed_attempt(&mut tx, call, self.attempt, &failure, now).await?;
        tx.commit().await?;
        tracing::info!(scheduled_call = %call.id, attempt = self.attempt, ?next, "no agent free: attempt counted");
        Ok(None)
    }

    /// Asks the provider to place the recorded attempt and stores its answer.
    async fn place(&self, ctx: &JobContext, attempt_id: Uuid, call: &OutboundCall) -> Result<(), JobError> {
        let placed = ctx.ports.telephony()?.place_call(call).await;
        let mut tx = ctx.pool.begin().await?;
        // The call row first, then its attempt: the order `record_outcome` locks them in.
        let still_dialing = ScheduledCall::lock(&mut tx, self.scheduled_call_id)
            .await?
            .is_some_and(|call| call.status == CallStatus::Dialing);
        let result = match placed {
            Ok(placed) => {
                sqlx::query("UPDATE scheduled_call_attempts SET provider_call_sid = $2 WHERE id = $1")
                    .bind(attempt_id)
                    .bind(&placed.call_sid)
                    .execute(&mut *tx)
                    .await?;
                ReconcileCall::enqueue(&mut tx, call.provider, &placed.call_sid, chrono::Utc::now()).await?;
                tracing::info!(scheduled_call = %self.scheduled_call_id, attempt = self.attempt, call_sid = placed.call_sid, "call placed");
                Ok(())
            }
            Err(PortError::Permanent { message } | PortError::Expired { message }) => {
                let reserved: Option<Option<i64>> = sqlx::query_scalar(
                    "UPDATE scheduled_call_attempts SET outcome = 'rejected', outcome_at = $2, error = $3
                     WHERE id = $1 AND outcome IS NULL RETURNING agent_id",
                )
                .bind(attempt_id)
                .bind(ctx.ports.now())
                .bind(&message)
                .fetch_optional(&mut *tx)
                .await?;
                give_back(&mut tx, reserved.flatten()).await?;
                if still_dialing {
                    ScheduledCall::set_status(
                        &mut tx,
                        self.scheduled_call_id,
                        CallStatus::Failed,
                        None,
                        Some(&message),
                    )
                    .await?;
                }
                tracing::warn!(scheduled_call = %self.scheduled_call_id, error = mask_in_text(&message), "provider refused the call");
                Ok(())
            }
            Err(PortError::OutcomeUnknown { message }) => {
                // The provider may be placing the call: the attempt and its slot stay,
                // for the status webhook (which names the attempt) or the watchdog.
                if still_dialing {
                    let waiting = format!("attempt {}: waiting for the provider's status, {message}", self.attempt);
                    ScheduledCall::set_status(
                        &mut tx,
                        self.scheduled_call_id,
                        CallStatus::Dialing,
                        None,
                        Some(&waiting),
                    )
                    .await?;
                }
                tracing::warn!(scheduled_call = %self.scheduled_call_id, attempt = self.attempt, error = mask_in_text(&message), "the provider may have placed the call: not dialling again");
                Ok(())
            }
            Err(transient @ PortError::Transient { .. }) => {
                // The provider certainly did not take the call (no connection, 429, 503):
                // a job retry, not a call attempt.
                let reserved: Option<Option<i64>> =
                    sqlx::query_scalar("DELETE FROM scheduled_call_attempts WHERE id = $1 RETURNING agent_id")
                        .bind(attempt_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                give_back(&mut tx, reserved.flatten()).await?;
                if still_dialing {
                    let (status, error) = if ctx.is_last_attempt() {
                        (CallStatus::Failed, format!("provider unavailable: {transient}"))
                    } else {
                        (CallStatus::Scheduled, format!("provider unavailable, retrying: {transient}"))
                    };
                    ScheduledCall::set_status(&mut tx, self.scheduled_call_id, status, None, Some(&error)).await?;
                    Err(transient.into())
                } else {
                    Ok(())
                }
            }
        };
        tx.commit().await?;
        result
    }
}

/// The attempt is recorded and unsettled: before its deadline wait for its
/// final status (not an attempt); after it, give the attempt up.
async fn watch(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    call: &ScheduledCall,
    attempt: &Unsettled,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(Uuid, OutboundCall)>, JobError> {
    let deadline = attempt.deadline();
    if now < deadline {
        return Err(JobError::snooze(deadline, format!("waiting for attempt {}'s final status", attempt.number)));
    }
    let outcome = watchdog::give_up(&mut tx, call, attempt, now).await?;
    tx.commit().await?;
    tracing::warn!(scheduled_call = %call.id, attempt = attempt.number, ?outcome, "no final status from the provider: attempt given up");
    Ok(None)
}

/// Nobody is free yet: look again shortly, never past the end of the wait (not an attempt).
async fn wait_for_agent(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    wait_ends: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(Uuid, OutboundCall)>, JobError> {
    let look_again = (now + LOOK_AGAIN_EVERY).min(wait_ends);
    ScheduledCall::set_status(&mut tx, id, CallStatus::Scheduled, Some(look_again), Some("waiting for a free agent"))
        .await?;
    tx.commit().await?;
    Err(JobError::snooze(look_again, "no agent free"))
}

/// Ends the scheduled call with `status` and `reason`; the job itself succeeded.
async fn end(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
    status: CallStatus,
    reason: &str,
) -> Result<Option<(Uuid, OutboundCall)>, JobError> {
    ScheduledCall::set_status(&mut tx, id, status, None, Some(reason)).await?;
    tx.commit().await?;
    tracing::info!(scheduled_call = %id, status = status.as_str(), reason, "scheduled call ended without dialling");
    Ok(None)
}

/// The slot the refused or failed attempt held goes back to its agent: no
/// `calls` row will ever hold it. Done at most once, as the attempt's outcome
/// is set (or the attempt deleted) once.
async fn give_back(conn: &mut PgConnection, agent_id: Option<i64>) -> Result<(), sqlx::Error> {
    match agent_id {
        Some(agent_id) => routing::unreserve(conn, agent_id).await,
        None => Ok(()),
    }
}

/// The provider request for one attempt: the attempt id rides along as the
/// custom field, and the call is recorded. Both providers bridge the agent
/// (`from`) and the customer (`to`), both seeing our caller id: Exotel Connect
/// rings the agent first, then the customer; Twilio rings the customer and,
/// on answer, dials the agent with a `<Dial>` whose action reports the agent's leg.
fn outbound_call(customer_phone: &str, agent_phone: &str, line: &OutboundLine, attempt_id: Uuid) -> OutboundCall {
    OutboundCall {
        provider: line.provider,
        from: Some(agent_phone.to_owned()),
        to: customer_phone.to_owned(),
        caller_id: line.caller_id.clone(),
        twiml: None,
        custom_field: Some(attempt_id.to_string()),
        status_callback: line.status_callback.clone(),
        record: true,
    }
}
