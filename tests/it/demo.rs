//! `switchboard demo` in process against the test database: its summary is
//! what the rows say, its simulated providers pass the web's real checks,
//! and `switchboard simulate` drives a web it did not start.

use std::time::Duration;

use sqlx::PgPool;
use switchboard::config::{TwilioConfig, WebhookConfig};
use switchboard::demo::{self, DemoOptions, Summary};
use switchboard::sim::Target;
use switchboard::simulate::{self, SimulateOptions};
use switchboard_jobs::ports::Provider;

use crate::support::{migrate, spawn_app_with};

fn options(calls: usize, provider: Provider, dir: &tempfile::TempDir) -> DemoOptions {
    DemoOptions {
        calls,
        provider,
        rate: 20.0,
        recordings_dir: dir.path().to_owned(),
        api_token: "demo-test-token".into(),
        progress: false,
    }
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
}

/// The first number on the printed line that starts with `label`.
fn printed(rendered: &str, label: &str) -> i64 {
    let line = rendered.lines().map(str::trim).find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label}"));
    let digits: String = line[label.len()..].trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number on {line:?}"))
}

async fn run(pool: &PgPool, options: &DemoOptions) -> (Summary, String) {
    let summary = demo::run_on(pool, options).await.expect("the demo runs");
    let rendered = summary.render("postgres://demo", &options.api_token);
    (summary, rendered)
}

#[sqlx::test(migrations = false)]
async fn twilio_demo_prints_what_the_database_holds(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();

    let (summary, rendered) = run(&pool, &options(8, Provider::Twilio, &dir)).await;

    let calls = scalar(&pool, "SELECT count(*) FROM calls WHERE direction = 'inbound'").await;
    assert_eq!((calls, printed(&rendered, "calls:")), (8, 8));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM calls WHERE direction = 'inbound' AND ended_at IS NULL").await, 0);
    let answered =
        scalar(&pool, "SELECT count(*) FROM calls WHERE direction = 'inbound' AND agent_id IS NOT NULL").await;
    assert_eq!(printed(&rendered, "answered by an agent:"), answered);
    assert_eq!(summary.agents.iter().map(|a| a.calls).sum::<i64>(), answered);
    assert!(summary.agents.iter().filter(|a| a.status != "available").all(|a| a.calls == 0), "{rendered}");
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM calls WHERE reroutes > 0").await,
        printed(&rendered, "rerouted after a miss:")
    );

    let stored = scalar(&pool, "SELECT count(*) FROM recordings WHERE status = 'stored'").await;
    assert_eq!(printed(&rendered, "recordings stored:"), stored);
    assert!(stored >= 6, "{rendered}");
    assert_eq!(summary.files_verified, stored, "every stored recording is a file of its recorded size");
    let transcribed = scalar(&pool, "SELECT count(*) FROM transcripts WHERE status = 'transcribed'").await;
    assert_eq!(printed(&rendered, "transcripts:"), transcribed);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM transcripts WHERE status = 'skipped'").await, 1, "the wrong number");
    assert_eq!(printed(&rendered, "insights:"), scalar(&pool, "SELECT count(*) FROM insights").await);
    assert_eq!(printed(&rendered, "leads:"), scalar(&pool, "SELECT count(*) FROM leads").await);
    assert_eq!(printed(&rendered, "hot leads:"), scalar(&pool, "SELECT count(*) FROM leads WHERE score >= 75").await);
    assert_eq!(summary.counts.cost_micro_usd, scalar(&pool, "SELECT sum(cost_micro_usd)::bigint FROM insights").await);
    assert!(summary.counts.cost_micro_usd > 0);

    // Leads are the callers, never the agents whose leg was recorded.
    assert_eq!(scalar(&pool, "SELECT count(*) FROM leads WHERE phone IN (SELECT phone FROM agents)").await, 0);
    let orphans = "SELECT count(*) FROM recordings r
        WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_sid = r.call_sid AND c.direction = 'inbound')
          AND NOT EXISTS (SELECT 1 FROM scheduled_call_attempts a WHERE a.provider_call_sid = r.call_sid)";
    assert_eq!(scalar(&pool, orphans).await, 0, "recordings belong to the callers' calls or the follow-ups");
    // Every hot lead got a follow-up call through the API; unanswered attempts were retried until answered.
    let follow_ups =
        scalar(&pool, "SELECT count(*) FROM scheduled_calls WHERE NOT context ? 'overflow_call_sid'").await;
    assert!(follow_ups >= 1, "{rendered}");
    assert_eq!(printed(&rendered, "scheduled:"), follow_ups);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM scheduled_calls WHERE NOT context ? 'overflow_call_sid' AND status = 'completed'"
        )
        .await,
        follow_ups
    );
    assert_eq!(printed(&rendered, "attempts:"), scalar(&pool, "SELECT count(*) FROM scheduled_call_attempts").await);
    // Signed like Twilio: the web refused nothing and stored every event.
    assert_eq!(summary.webhooks.rejected, 0);
    assert!(
        scalar(&pool, "SELECT count(*) FROM webhook_events WHERE provider = 'twilio' AND endpoint = 'ivr'").await >= 8
    );
    assert!(summary.dead_jobs.is_empty(), "{rendered}");
    assert!(rendered.contains("Dead jobs: none"));
    let stages: Vec<&str> = summary.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(stages, ["fetch-recording", "transcribe", "analyze", "create-lead", "recording webhook to lead"]);
}

