//! The queue benchmark: enqueue rate (one job per transaction, and bulk),
//! processing rate with one worker process, and pickup latency on an idle
//! worker, optionally with a million finished jobs already in the table.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Args;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use switchboard_jobs::ports::Ports;
use switchboard_jobs::queue::{self, Job, JobContext, JobError, QueueLimits, Registry};
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Args)]
pub struct QueueBench {
    /// No-op jobs to process (and to enqueue in bulk).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs enqueued one per transaction.
    #[arg(long, default_value_t = 2_000)]
    single: usize,
    /// Jobs running at once in the worker.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Jobs claimed per fetch.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Pickup latency samples.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Finished jobs to put in the table first (e.g. 1000000), to see their cost.
    #[arg(long, default_value_t = 0)]
    done_rows: i64,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Figures {
    enqueue_single_per_s: f64,
    enqueue_bulk_per_s: f64,
    process_per_s: f64,
    pickup_p50_ms: f64,
    pickup_p95_ms: f64,
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

pub async fn run(pool: &PgPool, args: QueueBench) -> anyhow::Result<()> {
    switchboard_jobs::migrate(pool).await?;
    clear(pool).await?;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    STARTED.set(started_tx).map_err(|_| anyhow::anyhow!("bench already running"))?;
    if args.done_rows > 0 {
        eprintln!("inserting {} finished jobs...", args.done_rows);
        insert_done_rows(pool, args.done_rows).await?;
    }

    eprintln!("enqueue, one job per transaction ({} jobs)...", args.single);
    let enqueue_single_per_s = enqueue_single(pool, args.single).await?;
    clear_pending(pool).await?;
    eprintln!("enqueue, bulk ({} jobs)...", args.jobs);
    let enqueue_bulk_per_s = enqueue_bulk(pool, args.jobs).await?;

    eprintln!("processing {} jobs (concurrency {}, batch {})...", args.jobs, args.concurrency, args.batch_size);
    let (stop, stopped) = oneshot::channel::<()>();
    let mut config = crate::config::supervisor_from_env(std::iter::empty())?;
    config
        .queues
        .per_kind
        .insert(BenchJob::KIND.to_owned(), QueueLimits { concurrency: args.concurrency, batch_size: args.batch_size });
    let started_at = Instant::now();
    let supervisor = tokio::spawn(queue::run(
        queue::QueuePools::sharing(pool),
        Registry::default().with::<BenchJob>(),
        Arc::new(Ports::default()),
        config,
        async {
            let _ = stopped.await;
        },
    ));
    for _ in 0..args.jobs {
        started.recv().await;
    }
    wait_until_all_done(pool).await?;
    let process_per_s = args.jobs as f64 / started_at.elapsed().as_secs_f64();

    eprintln!("pickup latency on an idle worker ({} samples)...", args.samples);
    let mut pickups = Vec::with_capacity(args.samples);
    let mut conn = pool.acquire().await?;
    for _ in 0..args.samples {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        queue::enqueue(&mut conn, &BenchJob).await?;
        let handled = started.recv().await.ok_or_else(|| anyhow::anyhow!("worker stopped"))?;
        pickups.push(handled.duration_since(sent).as_secs_f64() * 1000.0);
    }
    drop(conn);
    let _ = stop.send(());
    supervisor.await?;
    clear(pool).await?;

    pickups.sort_by(f64::total_cmp);
    let figures = Figures {
        enqueue_single_per_s,
        enqueue_bulk_per_s,
        process_per_s,
        pickup_p50_ms: percentile(&pickups, 0.50),
        pickup_p95_ms: percentile(&pickups, 0.95),
        done_rows: args.done_rows,
        jobs: args.jobs,
        concurrency: args.concurrency,
        batch_size: args.batch_size,
    };
    if args.json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        println!(
            "enqueue, one per transaction  {:>10.0} jobs/s\nenqueue, bulk                 {:>10.0} jobs/s\nprocess, one worker process   {:>10.0} jobs/s\npickup latency p50 / p95      {:>7.1} / {:.1} ms",
            figures.enqueue_single_per_s,
            figures.enqueue_bulk_per_s,
            figures.process_per_s,
            figures.pickup_p50_ms,
            figures.pickup_p95_ms
        );
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
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status IN ('Queued', 'Running')",
        )
        .bind(BenchJob::KIND)
        .fetch_one(pool)
        .await?;
        if left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn insert_done_rows(pool: &PgPool, count: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
         VALUES ('bench-history', $1, 'PgStorage', '', now()) ON CONFLICT (id) DO NOTHING",
    )
    .bind(BenchJob::KIND)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, done_at, lock_by)
         SELECT upper(lpad(to_hex(n), 26, '0')), $1, convert_to('null', 'UTF8'), 'Done', 1, 8, now(), 0, now(), 'bench-history'
         FROM generate_series(1, $2) n",
    )
    .bind(BenchJob::KIND)
    .bind(count)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE apalis.jobs").execute(pool).await?;
    Ok(())
}

async fn clear_pending(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1 AND status = 'Pending'")
        .bind(BenchJob::KIND)
        .execute(pool)
        .await?;
    Ok(())
}

async fn clear(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM apalis.jobs WHERE job_type = $1").bind(BenchJob::KIND).execute(pool).await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
