//! What the worker does: every job kind, the queue glue they run on, and the
//! ports through which they reach the outside world.

pub mod analyze;
pub mod calls;
pub mod create_lead;
pub mod fetch_recording;
pub mod handoffs;
pub mod insight;
pub mod noop;
pub mod outbound;
pub mod phone;
pub mod pipeline;
pub mod pipeline_settings;
pub mod ports;
pub mod probe;
pub mod queue;
pub mod reconcile_call;
pub mod release_silent_agent;
pub mod retry_scheduled_call;
pub mod route_call;
pub mod routing;
pub mod transcribe;
pub mod window;

/// Migrations of our own tables (apalis keeps its own, in schema `apalis`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Applies apalis's migrations, then ours. Idempotent; both take PostgreSQL's
/// migration lock, so several processes may run it at once.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    apalis_postgres::PostgresStorage::migrations().run(pool).await?;
    MIGRATOR.run(pool).await
}

/// Every job kind a worker runs, by stable name. One line per kind.
pub fn registry() -> queue::Registry {
    queue::Registry::default()
        .with::<noop::Noop>()
        .with::<fetch_recording::FetchRecording>()
        .with::<transcribe::Transcribe>()
        .with::<analyze::Analyze>()
        .with::<create_lead::CreateLead>()
        .with::<retry_scheduled_call::RetryScheduledCall>()
        .with::<route_call::RouteCall>()
        .with::<release_silent_agent::ReleaseSilentAgent>()
        .with::<reconcile_call::ReconcileCall>()
}
