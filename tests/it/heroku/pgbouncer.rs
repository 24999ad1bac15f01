//! Web and worker as with Heroku's connection pooling attached: their
//! application queries through a real PgBouncer in transaction mode
//! (`DATABASE_CONNECTION_POOL_URL`), the queue's pool and LISTEN on the direct
//! `DATABASE_URL`. A PgBouncer that does not keep prepared statements apart
//! (Debian 12's 1.18, or 1.21+ with `max_prepared_statements = 0`) is refused
//! at start by every process that would use it; through one that does (1.21+,
//! `PGBOUNCER_BIN`), signed Twilio calls become finished after-call chains.

use std::time::Duration;

use indicatif::ProgressBar;
use sqlx::PgPool;
use switchboard::demo;
use switchboard::sim::{self, Providers, Target};
use switchboard_jobs::ports::Provider;

use crate::support::pgbouncer::{PgBouncer, PreparedStatements, Program};
use crate::support::throwaway_pg::free_port;
use crate::support::{binary, count, migrate, wait_until};

const CALLS: usize = 3;
const ACCOUNT_SID: &str = "AC0000000000000000000000000pooled";
const AUTH_TOKEN: &str = "pgbouncer-test-auth-token";

/// Jobs not finished yet (a retry or callback promised for minutes later aside).
const OPEN_JOBS: &str = "SELECT count(*) FROM job_overview WHERE state NOT IN ('done', 'dead')
    AND NOT (state = 'scheduled' AND run_at > now() + interval '5 seconds')";

/// Connections of this test's database sitting in LISTEN.
const LISTENING: &str = "SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND query ILIKE 'LISTEN%'";

/// Runs `CALLS` signed Twilio calls against a web and a worker whose
/// application queries go through PgBouncer, the worker with `worker_env`
/// besides; waits until every after-call chain has finished and returns how
/// many connections were listening meanwhile.
async fn calls_through_pgbouncer(pool: &PgPool, worker_env: &[(&str, &str)]) -> i64 {
    migrate(pool).await;
    demo::seed::company(pool).await.unwrap();
    let bouncer = PgBouncer::start(&Program::tracking(), pool, 4, PreparedStatements::Tracked).await;
    let openai = sim::serve(sim::openai::app()).await.unwrap();
    let port = free_port();
    let web_url = format!("http://127.0.0.1:{port}");
    let target = Target {
        base_url: web_url.clone(),
        public_base_url: web_url.clone(),
        twilio_auth_token: AUTH_TOKEN.to_owned(),
        twilio_account_sid: ACCOUNT_SID.to_owned(),
        exotel_secret: "unused".to_owned(),
        our_number: demo::MAIN_NUMBER.to_owned(),
        talk_ms_per_second: 1,
        patience: Duration::from_secs(10),
    };
    let providers = Providers::start(&target).await.unwrap();
    let recordings = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_CONNECTION_POOL_URL", bouncer.url()),
        ("PUBLIC_BASE_URL", web_url.clone()),
        ("TWILIO_ACCOUNT_SID", ACCOUNT_SID.to_owned()),
        ("TWILIO_AUTH_TOKEN", AUTH_TOKEN.to_owned()),
        ("TWILIO_API_BASE", providers.twilio.base_url.clone()),
        ("OPENAI_API_KEY", "sk-pgbouncer-test".to_owned()),
        ("OPENAI_BASE_URL", format!("{openai}/v1")),
        ("RECORDING_FETCH_ALLOW_LOOPBACK", "1".to_owned()),
        ("RECORDING_STORAGE", "local".to_owned()),
        ("RECORDING_DIR", recordings.path().display().to_string()),
    ];
    let _web = binary::command(pool, &["web"]).env("PORT", port.to_string()).envs(env.clone()).spawn().unwrap();
    let readyz = format!("{web_url}/readyz");
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "the web to be ready through PgBouncer", || async {
        client.get(&readyz).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let _worker = binary::command(pool, &["worker"]).envs(env).envs(worker_env.iter().copied()).spawn().unwrap();

    sim::run_calls(&providers, Provider::Twilio, CALLS, 20.0, &ProgressBar::hidden()).await;
    let listening = std::cell::Cell::new(0);
    wait_until(Duration::from_secs(90), "every after-call chain to finish", || async {
        listening.set(listening.get().max(count(pool, LISTENING).await));
        count(pool, OPEN_JOBS).await == 0
            && count(pool, "SELECT count(*) FROM job_overview WHERE kind = 'analyze' AND state = 'done'").await > 0
    })
    .await;

    let dead: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT kind, last_error FROM job_overview WHERE state = 'dead'").fetch_all(pool).await.unwrap();
    assert!(dead.is_empty(), "no job died through PgBouncer: {dead:?}\n{}", bouncer.log());
    let stored = count(pool, "SELECT count(*) FROM recordings WHERE status = 'stored'").await;
    assert_eq!(count(pool, "SELECT count(*) FROM insights").await, stored, "every stored recording analysed");
    assert!(count(pool, "SELECT count(*) FROM leads").await > 0);
    // The web's pool and the worker's handlers' pool stay connected to PgBouncer (the start checks' probes closed).
    let clients = bouncer.client_applications().await;
    for process in ["switchboard-web", "switchboard-worker"] {
        assert!(clients.iter().any(|name| name == process), "{process} connected through PgBouncer: {clients:?}");
    }
    listening.get()
}

#[sqlx::test(migrations = false)]
async fn through_pgbouncer_tracking_prepared_statements_signed_calls_become_finished_chains(pool: PgPool) {
    let listening = calls_through_pgbouncer(&pool, &[]).await;
    assert_eq!(listening, 1, "the worker's one LISTEN connection, on the direct route");
}

#[sqlx::test(migrations = false)]
async fn a_pgbouncer_that_mixes_up_prepared_statements_is_refused_at_start_by_web_worker_and_jobs(pool: PgPool) {
    migrate(&pool).await;
    // Debian 12's 1.18 cannot track prepared statements; a 1.21+ is run with
    // tracking off (`max_prepared_statements = 0`, its default before 1.24).
    for program in Program::installed() {
        // One server connection: what one client prepares, the next one finds there.
        let bouncer = PgBouncer::start(&program, &pool, 1, PreparedStatements::Untracked).await;
        for args in [&["web"][..], &["worker"], &["jobs", "stats"]] {
            let out = tokio::time::timeout(
                Duration::from_secs(30),
                binary::command(&pool, args)
                    .env("DATABASE_CONNECTION_POOL_URL", bouncer.url())
                    .env("PORT", free_port().to_string())
                    .output(),
            )
            .await
            .unwrap_or_else(|_| panic!("{args:?} exits instead of running through {program:?}"))
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{args:?} must refuse {program:?}: {stderr}");
            // The connection got through (no startup parameter refused); the statements did not.
            assert!(
                stderr.contains("does not keep prepared statements apart")
                    && stderr.contains("max_prepared_statements"),
                "{args:?} through {program:?}: {stderr}\n{}",
                bouncer.log()
            );
        }
    }
}
