//! `GET /metrics` in Prometheus text: what this process counted (requests and
//! their latency, webhooks by outcome, and job runs when a worker shares the
//! process) through the `metrics` facade, followed by gauges read from the
//! database at scrape time (queue depth and age, calls, agents' load, OpenAI
//! usage), so any web dyno serves the whole system's state. Behind the API token.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use switchboard_jobs::queue::admin::JobState;

use super::{ApiError, AppState};

/// Latency buckets in seconds: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The process's Prometheus recorder, installed on first use. When another
/// recorder was installed first, this one still renders (the database gauges
/// and nothing counted in-process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new().set_buckets(&LATENCY_BUCKETS).expect("static, non-empty buckets");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed: /metrics serves the database gauges only");
        }
        handle
    })
}

/// `GET /metrics`; installs the recorder, so requests are counted from the start.
pub fn routes(state: AppState) -> Router<AppState> {
    handle();
    Router::new()
        .route("/metrics", get(scrape))
        .route_layer(axum::middleware::from_fn_with_state(state, super::auth::require_api_token))
}

async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let handle = handle();
    handle.run_upkeep();
    let mut text = handle.render();
    text.push_str(&database_gauges(&state.pool).await?);
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// Counts every request by route template (never the raw path: Exotel's
/// carries a secret) and, for provider webhooks, by provider, endpoint and outcome.
pub async fn track_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let labels = [("method", method), ("route", route.clone()), ("status", status.as_str().to_owned())];
    metrics::histogram!("switchboard_http_request_duration_seconds", &labels).record(started.elapsed());
    if let Some((provider, endpoint)) = webhook(&route) {
        let outcome = match status.as_u16() {
            500.. => "error",
            400..500 => "rejected",
            _ => "accepted",
        };
        metrics::counter!("switchboard_webhooks_total", "provider" => provider, "endpoint" => endpoint, "outcome" => outcome)
            .increment(1);
    }
    response
}

/// `/webhooks/{provider}/.../{endpoint}` as (provider, endpoint).
fn webhook(route: &str) -> Option<(String, String)> {
    let rest = route.strip_prefix("/webhooks/")?;
    let (provider, path) = rest.split_once('/')?;
    let endpoint = path.rsplit('/').next().filter(|e| !e.is_empty() && !e.starts_with('{'))?;
    Some((provider.to_owned(), endpoint.to_owned()))
}

/// One gauge family in the text format, its samples from `rows` (label pairs, value).
struct Family {
    text: String,
}

impl Family {
    fn new(name: &str, help: &str) -> Self {
        Self { text: format!("# HELP {name} {help}\n# TYPE {name} gauge\n") }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escaped(v))).collect();
        let _ = writeln!(self.text, "{name}{{{}}} {value}", labels.join(","));
    }
}

