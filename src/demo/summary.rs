//! What the demo did, read back from the database (never from the
//! simulator's own counts), and printed with what to try next.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use sqlx::PgPool;

use crate::sim::Tally;
use switchboard_jobs::phone::mask as mask_phone;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentLine {
    pub name: String,
    pub department: String,
    pub status: String,
    pub calls: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LeadLine {
    pub phone: String,
    pub name: Option<String>,
    pub score: i32,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageLatency {
    pub stage: String,
    pub count: i64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadJob {
    pub id: String,
    pub kind: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Counts {
    /// Inbound calls (agent legs placed to bridge them are not counted).
    pub calls: i64,
    /// Calls an agent took.
    pub answered: i64,
    /// Calls whose first agent did not pick up and that were routed again.
    pub rerouted: i64,
    /// Overflowed calls that were promised a callback.
    pub callbacks: i64,
    /// Recordings of calls no agent took.
    pub voicemails: i64,
    pub recordings_stored: i64,
    pub recording_bytes: i64,
    pub transcribed: i64,
    pub transcripts_skipped: i64,
    pub insights: i64,
    pub leads: i64,
    pub hot_leads: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micro_usd: i64,
    /// Provider requests the web stored (retries and duplicates once).
    pub webhook_events: i64,
    /// Job runs that failed and were retried with backoff (a recording not ready, a 5xx).
    pub retried_runs: i64,
    /// Job runs that met a rate limit and waited its `Retry-After` without spending an attempt.
    pub throttled_runs: i64,
    /// Follow-up calls scheduled for hot leads, those that reached the customer, their attempts.
    pub follow_ups: i64,
    pub follow_ups_completed: i64,
    pub follow_up_attempts: i64,
    /// Attempts that did not reach both sides (no answer, voicemail, the agent missed it).
    pub follow_up_attempts_unanswered: i64,
    /// Agents' slots given back by `reconcile-call`: the final status was lost, the provider's REST API told it.
    pub reconciled_slots: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub counts: Counts,
    pub agents: Vec<AgentLine>,
    pub top_leads: Vec<LeadLine>,
    pub stages: Vec<StageLatency>,
    pub dead_jobs: Vec<DeadJob>,
    /// Recording files found under the directory with the size their row records.
    pub files_verified: i64,
    pub recordings_dir: PathBuf,
    /// The simulated providers' requests to the web, as they saw them.
    pub webhooks: Tally,
}

const COUNTS: &str = "SELECT
    (SELECT count(*) FROM calls WHERE direction = 'inbound') AS calls,
    (SELECT count(*) FROM calls WHERE direction = 'inbound' AND agent_id IS NOT NULL) AS answered,
    (SELECT count(*) FROM calls WHERE direction = 'inbound' AND reroutes > 0) AS rerouted,
    (SELECT count(*) FROM calls WHERE direction = 'inbound' AND routing_state = 'overflowed'
        AND overflow_action = 'callback') AS callbacks,
    (SELECT count(*) FROM recordings r JOIN calls c ON c.provider = r.provider AND c.call_sid = r.call_sid
        WHERE c.direction = 'inbound' AND c.agent_id IS NULL) AS voicemails,
    (SELECT count(*) FROM recordings WHERE status = 'stored') AS recordings_stored,
    (SELECT coalesce(sum(bytes), 0)::bigint FROM recordings WHERE status = 'stored') AS recording_bytes,
    (SELECT count(*) FROM transcripts WHERE status = 'transcribed') AS transcribed,
    (SELECT count(*) FROM transcripts WHERE status = 'skipped') AS transcripts_skipped,
    (SELECT count(*) FROM insights) AS insights,
    (SELECT count(*) FROM leads) AS leads,
    (SELECT count(*) FROM leads WHERE hot) AS hot_leads,
    (SELECT coalesce(sum(prompt_tokens), 0)::bigint FROM insights) AS prompt_tokens,
    (SELECT coalesce(sum(completion_tokens), 0)::bigint FROM insights) AS completion_tokens,
    (SELECT coalesce(sum(cost_micro_usd), 0)::bigint FROM insights) AS cost_micro_usd,
    (SELECT count(*) FROM webhook_events) AS webhook_events,
    (SELECT count(*) FROM job_errors WHERE outcome = 'retry') AS retried_runs,
    (SELECT count(*) FROM job_errors WHERE outcome = 'throttled') AS throttled_runs,
    (SELECT count(*) FROM scheduled_calls WHERE NOT context ? 'overflow_call_sid') AS follow_ups,
    (SELECT count(*) FROM scheduled_calls WHERE NOT context ? 'overflow_call_sid' AND status = 'completed')
        AS follow_ups_completed,
    (SELECT count(*) FROM scheduled_call_attempts a JOIN scheduled_calls c ON c.id = a.scheduled_call_id
        WHERE NOT c.context ? 'overflow_call_sid') AS follow_up_attempts,
    (SELECT count(*) FROM scheduled_call_attempts a JOIN scheduled_calls c ON c.id = a.scheduled_call_id
        WHERE NOT c.context ? 'overflow_call_sid' AND a.outcome NOT IN ('completed', 'canceled'))
        AS follow_up_attempts_unanswered,
    (SELECT count(*) FROM calls WHERE released_by_reconcile) AS reconciled_slots";

const AGENTS: &str = "SELECT a.name, coalesce(d.name, '-') AS department, a.status,
        (SELECT count(*) FROM calls c WHERE c.agent_id = a.id AND c.direction = 'inbound') AS calls
    FROM agents a LEFT JOIN departments d ON d.id = a.department_id ORDER BY d.name, a.id";

const TOP_LEADS: &str =
    "SELECT phone, name, score, summary FROM leads WHERE score IS NOT NULL ORDER BY score DESC, id LIMIT 5";

/// Each after-call stage from the moment its input was committed to the moment its output was.
const STAGES: &str = "WITH spans (stage, ord, ms) AS (
        SELECT 'fetch-recording', 1, extract(epoch FROM r.stored_at - r.created_at) * 1000
            FROM recordings r WHERE r.stored_at IS NOT NULL
        UNION ALL SELECT 'transcribe', 2, extract(epoch FROM t.created_at - r.stored_at) * 1000
            FROM transcripts t JOIN recordings r ON r.id = t.recording_id WHERE t.status = 'transcribed'
        UNION ALL SELECT 'analyze', 3, extract(epoch FROM i.created_at - t.created_at) * 1000
            FROM insights i JOIN transcripts t ON t.id = i.transcript_id
        UNION ALL SELECT 'create-lead', 4, extract(epoch FROM l.linked_at - i.created_at) * 1000
            FROM lead_calls l JOIN insights i ON i.id = l.insight_id
        UNION ALL SELECT 'recording webhook to lead', 5, extract(epoch FROM l.linked_at - r.created_at) * 1000
            FROM lead_calls l JOIN insights i ON i.id = l.insight_id
            JOIN transcripts t ON t.id = i.transcript_id JOIN recordings r ON r.id = t.recording_id
    )
    SELECT stage, count(*) AS count,
        (percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::float8 AS p50_ms,
        (percentile_cont(0.95) WITHIN GROUP (ORDER BY ms))::float8 AS p95_ms
    FROM spans GROUP BY stage, ord ORDER BY ord";

const DEAD_JOBS: &str = "SELECT id, kind, last_error AS error FROM job_overview WHERE state = 'dead' ORDER BY kind, id";

impl Summary {
    pub async fn read(pool: &PgPool, recordings_dir: &Path, webhooks: Tally) -> Result<Self, sqlx::Error> {
        let stored: Vec<(String, i64)> =
            sqlx::query_as("SELECT storage_key, bytes FROM recordings WHERE status = 'stored'").fetch_all(pool).await?;
        let mut files_verified = 0;
        for (key, bytes) in stored {
            let on_disk = tokio::fs::metadata(recordings_dir.join(key)).await.map(|m| m.len()).ok();
            files_verified += i64::from(on_disk == u64::try_from(bytes).ok());
        }
        Ok(Self {
            counts: sqlx::query_as(COUNTS).fetch_one(pool).await?,
            agents: sqlx::query_as(AGENTS).fetch_all(pool).await?,
            top_leads: sqlx::query_as(TOP_LEADS).fetch_all(pool).await?,
            stages: sqlx::query_as(STAGES).fetch_all(pool).await?,
            dead_jobs: sqlx::query_as(DEAD_JOBS).fetch_all(pool).await?,
            files_verified,
            recordings_dir: recordings_dir.to_owned(),
            webhooks,
        })
    }

    /// The report, ending with what to try next against `database_url`.
    pub fn render(&self, database_url: &str, api_token: &str) -> String {
        let c = &self.counts;
        let mut out = String::new();
        let _ = writeln!(out, "\nInbound calls");
        let _ = writeln!(out, "  calls:                {}", c.calls);
        let _ = writeln!(out, "  answered by an agent: {}", c.answered);
        let _ = writeln!(out, "  rerouted after a miss: {}", c.rerouted);
        let _ = writeln!(out, "  voicemails:           {}", c.voicemails);
        let _ = writeln!(out, "  callbacks promised:   {}", c.callbacks);
        let _ = writeln!(out, "\nCalls per agent");
        for agent in &self.agents {
            let _ = writeln!(out, "  {:<16} {:<8} {:<10} {}", agent.name, agent.department, agent.status, agent.calls);
        }
        let _ = writeln!(out, "\nFollow-up calls to hot leads (scheduled through the API)");
        let _ = writeln!(out, "  scheduled:            {}", c.follow_ups);
        let _ = writeln!(out, "  completed:            {}", c.follow_ups_completed);
        let _ = writeln!(
            out,
            "  attempts:             {} ({} not answered by both sides, called again)",
            c.follow_up_attempts, c.follow_up_attempts_unanswered
        );
        let _ = writeln!(out, "\nAfter the call");
        let _ = writeln!(
            out,
            "  recordings stored:    {} ({} bytes; {} files verified in {})",
            c.recordings_stored,
            c.recording_bytes,
            self.files_verified,
            self.recordings_dir.display()
        );
        let _ =
            writeln!(out, "  transcripts:          {} (+{} skipped: too short)", c.transcribed, c.transcripts_skipped);
        let _ = writeln!(out, "  insights:             {}", c.insights);
        let _ = writeln!(out, "  leads:                {}", c.leads);
        let _ = writeln!(out, "  hot leads:            {}", c.hot_leads);
        let _ = writeln!(out, "  top leads (score, phone, name, latest summary):");
        for lead in &self.top_leads {
            let summary: String = lead.summary.as_deref().unwrap_or_default().chars().take(70).collect();
            let name = lead.name.as_deref().unwrap_or("(no name)");
            let _ = writeln!(out, "    {:>3}  {}  {name:<8} {summary}", lead.score, mask_phone(&lead.phone));
        }
        let _ = writeln!(
            out,
            "  cost estimate:        ${} ({} prompt + {} completion tokens)",
            dollars(c.cost_micro_usd),
            c.prompt_tokens,
            c.completion_tokens
        );
        let _ = writeln!(out, "\nLatency (ms)              count      p50      p95");
        for stage in &self.stages {
            let _ =
                writeln!(out, "  {:<24}{:>6} {:>8.1} {:>8.1}", stage.stage, stage.count, stage.p50_ms, stage.p95_ms);
        }
        let w = &self.webhooks;
        let _ = writeln!(
            out,
            "  webhooks (as sent)      {:>6} {:>8.1} {:>8.1}   {} accepted, {} rejected, {} events stored",
            w.sent,
            w.p50.as_secs_f64() * 1000.0,
            w.p95.as_secs_f64() * 1000.0,
            w.accepted,
            w.rejected,
            c.webhook_events
        );
        let _ = writeln!(
            out,
            "  agent slots given back by reconciliation (final status lost, asked the provider's API): {}",
            c.reconciled_slots
        );
        let _ = writeln!(
            out,
            "\nJobs retried after a failure: {}; runs that waited out a rate limit (no attempt spent): {} (see job_errors)",
            c.retried_runs, c.throttled_runs
        );
        self.render_dead_jobs(&mut out, database_url);
        let _ = writeln!(out, "\nNext: the database stays populated. Serve the API on it and look around:");
        let _ = writeln!(
            out,
            "  DATABASE_URL={database_url} API_TOKENS={api_token} RECORDING_DIR={} cargo run --release -- web &",
            self.recordings_dir.display()
        );
        let auth = format!("-H 'Authorization: Bearer {api_token}'");
        let paths = [
            "/api/leads?hot=true",
            "/api/stats/calls",
            "/api/transcripts/search?q=Whitefield",
            "/api/calls?limit=5",
            "/api/scheduled-calls?status=completed",
        ];
        for path in paths {
            let _ = writeln!(out, "  curl -s {auth} 'localhost:8080{path}'");
        }
        let _ = writeln!(out, "  DATABASE_URL={database_url} cargo run --release -- jobs stats");
        let _ = writeln!(out, "  DATABASE_URL={database_url} cargo run --release -- jobs list --state dead");
        out
    }

    fn render_dead_jobs(&self, out: &mut String, database_url: &str) {
        if self.dead_jobs.is_empty() {
            let _ = writeln!(out, "\nDead jobs: none");
            return;
        }
        let _ = writeln!(out, "\nDead jobs: {}", self.dead_jobs.len());
        for job in &self.dead_jobs {
            let _ = writeln!(out, "  {} {:<16} {}", job.id, job.kind, job.error.as_deref().unwrap_or("-"));
        }
        let ids: Vec<&str> = self.dead_jobs.iter().map(|j| j.id.as_str()).collect();
        let _ = writeln!(
            out,
            "  replay them: DATABASE_URL={database_url} cargo run --release -- jobs replay {}",
            ids.join(" ")
        );
    }
}

/// Micro-dollars as dollars with six decimals, without floats.
fn dollars(micro: i64) -> String {
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_dollars_print_exactly() {
        assert_eq!(dollars(1_234_567), "1.234567");
        assert_eq!(dollars(270), "0.000270");
    }

    #[test]
    fn dead_jobs_come_with_the_exact_replay_command() {
        let dead =
            |id: &str, kind: &str| DeadJob { id: id.into(), kind: kind.into(), error: Some("OpenAI 400".into()) };
        let summary = Summary {
            dead_jobs: vec![
                dead("01JDEMO0000000000000000001", "transcribe"),
                dead("01JDEMO0000000000000000002", "analyze"),
            ],
            ..Summary::default()
        };

        let rendered = summary.render("postgres://localhost/switchboard_demo", "t");

        assert!(rendered.contains("Dead jobs: 2"));
        assert!(rendered.contains(
            "DATABASE_URL=postgres://localhost/switchboard_demo cargo run --release -- jobs replay 01JDEMO0000000000000000001 01JDEMO0000000000000000002"
        ));
    }
}
