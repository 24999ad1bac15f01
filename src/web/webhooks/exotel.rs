//! `/webhooks/exotel/{secret}/{voice,connect,status}` (GET or POST): the
//! Passthru applet (200 = branch A, 302 = branch B), the Connect applet's
//! "whom to dial" (JSON, answered once `route-call` has decided or the
//! deadline passed: the agent, an overflow's transfer number, or nobody) and
//! the StatusCallback (form-encoded, `multipart/form-data` or JSON).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::{PgConnection, PgPool};
use switchboard_jobs::calls::{self, CallSeen, CallStatus, Direction, StatusUpdate};
use switchboard_jobs::outbound::callback;
use switchboard_jobs::ports::Provider;

use super::{RawEvent, department_for_number, queue_and_route, store_event};
use crate::config::WebhookConfig;
use crate::ivr::{self, Step};
use crate::providers::exotel::{self, FlowRequest, Gate, StatusCallback};
use crate::providers::fields::Fields;
use crate::web::limits::begin_webhook;
use crate::web::request_log::masked_path;
use crate::web::{ApiError, AppState};
use switchboard_jobs::handoffs::{self, AttemptReport, RecordingFacts};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/exotel/{secret}/voice", get(passthru).post(passthru))
        .route("/webhooks/exotel/{secret}/connect", get(connect).post(connect))
        .route("/webhooks/exotel/{secret}/status", get(status).post(status))
}

/// How often the Connect request looks at the call's routing outcome.
const OUTCOME_POLL: Duration = Duration::from_millis(50);

/// A request that got past the gate.
struct Admitted {
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    fields: Fields,
}

impl Admitted {
    fn event<'a>(&'a self, endpoint: &'static str, call_sid: &'a str, dedupe_key: String) -> RawEvent<'a> {
        RawEvent {
            provider: Provider::Exotel,
            endpoint,
            dedupe_key,
            call_sid,
            headers: &self.headers,
            query: self.uri.query().unwrap_or_default(),
            body: &self.body,
        }
    }
}

/// The part of an Exotel request the handlers share: gate, then parse.
struct Incoming {
    secret: String,
    peer: Option<IpAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Incoming {
    async fn admit(self, state: &AppState) -> Result<Admitted, ApiError> {
        let config = &state.webhooks;
        let gate = Gate { secret: config.exotel_secret.clone(), allowed: config.exotel_allowed_ips.clone() };
        let client = match forwarded_for(&self.headers) {
            Some(forwarded) if config.trust_forwarded_for => forwarded,
            _ => self.peer,
        };
        if let Err(refusal) = gate.check(&self.secret, client) {
            tracing::warn!(path = %masked_path(self.uri.path()), reason = %refusal, "Exotel webhook refused");
            return Err(ApiError::Forbidden("forbidden".into()));
        }
        let content_type = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let fields = Fields::parse_any(self.uri.query(), content_type, self.body.clone()).await?;
        Ok(Admitted { uri: self.uri, headers: self.headers, body: self.body, fields })
    }
}

/// The address the last proxy (Heroku's router, which appends) saw: the
/// rightmost entry of the last `X-Forwarded-For` line. Every earlier entry,
/// and every earlier line, came from the client and proves nothing. `None`
/// without the header; `Some(None)` when that entry is not an address.
fn forwarded_for(headers: &HeaderMap) -> Option<Option<IpAddr>> {
    let last_line = headers.get_all("x-forwarded-for").iter().next_back()?;
    let rightmost = last_line.to_str().ok().and_then(|line| line.rsplit(',').next());
    Some(rightmost.and_then(|entry| entry.trim().parse().ok()))
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Incoming {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        use axum::extract::FromRequestParts;
        let Path(secret) =
            Path::<String>::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let peer = Option::<Extension<ConnectInfo<SocketAddr>>>::from_request_parts(&mut parts, state)
            .await
            .ok()
            .flatten()
            .map(|Extension(ConnectInfo(addr))| addr.ip());
        let request = axum::extract::Request::from_parts(parts.clone(), body);
        let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        Ok(Self { secret, peer, uri: parts.uri, headers: parts.headers, body })
    }
}

fn seen<'a>(request: &'a FlowRequest, status: CallStatus) -> CallSeen<'a> {
    CallSeen {
        provider: Provider::Exotel,
        call_sid: request.call_sid.as_str(),
        direction: Direction::Inbound,
        from: request.from.as_ref().map(|n| n.as_str()),
        to: request.to.as_ref().map(|n| n.as_str()),
        status,
        attempt_id: None,
    }
}

