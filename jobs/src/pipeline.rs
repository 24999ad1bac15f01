//! The after-call chain as a whole: `fetch-recording` -> `transcribe` ->
//! `analyze` -> `create-lead`, its switches and thresholds, and running it
//! again for a call from a chosen step without losing what it made before.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::analyze::Analyze;
use crate::create_lead::CreateLead;
use crate::fetch_recording::FetchRecording;
pub use crate::pipeline_settings::PipelineSettings;
use crate::ports::Provider;
use crate::queue::{Job, enqueue};
use crate::transcribe::Transcribe;

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

/// Runs the chain again for every recording of `provider`'s call `call_sid` from `from`, on
/// `conn`. Nothing is deleted: the step's results are marked
/// (`redo_requested_at`) and its jobs enqueued; each result stays until its
/// job replaces it, and a redo that fails leaves it in place (still marked).
/// Later steps follow as usual, each replacing its own result. Returns how
/// many jobs were enqueued; 0 when the call has nothing to redo.
pub async fn reprocess(
    conn: &mut PgConnection,
    provider: Provider,
    call_sid: &str,
    from: Step,
) -> Result<usize, sqlx::Error> {
    let call = (provider, call_sid);
    match from {
        Step::FetchRecording => {
            let marked =
                "UPDATE recordings SET redo_requested_at = now() WHERE provider = $1 AND call_sid = $2 RETURNING id";
            redo(conn, call, marked, |recording_id| FetchRecording { recording_id }).await
        }
        Step::Transcribe => {
            let marked = "WITH stored AS (SELECT id FROM recordings WHERE provider = $1 AND call_sid = $2 AND status = 'stored'),
                marked AS (UPDATE transcripts SET redo_requested_at = now() WHERE recording_id IN (SELECT id FROM stored))
                SELECT id FROM stored";
            redo(conn, call, marked, |recording_id| Transcribe { recording_id }).await
        }
        Step::Analyze => {
            let marked = "WITH transcribed AS (SELECT id FROM transcripts WHERE status = 'transcribed' AND recording_id IN
                    (SELECT id FROM recordings WHERE provider = $1 AND call_sid = $2)),
                marked AS (UPDATE insights SET redo_requested_at = now() WHERE transcript_id IN (SELECT id FROM transcribed))
                SELECT id FROM transcribed";
            redo(conn, call, marked, |transcript_id| Analyze { transcript_id }).await
        }
        // create-lead is idempotent as it is: the lead is folded again, the CRM
        // told only of an insight revision it has not heard of.
        Step::CreateLead => {
            let insights = "SELECT i.id FROM insights i JOIN transcripts t ON t.id = i.transcript_id
                JOIN recordings r ON r.id = t.recording_id WHERE r.provider = $1 AND r.call_sid = $2";
            redo(conn, call, insights, |insight_id| CreateLead { insight_id }).await
        }
    }
}

/// One step again: `mark` the call's results of the step for a redo and
/// return the step's inputs (by provider and call sid); enqueue a job per input.
async fn redo<J: Job>(
    conn: &mut PgConnection,
    (provider, call_sid): (Provider, &str),
    mark: &'static str,
    job: impl Fn(i64) -> J,
) -> Result<usize, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(mark).bind(provider).bind(call_sid).fetch_all(&mut *conn).await?;
    let mut enqueued = 0;
    for id in ids {
        enqueued += usize::from(enqueue(conn, &job(id)).await?.is_some());
    }
    Ok(enqueued)
}
