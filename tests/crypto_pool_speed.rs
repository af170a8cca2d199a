//! Throughput of the tunnel's crypto pool (`--threads`): batches of 46 packets of 1400
//! bytes (one UDP GRO/GSO batch of a TCP flow) sealed, then opened in place, by the pool
//! with 1, 2, ... threads, as the UDP path does it. A measurement, not a timed test:
//! ignored by default. Run it optimised:
//!
//!   cargo test --release --test crypto_pool_speed -- --ignored --nocapture
//!
//! MB/s counts each packet's bytes once (sealed and opened). On a box whose cores are
//! busy with other work the extra threads show less.
use std::time::{Duration, Instant};
use tunbox::sys::threads::online_cpus;
use tunbox::tunnel::noise::{
    loopback_pair, open_later, seal_later, DATA_HEADER_LEN, DATA_OVERHEAD,
};
use tunbox::tunnel_run::crypto_pool::CryptoPool;

const BATCH: usize = 46;
const SIZE: usize = 1400;

/// Seals and opens batches for about `secs` on `threads` threads; returns MB/s.
fn measure(threads: usize, secs: f64) -> f64 {
    let (cli, srv) = loopback_pair(7);
    let mut pool = CryptoPool::new(threads);
    assert_eq!(pool.threads(), threads);
    let pkt: Vec<u8> = (0..SIZE).map(|i| i as u8).collect();
    let mut buf = vec![0u8; BATCH * (SIZE + DATA_OVERHEAD)];
    let mut counter = 0u64;
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let mut packets = 0u64;
    while start.elapsed() < limit {
        for _ in 0..16 {
            for (k, b) in buf.chunks_mut(SIZE + DATA_OVERHEAD).enumerate() {
                let (_, job) = seal_later(&cli, 2, counter + k as u64, &pkt, b).unwrap();
                pool.push(job);
            }
            pool.run();
            pool.clear();
            for (k, b) in buf.chunks_mut(SIZE + DATA_OVERHEAD).enumerate() {
                pool.push(open_later(&srv, counter + k as u64, b).unwrap());
            }
            pool.run();
            for (k, b) in buf.chunks(SIZE + DATA_OVERHEAD).enumerate() {
                assert!(pool.opened(k), "packet {k} did not open");
                assert_eq!(&b[DATA_HEADER_LEN..DATA_HEADER_LEN + SIZE], &pkt[..]);
            }
            pool.clear();
            counter += BATCH as u64;
            packets += BATCH as u64;
        }
    }
    (packets * SIZE as u64) as f64 / start.elapsed().as_secs_f64() / 1e6
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn batches_sealed_and_opened_on_more_threads() {
    let cpus = online_cpus();
    println!("{cpus} online CPUs; batches of {BATCH} x {SIZE} B, seal + open");
    let mut last = 0.0f64;
    for threads in 1..=cpus.clamp(2, 4) {
        let mbs = measure(threads, 3.0);
        let gain = if threads == 1 {
            String::new()
        } else {
            format!(" ({:.2}x one thread)", mbs / last.max(1e-9))
        };
        println!(
            "{threads} thread(s): {mbs:.0} MB/s ({:.0} Mb/s){gain}",
            mbs * 8.0
        );
        if threads == 1 {
            last = mbs;
        }
    }
}

/// Every packet sealed and opened right, also on more threads than CPUs (not ignored).
#[test]
fn batches_come_back_whole() {
    for threads in [1, 2, 5] {
        assert!(measure(threads, 0.05) > 0.0);
    }
}