/// Passthru: records the call; after a gather, `digits` at the called
/// number's menu choose the department (200) or are invalid (302).
async fn passthru(State(state): State<AppState>, incoming: Incoming) -> Result<Response, ApiError> {
    let request = incoming.admit(&state).await?;
    let flow = FlowRequest::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = flow.call_sid.as_str();
    let pressed = flow.digits.as_ref().map_or("", |d| d.as_str());
    let mut tx = begin_webhook(&state).await?;
    let fresh = store_event(&mut tx, &request.event("voice", sid, format!("voice:{sid}:{pressed}"))).await?;
    let call_id = calls::upsert(&mut tx, &seen(&flow, CallStatus::InProgress)).await?;
    let menu = match &flow.to {
        Some(to) if flow.digits.is_some() => ivr::root_menu(&mut tx, to.as_str()).await?,
        _ => None,
    };
    let branch = match menu {
        None => StatusCode::OK,
        Some(menu) => match ivr::next_step(&mut tx, menu, flow.digits.as_ref(), 0).await? {
            Step::Department(department) => {
                if fresh {
                    choose_department(&mut tx, call_id, department).await?;
                }
                StatusCode::OK
            }
            Step::Offer { .. } | Step::Voicemail => StatusCode::FOUND,
        },
    };
    tx.commit().await?;
    Ok(branch.into_response())
}

async fn choose_department(conn: &mut PgConnection, call_id: i64, department: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE calls SET department_id = $2, updated_at = now() WHERE id = $1 AND routing_state = 'none'")
        .bind(call_id)
        .bind(department)
        .execute(conn)
        .await?;
    Ok(())
}

/// Connect: queues the call for its department (chosen at the Passthru,
/// `?department=<name>`, or by the called number), then waits up to
/// `EXOTEL_CONNECT_DEADLINE` for `route-call` to pick an agent.
async fn connect(State(state): State<AppState>, incoming: Incoming) -> Result<Response, ApiError> {
    let request = incoming.admit(&state).await?;
    let flow = FlowRequest::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = flow.call_sid.as_str();
    let mut tx = begin_webhook(&state).await?;
    let fresh = store_event(&mut tx, &request.event("connect", sid, format!("connect:{sid}"))).await?;
    let call_id = calls::upsert(&mut tx, &seen(&flow, CallStatus::Ringing)).await?;
    let department = department_of(&mut tx, call_id, request.fields.get("department"), flow.to.as_ref()).await?;
    if let (true, Some(department)) = (fresh, department) {
        queue_and_route(&mut tx, call_id, department).await?;
    }
    tx.commit().await?;
    let dial = match department {
        Some(_) => whom_to_dial(&state.pool, call_id, &state.webhooks).await?,
        None => None,
    };
    let caller_id = flow.to.as_ref().map(|n| n.as_str());
    Ok(Json(exotel::connect_answer(dial.as_deref(), caller_id)).into_response())
}

async fn department_of(
    conn: &mut PgConnection,
    call_id: i64,
    named: Option<&str>,
    called: Option<&switchboard_jobs::phone::PhoneNumber>,
) -> Result<Option<i64>, sqlx::Error> {
    let chosen: Option<i64> =
        sqlx::query_scalar("SELECT department_id FROM calls WHERE id = $1").bind(call_id).fetch_one(&mut *conn).await?;
    if chosen.is_some() {
        return Ok(chosen);
    }
    if let Some(name) = named {
        return sqlx::query_scalar("SELECT id FROM departments WHERE name = $1").bind(name).fetch_optional(conn).await;
    }
    match called {
        Some(number) => department_for_number(conn, number.as_str()).await,
        None => Ok(None),
    }
}

