//! `reconcile-call`: a call that holds an agent's slot (or an outbound
//! attempt still waiting for its outcome) and has not been heard of for
//! [`Ports::reconcile_after`](crate::ports::Ports::reconcile_after) is looked
//! up in its provider's REST API (Twilio `Calls/{sid}.json`, Exotel Call
//! Details), and what the provider says is applied exactly as its status
//! webhook would have been: the same call status update (a final status gives
//! the slot back, once), the same outbound report (the legs decide the
//! attempt's outcome), the same recording hand-off. A lost final callback
//! costs minutes, not the hours `release-silent-agent` waits.
//!
//! Enqueued, one per provider call, when a call takes a slot (`route-call`)
//! and when an outbound attempt's call is placed. It looks again every
//! interval while the call goes on, and ends once the call is over and holds
//! nothing. Safe to run twice: every step is guarded by the row it changes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::calls::{self, CallSeen, CallStatus, Direction, StatusUpdate};
use crate::handoffs::{self, AttemptReport, RecordingFacts};
use crate::outbound::Report;
use crate::ports::{CallDetails, LegDetails, Provider};
use crate::queue::{EnqueueOptions, Job, JobContext, JobError, enqueue_with};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileCall {
    pub provider: Provider,
    pub call_sid: String,
}

impl ReconcileCall {
    /// Enqueues the watch over call `call_sid`, first due at `at`; once per call.
    pub async fn enqueue(
        conn: &mut PgConnection,
        provider: Provider,
        call_sid: &str,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let job = Self { provider, call_sid: call_sid.to_owned() };
        let key = format!("{}/{call_sid}", provider_name(provider));
        enqueue_with(conn, &job, EnqueueOptions { run_at: Some(at), dedupe_key: Some(key) }).await?;
        Ok(())
    }
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Twilio => "twilio",
        Provider::Exotel => "exotel",
    }
}

/// What the call's rows hold when the job looks.
#[derive(Debug, sqlx::FromRow)]
struct Watched {
    /// Since when nothing was heard of the call (its row's last change, or its attempt's dialling).
    heard_at: Option<DateTime<Utc>>,
    holds_slot: bool,
    over: bool,
    /// The outbound attempt the call belongs to, while its outcome is awaited.
    unsettled_attempt: Option<Uuid>,
    /// The call belongs to an outbound attempt (settled or not).
    outbound: bool,
}

impl Watched {
    async fn load(conn: &mut PgConnection, job: &ReconcileCall) -> Result<Self, sqlx::Error> {
        sqlx::query_as(
            "WITH call AS (SELECT * FROM calls WHERE provider = $1 AND call_sid = $2),
                  attempt AS (SELECT * FROM scheduled_call_attempts WHERE provider_call_sid = $2)
             SELECT COALESCE((SELECT updated_at FROM call), (SELECT dialed_at FROM attempt)) AS heard_at,
                    EXISTS (SELECT 1 FROM call WHERE agent_id IS NOT NULL AND agent_released_at IS NULL) AS holds_slot,
                    EXISTS (SELECT 1 FROM call WHERE ended_at IS NOT NULL) AS over,
                    (SELECT id FROM attempt WHERE outcome IS NULL) AS unsettled_attempt,
                    EXISTS (SELECT 1 FROM attempt) AS outbound",
        )
        .bind(job.provider)
        .bind(&job.call_sid)
        .fetch_one(conn)
        .await
    }
}

impl Job for ReconcileCall {
    const KIND: &'static str = "reconcile-call";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let after = chrono::Duration::from_std(ctx.ports.reconcile_after()).expect("minutes fit");
        let now = Utc::now();
        let watched = Watched::load(&mut *ctx.pool.acquire().await?, &self).await?;
        if !watched.holds_slot && watched.unsettled_attempt.is_none() {
            if watched.over || watched.heard_at.is_none() {
                return Ok(());
            }
            // Still going on without a slot (waiting in line): it may take one again.
            return Err(JobError::snooze(now + after, "the call holds no slot for now"));
        }
        let due = watched.heard_at.map_or(now, |heard| heard + after);
        if due > now {
            return Err(JobError::snooze(due, "the call was heard of recently"));
        }
        let details = ctx.ports.telephony()?.lookup_call(self.provider, &self.call_sid).await?;
        let mut tx = ctx.pool.begin().await?;
        let over = self.apply(&mut tx, &watched, &details).await?;
        tx.commit().await?;
        if over {
            Ok(())
        } else {
            Err(JobError::snooze(now + after, format!("the provider says the call is {}", details.status)))
        }
    }
}

impl ReconcileCall {
    /// Applies the provider's answer as the status webhook would have, and
    /// marks a slot this gave back; returns whether the call is over.
    async fn apply(&self, conn: &mut PgConnection, watched: &Watched, details: &CallDetails) -> Result<bool, JobError> {
        let status: CallStatus =
            details.status.parse().map_err(|e: String| JobError::permanent(format!("the provider's answer: {e}")))?;
        let attempt_id = watched.unsettled_attempt.map(|id| id.to_string());
        let seen = CallSeen {
            provider: self.provider,
            call_sid: &self.call_sid,
            direction: if watched.outbound { Direction::Outbound } else { Direction::Inbound },
            from: None,
            to: None,
            status,
            attempt_id: attempt_id.as_deref(),
        };
        let call_id = calls::upsert(conn, &seen).await?;
        let held: bool =
            sqlx::query_scalar("SELECT agent_id IS NOT NULL AND agent_released_at IS NULL FROM calls WHERE id = $1")
                .bind(call_id)
                .fetch_one(&mut *conn)
                .await?;
        let update = StatusUpdate { status, sequence: None, duration_secs: details.duration_secs, at: Utc::now() };
        if calls::apply_status(conn, call_id, &update).await? && status.is_terminal() {
            if held {
                sqlx::query("UPDATE calls SET released_by_reconcile = true WHERE id = $1")
                    .bind(call_id)
                    .execute(&mut *conn)
                    .await?;
            }
            tracing::warn!(call_sid = %self.call_sid, status = %status, "final status found by reconciliation");
            if let Some(recording_url) = &details.recording_url {
                let facts = RecordingFacts {
                    provider: self.provider,
                    call_id,
                    call_sid: self.call_sid.clone(),
                    recording_sid: None,
                    recording_url: recording_url.clone(),
                    duration_secs: details.duration_secs,
                };
                handoffs::recording_ready(conn, &facts).await?;
            }
        }
        if let Some(attempt_id) = attempt_id.as_deref() {
            let report = report(self.provider, details);
            handoffs::outbound_attempt_report(conn, &AttemptReport { attempt_id, call_id, report }).await?;
        }
        Ok(status.is_terminal())
    }
}

/// What the provider's answer says of an outbound attempt, as its webhooks would have said it.
fn report(provider: Provider, details: &CallDetails) -> Report<'_> {
    match &details.legs {
        LegDetails::Connect { agent, customer, customer_machine, conversation_secs } => {
            Report::Legs { agent, customer, customer_machine: *customer_machine, conversation_secs: *conversation_secs }
        }
        LegDetails::Dialled { machine: true, .. } => Report::Machine,
        LegDetails::Dialled { agent: Some(agent), .. } => Report::AgentLeg(agent),
        LegDetails::Dialled { agent: None, .. } if provider == Provider::Twilio => {
            Report::CustomerCall(&details.status)
        }
        _ => Report::Call(&details.status),
    }
}
