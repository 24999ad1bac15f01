//! Our job queue on apalis and apalis-postgres's schema: enqueue inside the
//! caller's transaction; claims fenced by a token and sized to free slots
//! (one round trip ahead for fast jobs); liveness independent of apalis's
//! poll loop; outcomes stored in batches by the next claim's statement
//! (durable backoff, dead jobs, snooze, rate limits); prompt pickup;
//! pruning; and the operator queries behind `switchboard jobs`.
//! The design is in docs/queue.md.

pub mod admin;
mod claim;
mod enqueue;
mod error;
#[cfg(test)]
mod fencing_tests;
mod fetcher;
mod job;
mod liveness;
mod names;
mod next;
mod outcome;
mod pace;
mod policy;
pub mod prune;
mod registry;
mod service;
mod supervisor;
mod wakeup;

pub use enqueue::{EnqueueOptions, enqueue, enqueue_many, enqueue_with};
pub use error::{JobError, ResultExt};
pub use job::{Job, JobContext};
pub use policy::RetryPolicy;
pub use registry::{QueueLimits, QueueSettings, Registry};
pub use supervisor::{QUEUE_POOL_CONNECTIONS, QueuePools, SupervisorConfig, queue_pool, run};
