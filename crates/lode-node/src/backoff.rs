//! Reconnection delays: exponential backoff with full jitter.
//!
//! Attempt `n` (0-based) waits a uniformly random time in `[base·2ⁿ/2, base·2ⁿ]`,
//! capped at `max`, so that many nodes that lost the same gateway do not all
//! come back at the same instant.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The upper bound of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u64.checked_shl(self.attempt.min(32)).unwrap_or(u64::MAX);
        let nanos = (self.base.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.max)
    }

    /// The next delay, with jitter from `rng`, and advances the attempt counter.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceil = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let lo = ceil / 2;
        let span = (ceil - lo).as_nanos() as u64;
        lo + Duration::from_nanos(if span == 0 {
            0
        } else {
            rng.random_range(0..=span)
        })
    }

    /// Call after a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_is_capped_jittered_and_resets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut delays = vec![];
        for _ in 0..10 {
            delays.push(b.next_delay(&mut rng));
        }
        for (i, d) in delays.iter().enumerate() {
            let ceil = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(5));
            assert!(
                *d >= ceil / 2 && *d <= ceil,
                "attempt {i}: {d:?} not in [{:?}, {ceil:?}]",
                ceil / 2
            );
        }
        assert!(delays[9] <= Duration::from_secs(5));
        assert!(delays.windows(2).any(|w| w[0] != w[1]));
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_nodes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let firsts: std::collections::BTreeSet<_> = (0..50)
            .map(|_| {
                Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).next_delay(&mut rng)
            })
            .collect();
        assert!(
            firsts.len() > 40,
            "50 nodes should not reconnect in lockstep"
        );
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..200 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(30));
        }
    }
}
