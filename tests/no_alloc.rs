//! The reflector's hot loop allocates nothing per packet: run it over many packets
//! under a counting global allocator and check the count does not move.
mod common;
use common::counting::{Counting, FakeIo, StopIo, ALLOCS, COUNTING};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tunbox::reflect::{queue_loop, run_loop, LoopState, Shared, TunReflector, BUF_SIZE};

#[global_allocator]
static A: Counting = Counting;

fn packets() -> Vec<Vec<u8>> {
    let mut v4 = vec![0u8; 1400];
    v4[0] = 0x45;
    v4[2..4].copy_from_slice(&1400u16.to_be_bytes());
    v4[12..16].copy_from_slice(&[198, 18, 0, 1]);
    v4[16..20].copy_from_slice(&[198, 18, 0, 41]);
    let mut v6 = vec![0u8; 1280];
    v6[0] = 0x60;
    v6[4..6].copy_from_slice(&1240u16.to_be_bytes());
    v6[8] = 0x20;
    v6[9] = 0x01;
    v6[23] = 1;
    v6[24] = 0x20;
    v6[25] = 0x01;
    v6[39] = 0x41;
    let mut mcast = v4.clone();
    mcast[16] = 224;
    vec![v4, v6, vec![0x45, 0, 0], mcast, vec![0x75; 60]]
}

/// Runs the real loop over `total` packets; returns (allocations during the loop,
/// packets sent, the loop's state).
fn run(total: usize) -> (usize, usize, LoopState) {
    let pkts = packets();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut st = LoopState::new("fake0", false);
    let done = Cell::new(false);
    let mut io = FakeIo {
        pkts: &pkts,
        given: 0,
        total,
        sent: 0,
        done: &done,
    };
    // With a loop guard of the device's own prefixes (checked per packet, too).
    let mut refl = TunReflector {
        guard: tunbox::reflect::loop_guard::LoopGuard::new(&[
            ("198.18.0.1".parse().unwrap(), 24),
            ("2001:2::1".parse().unwrap(), 64),
        ]),
    };
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    run_loop(&mut io, &mut refl, &mut buf, &mut st, &|| done.get()).unwrap();
    COUNTING.with(|c| c.set(false));
    let after = ALLOCS.load(Ordering::Relaxed);
    (after - before, io.sent, st)
}

#[test]
fn hot_loop_allocates_nothing() {
    // warm-up: the first drop log line may initialise stderr's machinery
    let _ = run(1_000);
    let (small, sent_small, _) = run(1_000);
    let (big, sent_big, st) = run(200_000);
    assert_eq!(
        sent_small, 400,
        "v4 and v6 of every 5 packets are reflected"
    );
    assert_eq!(sent_big, 80_000);
    assert_eq!(st.stats.rx_packets, 200_000);
    assert_eq!(st.stats.dropped(), 120_000);
    assert_eq!(
        big, small,
        "allocations must not grow with packets: {small} for 1k, {big} for 200k"
    );
    assert_eq!(big, 0, "the loop allocates nothing at all: {big}");
}

/// A 60000-byte IPv4 TCP super-packet behind a virtio_net_hdr (TSO, partial checksum),
/// and an ordinary packet behind a zero header.
fn offload_packets() -> Vec<Vec<u8>> {
    let len = 60_000usize;
    let mut sup = vec![0u8; 10 + len];
    sup[0] = 1; // NEEDS_CSUM
    sup[1] = 1; // GSO_TCPV4
    sup[2..4].copy_from_slice(&40u16.to_ne_bytes());
    sup[4..6].copy_from_slice(&1360u16.to_ne_bytes());
    sup[6..8].copy_from_slice(&20u16.to_ne_bytes());
    sup[8..10].copy_from_slice(&16u16.to_ne_bytes());
    let p = &mut sup[10..];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[9] = 6;
    p[12..16].copy_from_slice(&[198, 18, 0, 1]);
    p[16..20].copy_from_slice(&[198, 18, 0, 41]);
    let mut plain = vec![0u8; 10];
    plain.extend_from_slice(&packets()[0]);
    vec![sup, plain]
}

