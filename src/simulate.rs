//! `switchboard simulate`: the demo's callers aimed at a running web
//! (staging, a load test): signed Twilio conversations or Exotel flows at a
//! steady rate, then what was sent, accepted and rejected, and latency
//! percentiles per webhook. The simulated Twilio REST API runs too: point the
//! target's `TWILIO_API_BASE` at it and its agents answer; otherwise callers
//! hang up after `--hold` in the queue.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use indicatif::ProgressBar;
use switchboard_jobs::ports::Provider;

use crate::sim::{self, Providers, Tally, Target};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub target: Target,
    pub calls: usize,
    pub rate: f64,
    pub provider: Provider,
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub total: Tally,
    /// Per webhook (`voice`, `ivr`, `status`, `recording`, `connect`...).
    pub endpoints: BTreeMap<String, Tally>,
}

pub async fn run(options: &SimulateOptions) -> anyhow::Result<Report> {
    let providers = Providers::start(&options.target).await?;
    if options.progress && options.provider == Provider::Twilio {
        eprintln!(
            "simulated Twilio REST API at {} (the target's TWILIO_API_BASE, to let agents answer)",
            providers.twilio.base_url
        );
    }
    let bar = if options.progress { ProgressBar::new(options.calls as u64) } else { ProgressBar::hidden() };
    sim::run_calls(&providers, options.provider, options.calls, options.rate, &bar).await;
    bar.finish_and_clear();
    let all = providers.exchanges.all();
    let mut by_endpoint: BTreeMap<String, Vec<sim::Exchange>> = BTreeMap::new();
    for exchange in &all {
        by_endpoint.entry(exchange.endpoint.clone()).or_default().push(exchange.clone());
    }
    Ok(Report {
        total: Tally::of(&all),
        endpoints: by_endpoint.into_iter().map(|(endpoint, list)| (endpoint, Tally::of(&list))).collect(),
    })
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<12}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
            "webhook", "sent", "accepted", "rejected", "p50 ms", "p95 ms", "p99 ms"
        );
        let rows = self.endpoints.iter().map(|(name, tally)| (name.as_str(), tally)).chain([("total", &self.total)]);
        for (name, t) in rows {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let _ = writeln!(
                out,
                "{name:<12}{:>8}{:>10}{:>10}{:>10.1}{:>10.1}{:>10.1}",
                t.sent,
                t.accepted,
                t.rejected,
                ms(t.p50),
                ms(t.p95),
                ms(t.p99)
            );
        }
        out
    }
}
