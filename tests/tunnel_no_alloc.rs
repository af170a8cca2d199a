//! The tunnel's loops allocate nothing per packet: a client and a server engine, UDP,
//! UDP with a three-peer hub as the server, both also with the crypto pool (`--threads`
//! 2 and 3, bursts big enough for its rounds), and then TCP, run in a private network
//! namespace (loopback only) with datagram
//! socket pairs standing in for the tun devices; a counting global allocator (counting
//! only the loop threads) must not move while thousands of packets go through both
//! ways. Needs root (unshare of the network namespace).
mod common;
use common::counting::{Counting, ALLOCS, COUNTING};
use common::need_root;
use common::{fold, sum};
use std::cell::RefCell;
use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tunbox::tunnel::hub::{Hub, Peer, Prefix};
use tunbox::tunnel::{Counters, Key, Role, Tunnel, TunnelConfig};
use tunbox::tunnel_run::engine::{Device, Engine};
use tunbox::tunnel_run::net::Net;
use tunbox::wire::virtio::{self, HDR_LEN};

#[global_allocator]
static A: Counting = Counting;

/// A stand-in for a TUN opened with offloads: each datagram is a virtio header and a
/// packet; the two pieces of a write are joined in a buffer made once.
struct VnetDev {
    sock: UnixDatagram,
    scratch: RefCell<Box<[u8]>>,
}

impl AsFd for VnetDev {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Device for VnetDev {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf)
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sock.send(buf)
    }
    fn send2(&self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        let mut b = self.scratch.borrow_mut();
        let n = head.len() + body.len();
        b[..head.len()].copy_from_slice(head);
        b[head.len()..n].copy_from_slice(body);
        self.sock.send(&b[..n])
    }
}

/// Runs one engine on its own (counting) thread until `stop`; returns its counters.
fn spawn_engine(
    role: Role,
    dev: UnixDatagram,
    net: Net,
    stop: Arc<AtomicBool>,
    multi: bool,
    threads: usize,
) -> std::thread::JoinHandle<Counters> {
    spawn_engine_on(role, dev, net, stop, multi, false, threads)
}

