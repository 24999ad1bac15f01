//! The demo's database: created when missing, and reset before each run by
//! deleting the demo's own rows (and the recording files they point at), so
//! a re-run starts clean. A database whose name does not say `demo` is only
//! used when it has no calls yet or the demo marked it as its own: the demo
//! never wipes real data.

use std::path::{Component, Path};
use std::str::FromStr;

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, PgPool};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/switchboard_demo";

/// Creates the database `url` names when it does not exist (through the server's `postgres` database).
pub async fn create_if_missing(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).with_context(|| format!("DATABASE_URL {url:?} is not valid"))?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("cannot reach PostgreSQL (is it running on the DATABASE_URL's host?)")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {}", quoted(&name)))).execute(&mut admin).await?;
    }
    Ok(())
}

/// `database_url` with its password (if any) replaced by `***`, for printing.
pub fn without_password(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => database_url.to_owned(),
    }
}

/// The tables the demo writes, emptied together (their jobs and job errors too).
const DEMO_TABLES: &str = "lead_calls, leads, insights, transcripts, recordings, webhook_events, calls, \
ivr_options, ivr_menus, agents, departments, scheduled_call_attempts, scheduled_calls, calling_policies, \
paused_kinds, job_errors, apalis.jobs";

/// What the demo writes on a database it has reset, so the next run may reset it again.
const MARKER: &str = "switchboard demo";

/// Empties the demo's tables and deletes the recording files they list.
/// Refuses a database that holds calls unless it is a demo one (named so, or reset by the demo before).
pub async fn reset(pool: &PgPool, recordings_dir: &Path) -> anyhow::Result<()> {
    let (name, calls, comment): (String, i64, Option<String>) = sqlx::query_as(
        "SELECT current_database()::text, (SELECT count(*) FROM calls),
                shobj_description((SELECT oid FROM pg_database WHERE datname = current_database()), 'pg_database')",
    )
    .fetch_one(pool)
    .await?;
    if calls > 0 && !name.contains("demo") && comment.as_deref() != Some(MARKER) {
        bail!(
            "database {name:?} already has {calls} calls and is not a demo database: \
             the demo resets what it runs on, so point DATABASE_URL at a database of its own"
        );
    }
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT storage_key FROM recordings WHERE storage_key IS NOT NULL").fetch_all(pool).await?;
    let plain = |key: &String| Path::new(key).components().all(|c| matches!(c, Component::Normal(_)));
    for key in keys.iter().filter(|k| plain(k)) {
        let _ = tokio::fs::remove_file(recordings_dir.join(key)).await;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("TRUNCATE {DEMO_TABLES} RESTART IDENTITY CASCADE"))).execute(pool).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("COMMENT ON DATABASE {} IS '{MARKER}'", quoted(&name))))
        .execute(pool)
        .await?;
    Ok(())
}

/// A database name as an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_printed_url_hides_its_password_only() {
        assert_eq!(without_password("postgres://app:s3cret@db:5432/demo"), "postgres://app:***@db:5432/demo");
        assert_eq!(without_password("postgres://postgres@127.0.0.1/demo"), "postgres://postgres@127.0.0.1/demo");
    }
}
