//! When to send: the pacing schedule of one run, and the RFC 2544 throughput search.
//! Pure: time comes in as nanoseconds on the caller's monotonic clock.

/// Probes due in a burst at most before the loop looks at replies again; a sender that
/// falls further behind than [`Pacer::LAG_LIMIT_NS`] is reported as not keeping up.
pub const MAX_BURST: u64 = 64;

use super::units::mul_div;

/// Probe `k` is due at `start + k / pps`. The loop sends every probe that is due, then
/// sleeps until the next one is (so a slow rate costs no CPU, and a late wake-up is
/// made good by a short burst instead of a lower rate). Integer arithmetic (f64 is a
/// software library on mips): the interval is kept in 1/65536 ns, so the schedule
/// drifts by less than 16 us over 10^9 probes.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start: u64,
    /// thousandths of packets per second
    mpps: u64,
    /// nanoseconds between probes, times 65536
    interval_q16: u64,
    /// send no more than this many
    count: u64,
    /// stop sending at this time
    end: u64,
}

impl Pacer {
    /// How late the sender may fall behind its schedule before the result says the asked
    /// rate was not reached.
    pub const LAG_LIMIT_NS: u64 = 100_000_000;

    /// `mpps`: thousandths of packets per second.
    pub fn new(start: u64, mpps: u64, count: Option<u64>, duration_ns: Option<u64>) -> Pacer {
        let mpps = mpps.max(1);
        Pacer {
            start,
            mpps,
            interval_q16: (1_000_000_000_000u64 << 16) / mpps,
            count: count.unwrap_or(u64::MAX),
            end: duration_ns.map_or(u64::MAX, |d| start.saturating_add(d)),
        }
    }

    /// When probe `k` is due.
    pub fn due_at(&self, k: u64) -> u64 {
        let whole = k.saturating_mul(self.interval_q16 >> 16);
        let frac = k
            .saturating_mul(self.interval_q16 & 0xffff)
            .div_ceil(1 << 16);
        self.start.saturating_add(whole).saturating_add(frac)
    }

    /// How many probes should have been sent by `now` (the first one at the start).
    pub fn due(&self, now: u64) -> u64 {
        let t = now.min(self.end.saturating_sub(1));
        if t < self.start {
            return 0;
        }
        let mut n = mul_div(t - self.start, 1 << 16, self.interval_q16) + 1;
        // the estimate may be off by one from due_at's reckoning
        while n > 0 && self.due_at(n - 1) > t {
            n -= 1;
        }
        while self.due_at(n) <= t && n < self.count {
            n += 1;
        }
        n.min(self.count)
    }

    /// Whether sending is over at `now` once `sent` probes are out.
    pub fn finished(&self, now: u64, sent: u64) -> bool {
        sent >= self.count || now >= self.end
    }

    /// The thousandths of packets per second asked for.
    pub fn mpps(&self) -> u64 {
        self.mpps
    }
}

/// RFC 2544 section 26.1 throughput: the highest rate at which the loss stays within the
/// allowed figure, found by binary search between 0 and `max`. The first trial runs at
/// `max`; the search ends when the step is below `max / steps` or after
/// [`Search::MAX_TRIALS`]. Rates in thousandths of packets per second.
#[derive(Clone, Debug)]
pub struct Search {
    max: u64,
    steps: u64,
    /// highest rate that passed
    lo: u64,
    /// lowest rate that failed
    hi: u64,
    trials: u32,
    /// rate of the trial in progress
    current: Option<u64>,
}

impl Search {
    pub const MAX_TRIALS: u32 = 20;

    pub fn new(max_mpps: u64, steps: u64) -> Search {
        Search {
            max: max_mpps,
            steps: steps.max(1),
            lo: 0,
            hi: max_mpps,
            trials: 0,
            current: None,
        }
    }

