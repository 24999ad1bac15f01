//! The chain's behaviour: exactly once in effect, retries as OpenAI and the
//! providers ask, facts kept across calls, the CRM told once per insight.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use switchboard::ai::OpenAi;
use switchboard::recording_fetch::{BasicAuth, Loopback, RecordingDownloader};
use switchboard::storage::RecordingStorage;
use switchboard_jobs::analyze::Analyze;
use switchboard_jobs::create_lead::CreateLead;
use switchboard_jobs::fetch_recording::FetchRecording;
use switchboard_jobs::fetch_recording::{RecordingRef, request_fetch};
use switchboard_jobs::pipeline::{PipelineSettings, Step, reprocess};
use switchboard_jobs::ports::{Ports, Provider, RecordingStore};
use switchboard_jobs::queue::enqueue;
use switchboard_jobs::transcribe::Transcribe;

use super::fakes::{ACCOUNT_SID, AUTH_TOKEN, CRM_SECRET, Canned, Endpoint, TRANSCRIPT, fake_mp3, hot_insight};
use super::{CUSTOMER, World, announce, count, job_errors, job_ids, make_retries_due, wait_for_count, wait_for_jobs};
use crate::support::moto::Moto;
use crate::support::{binary, job_state};

const KINDS: [&str; 4] = ["fetch-recording", "transcribe", "analyze", "create-lead"];

async fn retry_delay_seconds(pool: &PgPool, kind: &str) -> f64 {
    sqlx::query_scalar("SELECT EXTRACT(EPOCH FROM run_at - done_at)::float8 FROM apalis.jobs WHERE job_type = $1")
        .bind(kind)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_for_errors(pool: &PgPool, kind: &str, n: usize) -> Vec<(String, String)> {
    crate::support::wait_until(std::time::Duration::from_secs(30), &format!("{n} {kind} errors"), || async {
        job_errors(pool, kind).await.len() >= n
    })
    .await;
    job_errors(pool, kind).await
}

async fn lead(pool: &PgPool) -> Value {
    sqlx::query_scalar("SELECT to_jsonb(l) FROM leads l WHERE phone = $1").bind(CUSTOMER).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrations = false)]
