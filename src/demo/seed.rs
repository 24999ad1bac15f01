//! The demo's company: a Bangalore developer with a sales team (round robin,
//! short wait, voicemail on overflow) and a support desk (least busy, callback
//! on overflow), an IVR on the main number, and agents of whom some are on a
//! break or offline, so routing skips them and overflow happens.

use sqlx::PgPool;

/// The number callers dial (E.164); the IVR menu answers it.
pub const MAIN_NUMBER: &str = "+918047110000";

/// (name, phone, department, status, max concurrent calls)
const AGENTS: [(&str, &str, &str, &str, i32); 7] = [
    ("Asha Rao", "+919880000101", "sales", "available", 1),
    ("Vikram Shetty", "+919880000102", "sales", "available", 1),
    ("Rohan Iyer", "+919880000103", "sales", "available", 2),
    ("Priya Nair", "+919880000104", "sales", "break", 1),
    ("Kabir Khan", "+919880000105", "sales", "offline", 1),
    ("Neha Gupta", "+919880000201", "support", "available", 1),
    ("Imran Sheikh", "+919880000202", "support", "break", 1),
];

pub async fn company(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let sales: i64 = sqlx::query_scalar(
        "INSERT INTO departments (name, strategy, max_wait_secs, overflow_action)
         VALUES ('sales', 'round_robin', 5, 'voicemail') RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await?;
    let support: i64 = sqlx::query_scalar(
        "INSERT INTO departments (name, strategy, max_wait_secs, overflow_action)
         VALUES ('support', 'least_busy', 3, 'callback') RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await?;
    for (name, phone, department, status, max_calls) in AGENTS {
        let department_id = if department == "sales" { sales } else { support };
        sqlx::query(
            "INSERT INTO agents (name, phone, department_id, status, max_concurrent_calls) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(phone)
        .bind(department_id)
        .bind(status)
        .bind(max_calls)
        .execute(&mut *tx)
        .await?;
    }
    let menu: i64 = sqlx::query_scalar(
        "INSERT INTO ivr_menus (phone_number, prompt, timeout_secs, max_retries)
         VALUES ($1, 'Welcome to Prestige Homes. For new homes and offices, press 1. For existing customers, press 2.', 5, 1)
         RETURNING id",
    )
    .bind(MAIN_NUMBER)
    .fetch_one(&mut *tx)
    .await?;
    for (digit, department) in [("1", sales), ("2", support)] {
        sqlx::query("INSERT INTO ivr_options (menu_id, digit, department_id) VALUES ($1, $2, $3)")
            .bind(menu)
            .bind(digit)
            .bind(department)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