/// The number Connect should dial: the agent `route-call` bridged the call
/// to; once the call overflowed (`route-call` found nobody within the max
/// wait, or this request's deadline passed, which then marks it overflowed so
/// the job stops), the department's number when its overflow action is
/// `transfer`; otherwise nobody.
async fn whom_to_dial(pool: &PgPool, call_id: i64, config: &WebhookConfig) -> Result<Option<String>, sqlx::Error> {
    let give_up_at = tokio::time::Instant::now() + config.exotel_connect_deadline;
    loop {
        let (state, agent): (String, Option<String>) = sqlx::query_as(
            "SELECT c.routing_state, a.phone FROM calls c LEFT JOIN agents a ON a.id = c.agent_id WHERE c.id = $1",
        )
        .bind(call_id)
        .fetch_one(pool)
        .await?;
        match state.as_str() {
            "bridged" => return Ok(agent),
            "waiting" | "none" if tokio::time::Instant::now() < give_up_at => tokio::time::sleep(OUTCOME_POLL).await,
            "waiting" | "none" => {
                let mut tx = pool.begin().await?;
                let gave_up = sqlx::query(
                    "UPDATE calls SET routing_state = 'overflowed', updated_at = now(),
                        overflow_action = (SELECT overflow_action FROM departments WHERE id = calls.department_id)
                     WHERE id = $1 AND routing_state IN ('none', 'waiting')",
                )
                .bind(call_id)
                .execute(&mut *tx)
                .await?;
                if gave_up.rows_affected() == 0 {
                    continue;
                }
                let prefixes = &config.callback_prefixes;
                callback::schedule_overflow_callback(&mut tx, call_id, chrono::Utc::now(), prefixes).await?;
                tx.commit().await?;
                return transfer_number(pool, call_id).await;
            }
            "overflowed" => return transfer_number(pool, call_id).await,
            _ => return Ok(None),
        }
    }
}

/// Where an overflowed call whose action is `transfer` goes.
async fn transfer_number(pool: &PgPool, call_id: i64) -> Result<Option<String>, sqlx::Error> {
    let number: Option<Option<String>> = sqlx::query_scalar(
        "SELECT d.overflow_number FROM calls c JOIN departments d ON d.id = c.department_id
         WHERE c.id = $1 AND c.overflow_action = 'transfer'",
    )
    .bind(call_id)
    .fetch_optional(pool)
    .await?;
    Ok(number.flatten())
}

async fn status(State(state): State<AppState>, incoming: Incoming) -> Result<Response, ApiError> {
    let request = incoming.admit(&state).await?;
    let event = StatusCallback::parse(&request.fields).map_err(ApiError::BadRequest)?;
    let sid = event.call_sid.as_str();
    let mut tx = begin_webhook(&state).await?;
    if store_event(&mut tx, &request.event("status", sid, format!("status:{sid}:{}", event.status))).await? {
        let direction = match request.fields.get_ignore_case("Direction") {
            Some(d) if d.starts_with("outbound") => Direction::Outbound,
            _ => Direction::Inbound,
        };
        let seen = CallSeen {
            provider: Provider::Exotel,
            call_sid: sid,
            direction,
            from: event.from.as_ref().map(|n| n.as_str()),
            to: event.to.as_ref().map(|n| n.as_str()),
            status: event.status,
            attempt_id: event.custom_field.as_deref(),
        };
        let call_id = calls::upsert(&mut tx, &seen).await?;
        let update = StatusUpdate {
            status: event.status,
            sequence: None,
            duration_secs: event.duration_secs,
            at: event.updated_at,
        };
        let applied = calls::apply_status(&mut tx, call_id, &update).await?;
        if let (true, Some(attempt_id)) = (applied, event.custom_field.as_deref()) {
            let report = event.report();
            handoffs::outbound_attempt_report(&mut tx, &AttemptReport { attempt_id, call_id, report }).await?;
        }
        if let Some(recording_url) = event.recording_url {
            let facts = RecordingFacts {
                provider: Provider::Exotel,
                call_id,
                call_sid: sid.to_owned(),
                recording_sid: None,
                recording_url,
                duration_secs: event.duration_secs,
            };
            handoffs::recording_ready(&mut tx, &facts).await?;
        }
    }
    tx.commit().await?;
    Ok(StatusCode::OK.into_response())
}
