//! `transcribe`: speech to text for a stored recording (text, language,
//! segments), or a recorded reason why not; enqueues `analyze` in the
//! transaction that stores the transcript. A transcript is made again only
//! when a reprocess asked for it (`redo_requested_at`), and replaced in place,
//! so its insight and lead link stay until the new analysis replaces them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::analyze::Analyze;
use crate::ports::{Audio, Transcription};
use crate::queue::{Job, JobContext, JobError, RetryPolicy, enqueue};

/// OpenAI's upload limit for transcription (25 MiB); larger files are not split.
pub const TRANSCRIPTION_LIMIT_BYTES: i64 = 25 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcribe {
    pub recording_id: i64,
}

#[derive(sqlx::FromRow)]
struct Stored {
    call_sid: String,
    status: String,
    storage_key: Option<String>,
    bytes: Option<i64>,
    duration_seconds: Option<i32>,
    transcribed: bool,
    /// A reprocess asked for the transcript to be made again.
    redo: bool,
}

impl Job for Transcribe {
    const KIND: &'static str = "transcribe";

    /// Rate limits and outages pass: start at 15 s, up to 30 min apart.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_secs(15),
            max_delay: Duration::from_secs(1800),
            ..RetryPolicy::default()
        }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let recording: Stored = sqlx::query_as(
            "SELECT r.call_sid, r.status, r.storage_key, r.bytes, r.duration_seconds,
                    t.id IS NOT NULL AS transcribed, t.redo_requested_at IS NOT NULL AS redo
             FROM recordings r LEFT JOIN transcripts t ON t.recording_id = r.id WHERE r.id = $1",
        )
        .bind(self.recording_id)
        .fetch_optional(&ctx.pool)
        .await?
        .ok_or_else(|| JobError::permanent(format!("recording {} does not exist", self.recording_id)))?;
        if recording.transcribed && !recording.redo {
            return Ok(());
        }
        let (Some(key), Some(bytes)) = (recording.storage_key.as_deref(), recording.bytes) else {
            return Err(JobError::retry(format!(
                "recording {} is {}, not stored yet",
                self.recording_id, recording.status
            )));
        };
        let minimum = ctx.ports.pipeline.min_transcribe_seconds;
        if let Some(seconds) = recording.duration_seconds.filter(|s| (*s as i64) < minimum as i64) {
            let reason = format!("call lasted {seconds} s, under MIN_TRANSCRIBE_SECONDS={minimum}");
            return record_skipped(&ctx.pool, self.recording_id, &recording.call_sid, &reason).await;
        }
        if bytes > TRANSCRIPTION_LIMIT_BYTES {
            return Err(JobError::permanent(format!(
                "recording is {:.1} MiB, over the 25 MiB transcription upload limit; not transcribed",
                bytes as f64 / (1024.0 * 1024.0)
            )));
        }
        let body = ctx.ports.recordings()?.get(key).await?;
        let filename = key.rsplit('/').next().unwrap_or(key).to_owned();
        let transcription = ctx.ports.transcriber()?.transcribe(Audio { body, filename }).await?;
        record_transcript(&ctx, self.recording_id, &recording.call_sid, &transcription).await
    }
}

/// A skip never replaces a transcript made before; it only settles a redo.
async fn record_skipped(pool: &PgPool, recording_id: i64, call_sid: &str, reason: &str) -> Result<(), JobError> {
    sqlx::query(
        "INSERT INTO transcripts (recording_id, call_sid, status, skip_reason) VALUES ($1, $2, 'skipped', $3)
         ON CONFLICT (recording_id) DO UPDATE SET redo_requested_at = NULL",
    )
    .bind(recording_id)
    .bind(call_sid)
    .bind(reason)
    .execute(pool)
    .await?;
    tracing::info!(call_sid, reason, "recording not transcribed");
    Ok(())
}

/// Inserts the transcript, or replaces the one a reprocess marked (same row,
/// so the insight stays linked, marked for re-analysis).
async fn record_transcript(
    ctx: &JobContext,
    recording_id: i64,
    call_sid: &str,
    transcription: &Transcription,
) -> Result<(), JobError> {
    let mut tx = ctx.pool.begin().await?;
    let written: Option<i64> = sqlx::query_scalar(
        "INSERT INTO transcripts (recording_id, call_sid, status, text, language, duration_seconds, segments, model, request_id)
         VALUES ($1, $2, 'transcribed', $3, $4, round($5::numeric, 3), $6, $7, $8)
         ON CONFLICT (recording_id) DO UPDATE SET
            status = 'transcribed', skip_reason = NULL, text = EXCLUDED.text, language = EXCLUDED.language,
            duration_seconds = EXCLUDED.duration_seconds, segments = EXCLUDED.segments, model = EXCLUDED.model,
            request_id = EXCLUDED.request_id, redo_requested_at = NULL
         WHERE transcripts.redo_requested_at IS NOT NULL
         RETURNING id",
    )
    .bind(recording_id)
    .bind(call_sid)
    .bind(&transcription.text)
    .bind(&transcription.language)
    .bind(transcription.duration_seconds)
    .bind(&transcription.segments)
    .bind(&transcription.model)
    .bind(&transcription.request_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(transcript_id) = written.filter(|_| ctx.ports.pipeline.auto_analyze) {
        sqlx::query("UPDATE insights SET redo_requested_at = now() WHERE transcript_id = $1")
            .bind(transcript_id)
            .execute(&mut *tx)
            .await?;
        enqueue(&mut tx, &Analyze { transcript_id }).await?;
    }
    tx.commit().await?;
    Ok(())
}
