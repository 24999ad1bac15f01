//! `/metrics` scraped after a demo-sized run: every family an operator
//! dashboards on is there, with its labels.

use std::collections::BTreeSet;

use sqlx::PgPool;

use crate::support::{API_TOKEN, migrate, spawn_app};

/// The label sets of every sample of `family` in a Prometheus text page.
fn samples<'a>(page: &'a str, family: &str) -> Vec<&'a str> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(family))
        .filter_map(|rest| rest.strip_prefix('{'))
        .filter_map(|rest| rest.rsplit_once('}').map(|(labels, _)| labels))
        .collect()
}

fn label_names(labels: &str) -> BTreeSet<&str> {
    labels.split("\",").filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim_start_matches(','))).collect()
}

#[sqlx::test(migrations = false)]
async fn metrics_after_a_demo_run_has_every_family_with_its_labels(pool: PgPool) {
    migrate(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    super::demo_run(&pool, dir.path()).await;
    let app = spawn_app(&pool).await;

    let refused = app.client.get(format!("{}/metrics", app.base_url)).send().await.unwrap();
    assert_eq!(refused.status(), 401, "metrics are behind the API token");
    let response = app.client.get(format!("{}/metrics", app.base_url)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let page = response.text().await.unwrap();

    let families: [(&str, &[&str]); 13] = [
        ("switchboard_job_runs_total", &["kind"]),
        ("switchboard_job_failures_total", &["kind", "outcome"]),
        ("switchboard_job_duration_seconds_bucket", &["kind", "le"]),
        ("switchboard_webhooks_total", &["endpoint", "outcome", "provider"]),
        ("switchboard_http_request_duration_seconds_bucket", &["le", "method", "route", "status"]),
        ("switchboard_queue_jobs", &["kind", "state"]),
        ("switchboard_queue_oldest_age_seconds", &["kind", "state"]),
        ("switchboard_calls", &["direction", "status"]),
        ("switchboard_agent_calls", &["agent", "agent_id", "status"]),
        ("switchboard_agent_max_calls", &["agent", "agent_id", "status"]),
        ("switchboard_openai_tokens", &["model", "type"]),
        ("switchboard_openai_cost_usd", &["model"]),
        ("switchboard_openai_transcribed_seconds", &["model"]),
    ];
    for (family, labels) in families {
        let found = samples(&page, family);
        assert!(!found.is_empty(), "{family} missing from:\n{page}");
        for sample in found {
            assert_eq!(label_names(sample), labels.iter().copied().collect(), "{family}{{{sample}}}");
        }
    }
    let voice = samples(&page, "switchboard_webhooks_total");
    assert!(
        voice.iter().any(|l| l.contains("provider=\"twilio\"")
            && l.contains("endpoint=\"voice\"")
            && l.contains("outcome=\"accepted\"")),
        "the demo's incoming calls are counted: {voice:?}"
    );
    let inbound: f64 = page
        .lines()
        .filter(|l| l.starts_with("switchboard_calls{") && l.contains("direction=\"inbound\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(inbound, 6.0, "calls by status add up to the demo's calls");
    assert!(!page.contains("/webhooks/exotel/") || page.contains("{secret}"), "the Exotel path secret never shows");
}

#[sqlx::test(migrations = false)]
async fn the_worker_prints_heroku_log_metrics_with_the_queue_sampled_from_the_database(pool: PgPool) {
    use tokio::io::AsyncBufReadExt;
    migrate(&pool).await;
    super::dead_noop(&pool, "simulated outage").await;

    let mut worker = crate::support::binary::command(&pool, &["worker", "--queues", "noop"]);
    let mut worker = crate::support::binary::as_dyno(&mut worker, "worker.7")
        .env("LOG_METRICS_INTERVAL", "200ms")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(worker.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("source=") {
                return line;
            }
        }
        panic!("the worker's stdout ended without a metrics line");
    })
    .await
    .expect("a metrics line within a minute");
    worker.kill().await.unwrap();

    assert!(line.starts_with("source=worker.7 "), "{line}");
    assert!(line.split(' ').any(|entry| entry == "sample#queue_jobs.noop.dead=1"), "{line}");
}
