//! The figures of one run, updated per probe without allocating: loss, duplicates,
//! reordering (RFC 4737), round-trip times in a fixed log-linear histogram, jitter.
//!
//! - Reordered (RFC 4737 section 3.3, "Type-P-Reordered"): a packet whose sequence
//!   number is below NextExp, the highest sequence number received so far plus one.
//!   Duplicates are not counted as reordered.
//! - Duplicates: a sequence number seen again. Tracked in a ring bitmap of the last
//!   [`WINDOW`] sequence numbers; a packet older than that is counted as reordered and
//!   `too_old` (a duplicate of it cannot be told).
//! - Jitter: the RFC 3550 (section 6.4.1) interarrival jitter, J += (|D| - J) / 16,
//!   where D is the difference between the round-trip times of two probes received one
//!   after the other; kept in integer form (A.8), in nanoseconds.
//! - PDV: the RFC 5481 packet delay variation, the 99th percentile round trip minus the
//!   minimum (section 4.2, "PDV" with the minimum as reference).
//! - RTT percentiles from a histogram with 64 linear steps per power of two: a value is
//!   reported within 1/128 (0.8 %) of the true one; min, max and mean are exact.
use super::units::Pct;

/// Sequence numbers remembered for duplicate detection.
pub const WINDOW: u32 = 1 << 16;
const WORDS: usize = (WINDOW / 64) as usize;

/// Linear steps per power of two in the RTT histogram.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Round trips longer than this (about 18 minutes) are counted in the last bucket.
const MAX_NS: u64 = (1 << 40) - 1;
const BUCKETS: usize = bucket(MAX_NS) + 1;

/// Histogram bucket of `v` nanoseconds: exact below 64, then 64 steps per power of two.
const fn bucket(v: u64) -> usize {
    if v < SUB {
        v as usize
    } else {
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        (shift as u64 * SUB + (v >> shift)) as usize
    }
}

/// The middle of bucket `i` (its exact value below 64).
fn bucket_mid(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let low = (i - shift * SUB) << shift;
    low + (1 << shift) / 2
}

/// What one reply was, for the caller's own bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// in order, first copy
    InOrder,
    /// first copy, below NextExp
    Reordered,
    /// a copy of one already received
    Duplicate,
}

/// The counters and distributions of one run.
pub struct Stats {
    /// probes handed to the kernel
    pub sent: u64,
    /// distinct probes that came back
    pub received: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// arrived more than [`WINDOW`] sequence numbers late (also in `reordered`)
    pub too_old: u64,
    /// datagrams that were not probes of this run (another run's, too short, foreign)
    pub stray: u64,
    /// bytes of distinct probes received
    pub bytes_received: u64,
    /// highest sequence number received + 1 (RFC 4737 NextExp); 0 before any
    next_exp: u64,
    seen: Box<[u64; WORDS]>,
    hist: Box<[u32; BUCKETS]>,
    rtt_count: u64,
    rtt_sum: u64,
    rtt_min: u64,
    rtt_max: u64,
    last_rtt: Option<u64>,
    /// RFC 3550 jitter times 16 (A.8's integer form)
    jitter16: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Allocates the bitmap and histogram (about 25 KB) once, before a run.
    pub fn new() -> Stats {
        Stats {
            sent: 0,
            received: 0,
            duplicates: 0,
            reordered: 0,
            too_old: 0,
            stray: 0,
            bytes_received: 0,
            next_exp: 0,
            seen: Box::new([0; WORDS]),
            hist: Box::new([0; BUCKETS]),
            rtt_count: 0,
            rtt_sum: 0,
            rtt_min: u64::MAX,
            rtt_max: 0,
            last_rtt: None,
            jitter16: 0,
        }
    }

    /// Clears every figure, keeping the buffers (for the next trial).
    pub fn reset(&mut self) {
        self.seen.fill(0);
        self.hist.fill(0);
        self.sent = 0;
        self.received = 0;
        self.duplicates = 0;
        self.reordered = 0;
        self.too_old = 0;
        self.stray = 0;
        self.bytes_received = 0;
        self.next_exp = 0;
        self.rtt_count = 0;
        self.rtt_sum = 0;
        self.rtt_min = u64::MAX;
        self.rtt_max = 0;
        self.last_rtt = None;
        self.jitter16 = 0;
    }

