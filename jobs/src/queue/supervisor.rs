//! Runs the workers of a process until asked to stop: one apalis Monitor per
//! generation, rebuilt under a fresh name with backoff when a worker dies
//! (the database went away), drained on shutdown within the grace period, and
//! whatever the drain left claimed handed back to the queue.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use apalis_core::monitor::Monitor;
use backoff::backoff::Backoff;
use sqlx::PgPool;
use tokio::sync::Notify;

use super::registry::{QueueSettings, Registry, WorkerSetup, queue_pool};
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

/// Runs `registry`'s kinds until `stop` resolves, then drains and returns.
pub async fn run(
    pool: PgPool,
    registry: Registry,
    ports: Arc<Ports>,
    config: SupervisorConfig,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let stop_requested = Arc::new(Notify::new());
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let (stop_requested, stopping) = (stop_requested.clone(), stopping.clone());
        async move {
            stop.await;
            stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            stop_requested.notify_waiters();
        }
    });
    let wakeups = Wakeups::default();
    let listener = tokio::spawn(wakeups.clone().listen(pool.clone()));
    let pruner = tokio::spawn(prune::run_on_schedule(pool.clone(), config.pruning.clone()));
    let fetchers = registry.kinds().map(|kind| config.queues.limits(kind).fetchers).sum();
    let queue_pool = queue_pool(&pool, fetchers);
    let mut restart_backoff = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(250),
        max_interval: Duration::from_secs(15),
        max_elapsed_time: None,
        ..Default::default()
    };

    loop {
        let setup = WorkerSetup {
            pool: pool.clone(),
            queue_pool: queue_pool.clone(),
            ports: ports.clone(),
            settings: config.queues.clone(),
            wakeups: wakeups.clone(),
            name: names::unique_worker_name(),
        };
        tracing::info!(worker = %setup.name, queues = ?registry.kinds().collect::<Vec<_>>(), "starting workers");
        let worker_died = Arc::new(Notify::new());
        let monitor =
            registry.monitor(&setup, Monitor::new()).shutdown_timeout(config.shutdown_grace).should_restart({
                let worker_died = worker_died.clone();
                move |ctx, error| {
                    tracing::error!(worker = ctx.name(), %error, "worker stopped on an error; restarting all workers");
                    worker_died.notify_one();
                    false
                }
            });
        let stop_or_death = {
            let (stop_requested, stopping) = (stop_requested.clone(), stopping.clone());
            async move {
                let stop = stop_requested.notified();
                if !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::select! { _ = stop => {}, _ = worker_died.notified() => {} }
                }
                Ok(())
            }
        };
        let started = tokio::time::Instant::now();
        if let Err(e) = monitor.run_with_signal(stop_or_death).await {
            tracing::warn!(error = %e, "workers ended with errors");
        }
        hand_back(&pool, &registry, &setup).await;
        if stopping.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            restart_backoff.reset();
        }
        let wait = restart_backoff.next_backoff().unwrap_or(Duration::from_secs(15));
        tracing::info!(restart_in_ms = wait.as_millis() as u64, "restarting workers");
        tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = stop_requested.notified() => break }
    }
    listener.abort();
    pruner.abort();
    queue_pool.close().await;
    tracing::info!("workers stopped");
}

/// Puts back to pending every job this generation still holds, so nothing
/// waits for the heartbeat timeout to run again. Best effort: if the database
/// is away, the other workers' heartbeats recover them.
async fn hand_back(pool: &PgPool, registry: &Registry, setup: &WorkerSetup) {
    let names = setup.worker_names(registry.kinds());
    let released = sqlx::query(
        "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL
         WHERE lock_by = ANY($1) AND status IN ('Queued', 'Running')",
    )
    .bind(&names)
    .execute(pool)
    .await;
    match released {
        Ok(done) if done.rows_affected() > 0 => {
            tracing::info!(jobs = done.rows_affected(), "handed unfinished jobs back to the queue")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not hand jobs back; heartbeat recovery will"),
    }
}
