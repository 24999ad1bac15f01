//! Agent selection: pick the department's next agent by its strategy (or take
//! a named agent) and reserve one of their call slots in the same statement, so
//! routers running in parallel never put an agent over `max_concurrent_calls`.

use std::str::FromStr;

use sqlx::PgConnection;

/// How a department picks among its available agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Fair turns: the available agent assigned least recently.
    RoundRobin,
    /// The lowest load relative to the agent's maximum.
    LeastBusy,
    /// Agents holding every required skill, then the least busy of them.
    SkillBased,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastBusy => "least_busy",
            Self::SkillBased => "skill_based",
        }
    }

    /// The candidate ordering; ties go to the agent waiting longest, then the oldest agent.
    fn order_by(self) -> &'static str {
        match self {
            Self::RoundRobin => "last_assigned_at ASC NULLS FIRST, id",
            Self::LeastBusy | Self::SkillBased => {
                "current_calls::numeric / max_concurrent_calls, last_assigned_at ASC NULLS FIRST, id"
            }
        }
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "round_robin" => Ok(Self::RoundRobin),
            "least_busy" => Ok(Self::LeastBusy),
            "skill_based" => Ok(Self::SkillBased),
            other => Err(format!("unknown strategy {other:?} (round_robin, least_busy, skill_based)")),
        }
    }
}

/// The department facts routing needs.
#[derive(Debug, Clone)]
pub struct Department {
    pub id: i64,
    pub strategy: Strategy,
    pub required_skills: Vec<String>,
}

/// An agent with one slot reserved for the caller's call.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReservedAgent {
    pub id: i64,
    pub phone: String,
}

/// Chooses an available agent of `department` with a free slot and takes the
/// slot. Rows another router holds are skipped, not waited for. `None`: nobody free.
pub async fn reserve(conn: &mut PgConnection, department: &Department) -> Result<Option<ReservedAgent>, sqlx::Error> {
    let skills: &[String] = if department.strategy == Strategy::SkillBased { &department.required_skills } else { &[] };
    let sql = format!(
        "WITH chosen AS (
            SELECT id FROM agents
            WHERE department_id = $1 AND status = 'available' AND current_calls < max_concurrent_calls
              AND skills @> $2::text[]
            ORDER BY {}
            LIMIT 1
            FOR UPDATE SKIP LOCKED)
         UPDATE agents SET current_calls = current_calls + 1, last_assigned_at = clock_timestamp(), updated_at = now()
         FROM chosen WHERE agents.id = chosen.id
         RETURNING agents.id, agents.phone",
        department.strategy.order_by()
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(department.id).bind(skills).fetch_optional(conn).await
}

/// Takes a slot of agent `agent_id` when they are available with one free;
/// `None` when they are not (or another router holds their row right now).
pub async fn reserve_agent(conn: &mut PgConnection, agent_id: i64) -> Result<Option<ReservedAgent>, sqlx::Error> {
    sqlx::query_as(
        "WITH chosen AS (
            SELECT id FROM agents
            WHERE id = $1 AND status = 'available' AND current_calls < max_concurrent_calls
            FOR UPDATE SKIP LOCKED)
         UPDATE agents SET current_calls = current_calls + 1, last_assigned_at = clock_timestamp(), updated_at = now()
         FROM chosen WHERE agents.id = chosen.id
         RETURNING agents.id, agents.phone",
    )
    .bind(agent_id)
    .fetch_optional(conn)
    .await
}

/// Gives back a slot taken by [`reserve`] or [`reserve_agent`] for a call that
/// never reached the provider (no `calls` row holds it).
pub async fn unreserve(conn: &mut PgConnection, agent_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE agents SET current_calls = GREATEST(current_calls - 1, 0), updated_at = now() WHERE id = $1")
        .bind(agent_id)
        .execute(conn)
        .await?;
    Ok(())
}
