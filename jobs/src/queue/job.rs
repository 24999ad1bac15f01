//! The contract a job kind fulfils: a payload of ids, a stable kind string, a
//! retry policy and a handler.

use std::future::Future;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use sqlx::PgPool;

use super::{JobError, RetryPolicy};
use crate::ports::Ports;

/// One kind of background work. The payload carries ids, not data: the
/// handler loads what it needs, so a replay after a fix sees the current state.
/// Handlers must be safe to run twice: delivery is at least once.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name stored with every job (`"fetch-recording"`); never rename it.
    const KIND: &'static str;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    fn run(self, ctx: JobContext) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// What a running handler can see: the database, the outside world through
/// ports, and which run of which job this is.
#[derive(Clone)]
pub struct JobContext {
    pub pool: PgPool,
    pub ports: Arc<Ports>,
    pub job_id: String,
    /// 1 for the first run.
    pub attempt: u32,
    pub max_attempts: u32,
}

impl JobContext {
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}
