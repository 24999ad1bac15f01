//! Heroku log metrics for the worker, which has no port to scrape: once a
//! minute one stdout line of `count#` (what was counted since the last line),
//! `measure#` (durations: p50, p95 and max over the minute) and `sample#`
//! (queue depth and the oldest pending job, read from the database), e.g.
//! `source=worker.1 count#job_runs.transcribe=12 measure#job_duration.transcribe.p95=840.0ms sample#queue_jobs.transcribe.pending=3`.
//!
//! Reads `LOG_METRICS_INTERVAL` (default `1m`; `0s` turns the lines off).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{AtomicStorage, Registry};
use sqlx::PgPool;

/// A recorder that keeps what the worker counts until the next line takes it.
#[derive(Clone)]
pub struct LogMetrics {
    registry: Arc<Registry<Key, AtomicStorage>>,
}

impl Default for LogMetrics {
    fn default() -> Self {
        Self { registry: Arc::new(Registry::atomic()) }
    }
}

impl Recorder for LogMetrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.registry.get_or_create_counter(key, |c| Counter::from_arc(c.clone()))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.registry.get_or_create_gauge(key, |g| Gauge::from_arc(g.clone()))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.registry.get_or_create_histogram(key, |h| Histogram::from_arc(h.clone()))
    }
}

impl LogMetrics {
    /// `count#` and `measure#` entries for what was recorded since the last
    /// call (counters are read and reset, durations drained); nothing for a
    /// metric that saw nothing.
    pub fn take(&self) -> Vec<String> {
        let mut entries = Vec::new();
        self.registry.visit_counters(|key, counter| {
            let delta = counter.swap(0, Ordering::Relaxed);
            if delta > 0 {
                entries.push(format!("count#{}={delta}", metric_name(key)));
            }
        });
        self.registry.visit_histograms(|key, bucket| {
            let mut values = Vec::new();
            bucket.clear_with(|chunk| values.extend_from_slice(chunk));
            if values.is_empty() {
                return;
            }
            values.sort_by(f64::total_cmp);
            let name = metric_name(key);
            let in_ms = key.name().ends_with("_seconds");
            let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
            for (suffix, value) in [("p50", at(0.5)), ("p95", at(0.95)), ("max", at(1.0))] {
                entries.push(if in_ms {
                    format!("measure#{name}.{suffix}={:.1}ms", value * 1000.0)
                } else {
                    format!("measure#{name}.{suffix}={value}")
                });
            }
        });
        entries.sort();
        entries
    }
}

/// `switchboard_job_runs_total{kind="transcribe"}` as `job_runs.transcribe`.
fn metric_name(key: &Key) -> String {
    let name = key.name().trim_start_matches("switchboard_");
    let name = name.strip_suffix("_total").or_else(|| name.strip_suffix("_seconds")).unwrap_or(name);
    let mut out = name.to_owned();
    for label in key.labels() {
        out.push('.');
        out.push_str(label.value());
    }
    out
}

/// `sample#` entries for the queue: jobs per kind in the states an operator
/// watches, and the age of the oldest pending job per kind.
pub async fn queue_samples(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String, String, i64, Option<f64>)> = sqlx::query_as(
        "SELECT o.kind, o.state, count(*),
                CASE WHEN o.state = 'pending' THEN extract(epoch FROM now() - min(o.run_at))::float8 END
         FROM job_overview o WHERE o.state IN ('pending', 'running', 'retrying', 'dead') GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let mut samples = Vec::new();
    for (kind, state, count, oldest) in rows {
        samples.push(format!("sample#queue_jobs.{kind}.{state}={count}"));
        if let Some(age) = oldest {
            samples.push(format!("sample#queue_oldest_pending_age.{kind}={:.1}s", age.max(0.0)));
        }
    }
    Ok(samples)
}

/// Installs the recorder for this process and prints a line every
/// `LOG_METRICS_INTERVAL` until the process ends.
pub fn spawn(pool: PgPool) -> anyhow::Result<()> {
    let every = humantime::parse_duration(&std::env::var("LOG_METRICS_INTERVAL").unwrap_or_else(|_| "1m".into()))
        .map_err(|e| anyhow::anyhow!("LOG_METRICS_INTERVAL: {e} (try 1m, 30s, or 0s for off)"))?;
    if every.is_zero() {
        return Ok(());
    }
    let recorder = LogMetrics::default();
    if metrics::set_global_recorder(recorder.clone()).is_err() {
        tracing::warn!("a metrics recorder was already installed: no log metrics");
        return Ok(());
    }
    tokio::spawn(print_every(pool, recorder, every));
    Ok(())
}

async fn print_every(pool: PgPool, recorder: LogMetrics, every: Duration) {
    let source = std::env::var("DYNO").unwrap_or_else(|_| "worker".into());
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let mut entries = recorder.take();
        match queue_samples(&pool).await {
            Ok(samples) => entries.extend(samples),
            Err(e) => tracing::warn!(error = %e, "log metrics: could not read the queue"),
        }
        if !entries.is_empty() {
            println!("source={source} {}", entries.join(" "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_deltas_since_the_last_line_and_durations_are_measured_in_ms() {
        let recorder = LogMetrics::default();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("switchboard_job_runs_total", "kind" => "transcribe").increment(3);
            metrics::counter!("switchboard_job_failures_total", "kind" => "analyze", "outcome" => "retry").increment(1);
            for ms in [100.0, 200.0, 900.0] {
                metrics::histogram!("switchboard_job_duration_seconds", "kind" => "transcribe").record(ms / 1000.0);
            }
        });
        assert_eq!(
            recorder.take(),
            vec![
                "count#job_failures.analyze.retry=1",
                "count#job_runs.transcribe=3",
                "measure#job_duration.transcribe.max=900.0ms",
                "measure#job_duration.transcribe.p50=200.0ms",
                "measure#job_duration.transcribe.p95=900.0ms",
            ]
        );
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("switchboard_job_runs_total", "kind" => "transcribe").increment(2);
        });
        assert_eq!(recorder.take(), vec!["count#job_runs.transcribe=2"], "the next line counts only what is new");
        assert!(recorder.take().is_empty());
    }
}
