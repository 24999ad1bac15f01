//! The `callback` overflow action: a caller nobody could take in time gets a
//! scheduled service call back to their number from the same department's next
//! free agent, planned through the calling window like any other scheduled
//! call. Called in the transaction that marks the call overflowed; once per call.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

use super::schedule::{DEFAULT_MAX_ATTEMPTS, NewScheduledCall, RetrySettings, ScheduleError, Scheduled, schedule};
use crate::phone::{NumberPrefixes, PhoneNumber, mask};
use crate::window::Purpose;

/// Schedules the call back when the overflowed call's action is `callback`;
/// `None` when it is not, when the caller's number is unknown or outside
/// `allowed` (`CALLBACK_ALLOWED_PREFIXES`), when the call was already
/// scheduled back, or when the service window never opens.
pub async fn schedule_overflow_callback(
    conn: &mut PgConnection,
    call_id: i64,
    now: DateTime<Utc>,
    allowed: &NumberPrefixes,
) -> Result<Option<Scheduled>, sqlx::Error> {
    let overflowed: Option<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT call_sid, from_number, overflow_action, department_id FROM calls
         WHERE id = $1 AND department_id IS NOT NULL",
    )
    .bind(call_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((call_sid, Some(caller), Some(action), department_id)) = overflowed else { return Ok(None) };
    if action != "callback" {
        return Ok(None);
    }
    let Ok(customer_phone) = PhoneNumber::parse(&caller) else {
        tracing::warn!(%call_sid, "overflow callback skipped: the caller's number is not E.164");
        return Ok(None);
    };
    if !allowed.allows(&customer_phone) {
        let caller = mask(customer_phone.as_str());
        tracing::warn!(%call_sid, %caller, %allowed, "overflow callback skipped: outside CALLBACK_ALLOWED_PREFIXES");
        return Ok(None);
    }
    let already: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM scheduled_calls WHERE context->>'overflow_call_sid' = $1)")
            .bind(&call_sid)
            .fetch_one(&mut *conn)
            .await?;
    if already {
        return Ok(None);
    }
    let callback = NewScheduledCall {
        customer_phone,
        agent_phone: None,
        agent_id: None,
        department_id: Some(department_id),
        purpose: Purpose::Service,
        preferred_time: None,
        context: json!({ "overflow_call_sid": call_sid }),
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        retry: RetrySettings::default(),
    };
    match schedule(conn, &callback, now).await {
        Ok(scheduled) => {
            tracing::info!(%call_sid, scheduled_call = %scheduled.id, planned_at = %scheduled.planned_at, "overflow callback scheduled");
            Ok(Some(scheduled))
        }
        Err(ScheduleError::NeverOpens(purpose)) => {
            tracing::warn!(%call_sid, %purpose, "overflow callback skipped: the calling policy never opens");
            Ok(None)
        }
        Err(ScheduleError::Database(error)) => Err(error),
    }
}
