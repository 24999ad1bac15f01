//! `route-call`: find the waiting caller an agent by the department's
//! strategy, reserve the agent's slot, and bridge them (Twilio: the agent is
//! called and dequeues the caller). Nobody free: look again shortly, until the
//! department's max wait, then its overflow action (`callback` schedules an
//! outbound service call back to the caller).
//!
//! A Twilio bridge is an attempt, recorded with the reservation in the
//! transaction that holds the caller's row and saw them still waiting, before
//! Twilio is asked to call the agent. The attempt id rides in the agent leg's
//! StatusCallback URL, so the leg's statuses find the caller even when they
//! beat Twilio's answer to us; the leg gets no `calls` row of its own.
//!
//! A caller who hangs up while Twilio places the agent's leg (between the
//! committed attempt and Twilio's answer) leaves the call `abandoned`; the
//! leg Twilio placed anyway is ended (`Telephony::end_call`), so the agent is
//! not rung for nobody.
//!
//! Idempotent by the call's `routing_state`: a re-run that finds an attempt in
//! flight (`reserved`) never dials again: it waits to hear from Twilio for up
//! to [`BRIDGE_SILENCE_LIMIT`], then counts the attempt as missed and routes
//! the caller again. A run finishes an overflow it finds begun and does nothing
//! once the call is bridged, overflowed or over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::calls::{self, CallStatus};
use crate::outbound;
use crate::phone::NumberPrefixes;
use crate::ports::{OutboundCall, PortError, Provider};
use crate::queue::{self, EnqueueOptions, Job, JobContext, JobError, RetryPolicy};
use crate::reconcile_call::ReconcileCall;
use crate::release_silent_agent::ReleaseSilentAgent;
use crate::routing::{self, Department, ReservedAgent};

/// How often a waiting call looks for a free agent again.
pub(crate) const LOOK_AGAIN_EVERY: Duration = Duration::from_secs(2);

/// How long a bridge attempt may stay in flight without a word from Twilio
/// (neither its answer to our request nor a status of the leg) before it
/// counts as missed. Twilio reports `initiated` within a second or two.
pub const BRIDGE_SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// Where the status of bridged agent legs is reported (joined to the public base URL).
pub const TWILIO_STATUS_PATH: &str = "/webhooks/twilio/status";
/// The query parameter of an agent leg's StatusCallback naming its bridge attempt.
pub const BRIDGE_PARAM: &str = "bridge";
/// Where an overflowing Twilio call is sent for its overflow TwiML.
pub const TWILIO_OVERFLOW_PATH: &str = "/webhooks/twilio/overflow";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteCall {
    pub call_id: i64,
}

/// Enqueues the routing of a waiting call on `conn`: once per call and reroute.
pub async fn enqueue(conn: &mut PgConnection, call_id: i64, reroutes: i32) -> Result<(), sqlx::Error> {
    let key = format!("call:{call_id}:{reroutes}");
    queue::enqueue_with(conn, &RouteCall { call_id }, EnqueueOptions::deduped(key)).await?;
    Ok(())
}

/// A status callback that may be about an agent leg `route-call` placed.
#[derive(Debug, Clone)]
pub struct LegStatus<'a> {
    /// The [`BRIDGE_PARAM`] of the callback URL; legs placed before attempts were recorded have none.
    pub attempt: Option<Uuid>,
    pub call_sid: &'a str,
    pub status: CallStatus,
}

/// Applies `leg` to the caller's call it bridges, found by the leg's attempt
/// id (or, without one, by the leg's CallSid). Any status confirms the bridge
/// and names the leg; a terminal one gives the agent's slot back; an
/// unanswered one (busy, no-answer, failed, canceled) of a caller still on the
/// line puts them back in line and routes them again. Returns whether `leg`
/// is an agent leg: those get no `calls` row of their own, and the status of
/// an attempt already given up changes nothing.
pub async fn apply_leg_status(conn: &mut PgConnection, leg: &LegStatus<'_>) -> Result<bool, sqlx::Error> {
    // Two shapes, so each lookup can use its own index.
    let leg_is =
        if leg.attempt.is_some() { "bridge_attempt_id = $1" } else { "bridge_call_sid = $2 AND $1::uuid IS NULL" };
    let bridged: Option<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE calls SET bridge_call_sid = COALESCE(bridge_call_sid, $2),
            routing_state = CASE WHEN routing_state = 'reserved' THEN 'bridged' ELSE routing_state END,
            updated_at = now()
         WHERE provider = 'twilio' AND {leg_is}
         RETURNING id, routing_state = 'bridged' AND ended_at IS NULL"
    )))
    .bind(leg.attempt)
    .bind(leg.call_sid)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((call_id, on_the_line)) = bridged else { return Ok(leg.attempt.is_some()) };
    if leg.status.is_terminal() {
        calls::release_agent(conn, call_id).await?;
        if on_the_line && leg.status != CallStatus::Completed {
            let reroutes = back_in_line(conn, call_id).await?;
            enqueue(conn, call_id, reroutes).await?;
        }
    }
    Ok(true)
}

