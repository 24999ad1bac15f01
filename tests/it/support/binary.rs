//! Running the real `switchboard` binary against a test database.

use std::process::{Output, Stdio};

use sqlx::PgPool;
use tokio::process::Command;

/// The test database's URL, for a child process.
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests");
    let mut url = url::Url::parse(&base).expect("DATABASE_URL is a URL");
    url.set_path(options.get_database().expect("test pool names its database"));
    url.to_string()
}

pub fn command(pool: &PgPool, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(args)
        .env("DATABASE_URL", database_url(pool))
        .env("RUST_LOG", "warn")
        .env("WORKER_POLL_INTERVAL", "100ms")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs a command to completion and returns its output.
pub async fn run(pool: &PgPool, args: &[&str]) -> Output {
    command(pool, args).output().await.expect("switchboard runs")
}

/// Waits until a web process on `port` answers `GET /healthz`; its base URL.
pub async fn web_answering(port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    super::wait_until(std::time::Duration::from_secs(30), "the web to answer /healthz", || async {
        client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    base
}

/// Sends a signal with the `kill` command (no libc dependency for one call);
/// returns its exit code.
pub fn send_signal(pid: u32, signal: &str) -> i32 {
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs")
        .code()
        .unwrap_or(-1)
}

/// Runs `command` as on a Heroku dyno named `dyno`, with what a dyno requires
/// said explicitly: TLS off (the test server has none) and S3 storage (a
/// dyno refuses local storage; nothing is stored at this endpoint).
pub fn as_dyno<'c>(command: &'c mut Command, dyno: &str) -> &'c mut Command {
    command
        .env("DYNO", dyno)
        .env("PGSSLMODE", "disable")
        .env("RECORDING_STORAGE", "s3")
        .env("S3_BUCKET", "recordings")
        .env("S3_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
}
