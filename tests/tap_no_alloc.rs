//! The TAP reflector's hot loop allocates nothing per frame: the real loop with the
//! TapReflector over many frames (ARP, neighbour solicitations, echo v4/v6, LAN chatter
//! and garbage, so every path including the rate-limited warnings runs) under a counting
//! global allocator. Same pattern as tests/no_alloc.rs.
mod common;
use common::counting::{Counting, FakeIo, StopIo, ALLOCS, COUNTING};
use common::sum;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tunbox::reflect::tap::TapReflector;
use tunbox::reflect::{queue_loop, run_loop, LoopState, Shared, BUF_SIZE};
use tunbox::wire::cidr::Cidr;
use tunbox::wire::ethernet::MacAddr;
use tunbox::wire::tap::{DropReason, Reply, TapConfig};

#[global_allocator]
static A: Counting = Counting;

const US: [u8; 6] = [2, 0, 0, 0, 0, 0xbb];
const LAPTOP: [u8; 6] = [2, 0, 0, 0, 0, 0xaa];

fn eth(dst: [u8; 6], t: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&LAPTOP);
    f.extend_from_slice(&t.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The Internet checksum of a word sum: folded and complemented.
fn fold(s: u32) -> u16 {
    !common::fold(s)
}

/// Frames cycling through every path: 4 answered, 4 dropped.
fn frames() -> Vec<Vec<u8>> {
    // ARP request for 198.18.0.2.
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&LAPTOP);
    arp.extend_from_slice(&[198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2]);
    // ICMP echo request 198.18.0.1 -> 198.18.0.9, 1000 bytes of data.
    let mut ip4 = vec![0x45, 0, 0x04, 0x04, 0, 1, 0x40, 0, 64, 1, 0, 0];
    ip4.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 9]);
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.resize(1008, 0x61);
    let c = fold(sum(&icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ip4.extend_from_slice(&icmp);
    // Neighbour solicitation for 2001:2::9 (solicited-node multicast), with checksum.
    let src: [u8; 16] = "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let tgt: [u8; 16] = "2001:2::9".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let dst: [u8; 16] = "ff02::1:ff00:9"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&tgt);
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&LAPTOP);
    let c = fold(sum(&src) + sum(&dst) + 58 + ns.len() as u32 + sum(&ns));
    ns[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip6ns = vec![0x60, 0, 0, 0, 0, ns.len() as u8, 58, 255];
    ip6ns.extend_from_slice(&src);
    ip6ns.extend_from_slice(&dst);
    ip6ns.extend_from_slice(&ns);
    // IPv6 UDP to 2001:2::9, 1200 bytes.
    let mut ip6 = vec![0x60, 0, 0, 0, 0x04, 0xb0, 17, 64];
    ip6.extend_from_slice(&src);
    ip6.extend_from_slice(&tgt);
    ip6.resize(40 + 1200, 0x62);
    let mut outside = ip4.clone();
    outside[17] = 19; // destination 198.19.0.9: outside the ranges, inside the test range
    vec![
        eth([0xff; 6], 0x0806, &arp),
        eth(US, 0x0800, &ip4),
        eth([0x33, 0x33, 0xff, 0, 0, 9], 0x86dd, &ip6ns),
        eth(US, 0x86dd, &ip6),
        eth(US, 0x0800, &outside),        // not_in_range (quiet)
        eth(US, 0x0800, &ip4[..30]),      // truncated (warned, rate-limited)
        eth([0xff; 6], 0x88cc, &[0; 46]), // other ethertype
        vec![0x43; 60],                   // garbage: group source MAC
    ]
}

fn run(total: usize) -> (usize, usize, LoopState, TapReflector) {
    let frames = frames();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut st = LoopState::new("tapfake0", false);
    let mut refl = TapReflector::new(TapConfig {
        mac: MacAddr(US),
        ranges: ["198.18.0.0/24", "2001:2::/48"]
            .iter()
            .map(|s| s.parse::<Cidr>().unwrap())
            .collect(),
        icmp_echo: true,
    });
    let done = Cell::new(false);
    let mut io = FakeIo {
        pkts: &frames,
        given: 0,
        total,
        sent: 0,
        done: &done,
    };
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    run_loop(&mut io, &mut refl, &mut buf, &mut st, &|| done.get()).unwrap();
    COUNTING.with(|c| c.set(false));
    let after = ALLOCS.load(Ordering::Relaxed);
    (after - before, io.sent, st, refl)
}

#[test]
fn tap_hot_loop_allocates_nothing() {
    // Warm-up: the first warning may initialise stderr's machinery.
    let _ = run(1_000);
    let (small, sent_small, _, _) = run(1_000);
    let (big, sent_big, st, refl) = run(200_000);
    assert_eq!(sent_small, 500, "4 of every 8 frames answered");
    assert_eq!(sent_big, 100_000);
    assert_eq!(st.stats.rx_packets, 200_000);
    assert_eq!(st.stats.dropped(), 100_000);
    for r in [
        Reply::Arp,
        Reply::EchoReply,
        Reply::NeighborAdvert,
        Reply::Reflect,
    ] {
        assert_eq!(refl.reply_count(r), 25_000, "{r}");
    }
    for r in [
        DropReason::NotInRange,
        DropReason::Truncated,
        DropReason::UnknownEthertype,
        DropReason::SourceMac,
    ] {
        assert_eq!(refl.drop_count(r), 25_000, "{r}");
    }
    assert_eq!(
        big, small,
        "allocations must not grow with frames: {small} for 1k, {big} for 200k"
    );
    assert_eq!(big, 0, "the TAP loop allocates nothing at all: {big}");
}

/// The TAP reflector on a queue thread, as the daemon runs it: nothing allocated while
/// it hands its counters (the loop's and the TAP reply/ignore counters) over on request
/// again and again; the counters handed over add up.
#[test]
fn tap_queue_thread_allocates_nothing_while_reporting() {
    let shared = Shared::new(1);
    let total = 100_000;
    let (paused, go) = (AtomicUsize::new(0), AtomicBool::new(false));
    let (allocs, mid) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let frames = frames();
            let mut buf = vec![0u8; BUF_SIZE];
            let mut st = LoopState::new("tapfake0", false);
            let mut refl = TapReflector::new(TapConfig {
                mac: MacAddr(US),
                ranges: ["198.18.0.0/24", "2001:2::/48"]
                    .iter()
                    .map(|s| s.parse::<Cidr>().unwrap())
                    .collect(),
                icmp_echo: true,
            });
            let done = Cell::new(false);
            let mut io = StopIo {
                inner: FakeIo {
                    pkts: &frames,
                    given: 0,
                    total,
                    sent: 0,
                    done: &done,
                },
                shared: &shared,
                paused: &paused,
                go: &go,
            };
            let before = ALLOCS.load(Ordering::Relaxed);
            COUNTING.with(|c| c.set(true));
            queue_loop(&mut io, &mut refl, &mut buf, &mut st, &shared, 0).unwrap();
            COUNTING.with(|c| c.set(false));
            ALLOCS.load(Ordering::Relaxed) - before
        });
        // half-way: ask for the counters as `tunbox status` does, then let it go on
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while paused.load(Ordering::Relaxed) < 1 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let g = shared.request_report();
        go.store(true, Ordering::Relaxed);
        while !shared.answered(g) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let mid = shared.total();
        (h.join().unwrap(), mid)
    });
    // one consistent snapshot, just after the pause (or at the end, if the thread ended
    // before the slot was read): every frame read is answered or ignored, and the loop's
    // drops are the TAP reflector's ignored frames
    assert!(mid.rx_packets > total as u64 / 2, "{mid:?}");
    let replies: u64 = mid.tap.replies.iter().sum();
    let ignored: u64 = mid.tap.drops.iter().sum();
    assert_eq!(replies + ignored, mid.rx_packets, "{mid:?}");
    assert_eq!(ignored, mid.dropped(), "{mid:?}");
    assert_eq!(allocs, 0, "the TAP queue loop allocates nothing: {allocs}");
    let t = shared.total();
    assert_eq!(t.rx_packets, total as u64);
    assert_eq!(t.tap.replies[Reply::Arp.index()], total as u64 / 8);
    assert_eq!(
        t.tap.drops[DropReason::NotInRange.index()],
        total as u64 / 8
    );
    assert_eq!(t.tap.replies.iter().sum::<u64>(), t.tx_packets);
}