    /// The rate of the next trial, or None when the search is over.
    pub fn next_rate(&mut self) -> Option<u64> {
        let rate = if self.trials == 0 {
            self.max
        } else if self.lo >= self.max
            || self.trials >= Self::MAX_TRIALS
            || self.hi.saturating_sub(self.lo) <= self.max / self.steps
            || self.hi < super::units::MILLI
        {
            return None;
        } else {
            self.lo + (self.hi - self.lo) / 2
        };
        self.current = Some(rate);
        Some(rate)
    }

    /// The trial at the rate [`next_rate`](Self::next_rate) gave passed (loss within the limit,
    /// rate reached by the sender) or not.
    pub fn record(&mut self, passed: bool) {
        let Some(rate) = self.current.take() else {
            return;
        };
        self.trials += 1;
        if passed {
            self.lo = self.lo.max(rate);
        } else {
            self.hi = self.hi.min(rate);
        }
    }

    /// The throughput found: the highest rate that passed (0 if none did).
    pub fn result(&self) -> u64 {
        self.lo
    }

    pub fn trials(&self) -> u32 {
        self.trials
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn pacing_by_the_schedule() {
        let p = Pacer::new(5 * S, 1_000_000, None, Some(S));
        assert_eq!(p.due(0), 0);
        assert_eq!(p.due(5 * S), 1);
        assert_eq!(p.due(5 * S + 999_999), 1);
        assert_eq!(p.due(5 * S + 1_000_000), 2);
        assert_eq!(p.due_at(1), 5 * S + 1_000_000);
        // a second at 1000/s is 1000 probes, whatever the wake-ups
        assert_eq!(p.due(7 * S), 1000);
        assert!(p.finished(6 * S, 10));
        assert!(!p.finished(6 * S - 1, 10));
        // a count ends it first
        let p = Pacer::new(0, 10_000, Some(3), None);
        assert_eq!(p.due(100 * S), 3);
        assert!(p.finished(0, 3));
        // odd rates: 3 per second is due at 0, 1/3 s, 2/3 s
        let p = Pacer::new(0, 3_000, None, None);
        assert_eq!(p.due_at(1), 333_333_334);
        assert_eq!(p.due(333_333_333), 1);
        assert_eq!(p.due(333_333_334), 2);
        assert_eq!(p.due_at(3), S);
        // past 2^47 ns of elapsed time (the estimate's fallback)
        let p = Pacer::new(0, 7_000, None, None);
        let k = 1_000_000_000;
        assert_eq!(p.due(p.due_at(k)), k + 1);
        assert_eq!(p.due(p.due_at(k) - 1), k);
        for k in 0..10_000u64 {
            let t = p.due_at(k);
            assert_eq!(p.due(t), k + 1, "{k}");
            if t > 0 {
                assert_eq!(p.due(t - 1), k, "{k}");
            }
        }
    }

    /// A link that passes every rate up to `limit` (packets/s).
    fn search(max: u64, limit: u64, steps: u64) -> Search {
        let mut s = Search::new(max, steps);
        while let Some(r) = s.next_rate() {
            s.record(r <= limit);
        }
        s
    }

    #[test]
    fn binary_search_finds_the_limit() {
        let s = search(100_000_000, 37_000_000, 100);
        let found = s.result();
        assert!(
            found <= 37_000_000 && found > 37_000_000 - 1_000_000,
            "{found}"
        );
        assert!(s.trials() <= 9, "{}", s.trials());
        // the line passes at max: one trial
        let s = search(1_000_000, 5_000_000, 100);
        assert_eq!((s.result(), s.trials()), (1_000_000, 1));
        // nothing passes: 0 after a bounded number of trials
        let s = search(1_000_000, 0, 1000);
        assert_eq!(s.result(), 0);
        assert!(s.trials() <= Search::MAX_TRIALS);
    }

    #[test]
    fn record_without_next_is_ignored() {
        let mut s = Search::new(10_000, 10);
        s.record(true);
        assert_eq!(s.trials(), 0);
        assert_eq!(s.next_rate(), Some(10_000));
    }
}
