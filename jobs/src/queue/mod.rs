//! Our job queue: apalis-postgres underneath, with what it lacks on top —
//! enqueue inside the caller's transaction, durable backoff and dead jobs,
//! snooze, prompt pickup, unique worker names and restarts, pruning, and the
//! operator queries behind `switchboard jobs`.

pub mod admin;
mod enqueue;
mod error;
mod job;
mod names;
mod policy;
pub mod prune;
mod registry;
mod service;
mod settle;
mod supervisor;
mod wakeup;

pub use enqueue::{EnqueueOptions, enqueue, enqueue_many, enqueue_with};
pub use error::{JobError, ResultExt};
pub use job::{Job, JobContext};
pub use policy::RetryPolicy;
pub use registry::{QueueLimits, QueueSettings, Registry};
pub use supervisor::{SupervisorConfig, run};
