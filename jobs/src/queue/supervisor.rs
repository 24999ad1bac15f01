//! Runs the workers of a process until asked to stop: one generation at a
//! time (an apalis Monitor with a fetcher and a service per kind, its own
//! liveness task and outbox), drained on shutdown within the grace period,
//! its last outcomes stored and whatever it still held handed back. A
//! generation that dies is replaced under a fresh name, with backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis_core::monitor::Monitor;
use backoff::backoff::Backoff;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::{Notify, watch};

use super::claim::Held;
use super::liveness::{self, Names};
use super::outcome::Outbox;
use super::registry::{QueueSettings, Registry, WorkerSetup};
use super::wakeup::Wakeups;
use super::{names, prune};
use crate::ports::Ports;

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub queues: QueueSettings,
    /// How long running jobs may take to finish after a stop was asked.
    pub shutdown_grace: Duration,
    pub pruning: prune::PruneSchedule,
}

/// The connections a worker process uses.
#[derive(Debug, Clone)]
pub struct QueuePools {
    /// What handlers read and write (may go through PgBouncer).
    pub handlers: PgPool,
    /// The queue's own traffic: claims, outcomes, heartbeats, pruning. A
    /// direct connection: these are short statements, never prepared twice
    /// by name through a pooler.
    pub queue: PgPool,
    /// Where the LISTEN connection goes (a direct one; PgBouncer in
    /// transaction mode cannot LISTEN); `None` polls only.
    pub listen: Option<PgConnectOptions>,
}

/// The size of the queue's own pool: claims and outcome writes of every kind
/// share it (each a single short statement), plus a heartbeat.
pub const QUEUE_POOL_CONNECTIONS: u32 = 2;

impl QueuePools {
    /// Every role on the database `pool` connects to: the handlers on `pool`
    /// itself, the queue on a small pool of its own, LISTEN on one more.
    pub fn sharing(pool: &PgPool) -> Self {
        let options = pool.connect_options().as_ref().clone();
        Self { handlers: pool.clone(), queue: queue_pool(options.clone()), listen: Some(options) }
    }
}

/// The queue's own pool on `options` (see [`QueuePools::queue`]).
///
/// Its statements run with generic plans: planning the claim statement
/// afresh for its parameters (PostgreSQL's choice for it) took 0.75-1.3 ms
/// of each claim's 1.1-1.8 ms on an idle worker, and their plans do not
/// depend on the values (every filter is an index's own predicate or key).
pub fn queue_pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(QUEUE_POOL_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.options([("plan_cache_mode", "force_generic_plan")]))
}

/// How long, after the drain, the last outcomes may take to be stored.
const LAST_OUTCOMES_DEADLINE: Duration = Duration::from_secs(3);

/// Runs `registry`'s kinds until `stop` resolves, then drains and returns.
pub async fn run(
    pools: QueuePools,
    registry: Registry,
    ports: Arc<Ports>,
    config: SupervisorConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    let wakeups = Wakeups::default();
    let listener = pools.listen.clone().map(|options| tokio::spawn(wakeups.clone().listen(options)));
    let pruner = tokio::spawn(prune::run_on_schedule(pools.queue.clone(), config.pruning.clone()));
    let mut restart_backoff = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(250),
        max_interval: Duration::from_secs(15),
        max_elapsed_time: None,
        ..Default::default()
    };

    loop {
        let started = tokio::time::Instant::now();
        run_generation(&pools, &registry, &ports, &config, &wakeups, stop_rx.clone()).await;
        if *stop_rx.borrow() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            restart_backoff.reset();
        }
        let wait = restart_backoff.next_backoff().unwrap_or(Duration::from_secs(15));
        tracing::info!(restart_in_ms = wait.as_millis() as u64, "restarting workers");
        if stopped_within(stop_rx.clone(), wait).await {
            break;
        }
    }
    if let Some(listener) = listener {
        listener.abort();
    }
    pruner.abort();
    tracing::info!("workers stopped");
}

/// One generation, from registering its workers to handing back what it held.
async fn run_generation(
    pools: &QueuePools,
    registry: &Registry,
    ports: &Arc<Ports>,
    config: &SupervisorConfig,
    wakeups: &Wakeups,
    stop_rx: watch::Receiver<bool>,
) {
    let setup = WorkerSetup {
        pool: pools.handlers.clone(),
        queue_pool: pools.queue.clone(),
        ports: ports.clone(),
        settings: config.queues.clone(),
        wakeups: wakeups.clone(),
        name: names::unique_worker_name(),
        held: Held::default(),
        outbox: Outbox::default(),
    };
    let kinds: Vec<String> = registry.kinds().map(str::to_owned).collect();
    let names = Names { workers: kinds.iter().map(|kind| setup.worker_name(kind)).collect(), kinds };
    let registered = tokio::select! {
        registered = liveness::register(&pools.queue, &names) => registered,
        _ = stopped(stop_rx.clone()) => return,
    };
    if let Err(error) = registered {
        tracing::warn!(%error, "could not register the workers");
        return;
    }
    tracing::info!(worker = %setup.name, queues = ?names.kinds, "starting workers");
    let heartbeat = config.queues.heartbeat_interval;
    let _liveness =
        liveness::spawn(pools.queue.clone(), names.clone(), setup.held.clone(), heartbeat, config.queues.dead_after());
    let outcomes_done = Arc::new(Notify::new());
    let storer = tokio::spawn(setup.outbox.clone().store_until_stopped(
        pools.queue.clone(),
        setup.held.clone(),
        outcomes_done.clone(),
    ));

    let worker_died = Arc::new(Notify::new());
    let monitor = registry.monitor(&setup, Monitor::new()).shutdown_timeout(config.shutdown_grace).should_restart({
        let worker_died = worker_died.clone();
        move |ctx, error| {
            tracing::error!(worker = ctx.name(), %error, "worker stopped on an error; restarting all workers");
            worker_died.notify_one();
            false
        }
    });
    let stop_or_death = async move {
        tokio::select! { _ = stopped(stop_rx) => {}, _ = worker_died.notified() => {} }
        Ok(())
    };
    if let Err(e) = monitor.run_with_signal(stop_or_death).await {
        tracing::warn!(error = %e, "workers ended with errors");
    }
    outcomes_done.notify_one();
    if tokio::time::timeout(LAST_OUTCOMES_DEADLINE, storer).await.is_err() {
        tracing::warn!("could not store the last job outcomes in time; their jobs go back to the queue");
    }
    liveness::hand_back_all(&pools.queue, &names).await;
}

/// Resolves once a stop was asked.
async fn stopped(mut stop_rx: watch::Receiver<bool>) {
    let _ = stop_rx.wait_for(|stop| *stop).await;
}

/// Waits `wait`; true if a stop was asked meanwhile.
async fn stopped_within(stop_rx: watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stopped(stop_rx) => true,
    }
}