fn spawn_engine_on(
    role: Role,
    dev: UnixDatagram,
    net: Net,
    stop: Arc<AtomicBool>,
    multi: bool,
    offloads: bool,
    threads: usize,
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
        if offloads {
            let dev = VnetDev {
                sock: dev,
                scratch: RefCell::new(vec![0u8; 70000].into_boxed_slice()),
            };
            let mut e = Engine::with_hub(dev, net, hub, name, false, false);
            e.with_offloads();
            assert_eq!(e.with_crypto_threads(threads), threads);
            e.run(&|| stop.load(Ordering::Relaxed)).expect("loop");
            COUNTING.with(|c| c.set(false));
            return e.tunnel().counters().clone();
        }
        let mut e = Engine::with_hub(dev, net, hub, name, false, false);
        assert_eq!(e.with_crypto_threads(threads), threads);
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

/// One datagram from the host end, read again after EINTR (seen under qemu-aarch64 in a
/// 3-thread hub case; the read timeout still bounds it).
fn recv(b: &UnixDatagram, rx: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match b.recv(rx) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Sends packet `i` in at `a` and expects it out at `b`.
fn through(a: &UnixDatagram, b: &UnixDatagram, i: u32, tx: &mut [u8], rx: &mut [u8]) -> bool {
    let n = packet(i, tx);
    a.send(&tx[..n]).unwrap();
    match recv(b, rx) {
        Ok(m) => {
            assert_eq!(&rx[..m], &tx[..n], "packet {i} changed on the way");
            true
        }
        Err(_) => false,
    }
}

/// Returns (allocations during the measured phase, packets in that phase).
fn case(tcp: bool, multi: bool, threads: usize) -> (usize, u32) {
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
    let srv = spawn_engine(Role::Server, srv_dev, srv_net, stop.clone(), multi, threads);
    let cli = spawn_engine(Role::Client, cli_dev, cli_net, stop.clone(), multi, threads);

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
    // sealed into one sendmmsg / UDP GSO message, recvmmsg of many datagrams; with the
    // crypto pool, rounds of the workers).
    let burst = 46;
    for _ in 0..100 {
        for (a, b) in [(&cli_host, &srv_host), (&srv_host, &cli_host)] {
            for k in 0..burst {
                let n = packet(i + k, &mut tx);
                a.send(&tx[..n]).unwrap();
            }
            for k in 0..burst {
                let n = packet(i + k, &mut tx);
                let m = recv(b, &mut rx).expect("a burst's packet lost");
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

/// A TUN read with offloads: virtio header + an IPv4/TCP super-packet of `segs` segments
/// of `mss` bytes starting at sequence `seq`, its TCP checksum field holding the
/// pseudo-header sum (as the kernel leaves it). Written into `buf`; returns its length.
fn tso_read(buf: &mut [u8], seq: u32, segs: usize, mss: usize) -> usize {
    let n = segs * mss;
    let l4_len = 20 + n;
    let p = &mut buf[HDR_LEN..];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 5, 198, 18, 1, 6,
    ]);
    p[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    let c = !fold(sum(&p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..40].copy_from_slice(&[
        0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 0, 0, 0, 0, 9, 0x50, 0x10, 0xfa, 0xf0, 0, 0, 0, 0,
    ]);
    p[24..28].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[40..40 + n].iter_mut().enumerate() {
        *b = (i as u32 ^ seq) as u8;
    }
    let partial = fold(sum(&p[12..20]) + 6 + l4_len as u32);
    p[36..38].copy_from_slice(&partial.to_be_bytes());
    let h = virtio::header(
        virtio::F_NEEDS_CSUM,
        virtio::GSO_TCPV4,
        40,
        mss as u16,
        20,
        16,
    );
    buf[..HDR_LEN].copy_from_slice(&h);
    HDR_LEN + 40 + n
}

/// Offloads: super-packets read at one end are segmented, sealed, sent (UDP GSO),
/// opened and coalesced into super-packets at the other, with no allocation.
/// Returns (allocations in the measured phase, super-packets in it).
fn offload_case(threads: usize) -> (usize, u32) {
    let (cli_dev, cli_host) = UnixDatagram::pair().unwrap();
    let (srv_dev, srv_host) = UnixDatagram::pair().unwrap();
    cli_dev.set_nonblocking(true).unwrap();
    srv_dev.set_nonblocking(true).unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (srv_net, cli_net) = (Net::udp(s, None).unwrap(), Net::udp(c, Some(addr)).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let srv = spawn_engine_on(
        Role::Server,
        srv_dev,
        srv_net,
        stop.clone(),
        false,
        true,
        threads,
    );
    let cli = spawn_engine_on(
        Role::Client,
        cli_dev,
        cli_net,
        stop.clone(),
        false,
        true,
        threads,
    );
    for h in [&cli_host, &srv_host] {
        h.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let mut tx = vec![0u8; 70000];
    let mut rx = vec![0u8; 70000];
    let (segs, mss) = (20, 1348);
    let mut seq = 1u32;
    // One super-packet in at `a`: one super-packet of the same bytes out at `b`.
    let mut through = |a: &UnixDatagram, b: &UnixDatagram, seq: u32| -> bool {
        let n = tso_read(&mut tx, seq, segs, mss);
        a.send(&tx[..n]).unwrap();
        let mut got = 0;
        while got < segs * mss {
            let Ok(m) = recv(b, &mut rx) else {
                return false;
            };
            let ip = &rx[HDR_LEN..m];
            assert_eq!(&ip[12..20], &tx[HDR_LEN + 12..HDR_LEN + 20], "addresses");
            let s = u32::from_be_bytes(ip[24..28].try_into().unwrap());
            let off = s.wrapping_sub(seq) as usize;
            assert_eq!(
                &ip[40..],
                &tx[HDR_LEN + 40 + off..HDR_LEN + 40 + off + ip.len() - 40],
                "payload at {off}"
            );
            got += ip.len() - 40;
        }
        true
    };
    let t0 = Instant::now();
    while !through(&cli_host, &srv_host, seq) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no session");
        seq = seq.wrapping_add((segs * mss) as u32);
    }
    while !through(&srv_host, &cli_host, seq) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no way back");
        seq = seq.wrapping_add((segs * mss) as u32);
    }
    for h in [&cli_host, &srv_host] {
        h.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    for _ in 0..100 {
        seq = seq.wrapping_add((segs * mss) as u32);
        assert!(through(&cli_host, &srv_host, seq));
        assert!(through(&srv_host, &cli_host, seq));
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    let rounds = 1000;
    for _ in 0..rounds {
        seq = seq.wrapping_add((segs * mss) as u32);
        assert!(through(&cli_host, &srv_host, seq), "lost super-packet");
        assert!(through(&srv_host, &cli_host, seq), "lost super-packet");
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let sc = srv.join().unwrap();
    let cc = cli.join().unwrap();
    assert!(
        sc.rx_packets >= (rounds * segs) as u64 && cc.rx_packets >= (rounds * segs) as u64,
        "{sc} / {cc}"
    );
    (after - before, 2 * rounds as u32)
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
        for threads in [1, 2] {
            let (udp, n) = case(false, false, threads);
            assert_eq!(
                udp, 0,
                "UDP loops ({threads} threads) allocated {udp} times over {n} packets"
            );
        }
        for threads in [1, 3] {
            let (hub, n) = case(false, true, threads);
            assert_eq!(
                hub, 0,
                "UDP hub (3 peers, {threads} threads) allocated {hub} times over {n} packets"
            );
        }
        let (tcp, n) = case(true, false, 1);
        assert_eq!(tcp, 0, "TCP loops allocated {tcp} times over {n} packets");
        for threads in [1, 2] {
            let (off, n) = offload_case(threads);
            assert_eq!(
                off, 0,
                "UDP loops with offloads ({threads} threads) allocated {off} times over {n} super-packets"
            );
        }
    })
    .join()
    .unwrap();
}
