//! Server-rendered SVG charts (stacked bars) and the queries behind the three
//! the console shows: calls per hour by outcome, jobs finished and failed per
//! minute by kind, and the after-call pipeline's latency.

use std::collections::BTreeMap;

use maud::{Markup, html};
use sqlx::PgPool;

const PALETTE: [&str; 8] = ["#4e79a7", "#59a14f", "#e15759", "#f28e2b", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];

/// Bars over `categories`, one stacked segment per series.
pub struct Chart {
    pub title: String,
    pub categories: Vec<String>,
    /// (name, value per category)
    pub series: Vec<(String, Vec<f64>)>,
}

impl Chart {
    /// Rows of (category, series, value) folded into a chart; categories keep their order.
    fn from_rows(title: &str, categories: Vec<String>, rows: Vec<(String, String, f64)>) -> Self {
        let mut by_series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (category, series, value) in rows {
            if let Some(at) = categories.iter().position(|c| *c == category) {
                by_series.entry(series).or_insert_with(|| vec![0.0; categories.len()])[at] += value;
            }
        }
        Self { title: title.to_owned(), categories, series: by_series.into_iter().collect() }
    }

    pub fn svg(&self, color_of: impl Fn(usize, &str) -> &'static str) -> Markup {
        let (width, height, left, bottom, top) = (460.0, 200.0, 36.0, 34.0, 10.0);
        let plot_h = height - bottom - top;
        let count = self.categories.len().max(1) as f64;
        let slot = (width - left - 8.0) / count;
        let totals: Vec<f64> =
            (0..self.categories.len()).map(|i| self.series.iter().map(|(_, v)| v[i]).sum()).collect();
        let max = totals.iter().copied().fold(0.0, f64::max).max(1.0);
        let label_every = (self.categories.len() / 6).max(1);
        let mut bars = Vec::new();
        for (i, category) in self.categories.iter().enumerate() {
            let x = left + slot * i as f64 + slot * 0.15;
            let mut stacked = 0.0;
            for (s, (name, values)) in self.series.iter().enumerate() {
                let h = values[i] / max * plot_h;
                if h > 0.0 {
                    let tip = format!("{category} {name}: {}", format_value(values[i]));
                    bars.push((x, top + plot_h - (stacked + h), h, color_of(s, name), tip));
                }
                stacked += h;
            }
        }
        html! {
            figure {
                figcaption { strong { (self.title) } }
                svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) role="img" aria-label=(self.title) {
                    line x1=(left) y1=(top) x2=(left) y2=(top + plot_h) stroke="#9aa4b2" {}
                    line x1=(left) y1=(top + plot_h) x2=(width) y2=(top + plot_h) stroke="#9aa4b2" {}
                    text x=(left - 4.0) y=(top + 8.0) text-anchor="end" font-size="10" { (format_value(max)) }
                    text x=(left - 4.0) y=(top + plot_h) text-anchor="end" font-size="10" { "0" }
                    @for (x, y, h, color, tip) in &bars {
                        rect x=(x) y=(y) width=(slot * 0.7) height=(h) fill=(color) { title { (tip) } }
                    }
                    @for (i, category) in self.categories.iter().enumerate().step_by(label_every) {
                        text x=(left + slot * i as f64 + slot * 0.15) y=(height - bottom + 14.0) font-size="10" { (category) }
                    }
                }
                div.muted {
                    @for (s, (name, _)) in self.series.iter().enumerate() {
                        span { span.bar style=(format!("width:.8em;background:{}", color_of(s, name))) {} " " (name) " " }
                    }
                }
            }
        }
    }
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

pub fn by_position(i: usize, _: &str) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Green for what went well, red for what failed, the palette for the rest.
pub fn by_outcome(i: usize, name: &str) -> &'static str {
    match name {
        "completed" | "finished" => "#59a14f",
        "failed" | "busy" | "no-answer" | "canceled" | "abandoned" => "#e15759",
        _ => by_position(i + 2, name),
    }
}

