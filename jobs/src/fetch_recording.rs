//! `fetch-recording`: download a finished call's recording with the provider's
//! credentials, store it under a deterministic key, record its size and
//! checksum, and enqueue `transcribe` in the transaction that marks it stored.
//! A stored recording is fetched again only when a reprocess asked for it
//! (`redo_requested_at`); until the new download is stored, the old one stays.
//! An expired link (Exotel's are pre-signed for 5-60 minutes) is replaced by a
//! fresh one from the provider's call lookup (Call Details) and tried again,
//! instead of the recording going dead.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::ports::{PortError, Provider, RecordingSource};
use crate::queue::{EnqueueOptions, Job, JobContext, JobError, RetryPolicy, enqueue, enqueue_with};
use crate::transcribe::Transcribe;

/// A recording as a provider webhook announced it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingRef {
    pub provider: Provider,
    pub call_sid: String,
    /// Twilio `RecordingSid`; Exotel has none, so pass its `CallSid`.
    pub recording_sid: String,
    /// Twilio `RecordingUrl` (no extension) or Exotel `RecordingUrl`.
    pub url: String,
    /// Twilio `RecordingDuration`, when given.
    pub duration_seconds: Option<i32>,
    /// The customer's number in E.164, which the lead is keyed on.
    pub customer_phone: Option<String>,
}

/// Records `recording` (a repeat fills in what was missing) and enqueues its
/// `fetch-recording` job on `conn`, deduped by provider and recording sid. Returns the job
/// id, or `None` when the recording was announced before. The call's time is
/// its first webhook when we saw the call, else now.
pub async fn request_fetch(conn: &mut PgConnection, recording: &RecordingRef) -> Result<Option<String>, sqlx::Error> {
    let recording_id: i64 = sqlx::query_scalar(
        "INSERT INTO recordings (provider, call_sid, recording_sid, source_url, duration_seconds, customer_phone, called_at)
         VALUES ($1, $2, $3, $4, $5, $6, coalesce(
            (SELECT c.created_at FROM calls c WHERE c.provider = $1::text AND c.call_sid = $2), now()))
         ON CONFLICT (provider, recording_sid) DO UPDATE SET
            duration_seconds = COALESCE(recordings.duration_seconds, EXCLUDED.duration_seconds),
            customer_phone = COALESCE(recordings.customer_phone, EXCLUDED.customer_phone)
         RETURNING id",
    )
    .bind(recording.provider)
    .bind(&recording.call_sid)
    .bind(&recording.recording_sid)
    .bind(&recording.url)
    .bind(recording.duration_seconds)
    .bind(&recording.customer_phone)
    .fetch_one(&mut *conn)
    .await?;
    let dedupe =
        EnqueueOptions::deduped(format!("recording:{}:{}", recording.provider.as_str(), recording.recording_sid));
    enqueue_with(conn, &FetchRecording { recording_id }, dedupe).await
}

/// `{provider}/{CallSid}/{RecordingSid}.{ext}`: a retry overwrites, never duplicates.
/// Sids are checked to be plain tokens, so a key never escapes its prefix.
pub fn storage_key(provider: Provider, call_sid: &str, recording_sid: &str, extension: &str) -> Result<String, String> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    for (what, value) in [("call sid", call_sid), ("recording sid", recording_sid), ("extension", extension)] {
        if !plain(value) {
            return Err(format!("{what} {value:?} is not a plain token; refusing to build a storage key from it"));
        }
    }
    Ok(format!("{}/{call_sid}/{recording_sid}.{extension}", provider.as_str()))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRecording {
    pub recording_id: i64,
}

#[derive(sqlx::FromRow)]
struct Pending {
    provider: Provider,
    call_sid: String,
    recording_sid: String,
    source_url: String,
    status: String,
    /// A reprocess asked for the recording to be fetched again.
    redo: bool,
}

impl Job for FetchRecording {
    const KIND: &'static str = "fetch-recording";

