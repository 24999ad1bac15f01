//! The list of job kinds a worker can run, and how one kind becomes an apalis
//! worker (our fetcher as its backend, its concurrency, our service).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::monitor::Monitor;
use apalis_core::worker::builder::WorkerBuilder;
use sqlx::PgPool;

use super::Job;
use super::claim::Held;
use super::fetcher::{Fetcher, FetcherSetup};
use super::outcome::Outbox;
use super::pace::Running;
use super::service::JobService;
use super::wakeup::Wakeups;
use crate::ports::Ports;

/// Batch size and concurrency of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// The most jobs claimed at once; beyond the free slots only for jobs
    /// that start within a claim's round trip (`pace`).
    pub batch_size: usize,
    /// Jobs running at once in this process.
    pub concurrency: usize,
}

/// How every queue of a worker process polls and heartbeats.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub poll_interval: Duration,
    pub heartbeat_interval: Duration,
    /// A worker silent for `heartbeat_interval * missed_heartbeats` is dead and
    /// its jobs are handed to others.
    pub missed_heartbeats: u32,
    pub defaults: QueueLimits,
    pub per_kind: HashMap<String, QueueLimits>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 3,
            defaults: QueueLimits { batch_size: 200, concurrency: 10 },
            per_kind: HashMap::new(),
        }
    }
}

impl QueueSettings {
    pub fn limits(&self, kind: &str) -> QueueLimits {
        self.per_kind.get(kind).copied().unwrap_or(self.defaults)
    }

    /// How long a worker may stay silent before it is taken for dead.
    pub fn dead_after(&self) -> Duration {
        self.heartbeat_interval * self.missed_heartbeats
    }
}

/// Everything one generation of workers is built from.
#[derive(Clone)]
pub(crate) struct WorkerSetup {
    /// The handlers' pool: what handlers read and write.
    pub pool: PgPool,
    /// The queue's own traffic: claims, outcomes, heartbeats.
    pub queue_pool: PgPool,
    pub ports: Arc<Ports>,
    pub settings: QueueSettings,
    pub wakeups: Wakeups,
    /// Unique per process and generation; each kind's worker is `{name}:{kind}`.
    pub name: String,
    pub held: Held,
    pub outbox: Outbox,
}

impl WorkerSetup {
    pub fn worker_name(&self, kind: &str) -> String {
        format!("{}:{kind}", self.name)
    }
}

type Register = fn(Monitor, &WorkerSetup) -> Monitor;

/// Job kinds by their stable names, in registration order.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<(&'static str, Register)>,
}

impl Registry {
    /// Adds a kind. Registering a kind name twice is a programming error.
    pub fn with<J: Job>(mut self) -> Self {
        assert!(!self.kinds.iter().any(|(name, _)| *name == J::KIND), "job kind {:?} registered twice", J::KIND);
        self.kinds.push((J::KIND, register::<J>));
        self
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.iter().map(|(name, _)| *name)
    }

    /// Keeps only the named kinds; an unknown name is an error naming the known ones.
    pub fn only(&self, names: &[String]) -> Result<Registry, String> {
        if let Some(unknown) = names.iter().find(|n| !self.kinds.iter().any(|(k, _)| k == n)) {
            let known: Vec<_> = self.kinds().collect();
            return Err(format!("unknown queue {unknown:?}; known queues: {}", known.join(", ")));
        }
        let kinds = self.kinds.iter().filter(|(k, _)| names.iter().any(|n| n == k)).copied().collect();
        Ok(Registry { kinds })
    }

    pub(crate) fn monitor(&self, setup: &WorkerSetup, monitor: Monitor) -> Monitor {
        self.kinds.iter().fold(monitor, |monitor, (_, register)| register(monitor, setup))
    }
}

fn register<J: Job>(monitor: Monitor, setup: &WorkerSetup) -> Monitor {
    let setup = setup.clone();
    monitor.register(move |_| {
        let limits = setup.settings.limits(J::KIND);
        let name = setup.worker_name(J::KIND);
        let running = Running::default();
        let fetcher = Fetcher::new(FetcherSetup {
            pool: setup.queue_pool.clone(),
            kind: J::KIND,
            worker: name.as_str().into(),
            batch_size: limits.batch_size,
            concurrency: limits.concurrency,
            poll_interval: setup.settings.poll_interval,
            running: running.clone(),
            held: setup.held.clone(),
            outbox: setup.outbox.clone(),
            wakeup: setup.wakeups.of(J::KIND),
        });
        let service = JobService::<J>::new(setup.pool.clone(), setup.ports.clone(), setup.outbox.clone(), running);
        WorkerBuilder::new(name.as_str()).backend(fetcher).concurrency(limits.concurrency).build(service)
    })
}
