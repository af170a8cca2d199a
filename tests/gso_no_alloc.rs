//! TUN offload paths allocate nothing per packet: segmenting TSO/USO super-packets
//! (wire::gso::Segments) and coalescing the segments back (Coalescer::push/flush), run
//! over many reads under a counting global allocator. Same pattern as tests/no_alloc.rs.
mod common;
use common::counting::{Counting, ALLOCS, COUNTING};
use common::{fold, sum};
use std::sync::atomic::Ordering;
use tunbox::wire::gso::{Coalescer, Segments, MAX_SUPER};
use tunbox::wire::virtio::{self, HDR_LEN};

#[global_allocator]
static A: Counting = Counting;

/// A TUN read: virtio header + IPv4/IPv6 + TCP (timestamps) or UDP, `n` bytes of payload,
/// the transport checksum field holding the pseudo-header sum as the kernel leaves it.
fn read(v6: bool, udp: bool, n: usize, mss: u16) -> Vec<u8> {
    let l4_len = if udp { 8 } else { 32 } + n;
    let proto = if udp { 17 } else { 6 };
    let mut p = if v6 {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(l4_len as u16).to_be_bytes());
        p.extend_from_slice(&[proto, 64]);
        p.extend_from_slice(&"2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"2001:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p
    } else {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
        let c = !fold(sum(&p));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    };
    let l4 = p.len();
    if udp {
        p.extend_from_slice(&[0x13, 0x88, 0, 53]);
        p.extend_from_slice(&(l4_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
    } else {
        p.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 9, 0x80, 0x18]);
        p.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    }
    p.extend((0..n).map(|i| i as u8));
    let addrs = if v6 { &p[8..40] } else { &p[12..20] };
    let partial = fold(sum(addrs) + u32::from(proto) + l4_len as u32);
    let at = l4 + if udp { 6 } else { 16 };
    p[at..at + 2].copy_from_slice(&partial.to_be_bytes());
    let gso = match (udp, v6) {
        (true, _) => virtio::GSO_UDP_L4,
        (false, false) => virtio::GSO_TCPV4,
        (false, true) => virtio::GSO_TCPV6,
    };
    let hl = l4 + if udp { 8 } else { 32 };
    let csum_off = if udp { 6 } else { 16 };
    let mut r = virtio::header(
        virtio::F_NEEDS_CSUM,
        gso,
        hl as u16,
        mss,
        l4 as u16,
        csum_off,
    )
    .to_vec();
    r.extend_from_slice(&p);
    r
}

#[test]
fn segment_and_coalesce_allocate_nothing() {
    let reads = [
        read(false, false, 65535 - 52, 1348), // 49 segments
        read(true, false, 40000, 1328),       // 31 segments
        read(false, true, 12000, 1372),       // UDP: passed through the coalescer
        {
            // not GSO, NEEDS_CSUM: completed
            let mut r = read(false, false, 500, 1348);
            r[1] = 0;
            r
        },
        vec![0u8; HDR_LEN + 30], // not GSO, no flags: as is (garbage)
        vec![1u8; 5],            // short: an error
    ];
    let mut out = vec![0u8; MAX_SUPER];
    let mut c = Coalescer::new();
    let mut segments = 0u64;
    let mut written = 0u64;
    let mut gso_written = 0u64;
    let mut errors = 0u64;
    let mut sink = |h: &[u8; HDR_LEN], p: &[u8]| {
        written += 1;
        if h[1] != 0 {
            gso_written += 1;
        }
        assert!(p.len() <= MAX_SUPER);
    };
    let rounds = 300u64;
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|x| x.set(true));
    for _ in 0..rounds {
        for r in &reads {
            match Segments::new(r) {
                Ok(mut s) => {
                    while let Some(res) = s.next_into(&mut out) {
                        let n = res.unwrap();
                        segments += 1;
                        c.push(&out[..n], &mut sink);
                    }
                }
                Err(_) => errors += 1,
            }
        }
        c.flush(&mut sink);
    }
    COUNTING.with(|x| x.set(false));
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(allocs, 0, "allocations in the offload paths");
    assert_eq!(errors, rounds);
    // 49 + 31 TCP segments, 9 UDP, 1 completed, 1 garbage per round
    assert_eq!(segments, rounds * (49 + 31 + 9 + 1 + 1));
    assert_eq!(gso_written, rounds * 2, "one super-packet per TSO read");
    assert_eq!(written, rounds * (2 + 9 + 1 + 1));
    assert_eq!(c.coalesced(), rounds * (49 + 31));
}

/// Speed of the offload paths alone (no I/O, no cipher), for sizing. A measurement:
///   cargo test --release --test gso_no_alloc -- --ignored --nocapture
#[test]
#[ignore = "a measurement: cargo test --release --test gso_no_alloc -- --ignored --nocapture"]
fn segment_and_coalesce_throughput() {
    use std::time::Instant;
    for (name, r) in [
        (
            "TCPv4 64 KiB, MSS 1348",
            read(false, false, 65535 - 52, 1348),
        ),
        (
            "TCPv6 64 KiB, MSS 1328",
            read(true, false, 65535 - 72, 1328),
        ),
    ] {
        let mut out = vec![0u8; MAX_SUPER];
        let mut segs: Vec<Vec<u8>> = Vec::new();
        let mut s = Segments::new(&r).unwrap();
        while let Some(n) = s.next_into(&mut out) {
            segs.push(out[..n.unwrap()].to_vec());
        }
        let bytes = (r.len() - HDR_LEN) as f64;
        let rounds = 10_000;
        let t = Instant::now();
        for _ in 0..rounds {
            let mut s = Segments::new(std::hint::black_box(&r)).unwrap();
            while let Some(n) = s.next_into(&mut out) {
                std::hint::black_box(n.unwrap());
            }
        }
        let seg = bytes * f64::from(rounds) * 8.0 / t.elapsed().as_secs_f64() / 1e9;
        let mut c = Coalescer::new();
        let mut supers = 0u32;
        let t = Instant::now();
        for _ in 0..rounds {
            for p in &segs {
                c.push(std::hint::black_box(p), &mut |h, _| {
                    supers += u32::from(h[1] != 0)
                });
            }
            c.flush(&mut |h, _| supers += u32::from(h[1] != 0));
        }
        let coal = bytes * f64::from(rounds) * 8.0 / t.elapsed().as_secs_f64() / 1e9;
        assert_eq!(supers, rounds);
        println!(
            "{name}: segment {seg:.1} Gb/s, coalesce {coal:.1} Gb/s ({} segments per super-packet)",
            segs.len()
        );
    }
}