    /// A recording is often not ready just after the callback (404): start at
    /// 10 s and keep trying for about an hour.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            initial_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(900),
            ..RetryPolicy::default()
        }
    }

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        let recording: Pending = sqlx::query_as(
            "SELECT provider, call_sid, recording_sid, source_url, status, redo_requested_at IS NOT NULL AS redo
             FROM recordings WHERE id = $1",
        )
        .bind(self.recording_id)
        .fetch_optional(&ctx.pool)
        .await?
        .ok_or_else(|| JobError::permanent(format!("recording {} does not exist", self.recording_id)))?;
        if recording.status == "stored" && !recording.redo {
            return Ok(());
        }
        let source = RecordingSource { provider: recording.provider, url: recording.source_url.clone() };
        let downloaded = match ctx.ports.recording_fetcher()?.download(&source).await {
            Err(PortError::Expired { message }) => {
                tracing::info!(call_sid = %recording.call_sid, %message, "recording link expired: asking for a fresh one");
                let fresh = self.refresh_link(&ctx, &recording).await?;
                ctx.ports.recording_fetcher()?.download(&fresh).await?
            }
            other => other?,
        };
        let key = storage_key(recording.provider, &recording.call_sid, &recording.recording_sid, &downloaded.extension)
            .map_err(JobError::permanent)?;
        let bytes = i64::try_from(downloaded.bytes).unwrap_or(i64::MAX);
        ctx.ports.recordings()?.put_file(&key, &downloaded.file, &downloaded.content_type).await?;

        let mut tx = ctx.pool.begin().await?;
        let stored = sqlx::query(
            "UPDATE recordings
             SET status = 'stored', storage_key = $2, content_type = $3, bytes = $4, sha256 = $5, stored_at = now(),
                 redo_requested_at = NULL
             WHERE id = $1 AND (status = 'pending' OR redo_requested_at IS NOT NULL)",
        )
        .bind(self.recording_id)
        .bind(&key)
        .bind(&downloaded.content_type)
        .bind(bytes)
        .bind(&downloaded.sha256)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if stored && ctx.ports.pipeline.auto_transcribe {
            // A transcript from the earlier download stays until the new one replaces it.
            sqlx::query("UPDATE transcripts SET redo_requested_at = now() WHERE recording_id = $1")
                .bind(self.recording_id)
                .execute(&mut *tx)
                .await?;
            enqueue(&mut tx, &Transcribe { recording_id: self.recording_id }).await?;
        }
        tx.commit().await?;
        tracing::info!(call_sid = %recording.call_sid, %key, bytes, "recording stored");
        Ok(())
    }
}

impl FetchRecording {
    /// A fresh link for an expired one, from the provider's call lookup
    /// (Exotel Call Details), kept on the recording for the next try.
    async fn refresh_link(&self, ctx: &JobContext, recording: &Pending) -> Result<RecordingSource, JobError> {
        let details = ctx.ports.telephony()?.lookup_call(recording.provider, &recording.call_sid).await?;
        let url = details
            .recording_url
            .filter(|fresh| *fresh != recording.source_url)
            .ok_or_else(|| JobError::permanent("the recording link expired and the provider gives no fresh one"))?;
        sqlx::query("UPDATE recordings SET source_url = $2 WHERE id = $1")
            .bind(self.recording_id)
            .bind(&url)
            .execute(&ctx.pool)
            .await?;
        Ok(RecordingSource { provider: recording.provider, url })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_key_is_deterministic_per_provider_call_and_recording() {
        let key = storage_key(Provider::Twilio, "CA123", "RE456", "mp3").unwrap();
        assert_eq!(key, "twilio/CA123/RE456.mp3");
        assert_eq!(storage_key(Provider::Exotel, "abc-1", "abc-1", "wav").unwrap(), "exotel/abc-1/abc-1.wav");
    }

    #[test]
    fn storage_key_refuses_sids_that_could_escape_the_prefix() {
        assert!(storage_key(Provider::Twilio, "../etc", "RE1", "mp3").is_err());
        assert!(storage_key(Provider::Twilio, "CA1", "RE/1", "mp3").is_err());
        assert!(storage_key(Provider::Twilio, "CA1", "RE1", "").is_err());
    }
}
