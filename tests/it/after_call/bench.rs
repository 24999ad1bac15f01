//! Benchmark, not a timed test: the chain's own overhead (four job hops) from
//! the recording webhook's commit to the lead row, for 200 calls with instant
//! local fakes and no CRM, one at a time and in a burst. Prints p50 and p95;
//! asserts nothing about time.
//!
//!     cargo test --test it after_call::bench -- --ignored --nocapture

use std::time::Duration;

use sqlx::PgPool;
use switchboard_jobs::ports::Ports;

use super::{World, announce, count};
use crate::support::{migrate, wait_until};

const CALLS: usize = 200;

/// p50, p95 and max in milliseconds from each recording row to its lead link.
async fn percentiles(pool: &PgPool) -> (f64, f64, f64) {
    sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), max(ms)
         FROM (SELECT EXTRACT(EPOCH FROM lc.linked_at - r.created_at)::float8 * 1000 AS ms
               FROM lead_calls lc JOIN insights i ON i.id = lc.insight_id
               JOIN transcripts t ON t.id = i.transcript_id JOIN recordings r ON r.id = t.recording_id) AS hops",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// p50 of each hop in milliseconds: stored, transcribed, analyzed, linked.
async fn hop_medians(pool: &PgPool) -> (f64, f64, f64, f64) {
    sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM r.stored_at - r.created_at)::float8 * 1000),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM t.created_at - r.stored_at)::float8 * 1000),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM i.created_at - t.created_at)::float8 * 1000),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM lc.linked_at - i.created_at)::float8 * 1000)
         FROM lead_calls lc JOIN insights i ON i.id = lc.insight_id
         JOIN transcripts t ON t.id = i.transcript_id JOIN recordings r ON r.id = t.recording_id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_for_leads(pool: &PgPool, n: usize) {
    wait_until(Duration::from_secs(300), "leads", || async { count(pool, "lead_calls").await == n as i64 }).await;
}

#[sqlx::test(migrations = false)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn pipeline_overhead_one_call_at_a_time(pool: PgPool) {
    migrate(&pool).await;
    let world = World::build(&pool, None, |ports, _| Ports { crm: None, ..ports }).await;
    for i in 0..CALLS {
        announce(&pool, &world.fakes, &format!("CA{i:04}"), 95, &format!("+9198000{i:05}")).await;
        wait_for_leads(&pool, i + 1).await;
    }
    let (p50, p95, max) = percentiles(&pool).await;
    println!("after-call chain, {CALLS} calls one at a time: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms");
    let (stored, transcribed, analyzed, linked) = hop_medians(&pool).await;
    println!(
        "  hop medians: stored {stored:.1} ms, transcribed {transcribed:.1} ms, analyzed {analyzed:.1} ms, lead {linked:.1} ms"
    );
    world.workers.stop().await;
}

#[sqlx::test(migrations = false)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn pipeline_overhead_for_a_burst_of_calls(pool: PgPool) {
    migrate(&pool).await;
    let world = World::build(&pool, None, |ports, _| Ports { crm: None, ..ports }).await;
    for i in 0..CALLS {
        announce(&pool, &world.fakes, &format!("CA{i:04}"), 95, &format!("+9198000{i:05}")).await;
    }
    wait_for_leads(&pool, CALLS).await;
    let (p50, p95, max) = percentiles(&pool).await;
    println!("after-call chain, {CALLS} calls in a burst: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms");
    world.workers.stop().await;
}
