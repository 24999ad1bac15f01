//! The queue benchmark, at the worker's defaults: enqueue rate (one job per
//! transaction, and bulk), processing rate with one worker process (with the
//! queue's commits synchronous, and not), and pickup latency on an idle
//! worker, optionally with a million finished jobs already in the table.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use switchboard_jobs::ports::Ports;
use switchboard_jobs::queue::{self, Job, JobContext, JobError, QueueLimits, QueuePools, Registry, SupervisorConfig};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Args)]
pub struct QueueBench {
    /// No-op jobs to process (and to enqueue in bulk).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs enqueued one per transaction.
    #[arg(long, default_value_t = 2_000)]
    single: usize,
    /// Jobs running at once in the worker (default: the worker's, `WORKER_CONCURRENCY`).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Most jobs claimed at once (default: the worker's, `WORKER_BATCH_SIZE`).
    #[arg(long)]
    batch_size: Option<usize>,
    /// The queue's own connections commit with `synchronous_commit` on (the
    /// worker's setting, like the peers'), off (for comparison), or both.
    #[arg(long, value_enum, default_value_t = SyncCommit::Both)]
    sync_commit: SyncCommit,
    /// Pickup latency samples.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Finished jobs to put in the table first (e.g. 1000000), to see their cost.
    #[arg(long, default_value_t = 0)]
    done_rows: i64,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SyncCommit {
    On,
    Off,
    Both,
}

impl SyncCommit {
    /// The modes to measure, as `synchronous_commit` values.
    fn modes(self) -> &'static [&'static str] {
        match self {
            Self::On => &["on"],
            Self::Off => &["off"],
            Self::Both => &["on", "off"],
        }
    }
}

#[derive(Debug, Serialize)]
struct Figures {
    enqueue_single_per_s: f64,
    enqueue_bulk_per_s: f64,
    /// Processing rate by the queue's `synchronous_commit`.
    process_per_s: Vec<(String, f64)>,
    pickup_p50_ms: f64,
    pickup_p95_ms: f64,
    /// Handler starts beyond one per job, over every processing run: 0
    /// unless a job ran twice.
    extra_runs: u64,
    done_rows: i64,
    jobs: usize,
    concurrency: usize,
    batch_size: usize,
}

/// Where running bench jobs report that they started.
static STARTED: OnceLock<mpsc::UnboundedSender<Instant>> = OnceLock::new();

#[derive(Serialize, Deserialize)]
struct BenchJob;

impl Job for BenchJob {
    const KIND: &'static str = "bench-noop";

    async fn run(self, _: JobContext) -> Result<(), JobError> {
        if let Some(started) = STARTED.get() {
            let _ = started.send(Instant::now());
        }
        Ok(())
    }
}