/// The caller's call that agent leg `leg_sid` bridged, if it is one.
pub async fn caller_of_leg(conn: &mut PgConnection, leg_sid: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM calls WHERE provider = 'twilio' AND bridge_call_sid = $1 LIMIT 1")
        .bind(leg_sid)
        .fetch_optional(conn)
        .await
}

/// The bridge attempt ended without the agent (unanswered, refused, or silent
/// too long): the agent's slot back (once), the caller waiting again. Returns
/// how many times the call has gone back in line.
async fn back_in_line(conn: &mut PgConnection, call_id: i64) -> Result<i32, sqlx::Error> {
    calls::release_agent(conn, call_id).await?;
    sqlx::query_scalar(
        "UPDATE calls SET routing_state = 'waiting', agent_id = NULL, agent_released_at = NULL,
            bridge_attempt_id = NULL, bridge_started_at = NULL, bridge_call_sid = NULL,
            reroutes = reroutes + 1, updated_at = now()
         WHERE id = $1 RETURNING reroutes",
    )
    .bind(call_id)
    .fetch_one(conn)
    .await
}

#[derive(Debug, sqlx::FromRow)]
struct WaitingCall {
    provider: Provider,
    call_sid: String,
    to_number: Option<String>,
    status: String,
    routing_state: String,
    bridge_started_at: Option<DateTime<Utc>>,
    queued_at: DateTime<Utc>,
    department_id: i64,
    strategy: String,
    required_skills: Vec<String>,
    max_wait_secs: i32,
}

impl WaitingCall {
    fn is_over(&self) -> bool {
        self.status.parse::<CallStatus>().is_ok_and(CallStatus::is_terminal)
    }

    fn wait_ends(&self) -> DateTime<Utc> {
        self.queued_at + chrono::Duration::seconds(self.max_wait_secs.into())
    }

    fn department(&self) -> Result<Department, JobError> {
        Ok(Department {
            id: self.department_id,
            strategy: self.strategy.parse().map_err(JobError::permanent)?,
            required_skills: self.required_skills.clone(),
        })
    }
}

/// A bridge attempt just recorded: the agent to call.
struct Attempt {
    id: Uuid,
    started_at: DateTime<Utc>,
    agent_phone: String,
}

/// When an attempt started at `started_at` counts as missed if Twilio stayed silent.
fn silence_ends(started_at: DateTime<Utc>) -> DateTime<Utc> {
    started_at + chrono::Duration::from_std(BRIDGE_SILENCE_LIMIT).expect("small duration")
}

/// What to do once the routing decision is committed.
enum Next {
    Done,
    LookAgainAt(DateTime<Utc>),
    Bridge(Attempt),
    /// An attempt is in flight: come back when its silence would end.
    AwaitBridge(DateTime<Utc>),
    Overflow,
}

impl Job for RouteCall {
    const KIND: &'static str = "route-call";

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
            ..RetryPolicy::default()
        }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let mut tx = ctx.pool.begin().await?;
        let call = load(&mut tx, self.call_id)
            .await?
            .ok_or_else(|| JobError::permanent(format!("call {} does not exist or has no department", self.call_id)))?;
        let next = decide(&mut tx, self.call_id, &call, &ctx.ports.callback_prefixes).await?;
        tx.commit().await?;
        match next {
            Next::Done => Ok(()),
            Next::LookAgainAt(at) => Err(JobError::snooze(at, "no agent free")),
            Next::AwaitBridge(at) => Err(JobError::snooze(at, "a bridge attempt is in flight; waiting for Twilio")),
            Next::Bridge(attempt) => bridge(&ctx, self.call_id, &call, attempt).await,
            Next::Overflow => overflow(&ctx, self.call_id, &call).await,
        }
    }
}

async fn load(conn: &mut PgConnection, call_id: i64) -> Result<Option<WaitingCall>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.provider, c.call_sid, c.to_number, c.status, c.routing_state, c.bridge_started_at,
                COALESCE(c.queued_at, c.created_at) AS queued_at,
                d.id AS department_id, d.strategy, d.required_skills, d.max_wait_secs
         FROM calls c
         JOIN departments d ON d.id = c.department_id
         WHERE c.id = $1
         FOR UPDATE OF c",
    )
    .bind(call_id)
    .fetch_optional(conn)
    .await
}

