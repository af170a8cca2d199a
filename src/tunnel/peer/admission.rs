//! Server: which initiations are worth work. Rate buckets (per source, verification
//! budget, answer budget), the ring of recently verified mac1 values, and the rules on
//! the client's timestamp (high-water mark, clock resets). No clock reads: `now` comes in.
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::tunnel::noise;

/// Server: fresh (non-replayed) initiations answered per second at most, over all
/// sources (each answer costs an X25519 key generation and DH).
pub(super) const HANDSHAKE_BURST: u32 = 20;
pub(super) const HANDSHAKE_REFILL: Duration = Duration::from_millis(50);
/// Server: the same per source address (a small fixed table, least recently used
/// entry reused; an evicted source starts with a full bucket again).
pub(super) const SOURCE_SLOTS: usize = 8;
pub(super) const SOURCE_BURST: u32 = 5;
pub(super) const SOURCE_REFILL: Duration = Duration::from_millis(250);
/// Server: full verifications of initiations (that passed the cheap mac1 check) per
/// second at most, over all sources: 100 a second after a burst of 50. A verification
/// is ~30 BLAKE2s compressions and an AEAD open (about 6 us on x86_64, 15-30 times
/// that on a MIPS router core), so this caps the CPU that initiations carrying a valid
/// mac1 (recorded ones, from someone who had the key) can take to a few percent of
/// a router. Junk without the key never gets this far.
pub(super) const VERIFY_BURST: u32 = 50;
pub(super) const VERIFY_REFILL: Duration = Duration::from_millis(10);
/// Server: mac1 values of the last initiations verified; an exact copy of one of them
/// (a replayed recording) is dropped without verifying it again.
pub(super) const RECENT_INITS: usize = 16;
/// Server: an INIT with an older timestamp never replaces a pending handshake younger
/// than this (matters only with a `timeout` shorter than this).
pub(super) const PENDING_GUARD: Duration = Duration::from_secs(5);
/// Server: after a clock reset, how far a client's timestamp may run ahead of the
/// server's own elapsed time (NTP slew, message delay) and still count as the same
/// clock (see [`ClockReset`]).
const CLOCK_SLACK_NANOS: u64 = 60_000_000_000;

/// A token bucket without allocation.
#[derive(Clone, Copy)]
pub(super) struct Bucket {
    tokens: u32,
    refill_at: Instant,
}

