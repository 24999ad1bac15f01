//! `create-lead`: fold an insight into the lead for the customer's phone
//! number (new facts fill in, nulls never erase, the latest call's score
//! wins), link the call, and tell the CRM once per insight revision under a
//! stable delivery id.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::insight::{Insight, Timeline};
use crate::queue::{Job, JobContext, JobError, RetryPolicy};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateLead {
    pub insight_id: i64,
}

/// The delivery id a CRM receiver dedupes on: one per insight revision (a
/// re-analysis is news), the same on every retry.
pub fn delivery_id(insight_id: i64, revision: i32) -> String {
    match revision {
        1 => format!("switchboard-insight-{insight_id}"),
        _ => format!("switchboard-insight-{insight_id}-r{revision}"),
    }
}

/// Facts an insight from a later call (or the same call analysed again)
/// replaces only with a value, never with a null; an insight from an earlier
/// call, whenever it is analysed, only fills gaps.
const FACTS: [&str; 9] = [
    "name",
    "email",
    "budget_min_inr",
    "budget_max_inr",
    "property_type",
    "property_size",
    "purpose",
    "timeline",
    "financing_needed",
];
/// What the latest call's insight says about the lead as a whole.
const LATEST: [&str; 6] = ["score", "hot", "sentiment", "summary", "next_best_action", "follow_up_due_at"];

static UPSERT: LazyLock<String> = LazyLock::new(|| {
    // Calls are ordered by when they happened; the insight id only breaks ties.
    let newer =
        "(EXCLUDED.latest_called_at, EXCLUDED.latest_insight_id) >= (leads.latest_called_at, leads.latest_insight_id)";
    let facts = FACTS.map(|c| {
        format!(
            "{c} = CASE WHEN {newer} THEN COALESCE(EXCLUDED.{c}, leads.{c}) ELSE COALESCE(leads.{c}, EXCLUDED.{c}) END"
        )
    });
    let latest = LATEST.map(|c| format!("{c} = CASE WHEN {newer} THEN EXCLUDED.{c} ELSE leads.{c} END"));
    format!(
        "INSERT INTO leads (phone, {facts_cols}, preferred_locations, {latest_cols}, latest_insight_id, latest_called_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         ON CONFLICT (phone) DO UPDATE SET {facts}, {latest},
            preferred_locations = leads.preferred_locations || ARRAY(
                SELECT l FROM unnest(EXCLUDED.preferred_locations) AS l WHERE l <> ALL (leads.preferred_locations)),
            latest_insight_id = CASE WHEN {newer} THEN EXCLUDED.latest_insight_id ELSE leads.latest_insight_id END,
            latest_called_at = CASE WHEN {newer} THEN EXCLUDED.latest_called_at ELSE leads.latest_called_at END,
            updated_at = now()
         RETURNING id",
        facts_cols = FACTS.join(", "),
        latest_cols = LATEST.join(", "),
        facts = facts.join(", "),
        latest = latest.join(", "),
    )
});

/// Why a call with a withheld caller gets no lead, as stored on its insight.
pub const NO_PHONE: &str = "no lead: the caller's number was withheld or is not a phone number \
     (anonymous, SIP or client caller), so there is no phone to key a lead on";

/// A caller without a usable number (Twilio `anonymous`, `sip:`, `client:`;
/// a withheld Exotel caller) was routed, recorded, transcribed and analysed
/// like any other; leads are keyed on the phone number, so this one gets
/// none. The insight says why, and the job is done: nothing to retry.
async fn record_no_lead(ctx: &JobContext, insight_id: i64, call_sid: &str) -> Result<(), JobError> {
    sqlx::query("UPDATE insights SET no_lead_reason = $2 WHERE id = $1")
        .bind(insight_id)
        .bind(NO_PHONE)
        .execute(&ctx.pool)
        .await?;
    tracing::info!(call_sid, insight_id, "{NO_PHONE}");
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Source {
    call_sid: String,
    data: sqlx::types::Json<Insight>,
    revision: i32,
    customer_phone: Option<String>,
    called_at: DateTime<Utc>,
}

impl Job for CreateLead {
    const KIND: &'static str = "create-lead";

    /// CRM endpoints go down for a while: retry for about a day.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 12,
            initial_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3 * 3600),
            ..RetryPolicy::default()
        }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let source: Source = sqlx::query_as(
            "SELECT i.call_sid, i.data, i.revision, r.customer_phone, r.called_at
             FROM insights i JOIN transcripts t ON t.id = i.transcript_id JOIN recordings r ON r.id = t.recording_id
             WHERE i.id = $1",
        )
        .bind(self.insight_id)
        .fetch_optional(&ctx.pool)
        .await?
        .ok_or_else(|| JobError::permanent(format!("insight {} does not exist", self.insight_id)))?;
        let Some(phone) = source.customer_phone.as_deref() else {
            return record_no_lead(&ctx, self.insight_id, &source.call_sid).await;
        };
        let insight = &source.data.0;
        let hot = insight.lead_score >= ctx.ports.pipeline.hot_lead_score;
        let follow_up =
            insight.next_action_due_in_days.map(|days| source.called_at + chrono::Duration::days(days.into()));
        let timeline = Some(insight.timeline).filter(|t| *t != Timeline::Unknown);

        let mut tx = ctx.pool.begin().await?;
        // UPSERT is built from the constant column lists above only.
        let lead_id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(UPSERT.as_str()))
            .bind(phone)
            .bind(&insight.customer_name)
            .bind(&insight.customer_email)
            .bind(insight.budget_min_inr)
            .bind(insight.budget_max_inr)
            .bind(&insight.property_type)
            .bind(&insight.property_size)
            .bind(insight.purpose)
            .bind(timeline)
            .bind(insight.financing_needed)
            .bind(&insight.preferred_locations)
            .bind(insight.lead_score)
            .bind(hot)
            .bind(insight.sentiment)
            .bind(&insight.summary)
            .bind(&insight.next_best_action)
            .bind(follow_up)
            .bind(self.insight_id)
            .bind(source.called_at)
            .fetch_one(&mut *tx)
            .await?;
        let delivered: Option<DateTime<Utc>> = sqlx::query_scalar(
            "INSERT INTO lead_calls (insight_id, lead_id, call_sid) VALUES ($1, $2, $3)
             ON CONFLICT (insight_id) DO UPDATE SET lead_id = EXCLUDED.lead_id
             RETURNING crm_delivered_at",
        )
        .bind(self.insight_id)
        .bind(lead_id)
        .bind(&source.call_sid)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(call_sid = %source.call_sid, lead_id, hot, score = insight.lead_score, "lead updated");

        match (&ctx.ports.crm, delivered) {
            (Some(crm), None) => {
                let lead: serde_json::Value = sqlx::query_scalar("SELECT to_jsonb(l) FROM leads l WHERE id = $1")
                    .bind(lead_id)
                    .fetch_one(&ctx.pool)
                    .await?;
                crm.deliver(&delivery_id(self.insight_id, source.revision), &lead).await?;
                // Not if a re-analysis replaced the insight meanwhile: its own job tells the CRM.
                sqlx::query(
                    "UPDATE lead_calls lc SET crm_delivered_at = now() FROM insights i
                     WHERE lc.insight_id = $1 AND i.id = lc.insight_id AND i.revision = $2",
                )
                .bind(self.insight_id)
                .bind(source.revision)
                .execute(&ctx.pool)
                .await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
