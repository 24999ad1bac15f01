//! How fast one kind's jobs run and its claims come back, and so how many
//! jobs a worker starts within one claim's round trip: what the fetcher
//! claims ahead of its free slots. Jobs of milliseconds are claimed in
//! batches and the worker does not idle through a claim's commit; jobs of
//! seconds are claimed only for free slots, so none waits in a busy
//! worker's buffer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How many jobs of this kind run now in the worker, and how long runs took
/// lately; shared between the fetcher and the job service.
#[derive(Clone, Default)]
pub(crate) struct Running(Arc<RunningState>);

#[derive(Default)]
struct RunningState {
    count: AtomicUsize,
    /// Moving average of recent runs, in nanoseconds; 0 before the first.
    recent_run_nanos: AtomicU64,
}

impl Running {
    /// Counts one running job until the guard is dropped, and its time then.
    pub fn start(&self) -> RunningGuard {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        RunningGuard { state: self.0.clone(), started: Instant::now() }
    }

    pub fn count(&self) -> usize {
        self.0.count.load(Ordering::SeqCst)
    }

    /// How long runs took lately; `None` before one has ended.
    pub fn recent_run(&self) -> Option<Duration> {
        match self.0.recent_run_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

pub(crate) struct RunningGuard {
    state: Arc<RunningState>,
    started: Instant,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let took = (self.started.elapsed().as_nanos() as u64).max(1);
        // Racing updates may drop a sample; an average does not need them all.
        let recent = &self.state.recent_run_nanos;
        recent.store(moving_average(recent.load(Ordering::Relaxed), took), Ordering::Relaxed);
        self.state.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An exponential moving average weighing the newest sample 1/8; `0` is "none yet".
fn moving_average(average: u64, sample: u64) -> u64 {
    if average == 0 { sample } else { (average - average / 8 + sample / 8).max(1) }
}

/// The round trip of a kind's claims, as a moving average.
#[derive(Debug, Default)]
pub(crate) struct ClaimRoundTrip(u64);

impl ClaimRoundTrip {
    pub fn record(&mut self, took: Duration) {
        self.0 = moving_average(self.0, (took.as_nanos() as u64).max(1));
    }

    fn get(&self) -> Option<Duration> {
        (self.0 > 0).then(|| Duration::from_nanos(self.0))
    }
}

/// How many jobs a worker with `concurrency` slots starts within one claim
/// round trip at its recent run times; none until a run and a claim were timed.
pub(crate) fn starts_per_round_trip(concurrency: usize, run: Option<Duration>, claim: &ClaimRoundTrip) -> usize {
    let (Some(run), Some(claim)) = (run, claim.get()) else { return 0 };
    let starts = concurrency as u128 * claim.as_nanos() / run.as_nanos().max(1);
    usize::try_from(starts).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(millis: u64) -> ClaimRoundTrip {
        let mut claim = ClaimRoundTrip::default();
        claim.record(Duration::from_millis(millis));
        claim
    }

    #[test]
    fn jobs_of_seconds_start_none_within_a_round_trip() {
        assert_eq!(starts_per_round_trip(10, Some(Duration::from_secs(2)), &round_trip(2)), 0);
    }

    #[test]
    fn nothing_is_counted_before_a_run_and_a_claim_were_timed() {
        assert_eq!(starts_per_round_trip(10, None, &round_trip(2)), 0);
        assert_eq!(starts_per_round_trip(10, Some(Duration::from_micros(10)), &ClaimRoundTrip::default()), 0);
    }

    #[test]
    fn jobs_of_milliseconds_start_by_the_slot_within_a_round_trip() {
        assert_eq!(starts_per_round_trip(10, Some(Duration::from_millis(1)), &round_trip(2)), 20);
        assert_eq!(starts_per_round_trip(10, Some(Duration::from_micros(10)), &round_trip(2)), 2_000);
    }

    #[test]
    fn the_average_follows_the_samples() {
        let mut average = 0;
        for _ in 0..64 {
            average = moving_average(average, 8_000);
        }
        assert_eq!(average, 8_000);
        assert!(moving_average(8_000, 800_000) > 8_000);
    }
}
