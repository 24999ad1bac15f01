//! The list of job kinds a worker can run, and how one kind becomes an apalis
//! worker (backend config, wakeups, concurrency, our service).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::ext::poll_strategy::{PollWith, StreamStrategy};
use apalis_core::monitor::Monitor;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_postgres::{Config, PostgresStorage};
use sqlx::PgPool;

use super::Job;
use super::service::JobService;
use super::wakeup::Wakeups;
use crate::ports::Ports;

/// Batch size and concurrency of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Jobs claimed per fetch.
    pub batch_size: usize,
    /// Jobs running at once in this process.
    pub concurrency: usize,
    /// apalis workers for this queue in this process, each claiming and
    /// acknowledging its own batches, so that their round trips to the
    /// database overlap; the concurrency is shared out among them.
    pub fetchers: usize,
}

impl QueueLimits {
    /// How many jobs each of the fetchers runs at once.
    fn concurrency_per_fetcher(&self) -> usize {
        self.concurrency.div_ceil(self.fetchers.max(1)).max(1)
    }
}

/// How every queue of a worker process polls and heartbeats.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub poll_interval: Duration,
    pub heartbeat_interval: Duration,
    /// A worker silent for `heartbeat_interval * missed_heartbeats` is dead and
    /// its jobs are handed to others.
    pub missed_heartbeats: usize,
    pub defaults: QueueLimits,
    pub per_kind: HashMap<String, QueueLimits>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 3,
            defaults: QueueLimits { batch_size: 20, concurrency: 10, fetchers: 1 },
            per_kind: HashMap::new(),
        }
    }
}

impl QueueSettings {
    pub fn limits(&self, kind: &str) -> QueueLimits {
        self.per_kind.get(kind).copied().unwrap_or(self.defaults)
    }
}

/// Everything one generation of workers is built from.
#[derive(Clone)]
pub struct WorkerSetup {
    /// The handlers' pool: their own writes, and the decisions on failed runs.
    pub pool: PgPool,
    /// apalis's own traffic: claims, acknowledgements, heartbeats (see [`queue_pool`]).
    pub queue_pool: PgPool,
    pub ports: Arc<Ports>,
    pub settings: QueueSettings,
    pub wakeups: Wakeups,
    /// Unique per process and generation; each kind's worker is `{name}:{kind}`.
    pub name: String,
}

impl WorkerSetup {
    /// `{name}:{kind}`, and `{name}:{kind}:{n}` for a queue's further fetchers.
    pub fn worker_name(&self, kind: &str, fetcher: usize) -> String {
        match fetcher {
            0 => format!("{}:{kind}", self.name),
            n => format!("{}:{kind}:{n}", self.name),
        }
    }

    /// Every worker name this generation runs.
    pub fn worker_names<'a>(&self, kinds: impl Iterator<Item = &'a str>) -> Vec<String> {
        kinds
            .flat_map(|kind| (0..self.settings.limits(kind).fetchers).map(move |n| self.worker_name(kind, n)))
            .collect()
    }
}

/// A pool of its own for apalis's claims, acknowledgements and heartbeats,
/// one connection per fetcher (each sends one statement at a time) and a
/// spare: busy handlers can never starve a heartbeat into a false death.
///
/// Its commits do not wait for the disk (`synchronous_commit = off`): a claim
/// or an acknowledgement of a batch costs no fsync wait. A database crash can forget the last fraction of a second of them;
/// those jobs then run again, which at-least-once delivery allows (every
/// handler is safe to run twice, and what a handler writes goes through the
/// handlers' pool, durably, before its ack). A decision on a failed run is
/// stored durably too; a lost ack leaves the job claimed, and orphan
/// recovery applies the decision.
pub(crate) fn queue_pool(pool: &PgPool, fetchers: usize) -> PgPool {
    let options = pool.connect_options().as_ref().clone().options([("synchronous_commit", "off")]);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(fetchers as u32 + 1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .test_before_acquire(true)
        .connect_lazy_with(options)
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
    (0..setup.settings.limits(J::KIND).fetchers)
        .fold(monitor, |monitor, fetcher| register_fetcher::<J>(monitor, setup, fetcher))
}

fn register_fetcher<J: Job>(monitor: Monitor, setup: &WorkerSetup, fetcher: usize) -> Monitor {
    let setup = setup.clone();
    monitor.register(move |_| {
        let limits = setup.settings.limits(J::KIND);
        let name = setup.worker_name(J::KIND, fetcher);
        let config = Config::default()
            .queue(J::KIND)
            .batch_size(limits.batch_size)
            .heartbeat_interval(setup.settings.heartbeat_interval)
            .missed_heartbeats(setup.settings.missed_heartbeats)
            .lock_tasks(false);
        let storage = PostgresStorage::<serde_json::Value>::new(&setup.queue_pool).with_config(config);
        let wakeups = setup.wakeups.subscribe(J::KIND, fetcher, setup.settings.poll_interval);
        let backend = PollWith::new(storage, StreamStrategy::new(wakeups));
        let concurrency = limits.concurrency_per_fetcher();
        WorkerBuilder::new(name.as_str()).backend(backend).concurrency(concurrency).build(JobService::<J>::new(
            setup.pool.clone(),
            setup.ports.clone(),
            &name,
        ))
    })
}
