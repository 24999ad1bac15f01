//! A Twilio call's recording from the signed webhook to the lead: the real
//! web app, every job kind on in-process workers, the after-call fakes for the
//! recording media, OpenAI and the CRM.

use serde_json::Value;
use sqlx::PgPool;
use switchboard_jobs::queue::admin;

use crate::after_call::{CUSTOMER, World, count, job_ids, wait_for_count, wait_for_jobs};
use crate::inbound::world::{OUR_NUMBER, twilio_post, webhooks};
use crate::support::{API_TOKEN, TestApp, migrate, spawn_app_with};

const SID: &str = "CA00000000000000000000000000000e2e";
const RECORDING_SID: &str = "RE00000000000000000000000000000e2e";
const CHAIN: [&str; 4] = ["fetch-recording", "transcribe", "analyze", "create-lead"];
const TABLES: [&str; 5] = ["recordings", "transcripts", "insights", "leads", "lead_calls"];

async fn post_signed(app: &TestApp, path: &str, params: &[(&str, &str)]) {
    let response = twilio_post(app, path, params).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
}

/// The call ends (Twilio's completed status), then its recording is ready.
async fn call_ends_and_recording_is_ready(app: &TestApp, recording_url: &str) {
    let status = [
        ("CallSid", SID),
        ("AccountSid", "ACtest"),
        ("From", CUSTOMER),
        ("To", OUR_NUMBER),
        ("Direction", "inbound"),
        ("CallStatus", "completed"),
        ("CallDuration", "95"),
        ("SequenceNumber", "3"),
    ];
    post_signed(app, "/webhooks/twilio/status", &status).await;
    let recording = [
        ("CallSid", SID),
        ("AccountSid", "ACtest"),
        ("RecordingSid", RECORDING_SID),
        ("RecordingUrl", recording_url),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "95"),
        ("RecordingChannels", "1"),
    ];
    post_signed(app, "/webhooks/twilio/recording", &recording).await;
}

async fn row_counts(pool: &PgPool) -> Vec<i64> {
    futures::future::join_all(TABLES.map(|t| count(pool, t))).await
}

#[sqlx::test(migrations = false)]
async fn signed_recording_webhook_gives_one_recording_transcript_insight_and_lead_shown_on_the_call(pool: PgPool) {
    migrate(&pool).await;
    let world = World::start(&pool).await;
    let app = spawn_app_with(&pool, webhooks()).await;
    let recording_url = world.fakes.recording_url(RECORDING_SID);

    call_ends_and_recording_is_ready(&app, &recording_url).await;
    call_ends_and_recording_is_ready(&app, &recording_url).await;
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;

    assert_eq!(row_counts(&pool).await, [1, 1, 1, 1, 1]);
    let linked: (String, String, i64) = sqlx::query_as(
        "SELECT r.storage_key, l.phone, count(*) OVER () FROM recordings r
         JOIN transcripts t ON t.recording_id = r.id JOIN insights i ON i.transcript_id = t.id
         JOIN lead_calls lc ON lc.insight_id = i.id JOIN leads l ON l.id = lc.lead_id
         WHERE r.call_sid = $1 AND lc.call_sid = $1",
    )
    .bind(SID)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(linked, (format!("twilio/{SID}/{RECORDING_SID}.mp3"), CUSTOMER.to_owned(), 1));
    for kind in CHAIN {
        assert_eq!(job_ids(&pool, kind).await.len(), 1, "one {kind} job for the webhook sent twice");
    }

    let call: Value = app
        .client
        .get(format!("{}/api/calls/{SID}", app.base_url))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(call["recordings"].as_array().map(Vec::len), Some(1), "{call}");
    assert_eq!(call["recordings"][0]["status"], "stored");
    assert_eq!(call["recordings"][0]["recording_sid"], RECORDING_SID);
    assert!(call["recordings"][0].get("source_url").is_none(), "the provider's URL is not shown: {call}");
    assert_eq!(call["transcripts"].as_array().map(Vec::len), Some(1));
    assert_eq!(call["insights"].as_array().map(Vec::len), Some(1));
    assert_eq!(call["insights"][0]["lead_score"], 82);
    assert_eq!(call["lead"]["phone"], CUSTOMER);

    // Every job of the chain run a second time changes nothing more.
    let mut all = Vec::new();
    for kind in CHAIN {
        wait_for_jobs(&pool, kind, "done").await;
        all.extend(job_ids(&pool, kind).await);
    }
    assert_eq!(admin::replay(&pool, &all).await.unwrap().len(), 4);
    for kind in CHAIN {
        wait_for_jobs(&pool, kind, "done").await;
    }
    crate::support::wait_for_count(&pool, "SELECT count(*) FROM job_overview WHERE state <> 'done'", 0).await;
    assert_eq!(row_counts(&pool).await, [1, 1, 1, 1, 1]);
    let deliveries: Vec<String> = world.fakes.crm_deliveries().into_iter().map(|d| d.delivery_id).collect();
    assert!(!deliveries.is_empty());
    assert!(deliveries.iter().all(|d| d == &deliveries[0]), "one delivery id for the one insight: {deliveries:?}");
    world.workers.stop().await;
}