/// The offload path: a virtio header before every packet, super-packets of 60 KB.
#[test]
fn offload_loop_allocates_nothing_and_counts_super_packets() {
    let pkts = offload_packets();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut st = LoopState::new("fake0", false);
    st.hdr_len = 10;
    let done = Cell::new(false);
    let mut io = FakeIo {
        pkts: &pkts,
        given: 0,
        total: 20_000,
        sent: 0,
        done: &done,
    };
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    run_loop(
        &mut io,
        &mut TunReflector::default(),
        &mut buf,
        &mut st,
        &|| done.get(),
    )
    .unwrap();
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "the offload loop allocates nothing: {allocs}");
    assert_eq!(io.sent, 20_000);
    assert_eq!(st.stats.super_packets, 10_000);
    assert_eq!(st.stats.rx_bytes, 10_000 * (60_000 + 1400));
    assert_eq!(st.stats.dropped(), 0);
}

/// The multi-queue threads: each allocates nothing in its loop, also while it hands its
/// counters over again and again (as for `tunbox status` and SIGUSR1), and their
/// counters sum.
#[test]
fn queue_threads_allocate_nothing_and_counters_sum() {
    let shared = Shared::new(3);
    let gen = shared.request_report();
    let (paused, go) = (AtomicUsize::new(0), AtomicBool::new(false));
    let mut mid = None;
    let allocs: Vec<usize> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|idx| {
                let (shared, paused, go) = (&shared, &paused, &go);
                s.spawn(move || {
                    let pkts = offload_packets();
                    let mut buf = vec![0u8; BUF_SIZE];
                    let mut st = LoopState::new("fake0", false);
                    st.hdr_len = 10;
                    let done = Cell::new(false);
                    let mut io = StopIo {
                        inner: FakeIo {
                            pkts: &pkts,
                            given: 0,
                            total: 5_000,
                            sent: 0,
                            done: &done,
                        },
                        shared,
                        paused,
                        go,
                    };
                    let before = ALLOCS.load(Ordering::Relaxed);
                    COUNTING.with(|c| c.set(true));
                    queue_loop(
                        &mut io,
                        &mut TunReflector::default(),
                        &mut buf,
                        &mut st,
                        shared,
                        idx,
                    )
                    .unwrap();
                    COUNTING.with(|c| c.set(false));
                    ALLOCS.load(Ordering::Relaxed) - before
                })
            })
            .collect();
        // every thread half-way: ask for the counters as `tunbox status` does (no
        // interruption needed, these threads do not block), then let them go on
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while paused.load(Ordering::Relaxed) < 3 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let g = shared.request_report();
        go.store(true, Ordering::Relaxed);
        while !shared.answered(g) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        mid = Some(shared.total());
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // ALLOCS is shared: each thread's difference includes the others' (all zero)
    assert!(allocs.iter().all(|&a| a == 0), "{allocs:?}");
    assert!(shared.answered(gen), "every thread left its counters");
    // handed over on request: each thread's count as of just after its pause, or its
    // final count if it ended before the slots were read
    let (mid, t) = (mid.unwrap(), shared.total());
    assert!(
        mid.rx_packets >= 3 * 2_501 && mid.rx_packets <= t.rx_packets,
        "{mid:?}"
    );
    assert_eq!(mid.tx_packets, mid.rx_packets);
    // each thread stops at its own end or when another one stopped first
    assert!(t.rx_packets >= 5_000 && t.rx_packets <= 15_000, "{t:?}");
    assert_eq!(t.tx_packets, t.rx_packets);
    // every thread's packets alternate super-packet, plain packet
    let half = t.rx_packets / 2;
    assert!(
        t.super_packets >= half && t.super_packets <= half + 3,
        "{t:?}"
    );
}
