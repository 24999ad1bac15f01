//! The after-call chain end to end: recording webhook -> fetch-recording ->
//! transcribe -> analyze -> create-lead, against real PostgreSQL, real S3
//! (moto) or a local directory, and HTTP fakes of Twilio, OpenAI and a CRM.

mod api;
mod bench;
pub mod fakes;
mod pipeline;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use switchboard::storage::{LocalDir, RecordingStorage};
use switchboard_jobs::fetch_recording::{RecordingRef, request_fetch};
use switchboard_jobs::ports::{Ports, Provider};

use crate::support::{Workers, wait_until};
use fakes::Fakes;

pub const CUSTOMER: &str = "+919876543210";

/// Fakes, recording storage and workers running every job kind.
pub struct World {
    pub fakes: Fakes,
    pub storage: Arc<RecordingStorage>,
    pub workers: Workers,
    _dir: tempfile::TempDir,
}

impl World {
    /// Recordings in a local directory, the real adapters on the fakes, default settings.
    pub async fn start(pool: &PgPool) -> Self {
        Self::build(pool, None, |ports, _| ports).await
    }

    /// `storage` (else a local directory), with the ports adjusted before the workers start.
    pub async fn build(
        pool: &PgPool,
        storage: Option<RecordingStorage>,
        adjust: impl FnOnce(Ports, &Fakes) -> Ports,
    ) -> Self {
        let fakes = Fakes::start().await;
        let dir = tempfile::tempdir().unwrap();
        let storage = Arc::new(storage.unwrap_or_else(|| RecordingStorage::Local(LocalDir::new(dir.path()))));
        let ports = adjust(fakes.ports(storage.clone()), &fakes);
        let workers = Workers::start(pool, switchboard_jobs::registry(), ports);
        Self { fakes, storage, workers, _dir: dir }
    }
}

/// What the inbound recording webhook does: record and enqueue in one transaction.
pub async fn announce(pool: &PgPool, fakes: &Fakes, call_sid: &str, duration: i32, phone: &str) -> Option<String> {
    let recording = RecordingRef {
        provider: Provider::Twilio,
        call_sid: call_sid.to_owned(),
        recording_sid: format!("RE{}", &call_sid[2..]),
        url: fakes.recording_url(&format!("RE{}", &call_sid[2..])),
        duration_seconds: Some(duration),
        customer_phone: Some(phone.to_owned()),
    };
    let mut tx = pool.begin().await.unwrap();
    let job = request_fetch(&mut tx, &recording).await.unwrap();
    tx.commit().await.unwrap();
    job
}

/// Rows in `table` (which may carry a `WHERE`).
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    crate::support::count(pool, &format!("SELECT count(*) FROM {table}")).await
}

pub async fn wait_for_count(pool: &PgPool, table: &str, expected: i64) {
    crate::support::wait_for_count(pool, &format!("SELECT count(*) FROM {table}"), expected).await;
}

/// Ids of the jobs of `kind`, oldest first.
pub async fn job_ids(pool: &PgPool, kind: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM apalis.jobs WHERE job_type = $1 ORDER BY id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Waits until every job of `kind` is in `state`.
pub async fn wait_for_jobs(pool: &PgPool, kind: &str, state: &str) {
    wait_until(Duration::from_secs(30), &format!("{kind} jobs {state}"), || async {
        let states: Vec<String> = sqlx::query_scalar("SELECT state FROM job_overview WHERE kind = $1")
            .bind(kind)
            .fetch_all(pool)
            .await
            .unwrap();
        !states.is_empty() && states.iter().all(|s| s == state)
    })
    .await;
}

/// Time travel instead of sleeping: retrying jobs of `kind` become due now.
pub async fn make_retries_due(pool: &PgPool, kind: &str) {
    sqlx::query("UPDATE apalis.jobs SET run_at = now() WHERE job_type = $1 AND status = 'Failed'")
        .bind(kind)
        .execute(pool)
        .await
        .unwrap();
}

/// `(outcome, message)` of every failed run of `kind`, oldest first.
pub async fn job_errors(pool: &PgPool, kind: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT e.outcome, e.message FROM job_errors e JOIN apalis.jobs j ON j.id = e.job_id
         WHERE j.job_type = $1 ORDER BY e.id",
    )
    .bind(kind)
    .fetch_all(pool)
    .await
    .unwrap()
}
