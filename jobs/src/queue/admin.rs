//! The operator's view of `apalis.jobs`: list, show with every error, replay,
//! discard, stats, errors grouped by message and the workers holding jobs, in
//! the states operators reason in.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

/// A job's state as operators see it, derived from apalis's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run now.
    Pending,
    /// Waiting for a later `run_at` (first run or snoozed).
    Scheduled,
    /// Claimed by a worker.
    Running,
    /// Failed, with attempts left; runs again at `run_at`.
    Retrying,
    /// Out of attempts or failed permanently; kept until replayed or discarded.
    Dead,
    Done,
}

impl JobState {
    pub const ALL: [JobState; 6] =
        [Self::Pending, Self::Scheduled, Self::Running, Self::Retrying, Self::Dead, Self::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Done => "done",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| {
            format!("unknown state {s:?}; expected one of pending, scheduled, running, retrying, dead, done")
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    #[sqlx(try_from = "String")]
    pub state: StateName,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    pub last_error: Option<String>,
}

/// A state name read back from SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StateName(pub JobState);

impl TryFrom<String> for StateName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map(StateName)
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ErrorEntry {
    pub attempt: i32,
    pub outcome: String,
    pub message: String,
    pub at: DateTime<Utc>,
    /// The worker that ran the failed run (none for an operator's replay).
    pub worker: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub payload: serde_json::Value,
    pub errors: Vec<ErrorEntry>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Only jobs whose last activity (finish, or planned run) is this recent.
    pub since: Option<Duration>,
    /// Only jobs whose last error is exactly this message (a group of [`errors`]).
    pub error: Option<String>,
    pub limit: i64,
}

#[derive(sqlx::FromRow)]
struct SummaryWithPayload {
    #[sqlx(flatten)]
    summary: JobSummary,
    job: Vec<u8>,
}

pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<JobSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, state, attempts, max_attempts, run_at, done_at, worker, last_error FROM job_overview
         WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2)
           AND ($3::float8 IS NULL OR COALESCE(done_at, run_at) >= now() - make_interval(secs => $3))
           AND ($5::text IS NULL OR last_error = $5)
         ORDER BY COALESCE(done_at, run_at) DESC, id DESC LIMIT $4",
    )
    .bind(filter.state.map(JobState::as_str))
    .bind(&filter.kind)
    .bind(filter.since.map(|d| d.as_secs_f64()))
    .bind(filter.limit)
    .bind(&filter.error)
    .fetch_all(pool)
    .await
}

pub async fn show(pool: &PgPool, id: &str) -> Result<Option<JobDetail>, sqlx::Error> {
    let row = sqlx::query_as::<_, SummaryWithPayload>(
        "SELECT id, kind, state, attempts, max_attempts, run_at, done_at, worker, last_error, job FROM job_overview WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(SummaryWithPayload { summary, job: payload }) = row else {
        return Ok(None);
    };
    let payload = serde_json::from_slice(&payload)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&payload).into_owned()));
    let errors = sqlx::query_as(
        "SELECT attempt, outcome, message, at, worker FROM job_errors WHERE job_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some(JobDetail { summary, payload, errors }))
}

/// Ids of the jobs matching a filter (for bulk replay).
pub async fn matching_ids(pool: &PgPool, filter: &ListFilter) -> Result<Vec<String>, sqlx::Error> {
    Ok(list(pool, filter).await?.into_iter().map(|j| j.id).collect())
}

/// Back to pending now with attempts reset, for every listed job not running.
/// Returns the jobs as they were before, for the ones that changed.
pub async fn replay(pool: &PgPool, ids: &[String]) -> Result<Vec<JobSummary>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let before: Vec<JobSummary> = sqlx::query_as(
        "SELECT id, kind, state, attempts, max_attempts, run_at, done_at, worker, last_error FROM job_overview
         WHERE id IN (SELECT id FROM apalis.jobs WHERE id = ANY($1) AND status NOT IN ('Queued', 'Running') FOR UPDATE)",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    let changed: Vec<&str> = before.iter().map(|j| j.id.as_str()).collect();
    sqlx::query(
        "WITH replayed AS (
            UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(), lock_by = NULL,
                   lock_at = NULL, done_at = NULL, last_result = NULL
            WHERE id = ANY($1) RETURNING id, job_type)
         INSERT INTO job_errors (job_id, attempt, outcome, message)
         SELECT id, 0, 'replayed', 'replayed by an operator' FROM replayed",
    )
    .bind(&changed)
    .execute(&mut *tx)
    .await?;
    // NOTIFY fires on insert only: wake the workers ourselves.
    sqlx::query(
        "SELECT pg_notify('apalis::job::insert', json_build_object('job_type', job_type, 'id', min(id))::text)
         FROM apalis.jobs WHERE id = ANY($1) GROUP BY job_type",
    )
    .bind(&changed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(before)
}

