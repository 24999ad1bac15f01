//! The demo's outbound part, through the operator API as a user would: the
//! calling window opened all day (`PUT /api/calling-policy`, so the demo runs
//! at any hour; a real deployment keeps 09:00-21:00 India time), then a
//! follow-up call scheduled for every hot lead (`POST /api/scheduled-calls`).
//! The worker places them through the simulated provider (Twilio, or
//! Exotel's Connect); a customer who does not pick up is called again two
//! seconds later.

use anyhow::bail;
use serde_json::json;
use sqlx::PgPool;
use switchboard_jobs::outbound::rules::PolicySet;
use switchboard_jobs::window::{CallingPolicy, Hours, WeeklyHours};

/// Who the follow-ups connect the customer with.
const AGENT: &str = "+919880000101";

/// Schedules the follow-ups; how many.
pub async fn schedule(pool: &PgPool, web_url: &str, api_token: &str) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let all_day = CallingPolicy {
        business_hours: WeeklyHours::every_day(Hours::new((0, 0), (23, 59))),
        end_buffer_minutes: 0,
        ..CallingPolicy::default()
    };
    let policies = PolicySet { default: all_day, overrides: Default::default() };
    let response =
        http.put(format!("{web_url}/api/calling-policy")).bearer_auth(api_token).json(&policies).send().await?;
    if !response.status().is_success() {
        bail!("the calling policy was refused: {}", response.text().await.unwrap_or_default());
    }
    let hot: Vec<String> =
        sqlx::query_scalar("SELECT phone FROM leads WHERE hot ORDER BY score DESC, id").fetch_all(pool).await?;
    for phone in &hot {
        let body = json!({
            "customer_phone": phone, "agent_phone": AGENT, "purpose": "service",
            "context": { "reason": "hot lead follow-up" }, "max_attempts": 3,
            "retry": { "initial_delay_s": 2, "multiplier": 1, "max_delay_s": 2 },
        });
        let response =
            http.post(format!("{web_url}/api/scheduled-calls")).bearer_auth(api_token).json(&body).send().await?;
        let status = response.status();
        let answer = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("scheduling a follow-up was refused ({status}): {answer}");
        }
    }
    Ok(hot.len())
}
