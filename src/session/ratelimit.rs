//! Token bucket for the per-connection message rate.

use std::time::{Duration, Instant};

/// Allows `rate` messages per second with bursts of `2 * rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    last_reported: Option<Instant>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        RateLimiter {
            rate,
            burst: rate * 2.0,
            tokens: rate * 2.0,
            last: now,
            last_reported: None,
        }
    }

    /// Takes one token; false when the message must be refused.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether to send a `rate-limited` error now (at most one per second,
    /// so a flood does not turn into a flood of errors).
    pub fn should_report(&mut self, now: Instant) -> bool {
        match self.last_reported {
            Some(t) if now.saturating_duration_since(t) < Duration::from_secs(1) => false,
            _ => {
                self.last_reported = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, t0);
        let allowed = (0..100).filter(|_| r.allow(t0)).count();
        assert_eq!(allowed, 20);
        assert!(r.allow(t0 + Duration::from_millis(150)));
        assert!(r.should_report(t0));
        assert!(!r.should_report(t0 + Duration::from_millis(500)));
        assert!(r.should_report(t0 + Duration::from_millis(1500)));
    }
}
