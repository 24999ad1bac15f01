//! `/webhooks/twilio/{voice,ivr,status,recording}` (stored, deduplicated)
//! and `/webhooks/twilio/{overflow,hangup}` (TwiML only); the legs of outbound
//! follow-ups in [`super::twilio_legs`]. All signature-checked,
//! by POST or by GET (Twilio allows either for every webhook; a GET's
//! parameters are in its signed query string).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use sqlx::PgConnection;
use switchboard_jobs::calls::{self, CallSeen, CallStatus, Direction, StatusUpdate};
use switchboard_jobs::outbound::Report;
use switchboard_jobs::ports::Provider;
use switchboard_jobs::route_call::{self, LegStatus};

use super::{RawEvent, department_for_number, queue_and_route, store_event};
use crate::ivr::{self, Step};
use crate::providers::fields::{self, Fields};
use crate::providers::identifiers::CallSid;
use crate::providers::twilio::{
    GatherResult, IncomingCall, Payload, RecordingCallback, RequestValidator, SIGNATURE_SETTINGS_HEADER,
    StatusCallback, caller,
};
use crate::providers::twiml;
use crate::web::limits::begin_webhook;
use crate::web::{ApiError, AppState};
use switchboard_jobs::handoffs::{self, AttemptReport, RecordingFacts};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio/voice", get(voice).post(voice))
        .route("/webhooks/twilio/ivr", get(ivr_choice).post(ivr_choice))
        .route("/webhooks/twilio/status", get(status).post(status))
        .route("/webhooks/twilio/recording", get(recording).post(recording))
        .route("/webhooks/twilio/overflow", get(overflow).post(overflow))
        .route("/webhooks/twilio/hangup", get(hangup).post(hangup))
}

/// A request whose signature checked out.
pub(super) struct Signed {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    pub(super) fields: Fields,
}

impl Signed {
    /// Dedupe keys are the signed business keys (`status:{sid}:{sequence}`):
    /// the unsigned `I-Twilio-Idempotency-Token` header only travels with the
    /// stored event, so a replay under a fresh token is still a duplicate.
    pub(super) fn event<'a>(&'a self, endpoint: &'static str, call_sid: &'a str, dedupe_key: String) -> RawEvent<'a> {
        RawEvent {
            provider: Provider::Twilio,
            endpoint,
            dedupe_key,
            call_sid,
            headers: &self.headers,
            query: self.uri.query().unwrap_or_default(),
            body: &self.body,
        }
    }
}

/// Parses (at most `MAX_FIELDS`, 413 above), then checks `X-Twilio-Signature`
/// over `PUBLIC_BASE_URL` + path + query (with the auth token, or the
/// SharedKey `X-Twilio-Webhooks-Signature-Settings` names).
pub(super) fn authenticate(state: &AppState, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<Signed, ApiError> {
    let path = uri.path().to_owned();
    let refuse = |reason: &dyn std::fmt::Display| {
        tracing::warn!(%path, %reason, "Twilio webhook refused");
        ApiError::Forbidden("invalid Twilio signature".into())
    };
    let Some(twilio) = &state.webhooks.twilio else {
        return Err(refuse(&"TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL are not set"));
    };
    let url = format!("{}{}", twilio.public_base_url, uri.path_and_query().map_or("", |pq| pq.as_str()));
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let fields = Fields::parse(uri.query(), content_type, &body)?;
    let payload = if fields::is_json(content_type) { Payload::Body(&body) } else { Payload::Form(&fields.body) };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    RequestValidator::new(twilio.auth_token.expose_secret())
        .with_shared_keys(state.webhooks.twilio_shared_keys.clone())
        .validate_with_settings(&url, payload, header("x-twilio-signature"), header(SIGNATURE_SETTINGS_HEADER))
        .map_err(|e| refuse(&e))?;
    Ok(Signed { uri, headers, body, fields })
}

pub(super) fn twiml_response(twiml: impl Into<String>) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], twiml.into()).into_response()
}

async fn voice(State(state): State<AppState>, uri: Uri, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let request = authenticate(&state, uri, headers, body)?;
    let call = IncomingCall::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = call.call_sid.as_str();
    let mut tx = begin_webhook(&state).await?;
    let fresh = store_event(&mut tx, &request.event("voice", sid, format!("voice:{sid}"))).await?;
    let call_id = calls::upsert(
        &mut tx,
        &CallSeen {
            provider: Provider::Twilio,
            call_sid: sid,
            direction: call.direction,
            from: call.from.as_ref().map(|n| n.as_str()),
            to: Some(call.to.as_str()),
            status: call.status,
            attempt_id: None,
        },
    )
    .await?;
    let answer = match ivr::root_menu(&mut tx, call.to.as_str()).await? {
        Some(menu) => twiml::gather(menu.id, 0, &menu.prompt, menu.timeout_secs, None),
        None => match department_for_number(&mut tx, call.to.as_str()).await? {
            Some(department) => {
                if fresh {
                    queue_and_route(&mut tx, call_id, department).await?;
                }
                twiml::enqueue(sid)
            }
            None => twiml::say_and_hang_up("Sorry, this number is not in service."),
        },
    };
    tx.commit().await?;
    Ok(twiml_response(answer))
}

