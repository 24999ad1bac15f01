//! `route-call`: find the waiting caller an agent by the department's
//! strategy, reserve the agent's slot, and bridge them (Twilio: the agent is
//! called and dequeues the caller). Nobody free: look again shortly, until the
//! department's max wait, then its overflow action (`callback` schedules an
//! outbound service call back to the caller).
//!
//! Idempotent by the call's `routing_state`: a second run continues where the
//! first stopped (a reserved agent is bridged, an overflow is finished) and
//! does nothing once the call is bridged, overflowed or over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::calls::{self, CallStatus};
use crate::outbound;
use crate::ports::{OutboundCall, PortError, Provider};
use crate::queue::{self, EnqueueOptions, Job, JobContext, JobError, RetryPolicy};
use crate::routing::{self, Department};

/// How often a waiting call looks for a free agent again.
pub(crate) const LOOK_AGAIN_EVERY: Duration = Duration::from_secs(2);

/// Where the status of bridged agent legs is reported (joined to the public base URL).
pub const TWILIO_STATUS_PATH: &str = "/webhooks/twilio/status";
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

/// The agent leg `bridge_call_sid` ended unanswered (busy, no-answer, failed,
/// canceled): free that agent and route the caller, still queued, afresh.
pub async fn after_missed_bridge(
    conn: &mut PgConnection,
    provider: Provider,
    bridge_call_sid: &str,
) -> Result<(), sqlx::Error> {
    let missed: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM calls
         WHERE provider = $1 AND bridge_call_sid = $2 AND routing_state = 'bridged' AND ended_at IS NULL
         FOR UPDATE",
    )
    .bind(provider)
    .bind(bridge_call_sid)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(call_id) = missed else { return Ok(()) };
    calls::release_agent(conn, call_id).await?;
    let reroutes: i32 = sqlx::query_scalar(
        "UPDATE calls SET routing_state = 'waiting', agent_id = NULL, agent_released_at = NULL, bridge_call_sid = NULL,
            reroutes = reroutes + 1, updated_at = now()
         WHERE id = $1 RETURNING reroutes",
    )
    .bind(call_id)
    .fetch_one(&mut *conn)
    .await?;
    enqueue(conn, call_id, reroutes).await
}

#[derive(Debug, sqlx::FromRow)]
struct WaitingCall {
    provider: Provider,
    call_sid: String,
    to_number: Option<String>,
    status: String,
    routing_state: String,
    agent_phone: Option<String>,
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

/// What to do once the routing decision is committed.
enum Next {
    Done,
    LookAgainAt(DateTime<Utc>),
    Bridge { agent_phone: String },
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
        let next = decide(&mut tx, self.call_id, &call).await?;
        tx.commit().await?;
        match next {
            Next::Done => Ok(()),
            Next::LookAgainAt(at) => Err(JobError::snooze(at, "no agent free")),
            Next::Bridge { agent_phone } => bridge(&ctx, self.call_id, &call, agent_phone).await,
            Next::Overflow => overflow(&ctx, self.call_id, &call).await,
        }
    }
}

async fn load(conn: &mut PgConnection, call_id: i64) -> Result<Option<WaitingCall>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.provider, c.call_sid, c.to_number, c.status, c.routing_state, a.phone AS agent_phone,
                COALESCE(c.queued_at, c.created_at) AS queued_at,
                d.id AS department_id, d.strategy, d.required_skills, d.max_wait_secs
         FROM calls c
         JOIN departments d ON d.id = c.department_id
         LEFT JOIN agents a ON a.id = c.agent_id
         WHERE c.id = $1
         FOR UPDATE OF c",
    )
    .bind(call_id)
    .fetch_optional(conn)
    .await
}

/// What the locked call row's routing state calls for.
async fn decide(conn: &mut PgConnection, call_id: i64, call: &WaitingCall) -> Result<Next, JobError> {
    if call.is_over() {
        return Ok(Next::Done);
    }
    match (call.routing_state.as_str(), &call.agent_phone) {
        ("waiting", _) => route_waiting(conn, call_id, call).await,
        ("reserved", Some(phone)) => Ok(Next::Bridge { agent_phone: phone.clone() }),
        // The reserved agent was deleted meanwhile: route afresh.
        ("reserved", None) => route_waiting(conn, call_id, call).await,
        ("overflowing", _) => Ok(Next::Overflow),
        _ => Ok(Next::Done),
    }
}

/// Reserves an agent, or moves towards overflow once the wait is over.
async fn route_waiting(conn: &mut PgConnection, call_id: i64, call: &WaitingCall) -> Result<Next, JobError> {
    // Exotel dials the agent itself once the Connect endpoint answers with them.
    let (reserved_state, overflow_state) = match call.provider {
        Provider::Twilio => ("reserved", "overflowing"),
        Provider::Exotel => ("bridged", "overflowed"),
    };
    if let Some(agent) = routing::reserve(conn, &call.department()?).await? {
        set_state(conn, call_id, reserved_state, Some(agent.id)).await?;
        tracing::info!(call_sid = %call.call_sid, agent_id = agent.id, "agent reserved");
        return Ok(match call.provider {
            Provider::Twilio => Next::Bridge { agent_phone: agent.phone },
            Provider::Exotel => Next::Done,
        });
    }
    let now = Utc::now();
    if now >= call.wait_ends() {
        set_state(conn, call_id, overflow_state, None).await?;
        tracing::info!(call_sid = %call.call_sid, max_wait_secs = call.max_wait_secs, "nobody free in time: overflow");
        outbound::callback::schedule_overflow_callback(conn, call_id, now).await?;
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

/// Calls the reserved agent; answering, they dequeue the caller (the queue is
/// named after the caller's CallSid, so they get exactly this caller).
async fn bridge(ctx: &JobContext, call_id: i64, call: &WaitingCall, agent_phone: String) -> Result<(), JobError> {
    let our_number = call.to_number.clone().ok_or_else(|| JobError::permanent("the call has no To number"))?;
    let agent_leg = OutboundCall {
        provider: Provider::Twilio,
        from: None,
        to: agent_phone,
        caller_id: our_number,
        twiml: Some(format!("<Response><Dial><Queue>{}</Queue></Dial></Response>", call.call_sid)),
        custom_field: None,
        status_callback: TWILIO_STATUS_PATH.to_owned(),
        record: true,
    };
    match ctx.ports.telephony()?.place_call(&agent_leg).await {
        Ok(placed) => {
            sqlx::query(
                "UPDATE calls SET routing_state = 'bridged', bridge_call_sid = $2, updated_at = now()
                 WHERE id = $1 AND routing_state = 'reserved'",
            )
            .bind(call_id)
            .bind(&placed.call_sid)
            .execute(&ctx.pool)
            .await?;
            Ok(())
        }
        Err(error @ PortError::Permanent { .. }) => {
            back_to_waiting(ctx, call_id).await?;
            Err(error.into())
        }
        Err(error) => Err(error.into()),
    }
}

/// The agent could not be called: free their slot and put the caller back in
/// line, so a replay of this job routes the call afresh.
async fn back_to_waiting(ctx: &JobContext, call_id: i64) -> Result<(), sqlx::Error> {
    let mut tx = ctx.pool.begin().await?;
    calls::release_agent(&mut tx, call_id).await?;
    sqlx::query(
        "UPDATE calls SET routing_state = 'waiting', agent_id = NULL, agent_released_at = NULL, updated_at = now()
         WHERE id = $1 AND routing_state = 'reserved'",
    )
    .bind(call_id)
    .execute(&mut *tx)
    .await?;
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
