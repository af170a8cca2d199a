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

/// The limit on `--verbose` per-packet lines: 20 at once, then 10 a second, so a
/// flood cannot fill a router's log; says how many it held back (at the next line it
/// lets through, and at the end).
#[derive(Debug)]
pub struct VerboseLog {
    limit: RateLimit,
}

impl Default for VerboseLog {
    fn default() -> Self {
        Self::new()
    }
}

impl VerboseLog {
    pub const fn new() -> VerboseLog {
        VerboseLog {
            limit: RateLimit::new(20, 10),
        }
    }

    /// Whether a per-packet line about `dev` may be logged now. If lines were held
    /// back before this one, a line saying how many goes first.
    pub fn allow(&mut self, now: Instant, dev: &str) -> bool {
        let ok = self.limit.allow(now);
        if ok {
            self.report(dev);
        }
        ok
    }

    /// Logs how many lines were held back since the last report, if any (call when
    /// the loop ends).
    pub fn report(&mut self, dev: &str) {
        let n = self.limit.take_suppressed();
        if n > 0 {
            log::info!("{dev}: --verbose: {n} per-packet lines suppressed (rate limit)");
        }
    }

    /// Lines held back and not yet reported.
    pub fn pending(&self) -> u32 {
        self.limit.suppressed
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

    #[test]
    fn verbose_log_counts_what_it_held_back() {
        let t0 = Instant::now();
        let mut v = VerboseLog::new();
        for _ in 0..20 {
            assert!(v.allow(t0, "tun0"));
        }
        for _ in 0..7 {
            assert!(!v.allow(t0, "tun0"));
        }
        assert_eq!(v.pending(), 7);
        // the next allowed line reports (and resets) the count first
        assert!(v.allow(t0 + Duration::from_millis(100), "tun0"));
        assert_eq!(v.pending(), 0);
        assert!(!v.allow(t0 + Duration::from_millis(110), "tun0"));
        v.report("tun0");
        assert_eq!(v.pending(), 0);
    }
}
