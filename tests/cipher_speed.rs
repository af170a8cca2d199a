//! Throughput of the tunnel's per-packet cipher (ChaCha20-Poly1305) through our own
//! `noise::seal` and `noise::open`, as the data path calls them. A measurement, not a
//! timed test: ignored by default. Run it optimised:
//!
//!   cargo test --release --test cipher_speed -- --ignored --nocapture
//!
//! Which backends the build uses (chacha20 0.9, poly1305 0.8): on x86/x86_64 both pick
//! AVX2 (ChaCha20 also SSE2) at run time through cpufeatures, else software; on aarch64
//! ChaCha20 uses NEON only when built with `--cfg chacha20_force_neon` (targets.tsv
//! sets it), Poly1305 is software; on ARMv6/ARMv7 and MIPS both are software.
use std::hint::black_box;
use std::time::{Duration, Instant};
use tunbox::tunnel::key::Key;
use tunbox::tunnel::noise::{
    open, respond, seal, HandshakeKey, Initiator, Transport, DATA_OVERHEAD, MODE_TUN,
};

fn pair() -> (Transport, Transport) {
    let k = HandshakeKey::new(Key::from_bytes([7; 32]));
    let mut init = [0u8; 256];
    let (mut ini, n) = Initiator::start(&k, 1, MODE_TUN, 1, &mut init).unwrap();
    let mut resp = [0u8; 256];
    let (_, m, srv) = respond(&k, MODE_TUN, &init[..n], 2, &mut resp).unwrap();
    ini.finish(&resp[..m]).unwrap();
    (ini.into_transport().unwrap(), srv)
}

/// Seals and opens `size`-byte packets for about `secs`; returns (packets, elapsed).
fn measure(size: usize, secs: f64) -> (u64, Duration) {
    let (cli, srv) = pair();
    let pkt = vec![0x45u8; size];
    let mut wire = vec![0u8; size + DATA_OVERHEAD];
    let mut back = vec![0u8; size];
    let mut counter = 0u64;
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    loop {
        for _ in 0..256 {
            let w = seal(&cli, 2, counter, black_box(&pkt), &mut wire).unwrap();
            let n = open(&srv, counter, &wire[..w], &mut back).unwrap();
            assert_eq!(n, size);
            counter += 1;
        }
        if start.elapsed() >= limit {
            break;
        }
    }
    (counter, start.elapsed())
}

#[test]
fn seal_open_roundtrip_is_correct() {
    // The measured path works (and keeps working) before anything is timed.
    let (n, _) = measure(1400, 0.0);
    assert_eq!(n, 256);
}

#[test]
#[ignore = "a measurement: cargo test --release --test cipher_speed -- --ignored --nocapture"]
fn chacha20poly1305_throughput() {
    let arch = std::env::consts::ARCH;
    println!("ChaCha20-Poly1305 through noise::seal + noise::open ({arch}), one core:");
    for size in [1400usize, 64] {
        let _ = measure(size, 0.2); // warm-up
        let (pkts, t) = measure(size, 2.0);
        let s = t.as_secs_f64();
        // bytes of packet each way: seal and open both pass over them
        let mbytes = pkts as f64 * size as f64 / s / 1e6;
        println!(
            "  {size:>5}-byte packets: {:>9.0} seal+open/s, {mbytes:>7.1} MB/s = {:>7.0} Mb/s \
             of tunnel payload (each packet sealed and opened once)",
            pkts as f64 / s,
            mbytes * 8.0
        );
        assert!(pkts > 0);
    }
}
