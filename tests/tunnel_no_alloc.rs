//! The tunnel's loops allocate nothing per packet: a client and a server engine, UDP,
//! UDP with a three-peer hub as the server, and then TCP, run in a private network namespace (loopback only) with datagram
//! socket pairs standing in for the tun devices; a counting global allocator (counting
//! only the loop threads) must not move while thousands of packets go through both
//! ways. Needs root (unshare of the network namespace).
mod common;
use common::counting::{Counting, ALLOCS, COUNTING};
use common::need_root;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tunbox::tunnel::hub::{Hub, Peer, Prefix};
use tunbox::tunnel::{Counters, Key, Role, Tunnel, TunnelConfig};
use tunbox::tunnel_run::engine::Engine;
use tunbox::tunnel_run::net::Net;

#[global_allocator]
static A: Counting = Counting;

/// Runs one engine on its own (counting) thread until `stop`; returns its counters.
fn spawn_engine(
    role: Role,
    dev: UnixDatagram,
    net: Net,
    stop: Arc<AtomicBool>,
    multi: bool,
) -> std::thread::JoinHandle<Counters> {
    std::thread::spawn(move || {
        COUNTING.with(|c| c.set(true));
        let now = Instant::now();
        let cfg = TunnelConfig::new(role, false);
        let name = if role == Role::Server { "srv" } else { "cli" };
        let hub = if multi && role == Role::Server {
            // Three peers; the client has the key of the second, 198.18.1.0/24.
            let peers = (0..3u8)
                .map(|i| {
                    Peer::new(
                        format!("p{i}"),
                        Tunnel::new(cfg.clone(), Key::from_bytes([7 + i; 32]), now),
                        vec![Prefix::new([198, 18, i, 0].into(), 24).unwrap()],
                    )
                })
                .collect();
            Hub::with_peers(peers, now)
        } else {
            let key = if multi { [8; 32] } else { [7; 32] };
            Hub::single(Tunnel::new(cfg, Key::from_bytes(key), now))
        };
        let mut e = Engine::with_hub(dev, net, hub, name, false, false);
        e.run(&|| stop.load(Ordering::Relaxed)).expect("loop");
        COUNTING.with(|c| c.set(false));
        e.tunnel().counters().clone()
    })
}

fn packet(i: u32, buf: &mut [u8]) -> usize {
    let len = 64 + (i as usize * 97) % 1337;
    buf[..len].fill(i as u8);
    buf[0] = 0x45;
    buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&i.to_be_bytes());
    // Source and destination in 198.18.1.0/24 (the multi-peer case's route).
    buf[12..16].copy_from_slice(&[198, 18, 1, 5]);
    buf[16..20].copy_from_slice(&[198, 18, 1, 6]);
    len
}

/// Sends packet `i` in at `a` and expects it out at `b`.
fn through(a: &UnixDatagram, b: &UnixDatagram, i: u32, tx: &mut [u8], rx: &mut [u8]) -> bool {
    let n = packet(i, tx);
    a.send(&tx[..n]).unwrap();
    match b.recv(rx) {
        Ok(m) => {
            assert_eq!(&rx[..m], &tx[..n], "packet {i} changed on the way");
            true
        }
        Err(_) => false,
    }
}

/// Returns (allocations during the measured phase, packets in that phase).
fn case(tcp: bool, multi: bool) -> (usize, u32) {
    let (cli_dev, cli_host) = UnixDatagram::pair().unwrap();
    let (srv_dev, srv_host) = UnixDatagram::pair().unwrap();
    cli_dev.set_nonblocking(true).unwrap();
    srv_dev.set_nonblocking(true).unwrap();
    let (srv_net, cli_net) = if tcp {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        (
            Net::tcp_server(l).unwrap(),
            Net::tcp_client(addr, Instant::now()),
        )
    } else {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        (Net::udp(s, None).unwrap(), Net::udp(c, Some(addr)).unwrap())
    };
    let start = ALLOCS.load(Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let srv = spawn_engine(Role::Server, srv_dev, srv_net, stop.clone(), multi);
    let cli = spawn_engine(Role::Client, cli_dev, cli_net, stop.clone(), multi);

    let mut tx = vec![0u8; 2048];
    let mut rx = vec![0u8; 2048];
    // Wait for the session: until then packets are dropped (no session).
    cli_host
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    srv_host
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    let mut i = 0;
    while !through(&cli_host, &srv_host, i, &mut tx, &mut rx) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no session");
        i += 1;
    }
    while !through(&srv_host, &cli_host, i, &mut tx, &mut rx) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no way back");
        i += 1;
    }
    cli_host
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    srv_host
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Warm-up, then measure.
    for _ in 0..500 {
        i += 1;
        assert!(through(&cli_host, &srv_host, i, &mut tx, &mut rx));
        assert!(through(&srv_host, &cli_host, i, &mut tx, &mut rx));
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    // The counter does see the loop threads: setup and handshake allocate.
    assert!(
        before > start,
        "counting allocator saw nothing from the loop threads"
    );
    let rounds = 5000;
    for _ in 0..rounds {
        i += 1;
        assert!(
            through(&cli_host, &srv_host, i, &mut tx, &mut rx),
            "lost packet {i}"
        );
        assert!(
            through(&srv_host, &cli_host, i, &mut tx, &mut rx),
            "lost packet {i}"
        );
    }
    // Bursts: many packets queued at once go through the batched paths (a device burst
    // sealed into one sendmmsg / UDP GSO message, recvmmsg of many datagrams).
    let burst = 24;
    for _ in 0..100 {
        for (a, b) in [(&cli_host, &srv_host), (&srv_host, &cli_host)] {
            for k in 0..burst {
                let n = packet(i + k, &mut tx);
                a.send(&tx[..n]).unwrap();
            }
            for k in 0..burst {
                let n = packet(i + k, &mut tx);
                let m = b.recv(&mut rx).expect("a burst's packet lost");
                assert_eq!(&rx[..m], &tx[..n], "burst packet {} changed", i + k);
            }
            i += burst;
        }
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let sc = srv.join().unwrap();
    let cc = cli.join().unwrap();
    assert!(
        sc.rx_packets >= rounds as u64 && cc.rx_packets >= rounds as u64,
        "{sc} / {cc}"
    );
    (after - before, 2 * rounds + 200 * burst)
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tunnel_loops_allocate_nothing_per_packet() {
    if !need_root() {
        return;
    }
    std::thread::spawn(|| {
        // A private network namespace for this thread and the loops it starts.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
        let nl = tunbox::sys::netlink::Rtnl::new().unwrap();
        nl.set_up("lo", true).unwrap();
        // Bursts of packets wait in the stand-in devices' queues (this namespace's own
        // setting; the default of 10 would drop them).
        std::fs::write("/proc/sys/net/unix/max_dgram_qlen", "512").unwrap();
        let (udp, n) = case(false, false);
        assert_eq!(udp, 0, "UDP loops allocated {udp} times over {n} packets");
        let (hub, n) = case(false, true);
        assert_eq!(
            hub, 0,
            "UDP hub (3 peers) allocated {hub} times over {n} packets"
        );
        let (tcp, n) = case(true, false);
        assert_eq!(tcp, 0, "TCP loops allocated {tcp} times over {n} packets");
    })
    .join()
    .unwrap();
}
