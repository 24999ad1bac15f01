//! `/webhooks/twilio/{dial,amd}`: the legs of an outbound follow-up, signed
//! like every Twilio webhook, stored once and acted on. The `<Dial action>`
//! says how the agent's leg ended, and settles the attempt (completed only if
//! the agent answered); the answering-machine detection result settles it as
//! `voicemail` when a machine answered the customer. Both first make sure the
//! customer's call has its row, so that the agent's slot the attempt reserved
//! is held by that row and given back by its final status.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use sqlx::PgConnection;
use switchboard_jobs::calls::{self, CallSeen, CallStatus, Direction};
use switchboard_jobs::outbound::Report;
use switchboard_jobs::ports::Provider;

use super::store_event;
use super::twilio::{authenticate, twiml_response};
use crate::providers::fields::Fields;
use crate::providers::twilio::caller;
use crate::providers::twilio_legs::{
    AnsweredBy, DIAL_ACTION_PATH, DialResult, MACHINE_DETECTION_PATH, MachineDetection,
};
use crate::providers::twiml;
use crate::web::limits::begin_webhook;
use crate::web::{ApiError, AppState};
use switchboard_jobs::handoffs::{self, AttemptReport};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(DIAL_ACTION_PATH, get(dial).post(dial))
        .route(MACHINE_DETECTION_PATH, get(machine_detection).post(machine_detection))
}

/// The agent's leg ended: the outcome is what it did. The empty answer ends
/// the customer's call, whose final status then gives the agent's slot back.
async fn dial(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let request = authenticate(&state, uri, headers, body)?;
    let dial = DialResult::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = dial.call_sid.as_str();
    let leg = dial.dial_call_sid.as_ref().map_or(dial.dial_status.as_str(), |leg| leg.as_str());
    let mut tx = begin_webhook(&state).await?;
    if store_event(&mut tx, &request.event("dial", sid, format!("dial:{sid}:{leg}"))).await?
        && let Some(attempt_id) = dial.attempt_id.as_deref()
    {
        settle_attempt(&mut tx, &request.fields, sid, attempt_id, Report::AgentLeg(dial.dial_status.as_str())).await?;
    }
    tx.commit().await?;
    Ok(twiml_response(twiml::EMPTY))
}

/// What answered the customer's phone: a machine settles the attempt as `voicemail`.
async fn machine_detection(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = authenticate(&state, uri, headers, body)?;
    let detection = MachineDetection::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = detection.call_sid.as_str();
    let mut tx = begin_webhook(&state).await?;
    if store_event(&mut tx, &request.event("amd", sid, format!("amd:{sid}"))).await?
        && let (AnsweredBy::Machine, Some(attempt_id)) = (detection.answered_by, detection.attempt_id.as_deref())
    {
        settle_attempt(&mut tx, &request.fields, sid, attempt_id, Report::Machine).await?;
    }
    tx.commit().await?;
    Ok(twiml_response(twiml::EMPTY))
}

/// Settles the attempt with `report`, after making sure the customer's call
/// has its row (created if no status callback created it yet: it then takes
/// over the slot the attempt reserved, before the attempt settles).
async fn settle_attempt(
    conn: &mut PgConnection,
    fields: &Fields,
    sid: &str,
    attempt_id: &str,
    report: Report<'_>,
) -> Result<(), sqlx::Error> {
    let (from, to) = (caller(fields, "From"), caller(fields, "To"));
    let seen = CallSeen {
        provider: Provider::Twilio,
        call_sid: sid,
        direction: Direction::Outbound,
        from: from.as_ref().map(|n| n.as_str()),
        to: to.as_ref().map(|n| n.as_str()),
        status: CallStatus::InProgress,
        attempt_id: Some(attempt_id),
    };
    let call_id = calls::upsert(conn, &seen).await?;
    handoffs::outbound_attempt_report(conn, &AttemptReport { attempt_id, call_id, report }).await
}
