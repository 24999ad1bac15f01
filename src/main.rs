//! `switchboard`: parse the command line and hand over.

use clap::Parser;
use secrecy::ExposeSecret;
use switchboard::cli::{Cli, Command};
use switchboard::config::{self, DatabaseConfig, WebConfig, WebhookConfig};
use switchboard::web::{self, AppState};
use switchboard::{db, shutdown, telemetry, worker};

/// The web's connections at defaults: see docs/deploy-heroku.md for the whole budget.
const WEB_POOL_SIZE: u32 = 5;
/// An operator's `switchboard jobs ...`: one query at a time, and a spare.
const JOBS_POOL_SIZE: u32 = 2;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // Progress bars and a summary on the terminal: the summary reports retries, the log only errors.
        Command::Demo(_) => telemetry::init_with_default("error"),
        Command::Simulate(_) => telemetry::init_with_default("warn"),
        _ => telemetry::init(),
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Web => {
            config::refuse_unsafe_settings()?;
            let (config, webhooks) = (WebConfig::from_env()?, WebhookConfig::from_env()?);
            let limits = web::limits::Limits::from_env()?;
            let database = DatabaseConfig::from_env()?.for_process("web");
            let pool = db::pooled_pool(&database, database.pool_size(WEB_POOL_SIZE))?;
            db::log_budget(&database, database.pool_size(WEB_POOL_SIZE), 0);
            db::refuse_plaintext(&database, &pool).await?;
            db::check_pooled_route(&database).await?;
            let listener = web::bind(std::net::SocketAddr::from(([0, 0, 0, 0], config.port)))?;
            let recordings = std::sync::Arc::new(switchboard::storage::RecordingStorage::from_env().await?);
            let state = AppState::new(pool, config.api_tokens)
                .with_recordings(recordings)
                .with_webhooks(webhooks)
                .with_limits(limits.clone());
            let app = web::app(state, config.body_limit_bytes);
            Ok(web::serve_with(listener, app, shutdown::signal(), &limits).await?)
        }
        Command::Worker { queues } => {
            config::refuse_unsafe_settings()?;
            worker::run(&queues).await
        }
        Command::Migrate => {
            // One session: sqlx's migrator holds an advisory lock on it, which PgBouncer could not keep.
            let database = DatabaseConfig::from_env()?.for_process("migrate");
            db::log_budget(&database, 0, 1);
            let pool = db::direct_pool(&database, 1)?;
            switchboard_jobs::migrate(&pool).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Bench(command) => {
            let database = DatabaseConfig::from_env()?.for_process("bench");
            let pool = db::direct_pool(&database, database.pool_size(10))?;
            switchboard::bench::run(&pool, command).await
        }
        Command::Jobs(command) => {
            let database = DatabaseConfig::from_env()?.for_process("jobs");
            db::log_budget(&database, database.pool_size(JOBS_POOL_SIZE), 0);
            db::check_pooled_route(&database).await?;
            let pool = db::pooled_pool(&database, database.pool_size(JOBS_POOL_SIZE))?;
            switchboard::cli::jobs::run(&pool, command).await
        }
        Command::Demo(args) => {
            let options = switchboard::demo::DemoOptions {
                calls: args.calls,
                provider: args.provider.into(),
                rate: args.rate,
                recordings_dir: args.recordings_dir,
                api_token: WebConfig::from_env()?
                    .api_tokens
                    .first()
                    .map_or(switchboard::demo::API_TOKEN, |t| t.expose_secret())
                    .to_owned(),
                progress: true,
            };
            switchboard::demo::run(&args.database_url, options).await
        }
        Command::Simulate(args) => {
            let target = switchboard::sim::Target {
                public_base_url: args
                    .public_base_url
                    .unwrap_or_else(|| args.target.clone())
                    .trim_end_matches('/')
                    .into(),
                base_url: args.target.trim_end_matches('/').into(),
                twilio_auth_token: args.twilio_auth_token,
                twilio_account_sid: args.twilio_account_sid,
                exotel_secret: args.exotel_secret,
                our_number: args.number,
                talk_ms_per_second: 15,
                patience: args.hold,
            };
            let options = switchboard::simulate::SimulateOptions {
                target,
                calls: args.calls,
                rate: args.rate,
                provider: args.provider.into(),
                progress: true,
            };
            print!("{}", switchboard::simulate::run(&options).await?.render());
            Ok(())
        }
    }
}