/// What the locked call row's routing state calls for. The row stays locked
/// until the decision commits, so a hangup cannot land between what is seen
/// here and what is claimed.
async fn decide(
    conn: &mut PgConnection,
    call_id: i64,
    call: &WaitingCall,
    callback_prefixes: &NumberPrefixes,
) -> Result<Next, JobError> {
    if call.is_over() {
        return Ok(Next::Done);
    }
    match (call.routing_state.as_str(), call.bridge_started_at) {
        ("waiting", _) => route_waiting(conn, call_id, call, callback_prefixes).await,
        ("reserved", Some(started_at)) if Utc::now() < silence_ends(started_at) => {
            Ok(Next::AwaitBridge(silence_ends(started_at)))
        }
        ("reserved", Some(_)) => {
            tracing::warn!(call_sid = %call.call_sid, "bridge attempt unheard of for too long: routing again");
            back_in_line(conn, call_id).await?;
            route_waiting(conn, call_id, call, callback_prefixes).await
        }
        ("overflowing", _) => Ok(Next::Overflow),
        _ => Ok(Next::Done),
    }
}

/// Reserves an agent (and, on Twilio, records the bridge attempt), or moves
/// towards overflow once the wait is over (calling back only `callback_prefixes`).
async fn route_waiting(
    conn: &mut PgConnection,
    call_id: i64,
    call: &WaitingCall,
    callback_prefixes: &NumberPrefixes,
) -> Result<Next, JobError> {
    if let Some(agent) = routing::reserve(conn, &call.department()?).await? {
        tracing::info!(call_sid = %call.call_sid, agent_id = agent.id, "agent reserved");
        ReleaseSilentAgent::enqueue(conn, call_id).await?;
        ReconcileCall::enqueue(conn, call.provider, &call.call_sid, Utc::now()).await?;
        return match call.provider {
            Provider::Twilio => Ok(Next::Bridge(record_attempt(conn, call_id, agent).await?)),
            // Exotel dials the agent itself once the Connect endpoint answers with them.
            Provider::Exotel => {
                set_state(conn, call_id, "bridged", Some(agent.id)).await?;
                Ok(Next::Done)
            }
        };
    }
    let overflow_state = match call.provider {
        Provider::Twilio => "overflowing",
        Provider::Exotel => "overflowed",
    };
    let now = Utc::now();
    if now >= call.wait_ends() {
        set_state(conn, call_id, overflow_state, None).await?;
        tracing::info!(call_sid = %call.call_sid, max_wait_secs = call.max_wait_secs, "nobody free in time: overflow");
        outbound::callback::schedule_overflow_callback(conn, call_id, now, callback_prefixes).await?;
        return Ok(if call.provider == Provider::Twilio { Next::Overflow } else { Next::Done });
    }
    let look_again = now + chrono::Duration::from_std(LOOK_AGAIN_EVERY).expect("small duration");
    Ok(Next::LookAgainAt(look_again.min(call.wait_ends())))
}

