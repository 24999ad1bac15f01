//! The command line: one binary, a subcommand per process or operator task.

pub mod jobs;

use clap::{Parser, Subcommand, ValueEnum};
use switchboard_jobs::ports::Provider;

#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about = "Phone calls to sales leads, durably.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve webhooks and the API on $PORT.
    Web,
    /// Run background jobs (every kind, or only --queues).
    Worker {
        /// Comma-separated job kinds, e.g. `fetch-recording,transcribe`.
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
    },
    /// Apply database migrations (apalis's and ours); safe to run concurrently.
    Migrate,
    /// Inspect and repair jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Measure the system on this machine.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// The whole system in one process, with simulated Twilio/Exotel and OpenAI:
    /// places calls, then prints what the database holds.
    Demo(DemoArgs),
    /// Fire signed webhook conversations at a running web and report latencies.
    Simulate(SimulateArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    Twilio,
    Exotel,
}

impl From<ProviderArg> for Provider {
    fn from(arg: ProviderArg) -> Self {
        match arg {
            ProviderArg::Twilio => Provider::Twilio,
            ProviderArg::Exotel => Provider::Exotel,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many calls to place.
    #[arg(long, default_value_t = 50)]
    pub calls: usize,
    #[arg(long, value_enum, default_value = "twilio")]
    pub provider: ProviderArg,
    /// New calls per second.
    #[arg(long, default_value_t = 3.0, value_parser = calls_per_second)]
    pub rate: f64,
    /// The demo's database (created if missing; the demo's rows are reset on each run).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, default_value = crate::demo::DEFAULT_URL)]
    pub database_url: String,
    /// Where recordings are stored (real files).
    #[arg(long, default_value = "demo-recordings")]
    pub recordings_dir: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The web to call, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    pub target: String,
    #[arg(long, default_value_t = 20)]
    pub calls: usize,
    /// New calls per second.
    #[arg(long, default_value_t = 5.0, value_parser = calls_per_second)]
    pub rate: f64,
    #[arg(long, value_enum, default_value = "twilio")]
    pub provider: ProviderArg,
    /// The URL the target believes it is served at (what Twilio signs); the target itself when unset.
    #[arg(long, env = "PUBLIC_BASE_URL")]
    pub public_base_url: Option<String>,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true, default_value = "")]
    pub twilio_auth_token: String,
    #[arg(long, env = "TWILIO_ACCOUNT_SID", default_value = "ACsimulated")]
    pub twilio_account_sid: String,
    #[arg(long, env = "EXOTEL_WEBHOOK_SECRET", hide_env_values = true, default_value = "")]
    pub exotel_secret: String,
    /// The number callers dial (E.164): one with an IVR menu or a department.
    #[arg(long, default_value = crate::demo::MAIN_NUMBER)]
    pub number: String,
    /// How long a caller waits in the queue for an agent before hanging up.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub hold: std::time::Duration,
}

/// A rate of new calls per second: positive and finite.
fn calls_per_second(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{raw:?} is not a positive number of calls per second")),
    }
}
