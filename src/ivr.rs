//! IVR menus as stored in `ivr_menus`/`ivr_options`: which menu a called
//! number starts at, and where a caller's key press (or silence) leads.
//! Provider-neutral: Twilio answers with `<Gather>`, Exotel's Passthru with a branch.

use sqlx::PgConnection;

use crate::providers::identifiers::Digits;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Menu {
    pub id: i64,
    pub prompt: String,
    pub timeout_secs: i32,
    pub max_retries: i32,
    pub fallback_department_id: Option<i64>,
}

/// Where the caller goes next.
#[derive(Debug, Clone)]
pub enum Step {
    /// Offer `menu` (again), its `attempt`-th time, after `notice` when the last key was wrong.
    Offer { menu: Menu, attempt: i32, notice: Option<&'static str> },
    /// Wait for an agent of this department.
    Department(i64),
    /// No more retries and no fallback department: take a message.
    Voicemail,
}

pub const INVALID_CHOICE: &str = "Sorry, that is not a valid choice.";

const MENU_COLUMNS: &str = "SELECT id, prompt, timeout_secs, max_retries, fallback_department_id FROM ivr_menus";

/// The menu callers of `number` hear first, if it has one.
pub async fn root_menu(conn: &mut PgConnection, number: &str) -> Result<Option<Menu>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{MENU_COLUMNS} WHERE phone_number = $1")))
        .bind(number)
        .fetch_optional(conn)
        .await
}

pub async fn menu(conn: &mut PgConnection, id: i64) -> Result<Option<Menu>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{MENU_COLUMNS} WHERE id = $1"))).bind(id).fetch_optional(conn).await
}

/// Where `digits` (or silence) at `menu`, offered for the `attempt`-th time, lead.
pub async fn next_step(
    conn: &mut PgConnection,
    menu: Menu,
    digits: Option<&Digits>,
    attempt: i32,
) -> Result<Step, sqlx::Error> {
    let Some(digits) = digits else { return Ok(retry_or_fall_back(menu, attempt, None)) };
    let option: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT department_id, submenu_id FROM ivr_options WHERE menu_id = $1 AND digit = $2")
            .bind(menu.id)
            .bind(digits.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match option {
        Some((Some(department), _)) => Step::Department(department),
        Some((None, Some(submenu))) => match self::menu(conn, submenu).await? {
            Some(submenu) => Step::Offer { menu: submenu, attempt: 0, notice: None },
            None => retry_or_fall_back(menu, attempt, Some(INVALID_CHOICE)),
        },
        _ => retry_or_fall_back(menu, attempt, Some(INVALID_CHOICE)),
    })
}

fn retry_or_fall_back(menu: Menu, attempt: i32, notice: Option<&'static str>) -> Step {
    if attempt < menu.max_retries {
        Step::Offer { menu, attempt: attempt + 1, notice }
    } else {
        menu.fallback_department_id.map_or(Step::Voicemail, Step::Department)
    }
}
