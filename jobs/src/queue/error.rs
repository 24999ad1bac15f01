//! What a handler's failure means for its job: retry later, go dead now, or
//! come back at a given time without spending an attempt.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::PortError;

/// The outcome of a handler that did not finish its work.
#[derive(Debug)]
pub enum JobError {
    /// Try again after the kind's backoff, or after `retry_after` when the
    /// other side told us how long to wait (HTTP `Retry-After`): such waits
    /// are not attempts, up to the kind's `max_throttled_wait`.
    Retry { message: String, retry_after: Option<Duration> },
    /// Retrying cannot help (bad payload, a 4xx the caller must fix): dead now.
    Permanent { message: String },
    /// Not now: run again at `until`; the attempt is not counted.
    Snooze { until: DateTime<Utc>, reason: String },
}

impl JobError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self::Retry { message: message.into(), retry_after: None }
    }

    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        Self::Retry { message: message.into(), retry_after: Some(after) }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent { message: message.into() }
    }

    pub fn snooze(until: DateTime<Utc>, reason: impl Into<String>) -> Self {
        Self::Snooze { until, reason: reason.into() }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Retry { message, .. } | Self::Permanent { message } => message,
            Self::Snooze { reason, .. } => reason,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retry { message, retry_after: Some(after) } => {
                write!(f, "{message} (retry after {}s)", after.as_secs_f64())
            }
            Self::Retry { message, .. } => write!(f, "{message}"),
            Self::Permanent { message } => write!(f, "permanent: {message}"),
            Self::Snooze { until, reason } => write!(f, "snoozed until {until}: {reason}"),
        }
    }
}

impl std::error::Error for JobError {}

impl From<PortError> for JobError {
    fn from(error: PortError) -> Self {
        match error {
            PortError::Transient { message, retry_after: Some(after) } => JobError::retry_after(message, after),
            PortError::Transient { message, retry_after: None } => JobError::retry(message),
            // An expired link its caller could not refresh: retrying the same link cannot help.
            PortError::Permanent { message } | PortError::Expired { message } => JobError::permanent(message),
            // Callers whose request is not idempotent handle this case themselves.
            PortError::OutcomeUnknown { message } => JobError::retry(message),
        }
    }
}

/// How long a job waits when the handlers' pool had no connection for it.
const POOL_BUSY_WAIT: Duration = Duration::from_secs(2);

/// A database error is assumed to be transient: the job is retried. A pool
/// that had no free connection in time is our own rate limit: the job waits
/// a moment, not counted as an attempt (see `RetryPolicy::max_throttled_wait`).
impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut => Self::retry_after("database pool busy", POOL_BUSY_WAIT),
            error => Self::retry(format!("database: {error}")),
        }
    }
}

/// Says what happens next when a fallible call inside a handler fails:
/// `.retryable()?` or `.permanent()?`.
pub trait ResultExt<T> {
    fn retryable(self) -> Result<T, JobError>;
    fn permanent(self) -> Result<T, JobError>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn retryable(self) -> Result<T, JobError> {
        self.map_err(|e| JobError::retry(format!("{:#}", e.into())))
    }

    fn permanent(self) -> Result<T, JobError> {
        self.map_err(|e| JobError::permanent(format!("{:#}", e.into())))
    }
}
