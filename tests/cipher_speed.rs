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
use tunbox::tunnel::noise::{loopback_pair, open, seal, DATA_OVERHEAD};

/// Seals and opens `size`-byte packets for about `secs`; returns (packets, elapsed).
fn measure(size: usize, secs: f64) -> (u64, Duration) {
    let (cli, srv) = loopback_pair(7);
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

/// Known answers from an independent implementation (OpenSSL through Python's
/// `cryptography` 48): key byte i = 7i+3, plaintext byte i = 31i+7, nonce = 4 zero bytes +
/// the 64-bit counter little-endian (as noise::seal builds it), empty AAD. Each row: length,
/// counter, tag, first and last 8 bytes of the ciphertext. The tag covers the whole
/// ciphertext, so a wrong keystream anywhere changes it: lengths around the 64-byte block
/// and the 256-byte (4-block) SIMD batch catch a backend that the build flags switch on
/// (NEON on aarch64 with `--cfg chacha20_force_neon`), and this runs under qemu too.
#[test]
fn known_answers_from_openssl() {
    use tunbox_aead::Cipher;
    let rows: [(usize, u64, &str, &str, &str); 12] = [
        (0, 0x0, "42fdef89427a985200b987d0a0c48a3a", "", ""),
        (1, 0x1, "86e2fdba97f12af1e328e8502f972e3c", "6b", "6b"),
        (
            63,
            0x2,
            "15be5d8728a8ba15b293b5f3686f95dd",
            "dd5631fb6e82bb2a",
            "997745007b47478b",
        ),
        (
            64,
            0x3,
            "8c9634636b6085d7cfd413d3ac149b67",
            "38be1be5f47a3995",
            "8d684624255cbc4c",
        ),
        (
            65,
            0x4,
            "a8aa784e90b944041d882008e06ffabd",
            "fa478becf13e2483",
            "662a070dadfc640f",
        ),
        (
            255,
            0x5,
            "9f96cfe41a6f9f98378afd29b8a5a13b",
            "73ea9b2a9ba160c0",
            "c699255c959ad8ac",
        ),
        (
            256,
            0x6,
            "f19391cfe96c2294b100183c96dbd9fe",
            "6e456f689f188a22",
            "68cf27a654643f4d",
        ),
        (
            257,
            0x7,
            "e676e1f9c500f63f787fbd11fe283863",
            "7cc2c484f71499fe",
            "b280da94ada4895e",
        ),
        (
            511,
            0x8,
            "b3c3183c014053865b7b9e6b59168cbf",
            "bb89071f0786ffc8",
            "b97b8ea3a200cd25",
        ),
        (
            1400,
            0x9,
            "8681602231924c1e178e8735ce3b60e0",
            "54e86d0c6d26de6d",
            "38f6a143ba343a98",
        ),
        (
            1500,
            0xfffffffe,
            "b5140e2dfb427bed28bf3f9e44d55c43",
            "e00a5a08acada199",
            "3f52a20bf7171a35",
        ),
        (
            4097,
            0x10000000000,
            "b92a9976539d014cc0389c8f19d649d8",
            "34eb9ba0e1211355",
            "f55cb2ba102a2677",
        ),
    ];
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 3) as u8);
    let aead = Cipher::new(&key);
    for (n, counter, tag, head, tail) in rows {
        let pt: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&counter.to_le_bytes());
        let mut buf = pt.clone();
        let t = aead.seal(&nonce, &[], &mut buf).unwrap();
        assert_eq!(hex(&t), tag, "{n} bytes: tag");
        assert_eq!(hex(&buf[..n.min(8)]), head, "{n} bytes: first 8");
        assert_eq!(hex(&buf[n.saturating_sub(8)..]), tail, "{n} bytes: last 8");
        assert!(
            aead.open(&nonce, &[], &mut buf, &t),
            "{n} bytes: tag verifies"
        );
        assert_eq!(buf, pt, "{n} bytes: decrypts back");
    }
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
