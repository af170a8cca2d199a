//! Rate limits for log lines (policy, not I/O): how many lines about dropped packets,
//! failed writes and per-packet `--verbose` output a burst may produce, and how many
//! were held back, so the next allowed line can say so.
use std::time::Instant;

/// A token bucket for log lines: `burst` lines at once, then `per_sec` a second.
/// Counts what it suppressed so the next allowed line can say so.
#[derive(Debug)]
pub struct RateLimit {
    tokens: u32,
    burst: u32,
    per_sec: u32,
    last: Option<Instant>,
    suppressed: u32,
}

impl RateLimit {
    pub const fn new(burst: u32, per_sec: u32) -> RateLimit {
        RateLimit {
            tokens: burst,
            burst,
            per_sec,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged now. Refills whole tokens by elapsed time.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            None => self.last = Some(now),
            Some(last) => {
                let ms = crate::clock::millis(now.saturating_duration_since(last));
                let add = ms.saturating_mul(u64::from(self.per_sec)) / 1000;
                if add > 0 {
                    self.tokens = (u64::from(self.tokens).saturating_add(add))
                        .min(u64::from(self.burst)) as u32;
                    self.last = Some(now);
                }
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }

    /// How many lines were suppressed since the last call; resets the count.
    pub fn take_suppressed(&mut self) -> u32 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rate_limit_bursts_then_refills() {
        let t0 = Instant::now();
        let mut rl = RateLimit::new(3, 10);
        assert!(rl.allow(t0));
        assert!(rl.allow(t0));
        assert!(rl.allow(t0));
        assert!(!rl.allow(t0));
        assert!(!rl.allow(t0 + Duration::from_millis(50)));
        assert_eq!(rl.take_suppressed(), 2);
        // 10/s: after 100 ms one more line.
        assert!(rl.allow(t0 + Duration::from_millis(100)));
        assert!(!rl.allow(t0 + Duration::from_millis(120)));
        // a long pause refills only up to the burst
        let later = t0 + Duration::from_secs(60);
        assert!(rl.allow(later) && rl.allow(later) && rl.allow(later));
        assert!(!rl.allow(later));
    }
}
