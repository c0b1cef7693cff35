//! When an order is due again for a consumer: exponential backoff from the
//! `backoff` crate, capped, and a maximum number of deliveries before parking.

use std::time::Duration;

use backoff::{backoff::Backoff, ExponentialBackoff};

use crate::config::RelaySettings;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    initial: Duration,
    multiplier: f64,
    max_interval: Duration,
    pub max_attempts: u32,
    /// When a copy in a queue that was never answered may be sent again
    /// (`relay.unanswered_after`): not a backoff, a safety net.
    pub unanswered_after: Duration,
}

impl RetryPolicy {
    pub fn from_settings(s: &RelaySettings) -> Self {
        Self {
            initial: s.backoff.initial,
            multiplier: s.backoff.multiplier,
            max_interval: s.backoff.max_interval,
            max_attempts: s.max_attempts,
            unanswered_after: s.unanswered_after,
        }
    }

    /// The wait after delivery number `attempt` (1-based) before the next one.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        // No jitter: the relay publishes to queues at its own pace, so there is
        // no thundering herd to spread, and operators can read the schedule.
        let mut b = ExponentialBackoff {
            current_interval: self.initial,
            initial_interval: self.initial,
            randomization_factor: 0.0,
            multiplier: self.multiplier,
            max_interval: self.max_interval,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut delay = self.initial;
        for _ in 0..attempt.clamp(1, 64) {
            delay = b.next_backoff().unwrap_or(self.max_interval);
        }
        delay.min(self.max_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_multiplier_up_to_the_cap() {
        let p = RetryPolicy {
            initial: Duration::from_secs(60),
            multiplier: 2.0,
            max_interval: Duration::from_secs(300),
            max_attempts: 5,
            unanswered_after: Duration::from_secs(3600),
        };
        let delays: Vec<u64> = (1..=5).map(|a| p.delay_after(a).as_secs()).collect();
        assert_eq!(delays, vec![60, 120, 240, 300, 300]);
    }
}