/// Inbound and outbound calls per hour over the last 24 hours, by status.
pub async fn calls_per_hour(pool: &PgPool) -> Result<Chart, sqlx::Error> {
    let hours: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(h, 'HH24:00') FROM generate_series(date_trunc('hour', now()) - interval '23 hours',
                date_trunc('hour', now()), interval '1 hour') AS h ORDER BY h",
    )
    .fetch_all(pool)
    .await?;
    let rows: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT to_char(date_trunc('hour', created_at), 'HH24:00'), status, count(*)::float8 FROM calls
         WHERE created_at > date_trunc('hour', now()) - interval '23 hours' GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    Ok(Chart::from_rows("Calls per hour by outcome (24 h)", hours, rows))
}

/// Runs finished and failed per minute over the last 30 minutes, one chart per kind that ran.
pub async fn jobs_per_minute(pool: &PgPool) -> Result<Vec<Chart>, sqlx::Error> {
    let minutes: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(m, 'HH24:MI') FROM generate_series(date_trunc('minute', now()) - interval '29 minutes',
                date_trunc('minute', now()), interval '1 minute') AS m ORDER BY m",
    )
    .fetch_all(pool)
    .await?;
    let rows: Vec<(String, String, String, f64)> = sqlx::query_as(
        "WITH since AS (SELECT date_trunc('minute', now()) - interval '29 minutes' AS t)
         SELECT job_type, to_char(date_trunc('minute', done_at), 'HH24:MI'), 'finished', count(*)::float8
         FROM apalis.jobs, since WHERE status = 'Done' AND done_at >= since.t GROUP BY 1, 2
         UNION ALL
         SELECT j.job_type, to_char(date_trunc('minute', e.at), 'HH24:MI'), 'failed', count(*)::float8
         FROM job_errors e JOIN apalis.jobs j ON j.id = e.job_id, since
         WHERE e.outcome IN ('retry', 'dead') AND e.at >= since.t GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let mut by_kind: BTreeMap<String, Vec<(String, String, f64)>> = BTreeMap::new();
    for (kind, minute, outcome, count) in rows {
        by_kind.entry(kind).or_default().push((minute, outcome, count));
    }
    Ok(by_kind
        .into_iter()
        .map(|(kind, rows)| Chart::from_rows(&format!("{kind}: runs per minute (30 min)"), minutes.clone(), rows))
        .collect())
}

/// How long calls took from the recording webhook to their lead, in buckets (last 24 hours).
pub async fn pipeline_latency(pool: &PgPool) -> Result<Chart, sqlx::Error> {
    const BUCKETS: [&str; 7] = ["<5s", "5-10s", "10-30s", "30-60s", "1-5m", "5-30m", ">30m"];
    let rows: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT CASE WHEN s < 5 THEN '<5s' WHEN s < 10 THEN '5-10s' WHEN s < 30 THEN '10-30s'
                     WHEN s < 60 THEN '30-60s' WHEN s < 300 THEN '1-5m' WHEN s < 1800 THEN '5-30m' ELSE '>30m' END,
                'calls', count(*)::float8
         FROM (SELECT extract(epoch FROM min(lc.linked_at) - min(r.created_at)) AS s
               FROM recordings r JOIN lead_calls lc ON lc.call_sid = r.call_sid
               WHERE r.created_at > now() - interval '24 hours' GROUP BY r.call_sid) AS latency
         GROUP BY 1",
    )
    .fetch_all(pool)
    .await?;
    Ok(Chart::from_rows(
        "After-call pipeline: recording webhook to lead (24 h)",
        BUCKETS.map(String::from).to_vec(),
        rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fold_into_stacks_and_unknown_categories_are_dropped() {
        let rows = vec![
            ("10:00".into(), "completed".into(), 3.0),
            ("11:00".into(), "failed".into(), 1.0),
            ("11:00".into(), "completed".into(), 2.0),
            ("09:00".into(), "completed".into(), 9.0),
        ];
        let chart = Chart::from_rows("t", vec!["10:00".into(), "11:00".into()], rows);
        assert_eq!(chart.series, vec![("completed".into(), vec![3.0, 2.0]), ("failed".into(), vec![0.0, 1.0])]);
        let svg = chart.svg(by_outcome).into_string();
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
    }
}