async fn one_recording_webhook_gives_exactly_one_object_transcript_insight_and_lead(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let moto = Moto::start().await;
    let store = moto.store("recordings").await;
    let s3 = store.client().clone();
    let world = World::build(&pool, Some(RecordingStorage::S3(store)), |ports, _| ports).await;

    assert!(announce(&pool, &world.fakes, "CA0001", 95, CUSTOMER).await.is_some());
    assert!(announce(&pool, &world.fakes, "CA0001", 95, CUSTOMER).await.is_none(), "the same webhook twice");
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;

    let (key, bytes, sha256, content_type): (String, i64, String, String) =
        sqlx::query_as("SELECT storage_key, bytes, sha256, content_type FROM recordings WHERE status = 'stored'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let recording = world.fakes.recording();
    assert_eq!(key, "twilio/CA0001/RE0001.mp3");
    assert_eq!(bytes, recording.len() as i64);
    assert_eq!(sha256, hex::encode(Sha256::digest(&recording)));
    assert_eq!(content_type, "audio/mpeg");
    let objects = s3.list_objects_v2().bucket("recordings").send().await.unwrap();
    let keys: Vec<_> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["twilio/CA0001/RE0001.mp3"]);

    let (language, model, request_id, segments): (String, String, String, Value) =
        sqlx::query_as("SELECT language, model, request_id, segments FROM transcripts WHERE call_sid = 'CA0001'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((language.as_str(), model.as_str(), request_id.as_str()), ("hindi", "whisper-1", "req_transcribe"));
    assert_eq!(segments.as_array().unwrap().len(), 1);
    let sent = &world.fakes.transcription_requests()[0];
    assert!(sent.contains("verbose_json") && sent.contains("whisper-1"));
    assert!(
        sent.contains("name=\"file\"; filename=\"RE0001.mp3\"\r\nContent-Type: audio/mpeg\r\n"),
        "the file part carries its name and audio type: {}",
        &sent[..sent.len().min(400)]
    );

    let (score, prompt, completion, cost, model): (i32, i64, i64, i64, String) =
        sqlx::query_as("SELECT lead_score, prompt_tokens, completion_tokens, cost_micro_usd, model FROM insights")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((score, prompt, completion, model.as_str()), (82, 1000, 200, "gpt-4o-mini-2024-07-18"));
    assert_eq!(cost, 270, "1000 x $0.15/M + 200 x $0.60/M = $0.000270");
    let chat = &world.fakes.chat_requests()[0];
    assert_eq!(chat["temperature"], 0.0);
    assert_eq!(chat["response_format"]["type"], "json_schema");
    assert_eq!(chat["response_format"]["json_schema"]["strict"], true);

    let lead = lead(&pool).await;
    assert_eq!(lead["name"], "Rahul");
    assert_eq!(lead["hot"], true);
    assert_eq!(lead["score"], 82);
    assert_eq!(lead["budget_max_inr"], 12_000_000);
    assert_eq!((lead["purpose"].as_str(), lead["timeline"].as_str()), (Some("end_use"), Some("1-3 months")));
    let called_at: DateTime<Utc> =
        sqlx::query_scalar("SELECT called_at FROM recordings").fetch_one(&pool).await.unwrap();
    let due: DateTime<Utc> = serde_json::from_value(lead["follow_up_due_at"].clone()).unwrap();
    assert_eq!(due, called_at + chrono::Duration::days(2));

    let before: Vec<i64> = futures::future::join_all(
        ["recordings", "transcripts", "insights", "leads", "lead_calls"].map(|t| count(&pool, t)),
    )
    .await;
    assert_eq!(before, vec![1, 1, 1, 1, 1]);

    // Every job delivered a second time changes nothing.
    let ids: (i64, i64, i64) = sqlx::query_as(
        "SELECT r.id, t.id, i.id FROM recordings r JOIN transcripts t ON t.recording_id = r.id JOIN insights i ON i.transcript_id = t.id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    enqueue(&mut conn, &FetchRecording { recording_id: ids.0 }).await.unwrap();
    enqueue(&mut conn, &Transcribe { recording_id: ids.0 }).await.unwrap();
    enqueue(&mut conn, &Analyze { transcript_id: ids.1 }).await.unwrap();
    enqueue(&mut conn, &CreateLead { insight_id: ids.2 }).await.unwrap();
    drop(conn);
    for kind in KINDS {
        assert_eq!(job_ids(&pool, kind).await.len(), 2);
        wait_for_jobs(&pool, kind, "done").await;
    }
    let after: Vec<i64> = futures::future::join_all(
        ["recordings", "transcripts", "insights", "leads", "lead_calls"].map(|t| count(&pool, t)),
    )
    .await;
    assert_eq!(after, before);
    for endpoint in [Endpoint::Recording, Endpoint::Transcription, Endpoint::Chat, Endpoint::Crm] {
        assert_eq!(world.fakes.hits(endpoint), 1, "{endpoint:?} called again");
    }
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn openai_down_then_back_is_retried_with_backoff_and_completes(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    world.fakes.fail(Endpoint::Chat, Canned::status(500));
    world.fakes.fail(Endpoint::Chat, Canned::openai_error(503, "server_error", "The server is overloaded"));

    announce(&pool, &world.fakes, "CA0002", 95, CUSTOMER).await;
    let errors = wait_for_errors(&pool, "analyze", 1).await;
    assert_eq!(errors[0].0, "retry");
    let first = retry_delay_seconds(&pool, "analyze").await;
    assert!((12.0..=18.0).contains(&first), "first backoff {first} s is 15 s +-20%");

    make_retries_due(&pool, "analyze").await;
    let errors = wait_for_errors(&pool, "analyze", 2).await;
    assert!(errors[1].1.contains("The server is overloaded"), "{errors:?}");
    let second = retry_delay_seconds(&pool, "analyze").await;
    assert!((24.0..=36.0).contains(&second), "second backoff {second} s is 30 s +-20%");

    make_retries_due(&pool, "analyze").await;
    wait_for_count(&pool, "leads", 1).await;
    wait_for_jobs(&pool, "analyze", "done").await;
    assert_eq!(count(&pool, "insights").await, 1);
    assert_eq!(world.fakes.hits(Endpoint::Chat), 3);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_429_with_retry_after_7_waits_7_seconds_without_spending_an_attempt(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    let limited =
        Canned::openai_error(429, "rate_limit_exceeded", "Rate limit reached for whisper-1 on requests per min");
    world.fakes.fail(Endpoint::Transcription, limited.with_header("retry-after", "7"));

    announce(&pool, &world.fakes, "CA0003", 95, CUSTOMER).await;
    let errors = wait_for_errors(&pool, "transcribe", 1).await;
    assert_eq!(errors[0].0, "throttled");
    assert!(errors[0].1.contains("rate_limit_exceeded"), "{errors:?}");
    let (wait, attempts): (f64, i32) = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM j.run_at - e.at)::float8, j.attempts FROM apalis.jobs j
         JOIN job_errors e ON e.job_id = j.id WHERE j.job_type = 'transcribe'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((wait, attempts), (7.0, 0));

    sqlx::query("UPDATE apalis.jobs SET run_at = now() WHERE job_type = 'transcribe'").execute(&pool).await.unwrap();
    wait_for_count(&pool, "leads", 1).await;
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn insufficient_quota_is_dead_at_once_and_a_replay_after_the_fix_makes_one_lead(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    let quota = "You exceeded your current quota, please check your plan and billing details.";
    world.fakes.fail(Endpoint::Transcription, Canned::openai_error(429, "insufficient_quota", quota));

    announce(&pool, &world.fakes, "CA0004", 95, CUSTOMER).await;
    wait_for_jobs(&pool, "transcribe", "dead").await;
    let errors = job_errors(&pool, "transcribe").await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "dead");
    assert!(errors[0].1.contains(quota), "{errors:?}");

    let transcribe = job_ids(&pool, "transcribe").await;
    assert_eq!(job_state(&pool, &transcribe[0]).await, "dead");
    let replay = binary::run(&pool, &["jobs", "replay", "--kind", "transcribe", "--state", "dead"]).await;
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    wait_for_count(&pool, "leads", 1).await;
    wait_for_jobs(&pool, "create-lead", "done").await;
    assert_eq!(count(&pool, "transcripts").await, 1);
    assert_eq!(count(&pool, "lead_calls").await, 1);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_second_call_from_the_same_number_updates_the_lead_without_losing_facts(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0005", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls", 1).await;

    let mut second = hot_insight();
    for (field, value) in [
        ("customer_name", Value::Null),
        ("customer_email", json!("rahul@example.com")),
        ("budget_min_inr", Value::Null),
        ("budget_max_inr", Value::Null),
        ("preferred_locations", json!(["Sarjapur Road", "Whitefield"])),
        ("timeline", json!("unknown")),
        ("sentiment", json!("neutral")),
        ("lead_score", json!(40)),
        ("summary", json!("Rahul is now unsure and comparing builders.")),
    ] {
        second[field] = value;
    }
    world.fakes.set_insight(second);
    announce(&pool, &world.fakes, "CA0006", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls", 2).await;

    assert_eq!(count(&pool, "leads").await, 1);
    let lead = lead(&pool).await;
    assert_eq!(lead["name"], "Rahul", "a null does not erase a known name");
    assert_eq!(lead["email"], "rahul@example.com", "a new fact fills in");
    assert_eq!(lead["budget_min_inr"], 8_000_000);
    assert_eq!(lead["timeline"], "1-3 months", "unknown does not erase a known timeline");
    assert_eq!(lead["preferred_locations"], json!(["Whitefield", "Sarjapur Road"]));
    assert_eq!(lead["score"], 40, "the newest score wins");
    assert_eq!(lead["hot"], false);
    assert_eq!(lead["summary"], "Rahul is now unsure and comparing builders.");
    let calls: Vec<String> =
        sqlx::query_scalar("SELECT call_sid FROM lead_calls ORDER BY call_sid").fetch_all(&pool).await.unwrap();
    assert_eq!(calls, vec!["CA0005", "CA0006"]);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_crm_sees_a_valid_signature_and_the_same_delivery_id_on_a_retry(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    world.fakes.fail(Endpoint::Crm, Canned::status(503));

    announce(&pool, &world.fakes, "CA0007", 95, CUSTOMER).await;
    wait_for_errors(&pool, "create-lead", 1).await;
    make_retries_due(&pool, "create-lead").await;
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;

    let deliveries = world.fakes.crm_deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].delivery_id, deliveries[1].delivery_id);
    assert!(!deliveries[0].delivery_id.is_empty());
    for delivery in &deliveries {
        assert_eq!(delivery.verify(CRM_SECRET, Utc::now().timestamp()), Ok(()));
        let lead: Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(lead["phone"], CUSTOMER);
    }
    assert_eq!(count(&pool, "leads").await, 1);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn short_calls_are_not_transcribed_and_say_why(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0008", 12, CUSTOMER).await;
    wait_for_jobs(&pool, "transcribe", "done").await;

    let (status, reason): (String, String) =
        sqlx::query_as("SELECT status, skip_reason FROM transcripts").fetch_one(&pool).await.unwrap();
    assert_eq!(status, "skipped");
    assert_eq!(reason, "call lasted 12 s, under MIN_TRANSCRIBE_SECONDS=30");
    assert_eq!(world.fakes.hits(Endpoint::Transcription), 0);
    assert!(job_ids(&pool, "analyze").await.is_empty());
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_30_mib_recording_fails_with_the_size_limit_message(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    world.fakes.set_recording(fake_mp3(30 * 1024 * 1024));
    announce(&pool, &world.fakes, "CA0009", 600, CUSTOMER).await;
    wait_for_jobs(&pool, "transcribe", "dead").await;

    let errors = job_errors(&pool, "transcribe").await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1, "recording is 30.0 MiB, over the 25 MiB transcription upload limit; not transcribed");
    assert_eq!(world.fakes.hits(Endpoint::Transcription), 0);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_recording_not_ready_yet_is_retried_and_rejected_credentials_are_dead(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    world.fakes.fail(Endpoint::Recording, Canned::status(404));
    announce(&pool, &world.fakes, "CA0010", 95, CUSTOMER).await;
    let errors = wait_for_errors(&pool, "fetch-recording", 1).await;
    assert_eq!(errors[0].0, "retry");
    assert!(errors[0].1.contains("not ready"), "{errors:?}");
    make_retries_due(&pool, "fetch-recording").await;
    wait_for_count(&pool, "recordings WHERE status = 'stored'", 1).await;

    world.fakes.fail(Endpoint::Recording, Canned::status(401));
    announce(&pool, &world.fakes, "CA0011", 95, CUSTOMER).await;
    wait_until_dead(&pool).await;
    let errors = job_errors(&pool, "fetch-recording").await;
    let dead = errors.iter().find(|(outcome, _)| outcome == "dead").unwrap();
    assert!(dead.1.contains("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"), "{dead:?}");
    world.workers.stop().await;
}

async fn wait_until_dead(pool: &PgPool) {
    crate::support::wait_until(std::time::Duration::from_secs(30), "a dead fetch-recording job", || async {
        count(pool, "job_overview WHERE kind = 'fetch-recording' AND state = 'dead'").await == 1
    })
    .await;
}

#[sqlx::test(migrations = false)]
async fn auto_analyze_off_stops_the_chain_after_the_transcript(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let pipeline = PipelineSettings { auto_analyze: false, ..PipelineSettings::default() };
    let world = World::build(&pool, None, |ports, _| Ports { pipeline, ..ports }).await;
    announce(&pool, &world.fakes, "CA0012", 95, CUSTOMER).await;
    wait_for_jobs(&pool, "transcribe", "done").await;
    assert_eq!(count(&pool, "transcripts WHERE status = 'transcribed'").await, 1);
    assert!(job_ids(&pool, "analyze").await.is_empty());
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn refusals_truncated_answers_and_out_of_range_values_are_retried_and_never_stored(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    let mut out_of_range = hot_insight();
    out_of_range["lead_score"] = json!(150);
    world.fakes.fail(Endpoint::Chat, Canned::chat(Value::Null, json!("I can't help with that."), "stop"));
    world.fakes.fail(Endpoint::Chat, Canned::chat(json!("{\"customer_name\": \"Ra"), Value::Null, "length"));
    world.fakes.fail(Endpoint::Chat, Canned::chat(json!(out_of_range.to_string()), Value::Null, "stop"));

    announce(&pool, &world.fakes, "CA0013", 95, CUSTOMER).await;
    for n in 1..=3 {
        wait_for_errors(&pool, "analyze", n).await;
        assert_eq!(count(&pool, "insights").await, 0);
        make_retries_due(&pool, "analyze").await;
    }
    wait_for_count(&pool, "leads", 1).await;
    let messages: Vec<String> = job_errors(&pool, "analyze").await.into_iter().map(|(_, m)| m).collect();
    assert_eq!(
        messages,
        vec![
            "the model refused: I can't help with that.",
            "the answer was cut off (finish_reason=length): JSON incomplete",
            "lead_score 150 is outside 0-100",
        ]
    );
    assert_eq!(count(&pool, "insights").await, 1);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn gpt_4o_transcribe_is_asked_for_json_and_stored_without_segments(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::build(&pool, None, |ports, fakes| Ports {
        transcriber: Some(fakes.openai("gpt-4o-transcribe")),
        ..ports
    })
    .await;
    announce(&pool, &world.fakes, "CA0014", 95, CUSTOMER).await;
    wait_for_count(&pool, "leads", 1).await;

    let sent = &world.fakes.transcription_requests()[0];
    assert!(
        sent.contains("gpt-4o-transcribe")
            && !sent.contains("verbose_json")
            && !sent.contains("timestamp_granularities")
    );
    let (text, language, segments, model): (String, Option<String>, Option<Value>, String) =
        sqlx::query_as("SELECT text, language, segments, model FROM transcripts").fetch_one(&pool).await.unwrap();
    assert_eq!((text.as_str(), language, segments, model.as_str()), (TRANSCRIPT, None, None, "gpt-4o-transcribe"));
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_reasoning_model_is_asked_without_a_temperature_and_others_at_zero(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::build(&pool, None, |ports, fakes| {
        let reasoning = OpenAi::new(
            &format!("{}/v1", fakes.base_url),
            "sk-test".to_owned(),
            "whisper-1".to_owned(),
            "o4-mini".to_owned(),
            super::fakes::PRICES,
            Duration::from_secs(10),
        )
        .unwrap();
        Ports { analyzer: Some(Arc::new(reasoning)), ..ports }
    })
    .await;
    announce(&pool, &world.fakes, "CA0015", 95, CUSTOMER).await;
    wait_for_count(&pool, "leads", 1).await;

    let chat = &world.fakes.chat_requests()[0];
    assert_eq!(chat["model"], "o4-mini");
    assert!(chat.get("temperature").is_none(), "o4-mini refuses a temperature: {chat}");
    let purpose = &chat["response_format"]["json_schema"]["schema"]["properties"]["purpose"];
    assert_eq!(purpose["anyOf"][1]["type"], "null", "the nullable enum in its documented form: {purpose}");
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_worker_binary_runs_the_chain_configured_from_the_environment(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let fakes = super::fakes::Fakes::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = binary::command(&pool, &["worker"])
        .env("RECORDING_STORAGE", "local")
        .env("RECORDING_DIR", dir.path())
        .env("RECORDING_FETCH_ALLOW_LOOPBACK", "true")
        .env("TWILIO_ACCOUNT_SID", super::fakes::ACCOUNT_SID)
        .env("TWILIO_AUTH_TOKEN", super::fakes::AUTH_TOKEN)
        .env("PUBLIC_BASE_URL", "https://switchboard.test")
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENAI_BASE_URL", format!("{}/v1", fakes.base_url))
        .env("CRM_WEBHOOK_URL", format!("{}/crm", fakes.base_url))
        .env("CRM_WEBHOOK_SECRET", CRM_SECRET)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();

    announce(&pool, &fakes, "CA0201", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;
    let stored = std::fs::read(dir.path().join("twilio/CA0201/RE0201.mp3")).unwrap();
    assert_eq!(stored, fakes.recording());
    assert_eq!(fakes.crm_deliveries().len(), 1);
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn reprocessing_from_the_start_fetches_again_and_keeps_one_lead(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0015", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;

    let mut tx = pool.begin().await.unwrap();
    let enqueued = reprocess(&mut tx, Provider::Twilio, "CA0015", Default::default()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(enqueued, 1);
    wait_until_crm_told(&world, 2).await;
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;

    for endpoint in [Endpoint::Recording, Endpoint::Transcription, Endpoint::Chat] {
        assert_eq!(world.fakes.hits(endpoint), 2, "{endpoint:?}");
    }
    let deliveries = world.fakes.crm_deliveries();
    assert_ne!(deliveries[0].delivery_id, deliveries[1].delivery_id, "a new insight is a new delivery");
    for table in ["recordings", "transcripts", "insights", "leads", "lead_calls"] {
        assert_eq!(count(&pool, table).await, 1, "{table}");
    }
    world.workers.stop().await;
}

async fn wait_until_crm_told(world: &World, times: usize) {
    crate::support::wait_until(std::time::Duration::from_secs(30), "CRM deliveries", || async {
        world.fakes.crm_deliveries().len() == times
    })
    .await;
}

#[sqlx::test(migrations = false)]
async fn an_exotel_recording_is_fetched_from_its_url_as_given(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    let sid = "b6cfaf0e2f8e9b1d4d1c2a3b4c5d6e7f";
    let recording = RecordingRef {
        provider: Provider::Exotel,
        call_sid: sid.to_owned(),
        recording_sid: sid.to_owned(),
        url: format!("{}/exotel/recordings/{sid}.wav?validity=60", world.fakes.base_url),
        duration_seconds: None,
        customer_phone: Some(CUSTOMER.to_owned()),
    };
    let mut tx = pool.begin().await.unwrap();
    request_fetch(&mut tx, &recording).await.unwrap();
    tx.commit().await.unwrap();
    wait_for_count(&pool, "leads", 1).await;

    let (key, content_type): (String, String) =
        sqlx::query_as("SELECT storage_key, content_type FROM recordings").fetch_one(&pool).await.unwrap();
    assert_eq!(key, format!("exotel/{sid}/{sid}.wav"));
    assert_eq!(content_type, "audio/wav");
    let file_part = format!("filename=\"{sid}.wav\"\r\nContent-Type: audio/wav\r\n");
    assert!(world.fakes.transcription_requests()[0].contains(&file_part));
    world.workers.stop().await;
}

async fn reprocess_call(pool: &PgPool, call_sid: &str, from: Step) {
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(reprocess(&mut tx, Provider::Twilio, call_sid, from).await.unwrap(), 1);
    tx.commit().await.unwrap();
}

async fn wait_for_dead(pool: &PgPool, kind: &str, n: i64) {
    crate::support::wait_until(std::time::Duration::from_secs(30), &format!("{n} dead {kind} jobs"), || async {
        count(pool, &format!("job_overview WHERE kind = '{kind}' AND state = 'dead'")).await == n
    })
    .await;
}

/// Everything the chain made for the one call, as rows.
async fn results(pool: &PgPool) -> Value {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
            'recording', (SELECT to_jsonb(r) - 'redo_requested_at' FROM recordings r),
            'transcript', (SELECT to_jsonb(t) - 'redo_requested_at' - 'search' FROM transcripts t),
            'insight', (SELECT to_jsonb(i) - 'redo_requested_at' FROM insights i),
            'lead', (SELECT to_jsonb(l) FROM leads l),
            'lead_calls', (SELECT jsonb_agg(to_jsonb(lc)) FROM lead_calls lc))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_reprocess_that_fails_leaves_the_previous_results_in_place(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    announce(&pool, &world.fakes, "CA0016", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls WHERE crm_delivered_at IS NOT NULL", 1).await;
    let before = results(&pool).await;
    assert_eq!(before["transcript"]["text"], TRANSCRIPT);

    // The recording URL now fails: the fresh download goes dead.
    world.fakes.fail(Endpoint::Recording, Canned::status(401));
    reprocess_call(&pool, "CA0016", Step::FetchRecording).await;
    wait_for_dead(&pool, "fetch-recording", 1).await;
    assert_eq!(results(&pool).await, before, "recording, transcript, insight and lead link are intact");
    assert_eq!(count(&pool, "recordings WHERE redo_requested_at IS NOT NULL").await, 1, "the redo is still asked for");
    let stored = world.storage.get("twilio/CA0016/RE0016.mp3").await.unwrap();
    assert_eq!(stored, world.fakes.recording());

    // So does a transcription redo that OpenAI refuses.
    world.fakes.fail(Endpoint::Transcription, Canned::openai_error(400, "invalid_request_error", "bad audio"));
    reprocess_call(&pool, "CA0016", Step::Transcribe).await;
    wait_for_dead(&pool, "transcribe", 1).await;
    assert_eq!(results(&pool).await, before);
    assert_eq!(world.fakes.hits(Endpoint::Chat), 1, "nothing was analysed again");
    world.workers.stop().await;
}

async fn insert_call(pool: &PgPool, call_sid: &str, hours_ago: i32) -> DateTime<Utc> {
    sqlx::query_scalar(
        "INSERT INTO calls (provider, call_sid, direction, from_number, status, created_at)
         VALUES ('twilio', $1, 'inbound', $2, 'completed', now() - make_interval(hours => $3)) RETURNING created_at",
    )
    .bind(call_sid)
    .bind(CUSTOMER)
    .bind(hours_ago)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn an_earlier_call_analysed_later_does_not_overwrite_the_later_calls_score(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::start(&pool).await;
    insert_call(&pool, "CA0017", 2).await;
    let later_call = insert_call(&pool, "CA0018", 1).await;

    let mut later = hot_insight();
    for (field, value) in [("lead_score", json!(40)), ("summary", json!("Comparing builders now."))] {
        later[field] = value;
    }
    world.fakes.set_insight(later);
    announce(&pool, &world.fakes, "CA0018", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls", 1).await;

    // The earlier call's recording is processed only now (its fetch kept failing, say).
    let mut earlier = hot_insight();
    earlier["customer_email"] = json!("rahul@example.com");
    world.fakes.set_insight(earlier);
    announce(&pool, &world.fakes, "CA0017", 95, CUSTOMER).await;
    wait_for_count(&pool, "lead_calls", 2).await;

    let check = |lead: Value| {
        assert_eq!(lead["score"], 40, "the later call's score stays");
        assert_eq!(lead["hot"], false);
        assert_eq!(lead["summary"], "Comparing builders now.");
        let due: DateTime<Utc> = serde_json::from_value(lead["follow_up_due_at"].clone()).unwrap();
        assert_eq!(due, later_call + chrono::Duration::days(2), "the follow-up is the later call's");
        assert_eq!(lead["email"], "rahul@example.com", "the earlier call still fills a gap");
    };
    check(lead(&pool).await);

    // Analysing the earlier call again changes nothing either.
    reprocess_call(&pool, "CA0017", Step::Analyze).await;
    wait_for_count(&pool, "insights WHERE call_sid = 'CA0017' AND revision = 2", 1).await;
    wait_for_jobs(&pool, "create-lead", "done").await;
    check(lead(&pool).await);
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_recording_over_recording_max_bytes_is_dead_naming_the_limit(pool: PgPool) {
    crate::support::migrate(&pool).await;
    let world = World::build(&pool, None, |ports, _| {
        let twilio = BasicAuth { user: ACCOUNT_SID.to_owned(), secret: AUTH_TOKEN.to_owned() };
        let fetcher = RecordingDownloader::new(Some(twilio), None, 1000, Duration::from_secs(10), Loopback::Allowed);
        Ports { recording_fetcher: Some(std::sync::Arc::new(fetcher.unwrap())), ..ports }
    })
    .await;
    announce(&pool, &world.fakes, "CA0019", 95, CUSTOMER).await;
    wait_until_dead(&pool).await;

    let errors = job_errors(&pool, "fetch-recording").await;
    assert_eq!(
        errors,
        vec![("dead".to_owned(), "recording is 65536 bytes, over RECORDING_MAX_BYTES=1000; not downloaded".to_owned())]
    );
    assert_eq!(count(&pool, "recordings WHERE status = 'pending'").await, 1);
    assert!(job_ids(&pool, "transcribe").await.is_empty());
    world.workers.stop().await;
}
