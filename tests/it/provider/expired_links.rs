//! An Exotel recording link expires (pre-signed for 5-60 minutes): the
//! download answers 403, and `fetch-recording` asks Call Details for a fresh
//! `RecordingUrl` and stores the recording from it, instead of going dead.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use switchboard::providers::exotel_rest::ExotelRest;
use switchboard::recording_fetch::{Loopback, RecordingDownloader};
use switchboard::storage::{LocalDir, RecordingStorage};
use switchboard_jobs::fetch_recording::{FetchRecording, RecordingRef, request_fetch};
use switchboard_jobs::ports::{Ports, Provider};
use switchboard_jobs::queue::{Job, JobContext, JobError};

use crate::after_call::fakes::fake_mp3;
use crate::seams::exotel_rest::{EXOTEL_SID, exotel_config};
use crate::support::fake_providers::FakeProviders;
use crate::support::migrate;

const CALL: &str = "b6cfaf9ef5ad11e4b9ea0ed8c0fd5a3d";

fn ports(fake: &FakeProviders, dir: &std::path::Path) -> Ports {
    let fetcher = RecordingDownloader::new(None, None, 1 << 20, Duration::from_secs(10), Loopback::Allowed).unwrap();
    Ports {
        telephony: Some(Arc::new(ExotelRest::new(exotel_config(&fake.base_url)))),
        recording_fetcher: Some(Arc::new(fetcher)),
        recordings: Some(Arc::new(RecordingStorage::Local(LocalDir::new(dir)))),
        ..Ports::default()
    }
}

/// The recording as Exotel's StatusCallback announced it, with a link that has since expired.
async fn announced(pool: &PgPool, url: String) -> i64 {
    let recording = RecordingRef {
        provider: Provider::Exotel,
        call_sid: CALL.to_owned(),
        recording_sid: CALL.to_owned(),
        url,
        duration_seconds: Some(65),
        customer_phone: Some("+919876543210".to_owned()),
    };
    request_fetch(&mut pool.acquire().await.unwrap(), &recording).await.unwrap();
    sqlx::query_scalar("SELECT id FROM recordings").fetch_one(pool).await.unwrap()
}

async fn fetch(pool: &PgPool, ports: Ports, recording_id: i64) -> Result<(), JobError> {
    let ctx =
        JobContext { pool: pool.clone(), ports: Arc::new(ports), job_id: "fetch".into(), attempt: 1, max_attempts: 10 };
    FetchRecording { recording_id }.run(ctx).await
}

#[sqlx::test(migrations = false)]
async fn an_expired_exotel_link_is_refreshed_from_call_details_and_the_recording_stored(pool: PgPool) {
    migrate(&pool).await;
    let fake = FakeProviders::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audio = fake_mp3(8 * 1024);
    fake.serve_recording("fresh.mp3", audio.clone());
    let fresh = format!("{}/recordings/fresh.mp3?X-Amz-Expires=3600&X-Amz-Signature=new", fake.base_url);
    fake.serve(
        &format!("/v1/Accounts/{EXOTEL_SID}/Calls/{CALL}.json?details=true"),
        json!({"Call": {"Sid": CALL, "Status": "completed", "Duration": "80", "RecordingUrl": fresh,
                        "Details": {"ConversationDuration": 65, "Leg1Status": "completed", "Leg2Status": "completed"}}}),
    );
    let expired = format!("{}/recordings/old.mp3?X-Amz-Expires=300&X-Amz-Signature=old", fake.base_url);
    let recording_id = announced(&pool, expired).await;

    fetch(&pool, ports(&fake, dir.path()), recording_id).await.expect("stored from the fresh link");

    let (status, source_url, bytes): (String, String, i64) =
        sqlx::query_as("SELECT status, source_url, bytes FROM recordings WHERE id = $1")
            .bind(recording_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), source_url, bytes), ("stored", fresh, audio.len() as i64));
    let stored = std::fs::read(dir.path().join(format!("exotel/{CALL}/{CALL}.mp3"))).unwrap();
    assert_eq!(stored, audio);
}

#[sqlx::test(migrations = false)]
async fn an_expired_link_without_a_fresh_one_is_a_permanent_failure_not_a_retry_loop(pool: PgPool) {
    migrate(&pool).await;
    let fake = FakeProviders::start().await;
    let dir = tempfile::tempdir().unwrap();
    let expired = format!("{}/recordings/old.mp3?X-Amz-Expires=300", fake.base_url);
    fake.serve(
        &format!("/v1/Accounts/{EXOTEL_SID}/Calls/{CALL}.json?details=true"),
        json!({"Call": {"Sid": CALL, "Status": "completed", "RecordingUrl": expired}}),
    );
    let recording_id = announced(&pool, expired).await;

    let outcome = fetch(&pool, ports(&fake, dir.path()), recording_id).await;

    assert!(matches!(outcome, Err(JobError::Permanent { .. })), "{outcome:?}");
}
