//! The probe's loop allocates nothing per probe, sending or receiving: run it on a real
//! UDP socket that loops back to itself (127.0.0.1:P connected to 127.0.0.1:P, as a
//! reflector would send it back) under a counting global allocator. Needs no root.
mod common;
use common::counting::{Counting, ALLOCS, COUNTING};
use std::sync::atomic::Ordering;
use tunbox::probe::run::{run, RunSpec, RunState};
use tunbox::sys::probe::UdpIo;

#[global_allocator]
static A: Counting = Counting;

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `count` probes at 100k/s; returns (allocations during the loop, state).
fn probe(io: &mut UdpIo, count: u64, tag: u32) -> (usize, RunState) {
    let mut payload = vec![0u8; 100];
    let mut rbuf = vec![0u8; 65536];
    let mut st = RunState::new();
    let spec = RunSpec {
        mpps: 100_000_000,
        count: Some(count),
        duration_ns: Some(10_000_000_000),
        tag,
        linger_max_ns: 1_000_000_000,
    };
    let mut ticks = 0u32;
    let mut progress = |_: &RunState, _: u64| ticks += 1;
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    run(
        io,
        &spec,
        &mut payload,
        &mut rbuf,
        &mut st,
        &|| false,
        &mut progress,
    )
    .unwrap();
    COUNTING.with(|c| c.set(false));
    (ALLOCS.load(Ordering::Relaxed) - before, st)
}

#[test]
fn probe_loop_allocates_nothing() {
    let target = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut io = UdpIo::open(target).expect("open the loopback probe socket");
    let _ = probe(&mut io, 100, 1);
    let (small, st_small) = probe(&mut io, 1_000, 2);
    let (big, st) = probe(&mut io, 30_000, 3);
    assert_eq!(st_small.stats.sent, 1_000);
    assert_eq!(st.stats.sent, 30_000);
    // the loopback may drop under load, but most come back and are counted
    assert!(st.stats.received > 25_000, "{}", st.stats.received);
    assert!(st.stats.rtt().is_some());
    assert_eq!(
        big, small,
        "allocations must not grow with probes: {small} for 1k, {big} for 30k"
    );
    assert_eq!(big, 0, "the loop allocates nothing at all: {big}");
}