    fn bit(&self, seq: u64) -> bool {
        let i = (seq % u64::from(WINDOW)) as usize;
        self.seen[i / 64] & (1 << (i % 64)) != 0
    }

    fn set_bit(&mut self, seq: u64) {
        let i = (seq % u64::from(WINDOW)) as usize;
        self.seen[i / 64] |= 1 << (i % 64);
    }

    fn clear_bit(&mut self, seq: u64) {
        let i = (seq % u64::from(WINDOW)) as usize;
        self.seen[i / 64] &= !(1 << (i % 64));
    }

    /// A probe with sequence number `seq` and round-trip time `rtt_ns` came back,
    /// `bytes` long.
    pub fn on_reply(&mut self, seq: u64, rtt_ns: u64, bytes: usize) -> Arrival {
        let arrival = if seq >= self.next_exp {
            // the bits from the old NextExp up to seq belong to new sequence numbers
            let gap = seq - self.next_exp;
            if gap >= u64::from(WINDOW) {
                self.seen.fill(0);
            } else {
                for s in self.next_exp..seq {
                    self.clear_bit(s);
                }
            }
            self.set_bit(seq);
            self.next_exp = seq + 1;
            Arrival::InOrder
        } else if self.next_exp - seq > u64::from(WINDOW) {
            self.too_old += 1;
            Arrival::Reordered
        } else if self.bit(seq) {
            Arrival::Duplicate
        } else {
            self.set_bit(seq);
            Arrival::Reordered
        };
        match arrival {
            Arrival::Duplicate => {
                self.duplicates += 1;
                return arrival;
            }
            Arrival::Reordered => self.reordered += 1,
            Arrival::InOrder => {}
        }
        self.received += 1;
        self.bytes_received += bytes as u64;
        self.add_rtt(rtt_ns);
        arrival
    }

    fn add_rtt(&mut self, rtt: u64) {
        let v = rtt.min(MAX_NS);
        self.hist[bucket(v)] += 1;
        self.rtt_count += 1;
        self.rtt_sum = self.rtt_sum.saturating_add(v);
        self.rtt_min = self.rtt_min.min(v);
        self.rtt_max = self.rtt_max.max(v);
        if let Some(last) = self.last_rtt {
            let d = last.abs_diff(v);
            // J += (|D| - J) / 16, with J kept times 16 (RFC 3550 A.8)
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.last_rtt = Some(v);
    }

    /// Probes sent that never came back (so far).
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    /// Lost probes in percent of those sent (rounded down to 0.0001 %).
    pub fn loss_pct(&self) -> Pct {
        Pct(super::units::mul_div(self.lost(), 1_000_000, self.sent) as u32)
    }

    /// The round-trip summary, None before the first reply.
    pub fn rtt(&self) -> Option<Rtt> {
        if self.rtt_count == 0 {
            return None;
        }
        let p50 = self.percentile(50);
        let p99 = self.percentile(99);
        Some(Rtt {
            min: self.rtt_min,
            avg: self.rtt_sum / self.rtt_count,
            p50,
            p90: self.percentile(90),
            p99,
            max: self.rtt_max,
            jitter: self.jitter16 >> 4,
            pdv: p99 - self.rtt_min,
        })
    }

    /// The nearest-rank percentile `p` of the round trips, from the histogram (middle of
    /// the bucket, kept within the exact min and max).
    fn percentile(&self, p: u64) -> u64 {
        // ceil(p * n / 100) without overflow: n = 100q + r
        let n = self.rtt_count;
        let rank = ((n / 100) * p + ((n % 100) * p).div_ceil(100)).clamp(1, n);
        let mut acc = 0u64;
        for (i, &n) in self.hist.iter().enumerate() {
            acc += u64::from(n);
            if acc >= rank {
                return bucket_mid(i).clamp(self.rtt_min, self.rtt_max);
            }
        }
        self.rtt_max
    }
}

/// Round-trip figures in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rtt {
    pub min: u64,
    pub avg: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// RFC 3550 interarrival jitter of the round trips
    pub jitter: u64,
    /// RFC 5481 PDV: p99 - min
    pub pdv: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_no_loss() {
        let mut s = Stats::new();
        s.sent = 100;
        for i in 0..100 {
            assert_eq!(s.on_reply(i, 1_000_000, 100), Arrival::InOrder);
        }
        assert_eq!(
            (s.received, s.lost(), s.duplicates, s.reordered),
            (100, 0, 0, 0)
        );
        let r = s.rtt().unwrap();
        assert_eq!(
            (r.min, r.avg, r.p50, r.p99, r.max),
            (1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000)
        );
        assert_eq!((r.jitter, r.pdv), (0, 0));
        assert_eq!(s.bytes_received, 10_000);
    }

