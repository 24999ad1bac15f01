//! The connection pool and the migration state the web's readiness depends on.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseConfig;

/// A lazy pool: the process starts even while the database is away, and each
/// connection is checked before use so a restarted server is survived.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(true)
        .connect_lazy(&config.url)?)
}

/// True when both apalis's migrations and ours are all applied.
pub async fn is_migrated(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let ours = switchboard_jobs::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let apalis = apalis_postgres::PostgresStorage::migrations().iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Result<(bool, bool), _> = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM public._sqlx_migrations WHERE version = $1 AND success),
                EXISTS (SELECT 1 FROM apalis._sqlx_migrations WHERE version = $2 AND success)",
    )
    .bind(ours)
    .bind(apalis)
    .fetch_one(pool)
    .await;
    match applied {
        Ok((ours, apalis)) => Ok(ours && apalis),
        // No migration table (42P01) or no `apalis` schema (3F000) yet: never migrated.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P01" | "3F000")) => Ok(false),
        Err(e) => Err(e),
    }
}
