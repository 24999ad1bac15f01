//! Who an attempt of a scheduled call dials: the named agent, or the
//! department's next agent by its strategy, with one of their slots reserved in
//! the caller's transaction (the one that records the attempt) exactly as
//! inbound routing does; or a plain `agent_phone`, which holds no slot. Nobody
//! free: the attempt waits, up to the department's max wait counted from the
//! first time it found nobody (`agent_wait_started_at`, owned here).

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;

use super::ScheduledCall;
use crate::routing::{self, Department, ReservedAgent};

/// How long a named agent outside any department is waited for (a department's default max wait).
const DEFAULT_MAX_WAIT_SECS: i32 = 120;

/// Whom the attempt reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A number outside the agents table (`agent_phone`): no slot to hold.
    Number(String),
    /// An agent whose slot is now held for this attempt.
    Agent(ReservedAgent),
    /// Nobody is free yet; the wait for one ends at this instant.
    WaitUntil(DateTime<Utc>),
    /// Nobody became free within the max wait (seconds).
    NobodyFreeWithin(i32),
    /// The call's agent or department no longer exists.
    Nobody,
}

/// Reserves whom `call`'s attempt at `now` dials, or records that it waits.
pub async fn reach(conn: &mut PgConnection, call: &ScheduledCall, now: DateTime<Utc>) -> Result<Reach, sqlx::Error> {
    let (reserved, max_wait_secs) = if let Some(agent_id) = call.agent_id {
        let max_wait: Option<i32> = sqlx::query_scalar(
            "SELECT COALESCE(d.max_wait_secs, $2) FROM agents a LEFT JOIN departments d ON d.id = a.department_id
             WHERE a.id = $1",
        )
        .bind(agent_id)
        .bind(DEFAULT_MAX_WAIT_SECS)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(max_wait) = max_wait else { return Ok(Reach::Nobody) };
        (routing::reserve_agent(conn, agent_id).await?, max_wait)
    } else if let Some(department_id) = call.department_id {
        let found: Option<(String, Vec<String>, i32)> =
            sqlx::query_as("SELECT strategy, required_skills, max_wait_secs FROM departments WHERE id = $1")
                .bind(department_id)
                .fetch_optional(&mut *conn)
                .await?;
        let Some((strategy, required_skills, max_wait)) = found else { return Ok(Reach::Nobody) };
        let strategy = strategy.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?;
        let department = Department { id: department_id, strategy, required_skills };
        (routing::reserve(conn, &department).await?, max_wait)
    } else if let Some(phone) = &call.agent_phone {
        return Ok(Reach::Number(phone.clone()));
    } else {
        return Ok(Reach::Nobody);
    };
    let since = call.agent_wait_started_at.unwrap_or(now);
    let wait_ends = since + TimeDelta::seconds(max_wait_secs.into());
    let (reach, waiting_since) = match reserved {
        Some(agent) => (Reach::Agent(agent), None),
        None if now >= wait_ends => (Reach::NobodyFreeWithin(max_wait_secs), None),
        None => (Reach::WaitUntil(wait_ends), Some(since)),
    };
    if waiting_since != call.agent_wait_started_at {
        sqlx::query("UPDATE scheduled_calls SET agent_wait_started_at = $2, updated_at = now() WHERE id = $1")
            .bind(call.id)
            .bind(waiting_since)
            .execute(conn)
            .await?;
    }
    Ok(reach)
}