/// A worker process's queue, in this process, until `stop`.
struct BenchWorker {
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl BenchWorker {
    fn start(pool: &PgPool, config: SupervisorConfig, sync_commit: &str) -> Self {
        let mut pools = QueuePools::sharing(pool);
        let options = pool.connect_options().as_ref().clone().options([("synchronous_commit", sync_commit)]);
        pools.queue = queue::queue_pool(options);
        let (stop, stopped) = oneshot::channel::<()>();
        let registry = Registry::default().with::<BenchJob>();
        let handle = tokio::spawn(queue::run(pools, registry, Arc::new(Ports::default()), config, async {
            let _ = stopped.await;
        }));
        Self { stop, handle }
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        Ok(self.handle.await?)
    }
}

pub async fn run(pool: &PgPool, args: QueueBench) -> anyhow::Result<()> {
    switchboard_jobs::migrate(pool).await?;
    clear(pool).await?;
    clear_history(pool).await?;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    STARTED.set(started_tx).map_err(|_| anyhow::anyhow!("bench already running"))?;
    if args.done_rows > 0 {
        eprintln!("inserting {} finished jobs...", args.done_rows);
        insert_done_rows(pool, args.done_rows).await?;
    }
    let mut config = crate::config::supervisor_from_env(std::iter::once(BenchJob::KIND))?;
    let limits = config.queues.limits(BenchJob::KIND);
    let limits = QueueLimits {
        concurrency: args.concurrency.unwrap_or(limits.concurrency),
        batch_size: args.batch_size.unwrap_or(limits.batch_size),
    };
    config.queues.per_kind.insert(BenchJob::KIND.to_owned(), limits);

    eprintln!("enqueue, one job per transaction ({} jobs)...", args.single);
    let enqueue_single_per_s = enqueue_single(pool, args.single).await?;
    clear(pool).await?;
    let mut process_per_s = Vec::new();
    let mut enqueue_bulk_per_s = 0.0;
    let mut extra_runs = 0;
    for mode in args.sync_commit.modes() {
        eprintln!("enqueue, bulk ({} jobs)...", args.jobs);
        enqueue_bulk_per_s = enqueue_bulk(pool, args.jobs).await?;
        eprintln!(
            "processing {} jobs (concurrency {}, batch {}, synchronous_commit {mode})...",
            args.jobs, limits.concurrency, limits.batch_size
        );
        let started_at = Instant::now();
        let worker = BenchWorker::start(pool, config.clone(), mode);
        for _ in 0..args.jobs {
            started.recv().await;
        }
        wait_until_all_done(pool).await?;
        process_per_s.push((mode.to_string(), args.jobs as f64 / started_at.elapsed().as_secs_f64()));
        worker.stop().await?;
        while started.try_recv().is_ok() {
            extra_runs += 1;
        }
        clear(pool).await?;
    }

    eprintln!("pickup latency on an idle worker ({} samples)...", args.samples);
    let worker = BenchWorker::start(pool, config, args.sync_commit.modes()[0]);
    let mut pickups = Vec::with_capacity(args.samples);
    let mut conn = pool.acquire().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..args.samples {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        queue::enqueue(&mut conn, &BenchJob).await?;
        let handled = started.recv().await.ok_or_else(|| anyhow::anyhow!("worker stopped"))?;
        pickups.push(handled.duration_since(sent).as_secs_f64() * 1000.0);
    }
    drop(conn);
    worker.stop().await?;
    clear(pool).await?;
    clear_history(pool).await?;

    pickups.sort_by(f64::total_cmp);
    let figures = Figures {
        enqueue_single_per_s,
        enqueue_bulk_per_s,
        process_per_s,
        pickup_p50_ms: percentile(&pickups, 0.50),
        pickup_p95_ms: percentile(&pickups, 0.95),
        extra_runs,
        done_rows: args.done_rows,
        jobs: args.jobs,
        concurrency: limits.concurrency,
        batch_size: limits.batch_size,
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!("enqueue, one per transaction          {:>10.0} jobs/s", figures.enqueue_single_per_s);
        println!("enqueue, bulk (1,000 per statement)   {:>10.0} jobs/s", figures.enqueue_bulk_per_s);
        for (mode, rate) in &figures.process_per_s {
            println!("process, synchronous_commit {mode:<3}       {rate:>10.0} jobs/s");
        }
        println!(
            "pickup latency p50 / p95              {:>7.1} / {:.1} ms",
            figures.pickup_p50_ms, figures.pickup_p95_ms
        );
        println!("handler runs beyond one per job       {:>10}", figures.extra_runs);
    }
    Ok(())
}

async fn enqueue_single(pool: &PgPool, count: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    for _ in 0..count {
        let mut tx = pool.begin().await?;
        queue::enqueue(&mut tx, &BenchJob).await?;
        tx.commit().await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

async fn enqueue_bulk(pool: &PgPool, count: usize) -> anyhow::Result<f64> {
    let jobs: Vec<BenchJob> = (0..count).map(|_| BenchJob).collect();
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    for chunk in jobs.chunks(1000) {
        queue::enqueue_many(&mut conn, chunk).await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

async fn wait_until_all_done(pool: &PgPool) -> anyhow::Result<()> {
    loop {
        // Only claimed jobs are left once every handler has started; this reads
        // the small partial index instead of scanning the table.
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND lock_by IS NOT NULL")
                .bind(BenchJob::KIND)
                .fetch_one(pool)
                .await?;
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Finished jobs of another kind: the claim's partial index never sees done
/// rows, so what they cost is the table's and its other indexes' size.
const HISTORY_KIND: &str = "bench-history";

async fn insert_done_rows(pool: &PgPool, count: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, done_at)
         SELECT upper(lpad(to_hex(n), 26, '0')), $1, convert_to('null', 'UTF8'), 'Done', 1, 8, now(), 0, now()
         FROM generate_series(1, $2) n",
    )
    .bind(HISTORY_KIND)
    .bind(count)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE apalis.jobs").execute(pool).await?;
    Ok(())
}

async fn clear(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1").bind(BenchJob::KIND).execute(pool).await?;
    Ok(())
}

async fn clear_history(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1").bind(HISTORY_KIND).execute(pool).await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