/// Deletes the listed jobs unless running; returns the ids deleted.
pub async fn discard(pool: &PgPool, ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM apalis.jobs WHERE id = ANY($1) AND status NOT IN ('Queued', 'Running') RETURNING id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct KindStateCount {
    pub kind: String,
    pub state: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub counts: Vec<KindStateCount>,
    pub oldest_pending_age_s: Option<f64>,
    pub finished_last_5m: i64,
}

pub async fn stats(pool: &PgPool) -> Result<Stats, sqlx::Error> {
    let counts = sqlx::query_as("SELECT kind, state, count(*) AS count FROM job_overview GROUP BY 1, 2 ORDER BY 1, 2")
        .fetch_all(pool)
        .await?;
    let (oldest_pending_age_s, finished_last_5m): (Option<f64>, i64) = sqlx::query_as(
        "SELECT (SELECT extract(epoch FROM now() - min(run_at))::float8 FROM apalis.jobs
                 WHERE status = 'Pending' AND run_at <= now()),
                (SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND done_at > now() - interval '5 minutes')",
    )
    .fetch_one(pool)
    .await?;
    Ok(Stats { counts, oldest_pending_age_s, finished_last_5m })
}

/// The listed jobs that exist, in the same shape as [`list`].
pub async fn list_by_ids(pool: &PgPool, ids: &[String]) -> Result<Vec<JobSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, kind, state, attempts, max_attempts, run_at, done_at, worker, last_error FROM job_overview
         WHERE id = ANY($1) AND state <> 'running' ORDER BY id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Failing jobs (dead or retrying) that share a kind, a state and a last error.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ErrorGroup {
    pub kind: String,
    #[sqlx(try_from = "String")]
    pub state: StateName,
    pub message: String,
    pub count: i64,
    /// One job of the group, to `show`.
    pub sample_id: String,
    /// When the newest job of the group last failed.
    pub last_at: Option<DateTime<Utc>>,
}

/// Dead and retrying jobs grouped by kind, state and last error, biggest group first.
pub async fn errors(pool: &PgPool) -> Result<Vec<ErrorGroup>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, state, COALESCE(last_error, '(no error recorded)') AS message, count(*) AS count,
                max(id) AS sample_id, max(done_at) AS last_at
         FROM job_overview WHERE state IN ('dead', 'retrying')
         GROUP BY 1, 2, 3 ORDER BY count(*) DESC, max(done_at) DESC NULLS LAST, 1, 2, 3",
    )
    .fetch_all(pool)
    .await
}

/// One apalis worker (a kind's fetcher in one process) and the jobs it holds now.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct WorkerInfo {
    pub name: String,
    pub kind: String,
    pub last_seen: DateTime<Utc>,
    /// Seen within the liveness window: its heartbeat is still beating.
    pub alive: bool,
    /// Ids of the jobs it has claimed (queued in its batch, or running).
    pub holding: Vec<String>,
}

/// Workers seen within the last `window` (live ones, newest first), with what
/// they hold; older ones are kept out, except when they still hold jobs (an
/// orphan waiting for recovery).
pub async fn workers(pool: &PgPool, window: Duration) -> Result<Vec<WorkerInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.id AS name, w.worker_type AS kind, w.last_seen,
                w.last_seen >= now() - make_interval(secs => $1) AS alive,
                COALESCE(array_agg(j.id ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL), '{}') AS holding
         FROM apalis.workers w
         LEFT JOIN apalis.jobs j ON j.lock_by = w.id AND j.status IN ('Queued', 'Running')
         GROUP BY w.id, w.worker_type, w.last_seen
         HAVING w.last_seen >= now() - make_interval(secs => $1) OR count(j.id) > 0
         ORDER BY w.last_seen DESC, w.id",
    )
    .bind(window.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Pauses `kind`: its jobs wait, none is claimed, until [`resume`]. Jobs
/// already running finish. Returns false if it was paused already.
pub async fn pause(pool: &PgPool, kind: &str) -> Result<bool, sqlx::Error> {
    let paused = sqlx::query("INSERT INTO paused_kinds (kind) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(kind)
        .execute(pool)
        .await?;
    Ok(paused.rows_affected() == 1)
}

/// Resumes `kind` and wakes its workers. Returns false if it was not paused.
pub async fn resume(pool: &PgPool, kind: &str) -> Result<bool, sqlx::Error> {
    let resumed: Option<String> = sqlx::query_scalar(
        "WITH resumed AS (DELETE FROM paused_kinds WHERE kind = $1 RETURNING kind)
         SELECT kind FROM resumed, LATERAL (SELECT pg_notify('apalis::job::insert',
             json_build_object('job_type', kind)::text)) woken",
    )
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    Ok(resumed.is_some())
}

/// The paused kinds, with when each was paused.
pub async fn paused(pool: &PgPool) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as("SELECT kind, paused_at FROM paused_kinds ORDER BY kind").fetch_all(pool).await
}
