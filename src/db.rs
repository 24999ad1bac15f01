//! Connection pools to PostgreSQL, the two routes to it, and the migration
//! state the web's readiness depends on.
//!
//! - [`direct_pool`]: the server itself (`DATABASE_URL`), for what needs a
//!   session of its own: migrations (advisory lock), LISTEN, and the queue's
//!   own pool (claims and outcomes, never queued behind a pooler's clients).
//! - [`pooled_pool`]: application queries (web requests, job handlers) through
//!   PgBouncer in transaction mode when `DATABASE_CONNECTION_POOL_URL` is set,
//!   with no startup parameters PgBouncer refuses, checked at start to keep
//!   prepared statements apart ([`check_pooled_route`]); without it, the same
//!   as a direct pool.
//!
//! Both are lazy (a process starts while the database is away) and check each
//! connection before use (a restarted server is survived). On a dyno TLS is
//! required unless the URL's `sslmode` or `PGSSLMODE` says otherwise;
//! [`refuse_plaintext`] turns a server without TLS into an error at start.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseConfig;

/// A pool of `max_connections` on `DATABASE_URL`.
pub fn direct_pool(config: &DatabaseConfig, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(lazy_pool(direct_options(config)?, max_connections))
}

/// A pool of `max_connections` on `DATABASE_CONNECTION_POOL_URL` (PgBouncer), else on `DATABASE_URL`.
pub fn pooled_pool(config: &DatabaseConfig, max_connections: u32) -> anyhow::Result<PgPool> {
    Ok(lazy_pool(pooled_options(config)?, max_connections))
}

/// How to reach the server itself.
pub fn direct_options(config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    options("DATABASE_URL", config.url.expose_secret(), config)
}

/// True when application queries go through PgBouncer.
pub fn is_pooled(config: &DatabaseConfig) -> bool {
    config.pooled_url.is_some()
}

/// How to reach PgBouncer: only the startup parameters it accepts (it refuses
/// `extra_float_digits` and `options`, which the direct route may send).
/// sqlx's statement cache stays on: sqlx 0.9 prepares every query with
/// arguments under a name (`sqlx_s_N`) whether the cache is on or not (off, a
/// new name each time, never closed), so only a pooler that tracks named
/// prepared statements (PgBouncer 1.21 and later, `max_prepared_statements`
/// above 0) can carry it; [`check_pooled_route`] refuses one that does not.
pub fn pooled_options(config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    let Some(url) = &config.pooled_url else { return direct_options(config) };
    Ok(options("DATABASE_CONNECTION_POOL_URL", url.expose_secret(), config)?.extra_float_digits(None))
}

/// When `DATABASE_CONNECTION_POOL_URL` is set, checks once at start that the
/// pooler keeps two clients' prepared statements apart: two connections each
/// prepare their first statement (both named `sqlx_s_1`). A PgBouncer that
/// does not track them hands both to the same server connection and the
/// second fails (`42P05`, already exists); running on, a query could later be
/// bound to another client's statement. That is an error at start. Any other
/// failure is only logged (the database may not be up yet), and a pooler that
/// passes may still be caught only later: the check is a probe, not a proof.
pub async fn check_pooled_route(config: &DatabaseConfig) -> anyhow::Result<()> {
    if !is_pooled(config) {
        return Ok(());
    }
    let options = pooled_options(config)?;
    let probe = async {
        let mut first = PgConnection::connect_with(&options).await?;
        let mut second = PgConnection::connect_with(&options).await?;
        for conn in [&mut first, &mut second] {
            sqlx::query_scalar::<_, i32>("SELECT $1::int4").bind(1).fetch_one(&mut *conn).await?;
        }
        let _ = tokio::join!(first.close(), second.close());
        Ok::<_, sqlx::Error>(())
    };
    match probe.await {
        Ok(()) => Ok(()),
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P05" | "26000")) => {
            Err(anyhow::anyhow!(
                "DATABASE_CONNECTION_POOL_URL: the pooler does not keep prepared statements apart ({e}). \
                 sqlx prepares every query; it needs PgBouncer 1.21 or later with max_prepared_statements \
                 above 0. Unset DATABASE_CONNECTION_POOL_URL to connect directly"
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, "pooled database route not reachable yet; going on and retrying on use");
            Ok(())
        }
    }
}

fn options(name: &str, url: &str, config: &DatabaseConfig) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions =
        url.parse().with_context(|| format!("{name} is not a PostgreSQL URL (postgres://user:password@host/db)"))?;
    let options = options.application_name(&config.application_name);
    let says_sslmode = url::Url::parse(url).is_ok_and(|u| u.query_pairs().any(|(k, _)| k == "sslmode"));
    Ok(if config.require_tls && !says_sslmode { options.ssl_mode(PgSslMode::Require) } else { options })
}

/// Logs at start how many connections this process may open, and by which route.
pub fn log_budget(config: &DatabaseConfig, pooled: u32, direct: u32) {
    let route = if is_pooled(config) { "DATABASE_CONNECTION_POOL_URL" } else { "DATABASE_URL" };
    tracing::info!(
        process = %config.application_name,
        connections = pooled + direct,
        application_connections = pooled,
        application_route = route,
        direct_connections = direct,
        "database connection budget"
    );
}

fn lazy_pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(true)
        .connect_lazy_with(options)
}

/// When TLS is required, connects once: a server that refuses TLS is an error
/// (waiting will not change it); any other failure is only logged, since the
/// database may simply not be up yet.
pub async fn refuse_plaintext(config: &DatabaseConfig, pool: &PgPool) -> anyhow::Result<()> {
    if !config.require_tls {
        return Ok(());
    }
    match pool.acquire().await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Tls(e)) => Err(anyhow::anyhow!(
            "the database refused TLS ({e}); on a dyno TLS to the database is required. \
             To connect without it anyway, add sslmode=prefer (or disable) to the URL or set PGSSLMODE"
        )),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable yet; going on and retrying on use");
            Ok(())
        }
    }
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