#[sqlx::test(migrations = false)]
async fn exotel_demo_goes_through_connect_and_status_json_with_legs(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();

    let (summary, rendered) = run(&pool, &options(8, Provider::Exotel, &dir)).await;

    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM calls WHERE provider = 'exotel' AND direction = 'inbound'").await,
        8
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM webhook_events WHERE endpoint = 'connect'").await, 8);
    let with_legs = scalar(
        &pool,
        "SELECT count(*) FROM webhook_events WHERE endpoint = 'status'
         AND headers ->> 'content-type' = 'application/json' AND jsonb_array_length(body::jsonb -> 'Legs') = 1",
    )
    .await;
    let answered =
        scalar(&pool, "SELECT count(*) FROM calls WHERE direction = 'inbound' AND agent_id IS NOT NULL").await;
    assert!(answered >= 1, "{rendered}");
    assert_eq!(with_legs, answered, "one status with the agent's leg per answered call");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM calls WHERE ended_at IS NULL").await, 0);
    assert_eq!(printed(&rendered, "recordings stored:"), summary.counts.recordings_stored);
    assert_eq!(summary.files_verified, summary.counts.recordings_stored);
    assert_eq!(summary.webhooks.rejected, 0);
    assert!(summary.dead_jobs.is_empty(), "{rendered}");

    // The follow-ups go out through Exotel's Connect API, and its JSON status
    // callbacks, carrying the attempt id in CustomField, settle them.
    let follow_ups =
        scalar(&pool, "SELECT count(*) FROM scheduled_calls WHERE NOT context ? 'overflow_call_sid'").await;
    assert!(follow_ups >= 1, "{rendered}");
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM scheduled_calls WHERE status = 'completed' AND NOT context ? 'overflow_call_sid'"
        )
        .await,
        follow_ups
    );
    let settled_by_exotel = scalar(
        &pool,
        "SELECT count(*) FROM scheduled_call_attempts a JOIN webhook_events e
           ON e.provider = 'exotel' AND e.endpoint = 'status' AND e.body::jsonb ->> 'CustomField' = a.id::text
         WHERE a.provider_call_sid = e.body::jsonb ->> 'CallSid'",
    )
    .await;
    assert_eq!(settled_by_exotel, scalar(&pool, "SELECT count(*) FROM scheduled_call_attempts").await);
    assert!(
        scalar(&pool, "SELECT count(*) FROM calls WHERE provider = 'exotel' AND direction <> 'inbound'").await >= 1,
        "the placed calls are calls too"
    );
}

#[sqlx::test(migrations = false)]
async fn a_second_demo_run_starts_from_its_own_clean_slate(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    run(&pool, &options(2, Provider::Twilio, &dir)).await;

    let (summary, _) = run(&pool, &options(3, Provider::Twilio, &dir)).await;

    assert_eq!(summary.counts.calls, 3);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM departments").await, 2);
    let files = walk(dir.path());
    assert_eq!(files as i64, summary.counts.recordings_stored, "the first run's files were deleted with its rows");
}

#[sqlx::test(migrations = false)]
async fn the_demo_refuses_a_database_with_calls_it_did_not_make(pool: PgPool) {
    migrate(&pool).await;
    sqlx::query(
        "INSERT INTO calls (provider, call_sid, direction, status) VALUES ('twilio', 'CAreal', 'inbound', 'completed')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let refused = demo::run_on(&pool, &options(1, Provider::Twilio, &dir)).await;

    assert!(refused.unwrap_err().to_string().contains("not a demo database"));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM calls").await, 1);
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| if path.is_dir() { walk(&path) } else { 1 })
        .sum()
}

const PUBLIC_BASE: &str = "https://switchboard.example";
const AUTH_TOKEN: &str = "simulate-test-token";

async fn company(pool: &PgPool) {
    sqlx::query("INSERT INTO departments (name, inbound_number, max_wait_secs) VALUES ('sales', $1, 60)")
        .bind(demo::MAIN_NUMBER)
        .execute(pool)
        .await
        .unwrap();
}

