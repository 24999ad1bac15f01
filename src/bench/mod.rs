//! `switchboard bench ...`: measurements on this machine, printed as figures
//! (and `--json`), never asserted on in tests.

mod intake;
mod queue;

use clap::Subcommand;
use sqlx::PgPool;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Enqueue and processing rates and pickup latency of no-op jobs.
    Queue(queue::QueueBench),
    /// Webhook intake throughput and latency against pgbench's ceiling.
    Intake(intake::IntakeArgs),
}

pub async fn run(pool: &PgPool, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Queue(args) => queue::run(pool, args).await,
        BenchCommand::Intake(args) => intake::run(args).await,
    }
}
