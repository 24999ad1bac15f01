//! What the after-call chain made of one call: its recordings, transcripts,
//! insights and lead, for `GET /api/calls/{sid}` (owned by the calls API).

use serde_json::Value;
use sqlx::PgPool;
use switchboard_jobs::ports::Provider;

/// `{recordings: [...], transcripts: [...], insights: [...], lead: {...} | null}`
/// of `provider`'s call `call_sid` (each step found through the one before it,
/// from the call's recordings); empty lists and a null lead when the chain
/// has not seen the call.
pub async fn for_call(pool: &PgPool, provider: Provider, call_sid: &str) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar(
        "WITH r AS (SELECT * FROM recordings WHERE provider = $1 AND call_sid = $2),
              t AS (SELECT * FROM transcripts WHERE recording_id IN (SELECT id FROM r)),
              i AS (SELECT * FROM insights WHERE transcript_id IN (SELECT id FROM t))
         SELECT jsonb_build_object(
            'recordings', COALESCE((SELECT jsonb_agg(to_jsonb(r) ORDER BY r.id) FROM r), '[]'),
            'transcripts', COALESCE((SELECT jsonb_agg(to_jsonb(t) - 'search' - 'segments' ORDER BY t.id) FROM t), '[]'),
            'insights', COALESCE((SELECT jsonb_agg(to_jsonb(i) ORDER BY i.id) FROM i), '[]'),
            'lead', (SELECT to_jsonb(l) FROM leads l JOIN lead_calls lc ON lc.lead_id = l.id
                     WHERE lc.insight_id IN (SELECT id FROM i) ORDER BY lc.linked_at DESC LIMIT 1))",
    )
    .bind(provider)
    .bind(call_sid)
    .fetch_one(pool)
    .await
}