fn escaped(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

async fn database_gauges(pool: &PgPool) -> Result<String, sqlx::Error> {
    let mut out = String::new();

    let kinds: Vec<&str> = switchboard_jobs::registry().kinds().collect();
    let states: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
    let rows: Vec<(String, String, i64, Option<f64>)> = sqlx::query_as(
        "WITH kinds AS (SELECT unnest($1::text[]) AS kind UNION SELECT DISTINCT job_type FROM apalis.jobs),
              counts AS (SELECT o.kind, o.state, count(*) AS n,
                                extract(epoch FROM now() - min(CASE o.state
                                    WHEN 'pending' THEN j.run_at WHEN 'running' THEN COALESCE(j.lock_at, j.run_at)
                                    WHEN 'dead' THEN j.done_at END))::float8 AS age
                         FROM job_overview o JOIN apalis.jobs j ON j.id = o.id GROUP BY 1, 2)
         SELECT k.kind, s.state, COALESCE(c.n, 0), c.age
         FROM kinds k CROSS JOIN unnest($2::text[]) AS s(state)
         LEFT JOIN counts c ON c.kind = k.kind AND c.state = s.state ORDER BY 1, 2",
    )
    .bind(&kinds)
    .bind(&states)
    .fetch_all(pool)
    .await?;
    let (depth, oldest) = ("switchboard_queue_jobs", "switchboard_queue_oldest_age_seconds");
    let mut depth_family = Family::new(depth, "Jobs in the queue, per kind and state (done ones until pruned).");
    let mut oldest_family = Family::new(
        oldest,
        "Age of the oldest job per kind and state: pending since its run_at, running since claimed, dead since \
         it died; 0 when there is none.",
    );
    for (kind, state, count, age) in rows {
        let labels = [("kind", kind.as_str()), ("state", state.as_str())];
        depth_family.sample(depth, &labels, count as f64);
        if matches!(state.as_str(), "pending" | "running" | "dead") {
            oldest_family.sample(oldest, &labels, age.unwrap_or(0.0).max(0.0));
        }
    }
    out.push_str(&depth_family.text);
    out.push_str(&oldest_family.text);

    let name = "switchboard_calls";
    let mut family = Family::new(name, "Calls per status and direction.");
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT status, direction, count(*) FROM calls GROUP BY 1, 2 ORDER BY 1, 2")
            .fetch_all(pool)
            .await?;
    for (status, direction, count) in rows {
        family.sample(name, &[("status", &status), ("direction", &direction)], count as f64);
    }
    out.push_str(&family.text);

    let (load, max) = ("switchboard_agent_calls", "switchboard_agent_max_calls");
    let mut current = Family::new(load, "Calls an agent is on now.");
    let mut limit = Family::new(max, "Calls an agent may take at once.");
    let rows: Vec<(i64, String, String, i32, i32)> =
        sqlx::query_as("SELECT id, name, status, current_calls, max_concurrent_calls FROM agents ORDER BY id")
            .fetch_all(pool)
            .await?;
    for (id, agent, status, calls, max_calls) in rows {
        let id = id.to_string();
        let labels = [("agent_id", id.as_str()), ("agent", agent.as_str()), ("status", status.as_str())];
        current.sample(load, &labels, calls.into());
        limit.sample(max, &labels, max_calls.into());
    }
    out.push_str(&current.text);
    out.push_str(&limit.text);

    let (tokens, cost) = ("switchboard_openai_tokens", "switchboard_openai_cost_usd");
    let mut token_family = Family::new(tokens, "OpenAI tokens spent on analyses, per model and type.");
    let mut cost_family = Family::new(cost, "Estimated OpenAI cost of analyses in US dollars, per model.");
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT model, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(cost_micro_usd)::bigint
         FROM insights GROUP BY model ORDER BY model",
    )
    .fetch_all(pool)
    .await?;
    for (model, prompt, completion, micro_usd) in rows {
        token_family.sample(tokens, &[("model", &model), ("type", "prompt")], prompt as f64);
        token_family.sample(tokens, &[("model", &model), ("type", "completion")], completion as f64);
        cost_family.sample(cost, &[("model", &model)], micro_usd as f64 / 1e6);
    }
    out.push_str(&token_family.text);
    out.push_str(&cost_family.text);

    let name = "switchboard_openai_transcribed_seconds";
    let mut family = Family::new(name, "Seconds of audio transcribed, per model (billed by the minute).");
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT model, sum(duration_seconds)::float8 FROM transcripts
         WHERE status = 'transcribed' AND model IS NOT NULL AND duration_seconds IS NOT NULL GROUP BY model ORDER BY model",
    )
    .fetch_all(pool)
    .await?;
    for (model, seconds) in rows {
        family.sample(name, &[("model", &model)], seconds);
    }
    out.push_str(&family.text);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_routes_name_provider_and_endpoint_but_never_the_secret_segment() {
        assert_eq!(webhook("/webhooks/twilio/voice"), Some(("twilio".into(), "voice".into())));
        assert_eq!(webhook("/webhooks/exotel/{secret}/connect"), Some(("exotel".into(), "connect".into())));
        assert_eq!(webhook("/api/agents/{id}"), None);
        assert_eq!(webhook("/webhooks/exotel/{secret}"), None);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut family = Family::new("m", "help");
        family.sample("m", &[("agent", "Ravi \"R\" \\ K\n")], 1.0);
        assert!(family.text.ends_with("m{agent=\"Ravi \\\"R\\\" \\\\ K\\n\"} 1\n"), "{}", family.text);
    }
}
