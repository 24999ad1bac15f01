//! The world tests build on: a migrated database, the web app on a real
//! socket, in-process workers, the real binary, and waiting on conditions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use switchboard::config::WebhookConfig;
use switchboard::web::{self, AppState};
use switchboard_jobs::ports::{PortError, Ports, RecordingStore};
use switchboard_jobs::queue::{self, QueueSettings, Registry, SupervisorConfig, prune::PruneSchedule};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod binary;
pub mod fake_providers;
pub mod moto;
pub mod pgbouncer;
pub mod throwaway_pg;

/// Applies apalis's migrations and ours to the test's fresh database.
pub async fn migrate(pool: &PgPool) {
    switchboard_jobs::migrate(pool).await.expect("migrations apply");
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number a `SELECT count(*) ...` (or any single bigint) query returns.
/// Stores `body` under `key` as the worker does: from a file.
pub async fn put_bytes(store: &dyn RecordingStore, key: &str, body: &[u8]) -> Result<(), PortError> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    store.put_file(key, file.path(), "audio/mpeg").await
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap()
}

/// Waits (up to a minute) until `sql`, a count query, returns `expected`.
pub async fn wait_for_count(pool: &PgPool, sql: &str, expected: i64) {
    wait_until(Duration::from_secs(60), &format!("{expected} from {sql}"), || async {
        count(pool, sql).await == expected
    })
    .await;
}

/// The state column of a job, as operators see it.
pub async fn job_state(pool: &PgPool, id: &str) -> String {
    sqlx::query_scalar("SELECT state FROM job_overview WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("job exists")
}

/// Settings for fast tests: quick polls and heartbeats.
pub fn fast_settings() -> SupervisorConfig {
    SupervisorConfig {
        queues: QueueSettings { poll_interval: Duration::from_millis(100), ..QueueSettings::default() },
        shutdown_grace: Duration::from_secs(5),
        pruning: PruneSchedule { retention: Duration::from_secs(7 * 86400), every: Duration::from_secs(3600) },
    }
}

/// Workers running in this process until dropped or stopped.
pub struct Workers {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Workers {
    pub fn start(pool: &PgPool, registry: Registry, ports: Ports) -> Self {
        Self::start_with_pools(queue::QueuePools::sharing(pool), registry, ports)
    }

    /// Workers on pools the test built (a tiny queue pool, no LISTEN...).
    pub fn start_with_pools(pools: queue::QueuePools, registry: Registry, ports: Ports) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(queue::run(pools, registry, Arc::new(ports), fast_settings(), async {
            let _ = stopped.await;
        }));
        Self { stop: Some(stop), handle }
    }

    /// Asks the workers to stop and waits until they have drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.expect("supervisor ends cleanly");
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The bearer token the test app accepts on `/api/*`.
pub const API_TOKEN: &str = "test-token-0123456789abcdef0123456789";

/// The web app served on a loopback port.
pub struct TestApp {
    pub base_url: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
}

pub async fn spawn_app(pool: &PgPool) -> TestApp {
    spawn_app_with(pool, WebhookConfig::default()).await
}

/// The web app with these webhook settings (provider secrets, deadlines).
pub async fn spawn_app_with(pool: &PgPool, webhooks: WebhookConfig) -> TestApp {
    serve_state(pool, AppState::new(pool.clone(), vec![API_TOKEN.into()]).with_webhooks(webhooks)).await
}

/// The web app over a state the test built (with recordings, webhooks...).
pub async fn serve_state(pool: &PgPool, state: AppState) -> TestApp {
    serve_state_with_limit(pool, state, 64 * 1024).await
}

/// [`serve_state`] with the API's body limit (`BODY_LIMIT_BYTES`) at `body_limit_bytes`.
pub async fn serve_state_with_limit(pool: &PgPool, state: AppState, body_limit_bytes: usize) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(web::serve(listener, web::app(state, body_limit_bytes), std::future::pending()));
    TestApp { base_url, client: reqwest::Client::new(), pool: pool.clone() }
}
