//! What the after-call chain made of one call: its recordings, transcripts,
//! insights and lead, for `GET /api/calls/{sid}` (owned by the calls API).

use serde_json::Value;
use sqlx::PgPool;

/// `{recordings: [...], transcripts: [...], insights: [...], lead: {...} | null}`;
/// empty lists and a null lead when the chain has not seen the call.
pub async fn for_call(pool: &PgPool, call_sid: &str) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object(
            'recordings', COALESCE((SELECT jsonb_agg(to_jsonb(r) ORDER BY r.id) FROM recordings r WHERE r.call_sid = $1), '[]'),
            'transcripts', COALESCE((SELECT jsonb_agg(to_jsonb(t) - 'search' - 'segments' ORDER BY t.id)
                                     FROM transcripts t WHERE t.call_sid = $1), '[]'),
            'insights', COALESCE((SELECT jsonb_agg(to_jsonb(i) ORDER BY i.id) FROM insights i WHERE i.call_sid = $1), '[]'),
            'lead', (SELECT to_jsonb(l) FROM leads l JOIN lead_calls lc ON lc.lead_id = l.id
                     WHERE lc.call_sid = $1 ORDER BY lc.linked_at DESC LIMIT 1))",
    )
    .bind(call_sid)
    .fetch_one(pool)
    .await
}
