//! Retry policy per job kind and the backoff arithmetic, in one place so the
//! curve can be swapped without touching the queue.

use std::time::Duration;

use backoff::backoff::Backoff;

/// How a job kind is retried: exponential backoff with jitter, capped, up to
/// `max_attempts` runs in all, each bounded by `timeout`; waits the other side
/// asked for are not attempts, up to `max_throttled_wait`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
    /// 0.0 = none; 0.2 = each delay lands anywhere in +-20% of its nominal value.
    pub jitter: f64,
    pub timeout: Duration,
    /// How long a job may wait in all on the other side's `Retry-After` (a
    /// 429 or 503 naming a time) without those waits counting as attempts;
    /// past it, each such failure counts like any other.
    pub max_throttled_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_delay: Duration::from_secs(5),
            multiplier: 2.0,
            max_delay: Duration::from_secs(3600),
            jitter: 0.2,
            timeout: Duration::from_secs(300),
            max_throttled_wait: Duration::from_secs(3600),
        }
    }
}

/// The shortest delay we schedule: a failing job never spins, whatever
/// `Retry-After` the other side names.
pub const MIN_DELAY: Duration = Duration::from_secs(1);

impl RetryPolicy {
    /// The nominal delay (no jitter) after the `attempt`-th failed run (1-based).
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(63) as i32;
        let secs = self.initial_delay.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::from_secs_f64(secs.min(self.max_delay.as_secs_f64())).max(MIN_DELAY)
    }

    /// The delay before the next run after the `attempt`-th failure, jittered
    /// by the `backoff` crate around the nominal value, then clamped: never
    /// past `max_delay` (jitter above a capped delay would pass it), never
    /// under [`MIN_DELAY`].
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal_delay(attempt);
        let mut curve = backoff::ExponentialBackoff {
            current_interval: nominal,
            initial_interval: self.initial_delay,
            randomization_factor: self.jitter,
            multiplier: self.multiplier,
            max_interval: self.max_delay,
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        };
        curve.next_backoff().unwrap_or(nominal).min(self.max_delay).max(MIN_DELAY)
    }

    /// The delay to use when the other side named one (`Retry-After`), else ours.
    pub fn delay_honouring(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.map_or_else(|| self.delay(attempt), |after| after.max(MIN_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_secs(10),
            multiplier: 2.0,
            max_delay: Duration::from_secs(60),
            jitter: 0.25,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn nominal_delay_doubles_then_caps() {
        let secs: Vec<u64> = (1..=5).map(|n| policy().nominal_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 60, 60]);
    }

    #[test]
    fn jittered_delay_stays_within_the_factor() {
        for attempt in 1..=6 {
            let nominal = policy().nominal_delay(attempt).as_secs_f64();
            for _ in 0..200 {
                let d = policy().delay(attempt).as_secs_f64();
                assert!(d >= nominal * 0.75 - 1e-9 && d <= nominal * 1.25 + 1e-9, "{d} vs {nominal}");
            }
        }
    }

    #[test]
    fn jitter_never_pushes_a_capped_delay_past_the_cap() {
        for attempt in 3..=8 {
            for _ in 0..200 {
                let d = policy().delay(attempt);
                assert!(d <= Duration::from_secs(60), "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn the_one_second_floor_holds_under_the_cap() {
        let tiny = RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(200),
            ..policy()
        };
        assert!((1..=4).all(|attempt| tiny.delay(attempt) == MIN_DELAY));
    }

    #[test]
    fn retry_after_wins_over_the_curve() {
        let d = policy().delay_honouring(1, Some(Duration::from_secs(7)));
        assert_eq!(d, Duration::from_secs(7));
    }
}