fn simulate_target(base_url: &str, auth_token: &str) -> Target {
    Target {
        base_url: base_url.to_owned(),
        public_base_url: PUBLIC_BASE.to_owned(),
        twilio_auth_token: auth_token.to_owned(),
        twilio_account_sid: "ACsimulated".into(),
        exotel_secret: "exotel-secret".into(),
        our_number: demo::MAIN_NUMBER.into(),
        talk_ms_per_second: 1,
        patience: Duration::from_millis(200),
    }
}

fn webhooks() -> WebhookConfig {
    WebhookConfig {
        exotel_connect_deadline: Duration::from_millis(200),
        twilio: Some(TwilioConfig {
            account_sid: "ACsimulated".into(),
            auth_token: AUTH_TOKEN.into(),
            api_base: "http://127.0.0.1:9".into(),
            public_base_url: PUBLIC_BASE.into(),
        }),
        exotel_secret: Some("exotel-secret".into()),
        ..WebhookConfig::default()
    }
}

#[sqlx::test(migrations = false)]
async fn simulate_drives_a_running_web_and_reports_what_it_accepted(pool: PgPool) {
    migrate(&pool).await;
    company(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let options = SimulateOptions {
        target: simulate_target(&app.base_url, AUTH_TOKEN),
        calls: 5,
        rate: 50.0,
        provider: Provider::Twilio,
        progress: false,
    };

    let report = simulate::run(&options).await.unwrap();

    assert_eq!((report.total.rejected, report.total.accepted), (0, report.total.sent));
    assert_eq!(report.endpoints["voice"].sent, 5);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM calls WHERE status = 'completed'").await, 5);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM webhook_events").await as usize, report.total.sent);
    assert!(report.render().lines().any(|l| l.starts_with("total")));
}

#[sqlx::test(migrations = false)]
async fn simulate_with_the_wrong_auth_token_is_refused_and_stores_nothing(pool: PgPool) {
    migrate(&pool).await;
    company(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let options = SimulateOptions {
        target: simulate_target(&app.base_url, "not-the-token"),
        calls: 3,
        rate: 50.0,
        provider: Provider::Twilio,
        progress: false,
    };

    let report = simulate::run(&options).await.unwrap();

    assert_eq!((report.total.sent, report.total.rejected), (3, 3), "each caller gives up after the 403");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM webhook_events").await, 0);
}

#[sqlx::test(migrations = false)]
async fn simulate_runs_exotel_flows_through_passthru_connect_and_status(pool: PgPool) {
    migrate(&pool).await;
    company(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let options = SimulateOptions {
        target: simulate_target(&app.base_url, AUTH_TOKEN),
        calls: 4,
        rate: 50.0,
        provider: Provider::Exotel,
        progress: false,
    };

    let report = simulate::run(&options).await.unwrap();

    assert_eq!(report.total.rejected, 0);
    for endpoint in ["voice", "connect"] {
        assert_eq!(report.endpoints[endpoint].sent, 4, "{endpoint}");
    }
    assert_eq!(scalar(&pool, "SELECT count(*) FROM calls WHERE provider = 'exotel' AND status = 'completed'").await, 4);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM recordings WHERE provider = 'exotel'").await, 4);
}

#[sqlx::test(migrations = false)]
async fn the_demo_binary_creates_its_database_when_missing_and_prints_what_it_holds(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().to_str().unwrap();
    let mut url = url::Url::parse(&crate::support::binary::database_url(&pool)).unwrap();
    let fresh = format!("switchboard_demo_fresh_{:08x}", rand::random::<u32>());
    url.set_path(&fresh);
    let drop = format!("DROP DATABASE IF EXISTS \"{fresh}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop.clone())).execute(&pool).await.unwrap();

    let out = crate::support::binary::command(
        &pool,
        &["demo", "--calls", "3", "--rate", "20", "--recordings-dir", recordings],
    )
    .env("DATABASE_URL", url.as_str())
    .output()
    .await
    .unwrap();

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created = PgPool::connect(url.as_str()).await.expect("the demo created its database");
    assert_eq!(printed(&stdout, "calls:"), 3);
    assert_eq!(
        printed(&stdout, "calls:"),
        scalar(&created, "SELECT count(*) FROM calls WHERE direction = 'inbound'").await
    );
    assert_eq!(printed(&stdout, "leads:"), scalar(&created, "SELECT count(*) FROM leads").await);
    assert!(stdout.contains(&format!("Authorization: Bearer {}", switchboard::demo::API_TOKEN)), "{stdout}");
    created.close().await;
    sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await.unwrap();
}
