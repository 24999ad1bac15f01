//! The numbers we call: a contact's own zone and NCPR/DND flag, and our
//! internal opt-out (do-not-call) list.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::PgConnection;

use crate::phone::PhoneNumber;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Contact {
    pub phone: String,
    pub timezone: Option<String>,
    pub ncpr_registered: bool,
    pub updated_at: DateTime<Utc>,
}

impl Contact {
    pub async fn find(conn: &mut PgConnection, phone: &PhoneNumber) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM contacts WHERE phone = $1").bind(phone.as_str()).fetch_optional(conn).await
    }

    /// Creates or replaces what we know about `phone`.
    pub async fn save(
        conn: &mut PgConnection,
        phone: &PhoneNumber,
        timezone: Option<Tz>,
        ncpr_registered: bool,
    ) -> Result<Self, sqlx::Error> {
        sqlx::query_as(
            "INSERT INTO contacts (phone, timezone, ncpr_registered) VALUES ($1, $2, $3)
             ON CONFLICT (phone) DO UPDATE
             SET timezone = EXCLUDED.timezone, ncpr_registered = EXCLUDED.ncpr_registered, updated_at = now()
             RETURNING *",
        )
        .bind(phone.as_str())
        .bind(timezone.map(|zone| zone.name()))
        .bind(ncpr_registered)
        .fetch_one(conn)
        .await
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OptOut {
    pub phone: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl OptOut {
    pub async fn find(conn: &mut PgConnection, phone: &PhoneNumber) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM opt_outs WHERE phone = $1").bind(phone.as_str()).fetch_optional(conn).await
    }

    /// Adds `phone` to the list; opting out twice keeps the first record.
    pub async fn add(conn: &mut PgConnection, phone: &PhoneNumber, reason: Option<&str>) -> Result<Self, sqlx::Error> {
        sqlx::query_as(
            "WITH added AS (
                INSERT INTO opt_outs (phone, reason) VALUES ($1, $2) ON CONFLICT (phone) DO NOTHING RETURNING *)
             SELECT * FROM added UNION ALL SELECT * FROM opt_outs WHERE phone = $1 LIMIT 1",
        )
        .bind(phone.as_str())
        .bind(reason)
        .fetch_one(conn)
        .await
    }

    /// Takes `phone` off the list; false when it was not on it.
    pub async fn remove(conn: &mut PgConnection, phone: &PhoneNumber) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM opt_outs WHERE phone = $1").bind(phone.as_str()).execute(conn).await?;
        Ok(done.rows_affected() > 0)
    }
}
