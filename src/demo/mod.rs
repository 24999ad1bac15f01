//! `switchboard demo`: the whole system in one process on this machine. The
//! web on a loopback port (its `PUBLIC_BASE_URL`), a worker running every job
//! kind with the real adapters, and the simulated Twilio or Exotel and OpenAI
//! (`sim`) they talk to over HTTP. Seeds a company, places calls, waits for
//! the after-call chain to settle, schedules follow-up calls to the hot leads
//! (placed through the same provider), and prints a summary read from the database.

mod database;
mod follow_up;
pub mod seed;
mod summary;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use switchboard_jobs::pipeline::PipelineSettings;
use switchboard_jobs::ports::{OutboundLine, Ports, Provider};
use switchboard_jobs::queue::{self, QueueSettings, SupervisorConfig, prune::PruneSchedule};
use switchboard_jobs::route_call::TWILIO_STATUS_PATH;
use tokio::sync::oneshot;

pub use database::DEFAULT_URL;
pub use seed::MAIN_NUMBER;
pub use summary::Summary;

use crate::ai::{OpenAi, TokenPrices};
use crate::config::{ExotelConfig, TwilioConfig, WebhookConfig};
use crate::providers::exotel_rest::ExotelRest;
use crate::providers::telephony_router::TelephonyRouter;
use crate::providers::twilio_rest::TwilioRest;
use crate::recording_fetch::{BasicAuth, Loopback, RecordingDownloader};
use crate::sim::{self, Providers, Tally, Target};
use crate::storage::{LocalDir, RecordingStorage};
use crate::web::{self, AppState};

const ACCOUNT_SID: &str = "AC5717c0de0000000000000000000demo";
/// The simulated account's token; the web checks every Twilio signature against it.
const AUTH_TOKEN: &str = "demo-twilio-auth-token";
/// gpt-4o-mini's list prices, US dollars per million tokens: 0.15 in, 0.60 out.
const PRICES: TokenPrices = TokenPrices { input_micro_usd_per_mtok: 150_000, output_micro_usd_per_mtok: 600_000 };
/// How long the after-call chain may take to settle once the last call ended.
const SETTLE_LIMIT: Duration = Duration::from_secs(90);

/// The demo's bearer token when `API_TOKENS` sets none (as long as `API_TOKENS` requires).
pub const API_TOKEN: &str = "demo-token-not-for-production-use";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub calls: usize,
    pub provider: Provider,
    /// New calls per second.
    pub rate: f64,
    pub recordings_dir: PathBuf,
    /// Bearer token of the demo's API, printed for the tour.
    pub api_token: String,
    /// Draw progress bars (off in tests).
    pub progress: bool,
}

/// `switchboard demo`: creates the database when missing, then [`run_on`] it and prints the summary.
pub async fn run(database_url: &str, options: DemoOptions) -> anyhow::Result<()> {
    database::create_if_missing(database_url).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(database_url)
        .await
        .with_context(|| format!("cannot connect to {database_url}"))?;
    let started = std::time::Instant::now();
    eprintln!(
        "Switchboard demo: {} calls through a simulated {:?}, on {} (the demo's rows are reset first)",
        options.calls,
        options.provider,
        database::without_password(database_url)
    );
    let summary = run_on(&pool, &options).await?;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    println!("{}", summary.render(database_url, &options.api_token));
    Ok(())
}