async fn ivr_choice(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = authenticate(&state, uri, headers, body)?;
    let choice = GatherResult::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = choice.call_sid.as_str();
    let pressed = choice.digits.as_ref().map_or("", |d| d.as_str());
    let key = format!("ivr:{sid}:{}:{}:{pressed}", choice.menu_id, choice.attempt);
    let mut tx = begin_webhook(&state).await?;
    let fresh = store_event(&mut tx, &request.event("ivr", sid, key)).await?;
    let menu = ivr::menu(&mut tx, choice.menu_id)
        .await?
        .ok_or_else(|| ApiError::BadRequest(format!("menu {} does not exist", choice.menu_id)))?;
    let answer = match ivr::next_step(&mut tx, menu, choice.digits.as_ref(), choice.attempt).await? {
        Step::Offer { menu, attempt, notice } => {
            twiml::gather(menu.id, attempt, &menu.prompt, menu.timeout_secs, notice)
        }
        Step::Department(department) => {
            if fresh {
                let call_id = call_seen(&mut tx, &request.fields, sid).await?;
                queue_and_route(&mut tx, call_id, department).await?;
            }
            twiml::enqueue(sid)
        }
        Step::Voicemail => twiml::voicemail(),
    };
    tx.commit().await?;
    Ok(twiml_response(answer))
}

/// The call row for a request that may be the first we hear of the call.
async fn call_seen(conn: &mut PgConnection, fields: &Fields, sid: &str) -> Result<i64, sqlx::Error> {
    let status = fields.get("CallStatus").and_then(|s| s.parse().ok()).unwrap_or(CallStatus::InProgress);
    let (from, to) = (caller(fields, "From"), caller(fields, "To"));
    let seen = CallSeen {
        provider: Provider::Twilio,
        call_sid: sid,
        direction: Direction::Inbound,
        from: from.as_ref().map(|n| n.as_str()),
        to: to.as_ref().map(|n| n.as_str()),
        status,
        attempt_id: None,
    };
    calls::upsert(conn, &seen).await
}

async fn status(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = authenticate(&state, uri, headers, body)?;
    let event = StatusCallback::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = event.call_sid.as_str();
    let key = match event.sequence {
        Some(sequence) => format!("status:{sid}:{sequence}"),
        None => format!("status:{sid}:{}", event.status),
    };
    let mut tx = begin_webhook(&state).await?;
    if store_event(&mut tx, &request.event("status", sid, key)).await? {
        let leg = LegStatus { attempt: event.bridge_attempt, call_sid: sid, status: event.status };
        if !route_call::apply_leg_status(&mut tx, &leg).await? {
            call_status(&mut tx, &event).await?;
        }
    }
    tx.commit().await?;
    Ok(twiml_response(twiml::EMPTY))
}

/// A status of a call of its own (not an agent leg): kept at the newest
/// `SequenceNumber`, and handed to the outbound attempt it belongs to.
async fn call_status(conn: &mut PgConnection, event: &StatusCallback) -> Result<(), sqlx::Error> {
    let call_id = calls::upsert(
        conn,
        &CallSeen {
            provider: Provider::Twilio,
            call_sid: event.call_sid.as_str(),
            direction: event.direction,
            from: event.from.as_ref().map(|n| n.as_str()),
            to: event.to.as_ref().map(|n| n.as_str()),
            status: event.status,
            attempt_id: event.attempt_id.as_deref(),
        },
    )
    .await?;
    let update = StatusUpdate {
        status: event.status,
        sequence: event.sequence,
        duration_secs: event.duration_secs,
        at: event.timestamp,
    };
    let applied = calls::apply_status(conn, call_id, &update).await?;
    if let (true, Some(attempt_id)) = (applied, event.attempt_id.as_deref()) {
        let attempt = AttemptReport { attempt_id, call_id, report: Report::CustomerCall(event.status.as_str()) };
        handoffs::outbound_attempt_report(conn, &attempt).await?;
    }
    Ok(())
}

async fn recording(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = authenticate(&state, uri, headers, body)?;
    let event = RecordingCallback::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = event.call_sid.as_str();
    let key = format!("recording:{}:{}", event.recording_sid.as_str(), event.status);
    let mut tx = begin_webhook(&state).await?;
    if store_event(&mut tx, &request.event("recording", sid, key)).await? {
        // An agent leg's recording belongs to the caller's call it bridged.
        let call_id = match route_call::caller_of_leg(&mut tx, sid).await? {
            Some(caller) => caller,
            None => call_seen(&mut tx, &request.fields, sid).await?,
        };
        if event.status == "completed" {
            let facts = RecordingFacts {
                provider: Provider::Twilio,
                call_id,
                call_sid: sid.to_owned(),
                recording_sid: Some(event.recording_sid.as_str().to_owned()),
                recording_url: event.recording_url,
                duration_secs: event.duration_secs,
            };
            handoffs::recording_ready(&mut tx, &facts).await?;
        }
    }
    tx.commit().await?;
    Ok(twiml_response(twiml::EMPTY))
}

/// Where `route-call` redirects a call nobody could take: the department's overflow action.
async fn overflow(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = authenticate(&state, uri, headers, body)?;
    let sid = request.fields.get("CallSid").ok_or_else(|| ApiError::BadRequest("CallSid is missing".into()))?;
    let sid = CallSid::twilio(sid).map_err(ApiError::BadRequest)?;
    let action: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT d.overflow_action, d.overflow_number FROM calls c JOIN departments d ON d.id = c.department_id
         WHERE c.provider = 'twilio' AND c.call_sid = $1",
    )
    .bind(sid.as_str())
    .fetch_optional(&state.pool)
    .await?;
    let answer = match action {
        Some((action, Some(number))) if action == "transfer" => twiml::transfer(&number),
        Some((action, _)) if action == "callback" => twiml::callback_promise(),
        _ => twiml::voicemail(),
    };
    Ok(twiml_response(answer))
}

/// Where a voicemail `<Record>` goes when the caller is done.
async fn hangup(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authenticate(&state, uri, headers, body)?;
    Ok(twiml_response(twiml::hang_up()))
}
