//! What a junk handshake initiation costs the server: not a timed assertion, a
//! measurement printed in ns/op. Run it optimised:
//! `cargo test --release --test handshake_cost -- --ignored --nocapture`.
use std::time::Instant;
use tunbox::tunnel::noise;
use tunbox::tunnel::{Key, Output, Role, Tunnel, TunnelConfig};

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Junk of the initiation type and length (what anyone can send without the key).
fn junk(n: usize) -> Vec<Vec<u8>> {
    let mut x = 0x1234_5678_9abc_def1u64;
    (0..n)
        .map(|_| {
            let mut m: Vec<u8> = (0..noise::INIT_LEN)
                .map(|_| xorshift(&mut x) as u8)
                .collect();
            m[..4].copy_from_slice(&[noise::TYPE_INIT, 0, 0, 0]);
            m
        })
        .collect()
}

fn per_op(label: &str, msgs: &[Vec<u8>], srv: &mut Tunnel) {
    let mut out = vec![0u8; 2048];
    let now = Instant::now();
    let t = Instant::now();
    let mut answered = 0;
    for (i, m) in msgs.iter().enumerate() {
        let src = Some(std::net::IpAddr::from([198, 18, (i >> 8) as u8, i as u8]));
        if let Output::ToNetwork(_) = srv.decapsulate_from(m, &mut out, now, src) {
            answered += 1;
        }
    }
    let ns = t.elapsed().as_nanos() / msgs.len() as u128;
    println!(
        "{label}: {ns} ns/op over {} messages ({answered} answered)",
        msgs.len()
    );
    assert_eq!(answered, 0, "junk must never be answered");
}

#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn junk_initiation_cost() {
    let key = Key::from_bytes([7; 32]);
    let mut srv = Tunnel::new(TunnelConfig::new(Role::Server, false), key, Instant::now());
    let msgs = junk(200_000);
    per_op(
        "junk INIT (random bytes, right type and length)",
        &msgs,
        &mut srv,
    );
    let c = srv.counters();
    println!(
        "drops: {}",
        tunbox::tunnel::DropReason::ALL
            .iter()
            .filter(|r| c.dropped(**r) > 0)
            .map(|r| format!("{} {}", r.name(), c.dropped(*r)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The full verification a valid-looking initiation still costs (within the budget):
/// `Responder::read` of an authentic INIT, with the PSK part of the state precomputed.
#[test]
#[ignore = "measurement; run with --release -- --ignored --nocapture"]
fn full_verification_cost() {
    let hk = noise::HandshakeKey::new(Key::from_bytes([7; 32]));
    let mut init = [0u8; 256];
    let (_ini, n) = noise::Initiator::start(&hk, 1, noise::MODE_TUN, 1, &mut init).unwrap();
    let rounds = 50_000u32;
    let t = Instant::now();
    for _ in 0..rounds {
        let r = noise::Responder::read(&hk, noise::MODE_TUN, std::hint::black_box(&init[..n]));
        assert!(r.is_ok());
    }
    let ns = t.elapsed().as_nanos() / u128::from(rounds);
    println!("full verification of an INIT (mac1 + Noise message 1): {ns} ns/op");
}
