//! What a provider's report about a call hands to work owned elsewhere, on
//! the reporter's own transaction (a webhook, or reconciliation through the
//! provider's REST API): a finished recording enqueues `fetch-recording`;
//! what a provider reports about an outbound attempt feeds the scheduled
//! call's next step.

use crate::fetch_recording::{self, RecordingRef};
use crate::outbound::{self, Report};
use crate::ports::Provider;
use sqlx::PgConnection;

/// A finished recording, as the provider reported it.
#[derive(Debug, Clone)]
pub struct RecordingFacts {
    pub provider: Provider,
    pub call_id: i64,
    pub call_sid: String,
    /// Twilio's `RecordingSid`; Exotel has none (one recording per call).
    pub recording_sid: Option<String>,
    pub recording_url: String,
    pub duration_secs: Option<i32>,
}

/// Stores the recording and enqueues `fetch-recording` (deduped by recording).
/// The lead is keyed on the customer's number: the caller of an inbound call,
/// the callee of an outbound one. A recording of the agent leg `route-call`
/// placed (Twilio records that leg) belongs to the caller's call it bridged.
pub async fn recording_ready(conn: &mut PgConnection, facts: &RecordingFacts) -> Result<(), sqlx::Error> {
    // A number stored before numbers were parsed at the edge (`anonymous`)
    // is no number: the recording is kept, without a customer phone.
    let (call_sid, customer_phone): (String, Option<String>) = sqlx::query_as(
        r"SELECT call_sid, CASE WHEN phone ~ '^\+[1-9][0-9]{6,14}$' THEN phone END
         FROM (SELECT coalesce(caller.call_sid, c.call_sid) AS call_sid,
                      CASE WHEN caller.id IS NOT NULL THEN caller.from_number
                           WHEN c.direction = 'inbound' THEN c.from_number ELSE c.to_number END AS phone
               FROM calls c
               LEFT JOIN calls caller ON caller.provider = c.provider AND caller.bridge_call_sid = c.call_sid
               WHERE c.id = $1) AS call",
    )
    .bind(facts.call_id)
    .fetch_optional(&mut *conn)
    .await?
    .unwrap_or_else(|| (facts.call_sid.clone(), None));
    let recording = RecordingRef {
        provider: facts.provider,
        call_sid,
        recording_sid: facts.recording_sid.clone().unwrap_or_else(|| facts.call_sid.clone()),
        url: facts.recording_url.clone(),
        duration_seconds: facts.duration_secs,
        customer_phone,
    };
    fetch_recording::request_fetch(conn, &recording).await?;
    Ok(())
}

/// What a provider reported about an outbound attempt's call (it carried
/// `attempt_id` / `CustomField`).
#[derive(Debug, Clone)]
pub struct AttemptReport<'a> {
    pub attempt_id: &'a str,
    pub call_id: i64,
    pub report: Report<'a>,
}

/// Hands the report to the scheduled call: an outcome it settles (completed
/// only when both sides talked) ends the call, cancels it (canceled, which
/// only our side does to a call it created) or plans the next attempt. An
/// attempt settled already (by an earlier report or the watchdog) stays as
/// it is. An attempt id that is not ours (not a UUID) is logged and ignored:
/// the webhook is still stored.
pub async fn outbound_attempt_report(conn: &mut PgConnection, attempt: &AttemptReport<'_>) -> Result<(), sqlx::Error> {
    let Ok(attempt_id) = attempt.attempt_id.parse::<uuid::Uuid>() else {
        tracing::warn!(attempt_id = %attempt.attempt_id, call_id = attempt.call_id, "report for an unknown attempt id; ignored");
        return Ok(());
    };
    let outcome = outbound::record_outcome(conn, attempt_id, &attempt.report, chrono::Utc::now()).await?;
    tracing::info!(%attempt_id, call_id = attempt.call_id, report = ?attempt.report, ?outcome, "outbound attempt report applied");
    Ok(())
}