impl Bucket {
    pub(super) fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: burst,
            refill_at: now,
        }
    }

    fn refill(&mut self, burst: u32, every: Duration, now: Instant) {
        let elapsed = crate::clock::millis(now.saturating_duration_since(self.refill_at));
        let refills = elapsed / crate::clock::millis(every).max(1);
        if refills > 0 {
            let refills = u32::try_from(refills).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(refills).min(burst);
            self.refill_at = now;
        }
    }

    /// Refill, then take a token if there is one.
    pub(super) fn take(&mut self, burst: u32, every: Duration, now: Instant) -> bool {
        self.refill(burst, every, now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[derive(Clone, Copy)]
struct SourceSlot {
    addr: Option<IpAddr>,
    bucket: Bucket,
    used: Instant,
}

/// Server: an INIT with an older timestamp was accepted because the peer was gone (a
/// client without RTC rebooted and its clock went back). The high-water mark dropped
/// from `ceiling` to `base`, which makes recorded INITs with timestamps in
/// `(base, ceiling]` (from the client's previous run) look new again. Those are only
/// taken as new while they are plausible for the clock that restarted at `base` (at
/// most `base` + time elapsed since `at` + [`CLOCK_SLACK_NANOS`]); others are treated
/// like older timestamps (see `Tunnel::on_init`). Forgotten once that clock must have
/// passed `ceiling` or a newer timestamp was accepted.
#[derive(Clone, Copy)]
struct ClockReset {
    ceiling: u64,
    base: u64,
    at: Instant,
}

impl ClockReset {
    /// Where the restarted client clock should be now (no slack).
    fn expected(&self, now: Instant) -> u64 {
        let el = crate::clock::nanos(now.saturating_duration_since(self.at));
        self.base.saturating_add(el)
    }
}

/// Server: how an INIT's timestamp relates to what was accepted before.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum InitTs {
    /// Newer than the high-water mark (and plausible): the normal case.
    Fresh,
    /// Older (not identical) or implausible, but the peer is gone: accept and reset.
    AfterPeerGone,
    /// Identical, or older while the peer (or a young pending handshake) is alive.
    Replay,
}

/// The server's admission state for one key.
pub(super) struct Admission {
    /// Global bucket for answered initiations.
    global: Bucket,
    /// Global bucket for full verifications of initiations.
    verify: Bucket,
    /// mac1 of the last [`RECENT_INITS`] verified initiations (ring).
    recent_inits: [[u8; noise::MAC1_LEN]; RECENT_INITS],
    recent_next: usize,
    /// Per source address buckets (`None` source: the TCP/unknown slot).
    sources: [SourceSlot; SOURCE_SLOTS],
    /// Timestamp of the last answered INIT (high-water mark); see `Tunnel::on_init`
    /// for when older ones are still accepted.
    pub(super) last_init_ts: u64,
    /// When the last INIT was answered (creation time before the first).
    pub(super) last_init_at: Instant,
    /// The high-water mark was lowered recently (see [`ClockReset`]).
    clock_reset: Option<ClockReset>,
}

impl Admission {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            global: Bucket::full(HANDSHAKE_BURST, now),
            verify: Bucket::full(VERIFY_BURST, now),
            recent_inits: [[0; noise::MAC1_LEN]; RECENT_INITS],
            recent_next: 0,
            sources: [SourceSlot {
                addr: None,
                bucket: Bucket::full(SOURCE_BURST, now),
                used: now,
            }; SOURCE_SLOTS],
            last_init_ts: 0,
            last_init_at: now,
            clock_reset: None,
        }
    }

    /// An exact copy of a recently verified INIT.
    pub(super) fn seen_recently(&self, mac1: &[u8; noise::MAC1_LEN]) -> bool {
        self.recent_inits
            .iter()
            .any(|m| crate::tunnel::key::ct_eq(m, mac1))
    }

    pub(super) fn remember(&mut self, mac1: [u8; noise::MAC1_LEN]) {
        self.recent_inits[self.recent_next] = mac1;
        self.recent_next = (self.recent_next + 1) % RECENT_INITS;
    }

    /// Take a token from the bucket of `src` (slot found or least recently used reused).
    pub(super) fn source_allows(&mut self, src: Option<IpAddr>, now: Instant) -> bool {
        let i = match self.sources.iter().position(|s| s.addr == src) {
            Some(i) => i,
            None => {
                let mut lru = 0;
                for (i, s) in self.sources.iter().enumerate() {
                    if s.used < self.sources[lru].used {
                        lru = i;
                    }
                }
                self.sources[lru] = SourceSlot {
                    addr: src,
                    bucket: Bucket::full(SOURCE_BURST, now),
                    used: now,
                };
                lru
            }
        };
        let slot = &mut self.sources[i];
        slot.used = now;
        slot.bucket.take(SOURCE_BURST, SOURCE_REFILL, now)
    }

    /// A token of the verification budget.
    pub(super) fn verify_allows(&mut self, now: Instant) -> bool {
        self.verify.take(VERIFY_BURST, VERIFY_REFILL, now)
    }

    /// A token of the answer budget.
    pub(super) fn answer_allows(&mut self, now: Instant) -> bool {
        self.global.take(HANDSHAKE_BURST, HANDSHAKE_REFILL, now)
    }

    /// Classify an authenticated INIT's timestamp; `peer_gone` says whether the peer
    /// is gone (see `Tunnel::peer_gone`). See `Tunnel::on_init` for the rule.
    pub(super) fn check_init_ts(&mut self, ts: u64, peer_gone: bool, now: Instant) -> InitTs {
        if let Some(w) = self.clock_reset {
            if w.expected(now) > w.ceiling || self.last_init_ts >= w.ceiling {
                self.clock_reset = None;
            }
        }
        if ts == self.last_init_ts {
            return InitTs::Replay;
        }
        let implausible = self.clock_reset.is_some_and(|w| {
            ts <= w.ceiling && ts > w.expected(now).saturating_add(CLOCK_SLACK_NANOS)
        });
        if ts > self.last_init_ts && !implausible {
            InitTs::Fresh
        } else if peer_gone {
            InitTs::AfterPeerGone
        } else {
            InitTs::Replay
        }
    }

    /// An INIT with timestamp `ts` of kind `kind` was answered.
    pub(super) fn answered(&mut self, ts: u64, kind: InitTs, now: Instant) {
        if kind == InitTs::AfterPeerGone {
            let ceiling = self
                .clock_reset
                .map_or(self.last_init_ts, |w| w.ceiling.max(self.last_init_ts));
            self.clock_reset = (ceiling > ts).then_some(ClockReset {
                ceiling,
                base: ts,
                at: now,
            });
        }
        self.last_init_ts = ts;
        self.last_init_at = now;
    }
}