async fn set_state(
    conn: &mut PgConnection,
    call_id: i64,
    state: &str,
    agent_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE calls SET routing_state = $2, agent_id = COALESCE($3, agent_id),
            overflow_action = CASE WHEN $2 IN ('overflowing', 'overflowed')
                THEN (SELECT overflow_action FROM departments WHERE id = calls.department_id) ELSE overflow_action END,
            updated_at = now()
         WHERE id = $1",
    )
    .bind(call_id)
    .bind(state)
    .bind(agent_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims the bridge for the waiting caller (whose row is locked): the agent
/// holds the call and a new attempt is in flight from now on.
async fn record_attempt(conn: &mut PgConnection, call_id: i64, agent: ReservedAgent) -> Result<Attempt, sqlx::Error> {
    let id = Uuid::new_v4();
    let started_at = sqlx::query_scalar(
        "UPDATE calls SET routing_state = 'reserved', agent_id = $2, bridge_attempt_id = $3,
            bridge_started_at = now(), bridge_call_sid = NULL, updated_at = now()
         WHERE id = $1 RETURNING bridge_started_at",
    )
    .bind(call_id)
    .bind(agent.id)
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(Attempt { id, started_at, agent_phone: agent.phone })
}

/// Calls the reserved agent; answering, they dequeue the caller (the queue is
/// named after the caller's CallSid, so they get exactly this caller). When
/// the request's outcome is unknown (a timeout after sending, a 500) the leg
/// may ring anyway: the attempt stays in flight and the job comes back when
/// its silence would end. A refusal, or a request Twilio certainly did not
/// take (no connection, 429, 503), gives the attempt up: the slot goes back,
/// the caller waits again, and the job's retry routes them afresh.
async fn bridge(ctx: &JobContext, call_id: i64, call: &WaitingCall, attempt: Attempt) -> Result<(), JobError> {
    let leg = agent_leg(call, &attempt)?;
    match ctx.ports.telephony()?.place_call(&leg).await {
        Ok(placed) => {
            let wanted: Option<bool> = sqlx::query_scalar(
                "UPDATE calls SET bridge_call_sid = $3,
                    routing_state = CASE WHEN routing_state = 'reserved' THEN 'bridged' ELSE routing_state END,
                    updated_at = now()
                 WHERE id = $1 AND bridge_attempt_id = $2
                 RETURNING routing_state <> 'abandoned' AND ended_at IS NULL",
            )
            .bind(call_id)
            .bind(attempt.id)
            .bind(&placed.call_sid)
            .fetch_optional(&ctx.pool)
            .await?;
            if wanted != Some(true) {
                end_unwanted_leg(ctx, call, &placed.call_sid).await;
            }
            Ok(())
        }
        Err(PortError::OutcomeUnknown { message }) => {
            let error = crate::phone::mask_in_text(&message);
            tracing::warn!(call_sid = %call.call_sid, %error, "agent leg may or may not be placed");
            Err(JobError::snooze(
                silence_ends(attempt.started_at),
                format!("agent leg may or may not be placed: {message}"),
            ))
        }
        Err(not_placed) => {
            give_up(ctx, call_id, attempt.id).await?;
            Err(not_placed.into())
        }
    }
}

/// The caller hung up (or the attempt was given up) while Twilio was placing
/// the agent's leg: the agent is not rung for nobody. A failure is only
/// logged: the leg then finds the caller's queue empty and ends by itself.
async fn end_unwanted_leg(ctx: &JobContext, call: &WaitingCall, leg_sid: &str) {
    tracing::info!(call_sid = %call.call_sid, leg_sid, "the caller is gone: ending the agent's leg");
    let ended = match ctx.ports.telephony() {
        Ok(telephony) => telephony.end_call(call.provider, leg_sid).await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = ended {
        tracing::warn!(call_sid = %call.call_sid, leg_sid, error = crate::phone::mask_in_text(&error), "could not end the agent's leg");
    }
}

/// The agent's leg: it rings the agent and, answered, dequeues the caller.
fn agent_leg(call: &WaitingCall, attempt: &Attempt) -> Result<OutboundCall, JobError> {
    let our_number = call.to_number.clone().ok_or_else(|| JobError::permanent("the call has no To number"))?;
    Ok(OutboundCall {
        provider: Provider::Twilio,
        from: None,
        to: attempt.agent_phone.clone(),
        caller_id: our_number,
        twiml: Some(format!("<Response><Dial><Queue>{}</Queue></Dial></Response>", call.call_sid)),
        custom_field: None,
        status_callback: format!("{TWILIO_STATUS_PATH}?{BRIDGE_PARAM}={}", attempt.id),
        record: true,
    })
}

/// The agent leg was refused or certainly not placed: nothing rings, so the
/// agent's slot goes back and the caller waits again, routed afresh by this
/// job's retry (or a replay). An attempt already given up stays so.
async fn give_up(ctx: &JobContext, call_id: i64, attempt: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = ctx.pool.begin().await?;
    let current: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM calls WHERE id = $1 AND bridge_attempt_id = $2 AND routing_state = 'reserved' FOR UPDATE",
    )
    .bind(call_id)
    .bind(attempt)
    .fetch_optional(&mut *tx)
    .await?;
    if current.is_some() {
        back_in_line(&mut tx, call_id).await?;
    }
    tx.commit().await
}

async fn overflow(ctx: &JobContext, call_id: i64, call: &WaitingCall) -> Result<(), JobError> {
    ctx.ports.telephony()?.redirect_call(&call.call_sid, TWILIO_OVERFLOW_PATH).await?;
    sqlx::query(
        "UPDATE calls SET routing_state = 'overflowed', updated_at = now() WHERE id = $1 AND routing_state = 'overflowing'",
    )
    .bind(call_id)
    .execute(&ctx.pool)
    .await?;
    Ok(())
}
