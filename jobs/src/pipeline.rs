//! The after-call chain as a whole: `fetch-recording` -> `transcribe` ->
//! `analyze` -> `create-lead`, its switches and thresholds, and running it
//! again for a call from a chosen step.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::analyze::Analyze;
use crate::create_lead::CreateLead;
use crate::fetch_recording::FetchRecording;
use crate::queue::{Job, enqueue};
use crate::transcribe::Transcribe;

/// Switches and thresholds of the chain (`AUTO_*`, `MIN_TRANSCRIBE_SECONDS`, `HOT_LEAD_SCORE`).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSettings {
    pub auto_transcribe: bool,
    pub auto_analyze: bool,
    pub auto_create_leads: bool,
    /// Calls shorter than this are not transcribed (the transcript says why).
    pub min_transcribe_seconds: u32,
    /// A lead whose newest score reaches this is hot.
    pub hot_lead_score: i32,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            auto_transcribe: true,
            auto_analyze: true,
            auto_create_leads: true,
            min_transcribe_seconds: 30,
            hot_lead_score: 75,
        }
    }
}

/// Where a reprocess starts; every later step follows as usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    #[default]
    FetchRecording,
    Transcribe,
    Analyze,
    CreateLead,
}

/// Runs the chain again for every recording of `call_sid` from `from`: the
/// results of that step and later ones are deleted (a lead keeps its facts and
/// is updated again), and the step's jobs are enqueued on `conn`. Returns how
/// many jobs were enqueued; 0 when the call has nothing to redo.
pub async fn reprocess(conn: &mut PgConnection, call_sid: &str, from: Step) -> Result<usize, sqlx::Error> {
    const DELETE_TRANSCRIPTS: &str = "DELETE FROM transcripts WHERE recording_id = ANY($1)";
    match from {
        Step::FetchRecording => {
            let reset = "UPDATE recordings
                SET status = 'pending', storage_key = NULL, content_type = NULL, bytes = NULL, sha256 = NULL, stored_at = NULL
                WHERE call_sid = $1 RETURNING id";
            redo(conn, call_sid, reset, Some(DELETE_TRANSCRIPTS), |recording_id| FetchRecording { recording_id }).await
        }
        Step::Transcribe => {
            let stored = "SELECT id FROM recordings WHERE call_sid = $1 AND status = 'stored'";
            redo(conn, call_sid, stored, Some(DELETE_TRANSCRIPTS), |recording_id| Transcribe { recording_id }).await
        }
        Step::Analyze => {
            let transcribed = "SELECT id FROM transcripts WHERE call_sid = $1 AND status = 'transcribed'";
            let delete_insights = "DELETE FROM insights WHERE transcript_id = ANY($1)";
            redo(conn, call_sid, transcribed, Some(delete_insights), |transcript_id| Analyze { transcript_id }).await
        }
        Step::CreateLead => {
            let insights = "SELECT id FROM insights WHERE call_sid = $1";
            redo(conn, call_sid, insights, None, |insight_id| CreateLead { insight_id }).await
        }
    }
}

/// One step again: `select` the call's inputs of the step (by `call_sid`),
/// `delete` what the step made from them (by id array), enqueue a job per input.
async fn redo<J: Job>(
    conn: &mut PgConnection,
    call_sid: &str,
    select: &'static str,
    delete: Option<&'static str>,
    job: impl Fn(i64) -> J,
) -> Result<usize, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(select).bind(call_sid).fetch_all(&mut *conn).await?;
    if let Some(delete) = delete {
        sqlx::query(delete).bind(&ids).execute(&mut *conn).await?;
    }
    let mut enqueued = 0;
    for id in ids {
        enqueued += usize::from(enqueue(conn, &job(id)).await?.is_some());
    }
    Ok(enqueued)
}