/// The demo on `pool`: migrate, reset the demo's rows, seed, serve, call, settle, summarise.
pub async fn run_on(pool: &PgPool, options: &DemoOptions) -> anyhow::Result<Summary> {
    switchboard_jobs::migrate(pool).await?;
    database::reset(pool, &options.recordings_dir).await?;
    seed::company(pool).await?;
    let recordings = Arc::new(RecordingStorage::Local(LocalDir::new(&options.recordings_dir)));

    let openai_url = sim::serve(sim::openai::app()).await?;
    let listener = web::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let web_url = format!("http://{}", listener.local_addr()?);
    let target = Target {
        base_url: web_url.clone(),
        public_base_url: web_url.clone(),
        twilio_auth_token: AUTH_TOKEN.to_owned(),
        twilio_account_sid: ACCOUNT_SID.to_owned(),
        exotel_secret: uuid::Uuid::new_v4().simple().to_string(),
        our_number: MAIN_NUMBER.to_owned(),
        talk_ms_per_second: 15,
        patience: Duration::from_secs(60),
    };
    let providers = Providers::start(&target).await?;
    let twilio = TwilioConfig {
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: AUTH_TOKEN.into(),
        api_base: providers.twilio.base_url.clone(),
        public_base_url: web_url.clone(),
    };
    let webhooks = WebhookConfig {
        twilio: Some(twilio.clone()),
        exotel_secret: Some(target.exotel_secret.clone().into()),
        ..WebhookConfig::default()
    };
    // One pool serves the web and the workers here: a webhook may wait for a
    // connection as long as a job does (a web dyno's pool is its own).
    let limits = web::limits::Limits { webhook_pool_wait: Duration::from_secs(5), ..Default::default() };
    let state = AppState::new(pool.clone(), vec![options.api_token.clone().into()])
        .with_recordings(recordings.clone())
        .with_webhooks(webhooks)
        .with_limits(limits);
    let (stop_web, web_stopped) = oneshot::channel::<()>();
    let web = tokio::spawn(web::serve(listener, web::app(state, 1024 * 1024), async {
        let _ = web_stopped.await;
    }));

    let openai = Arc::new(OpenAi::new(
        &format!("{openai_url}/v1"),
        "sk-switchboard-demo".to_owned(),
        "whisper-1".to_owned(),
        "gpt-4o-mini".to_owned(),
        PRICES,
        Duration::from_secs(30),
    )?);
    // Scheduled calls (follow-ups, overflow callbacks) go out through the
    // provider the calls come in by, with its own status webhook.
    let exotel = ExotelConfig {
        account_sid: sim::exotel::ACCOUNT_SID.to_owned(),
        api_key: sim::exotel::API_KEY.to_owned(),
        api_token: sim::exotel::API_TOKEN.into(),
        api_base: providers.exotel.base_url.clone(),
    };
    let status_callback = match options.provider {
        Provider::Twilio => format!("{web_url}{TWILIO_STATUS_PATH}"),
        Provider::Exotel => format!("{web_url}/webhooks/exotel/{}/status", target.exotel_secret),
    };
    let outbound_line =
        Some(OutboundLine { provider: options.provider, caller_id: MAIN_NUMBER.to_owned(), status_callback });
    let telephony = TelephonyRouter {
        twilio: Some(Arc::new(TwilioRest::new(twilio))),
        exotel: Some(Arc::new(ExotelRest::new(exotel))),
    };
    let ports = Ports {
        telephony: Some(Arc::new(telephony)),
        outbound_line,
        recordings: Some(recordings),
        recording_fetcher: Some(Arc::new(RecordingDownloader::new(
            Some(BasicAuth { user: ACCOUNT_SID.to_owned(), secret: AUTH_TOKEN.to_owned() }),
            None,
            100 * 1024 * 1024,
            Duration::from_secs(30),
            Loopback::Allowed,
        )?)),
        transcriber: Some(openai.clone()),
        analyzer: Some(openai),
        pipeline: PipelineSettings::default(),
        ..Ports::default()
    };
    let (stop_worker, worker_stopped) = oneshot::channel::<()>();
    let worker = tokio::spawn(queue::run(
        queue::QueuePools::sharing(pool),
        switchboard_jobs::registry(),
        Arc::new(ports),
        worker_settings(),
        async {
            let _ = worker_stopped.await;
        },
    ));

    let calls_bar = bar(options.progress, options.calls as u64, "calls");
    sim::run_calls(&providers, options.provider, options.calls, options.rate, &calls_bar).await;
    calls_bar.finish();
    settle(pool, options.progress, "after-call jobs", || 0).await?;
    follow_up::schedule(pool, &web_url, &options.api_token).await?;
    settle(pool, options.progress, "follow-up calls", || providers.customers.in_progress()).await?;

    let _ = stop_worker.send(());
    worker.await?;
    let _ = stop_web.send(());
    web.await??;
    Ok(Summary::read(pool, &options.recordings_dir, Tally::of(&providers.exchanges.all())).await?)
}

/// Quick pickup of scheduled and retried jobs: calls wait in seconds, not minutes.
fn worker_settings() -> SupervisorConfig {
    SupervisorConfig {
        queues: QueueSettings { poll_interval: Duration::from_millis(100), ..QueueSettings::default() },
        shutdown_grace: Duration::from_secs(10),
        pruning: PruneSchedule { retention: Duration::from_secs(7 * 86400), every: Duration::from_secs(3600) },
    }
}

fn bar(visible: bool, len: u64, what: &'static str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:40}] {pos}/{len} {elapsed}")
        .expect("static template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what);
    bar
}

/// Waits until no job is pending, running, retrying or due within a few
/// seconds, no scheduled call is dialling or due within a few seconds, and no
/// simulated call is `in_flight` (or the limit passes). A callback promised for
/// minutes later (the default 5-minute retry) does not hold the demo up.
async fn settle(
    pool: &PgPool,
    progress: bool,
    what: &'static str,
    in_flight: impl Fn() -> usize,
) -> anyhow::Result<()> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM job_overview").fetch_one(pool).await?;
    let jobs_bar = bar(progress, total.unsigned_abs(), what);
    let deadline = tokio::time::Instant::now() + SETTLE_LIMIT;
    loop {
        let (all, open, calls): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*),
                count(*) FILTER (WHERE state NOT IN ('done', 'dead')
                                   AND NOT (state = 'scheduled' AND run_at > now() + interval '5 seconds')),
                (SELECT count(*) FROM scheduled_calls WHERE status = 'dialing'
                    OR (status = 'scheduled' AND next_attempt_at <= now() + interval '5 seconds'))
             FROM job_overview",
        )
        .fetch_one(pool)
        .await?;
        jobs_bar.set_length(all.unsigned_abs());
        jobs_bar.set_position((all - open).unsigned_abs());
        let settled = open == 0 && calls == 0 && in_flight() == 0;
        if settled || tokio::time::Instant::now() >= deadline {
            jobs_bar.finish();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