    /// RFC 4737: 1 2 4 3 5 -> 3 is reordered (it is below NextExp 5); 4 is not.
    #[test]
    fn reordering_rfc4737() {
        let mut s = Stats::new();
        s.sent = 6;
        let order = [1, 2, 4, 3, 5, 0];
        let got: Vec<_> = order.iter().map(|&q| s.on_reply(q, 10, 1)).collect();
        use Arrival::*;
        assert_eq!(
            got,
            [InOrder, InOrder, InOrder, Reordered, InOrder, Reordered]
        );
        assert_eq!((s.reordered, s.received, s.lost()), (2, 6, 0));
        // a late duplicate is a duplicate, not reordered
        assert_eq!(s.on_reply(3, 10, 1), Duplicate);
        assert_eq!(s.on_reply(5, 10, 1), Duplicate);
        assert_eq!((s.duplicates, s.reordered, s.received), (2, 2, 6));
    }

    #[test]
    fn loss_and_window() {
        let mut s = Stats::new();
        s.sent = 200_000;
        // every 10th lost
        for i in (0..200_000u64).filter(|i| i % 10 != 0) {
            s.on_reply(i, 5, 1);
        }
        assert_eq!(s.lost(), 20_000);
        assert_eq!(s.loss_pct(), Pct(100_000));
        // 0 is far outside the window now: counted once, as reordered and too old
        assert_eq!(s.on_reply(0, 5, 1), Arrival::Reordered);
        assert_eq!((s.too_old, s.reordered), (1, 1));
        // inside the window a missing one is still new, a present one a duplicate
        assert_eq!(s.on_reply(199_990, 5, 1), Arrival::Reordered);
        assert_eq!(s.on_reply(199_991, 5, 1), Arrival::Duplicate);
        // a jump further than the window forgets everything behind it
        assert_eq!(s.on_reply(500_000, 5, 1), Arrival::InOrder);
        assert_eq!(s.on_reply(500_000 - 1, 5, 1), Arrival::Reordered);
        s.reset();
        assert_eq!((s.sent, s.received, s.reordered), (0, 0, 0));
        assert!(s.rtt().is_none());
        assert_eq!(s.on_reply(3, 5, 1), Arrival::InOrder);
    }

    #[test]
    fn percentiles_within_resolution() {
        let mut s = Stats::new();
        // 1..=10000 us, shuffled by a stride
        let n = 10_000u64;
        s.sent = n;
        for i in 0..n {
            let v = (i * 7919) % n + 1;
            s.on_reply(i, v * 1000, 1);
        }
        let r = s.rtt().unwrap();
        let near =
            |got: u64, want: u64| (got as f64 - want as f64).abs() / want as f64 <= 1.0 / 128.0;
        assert_eq!((r.min, r.max), (1_000, 10_000_000));
        assert_eq!(r.avg, 5_000_500);
        assert!(near(r.p50, 5_000_000), "{}", r.p50);
        assert!(near(r.p90, 9_000_000), "{}", r.p90);
        assert!(near(r.p99, 9_900_000), "{}", r.p99);
        assert_eq!(r.pdv, r.p99 - r.min);
        // exact below 64 ns
        for v in 0..128 {
            assert_eq!(bucket_mid(bucket(v)), v);
        }
        // buckets are ordered and cover every value
        let mut last = 0;
        for v in [1u64 << 20, 3 << 30, MAX_NS] {
            assert!(bucket(v) >= last && bucket(v) < BUCKETS);
            last = bucket(v);
        }
        assert_eq!(bucket(MAX_NS), BUCKETS - 1);
    }

    /// RFC 3550: with round trips alternating 1 ms and 3 ms, |D| is always 2 ms and J
    /// converges to it.
    #[test]
    fn jitter_rfc3550() {
        let mut s = Stats::new();
        s.sent = 1000;
        for i in 0..1000 {
            s.on_reply(i, if i % 2 == 0 { 1_000_000 } else { 3_000_000 }, 1);
        }
        let j = s.rtt().unwrap().jitter;
        assert!((1_990_000..=2_000_000).contains(&j), "{j}");
    }
}
