//! `tunbox probe` against tunbox's own reflector, in namespaces the tests create (needs
//! root), with impairments of known size on the reflector's side of the link:
//!
//! ```text
//!  ns "cli"                                  ns "refl" (forwarding on)
//!  c0 198.18.100.2/24  <------ veth ------>  r0 198.18.100.1/24      tc tbf on r0
//!     2001:2:0:a::2/64                          2001:2:0:a::1/64
//!  198.19.0.0/16, 2001:2:0:b::/64 via r0     tun0 198.19.0.1/16, 2001:2:0:b::1/64
//!  tunbox probe 198.19.0.5                   tunbox reflect --dev tun0
//! ```
//!
//! This machine's kernel has no netem (CONFIG_NET_SCH_NETEM is off: `tc qdisc add ...
//! netem` fails with "Specified qdisc kind is unknown"), so delay, loss, duplication and
//! reordering come from a small impairment bridge in a third namespace between c0 and
//! r0 ([`Impair`]): it forwards frames between two AF_PACKET sockets and impairs the
//! UDP ones on the way back from the reflector by exact rules (every Nth lost, every
//! Mth duplicated, delayed by D ms, every Gth sent at once past the delayed ones), so
//! the expected figures are known exactly. Rate limits use `tc tbf`, which the kernel
//! has. Tolerances are stated at each assertion. The bad-input cases need no reflector.
mod common;
use common::*;
use serde_json::Value;
use std::process::Output;

/// The measuring tests run one at a time: several probes (and their userspace
/// impairment bridges) at once on a 2-core box measure each other, not the path.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Path {
    cli: Netns,
    refl: Netns,
    _r: Spawned,
    _impair: Option<ImpairBridge>,
}

fn path() -> Path {
    path_with(None)
}

fn path_with(impair: Option<Impair>) -> Path {
    let cli = Netns::new("pcli");
    let mut refl = Netns::new("prefl");
    let bridge = match impair {
        None => {
            veth(&cli, "c0", &refl, "r0");
            None
        }
        Some(imp) => {
            let mid = Netns::new("pmid");
            veth(&cli, "c0", &mid, "m0");
            veth(&mid, "m1", &refl, "r0");
            mid.ip("link set m0 promisc on");
            mid.ip("link set m1 promisc on");
            Some(ImpairBridge::start(mid, imp))
        }
    };
    cli.ip("addr add 198.18.100.2/24 dev c0");
    cli.ip("addr add 2001:2:0:a::2/64 dev c0 nodad");
    refl.ip("addr add 198.18.100.1/24 dev r0");
    refl.ip("addr add 2001:2:0:a::1/64 dev r0 nodad");
    cli.ip("route add 198.19.0.0/16 via 198.18.100.1");
    cli.ip("route add 2001:2:0:b::/64 via 2001:2:0:a::1");
    for s in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
        let out = refl.run(5, "sysctl", &["-qw", s]);
        assert!(out.status.success(), "sysctl {s}");
    }
    let r = refl.spawn_tunbox(
        &[
            "reflect",
            "--dev",
            "tun0",
            "--address",
            "198.19.0.1/16",
            "--address",
            "2001:2:0:b::1/64",
        ],
        &[],
    );
    assert!(
        r.wait_log("reflecting on tun0", 5) && refl.wait_dev("tun0", 5),
        "reflector did not start: {}",
        r.log()
    );
    Path {
        cli,
        refl,
        _r: r,
        _impair: bridge,
    }
}

/// Exact impairments of UDP frames from the reflector (frame k counted from 0).
#[derive(Clone, Copy, Default)]
struct Impair {
    /// every k with k % N == N-1 is dropped
    lose_every: u64,
    /// every k with k % M == 0 is sent twice
    dup_every: u64,
    /// delay of the others
    delay_ms: u64,
    /// every k with k % G == G-1 goes at once, past the delayed ones
    reorder_gap: u64,
}

/// The impairment bridge: a thread in the middle namespace that forwards frames between
/// m0 and m1 (AF_PACKET), impairing UDP frames from m1. Stopped and joined on Drop.
struct ImpairBridge {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _mid: Netns,
}

fn packet_socket(dev: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let idx = nix::net::if_::if_nametoindex(dev).expect("ifindex");
    // SAFETY: socket/bind with a zeroed, filled-in sockaddr_ll; the fd is owned below.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        );
        assert!(fd >= 0, "AF_PACKET socket");
        // A deep queue: on a loaded 2-core box this thread is sometimes scheduled late,
        // and frames dropped here would show as network loss the test did not set.
        let big: libc::c_int = 8 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        );
        let mut sa: libc::sockaddr_ll = std::mem::zeroed();
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sa.sll_ifindex = idx as i32;
        let r = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(r, 0, "bind AF_PACKET to {dev}");
        std::os::fd::OwnedFd::from_raw_fd(fd)
    }
}

/// Reads one frame that arrived on the socket's device (not one sent from it).
fn read_frame(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> Option<usize> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: recvfrom into a buffer and a sockaddr_ll of the right sizes.
        let (n, sa) = unsafe {
            let mut sa: libc::sockaddr_ll = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            let n = libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut sa as *mut libc::sockaddr_ll).cast(),
                &mut len,
            );
            (n, sa)
        };
        if n <= 0 {
            return None;
        }
        if sa.sll_pkttype != libc::PACKET_OUTGOING {
            return Some(n as usize);
        }
    }
}

fn write_frame(fd: &std::os::fd::OwnedFd, frame: &[u8]) {
    use std::os::fd::AsRawFd;
    // SAFETY: send from a valid buffer on a bound packet socket.
    let _ = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
}

/// IPv4 or IPv6 UDP in an Ethernet frame.
fn is_udp(f: &[u8]) -> bool {
    f.len() > 54
        && match (f[12], f[13]) {
            (0x08, 0x00) => f[23] == 17,
            (0x86, 0xdd) => f[20] == 17,
            _ => false,
        }
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(c[0]) << 8 | c.get(1).map_or(0, |&b| u32::from(b));
    }
    acc
}

/// Fills in the UDP checksum: frames read from a veth with AF_PACKET may carry a
/// partial one (checksum offload), which the receiving stack would reject.
fn fix_udp_checksum(f: &mut [u8]) {
    let (udp, pseudo) = match (f[12], f[13]) {
        (0x08, 0x00) => {
            let udp = 14 + usize::from(f[14] & 0xf) * 4;
            let mut acc = sum16(&f[26..34], 17);
            acc += u32::from(u16::from_be_bytes([f[udp + 4], f[udp + 5]]));
            (udp, acc)
        }
        _ => {
            let udp = 54;
            let mut acc = sum16(&f[22..54], 17);
            acc += u32::from(u16::from_be_bytes([f[udp + 4], f[udp + 5]]));
            (udp, acc)
        }
    };
    let len = usize::from(u16::from_be_bytes([f[udp + 4], f[udp + 5]]));
    if udp + len > f.len() || len < 8 {
        return;
    }
    f[udp + 6] = 0;
    f[udp + 7] = 0;
    let mut acc = sum16(&f[udp..udp + len], pseudo);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let c = match !(acc as u16) {
        0 => 0xffff,
        c => c,
    };
    f[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
}

impl ImpairBridge {
    fn start(mid: Netns, imp: Impair) -> ImpairBridge {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let path = format!("/var/run/netns/{}", mid.name);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsFd;
            let ns = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let (a, b) = (packet_socket("m0"), packet_socket("m1"));
            tx.send(()).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut queue: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
            let mut k = 0u64;
            let hit = |n: u64, k: u64, r: u64| n > 0 && k % n == r;
            while !stop2.load(Ordering::Relaxed) {
                while let Some(n) = read_frame(&a, &mut buf) {
                    if is_udp(&buf[..n]) {
                        fix_udp_checksum(&mut buf[..n]);
                    }
                    write_frame(&b, &buf[..n]);
                }
                while let Some(n) = read_frame(&b, &mut buf) {
                    if !is_udp(&buf[..n]) {
                        write_frame(&a, &buf[..n]);
                        continue;
                    }
                    fix_udp_checksum(&mut buf[..n]);
                    let f = &buf[..n];
                    let this = k;
                    k += 1;
                    if hit(imp.lose_every, this, imp.lose_every.saturating_sub(1)) {
                        continue;
                    }
                    let copies = if hit(imp.dup_every, this, 0) { 2 } else { 1 };
                    let now_go = imp.delay_ms == 0
                        || hit(imp.reorder_gap, this, imp.reorder_gap.saturating_sub(1));
                    for _ in 0..copies {
                        if now_go {
                            write_frame(&a, f);
                        } else {
                            let due = Instant::now() + Duration::from_millis(imp.delay_ms);
                            queue.push_back((due, f.to_vec()));
                        }
                    }
                }
                let now = Instant::now();
                while queue.front().is_some_and(|(t, _)| *t <= now) {
                    let (_, f) = queue.pop_front().unwrap();
                    write_frame(&a, &f);
                }
                let wait = queue
                    .front()
                    .map_or(Duration::from_millis(20), |(t, _)| {
                        t.saturating_duration_since(now)
                    })
                    .min(Duration::from_millis(20));
                let mut fds = [
                    nix::poll::PollFd::new(a.as_fd(), nix::poll::PollFlags::POLLIN),
                    nix::poll::PollFd::new(b.as_fd(), nix::poll::PollFlags::POLLIN),
                ];
                let ts = nix::sys::time::TimeSpec::from_duration(wait);
                let _ = nix::poll::ppoll(&mut fds, Some(ts), None);
            }
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("impairment bridge started");
        ImpairBridge {
            stop,
            thread: Some(thread),
            _mid: mid,
        }
    }
}

impl Drop for ImpairBridge {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tc(ns: &Netns, args: &str) {
    let out = ns.run(5, "tc", &args.split_whitespace().collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "tc {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn probe(ns: &Netns, secs: u32, args: &[&str]) -> Output {
    let mut a = vec!["probe"];
    a.extend_from_slice(args);
    ns.run(secs, TUNBOX, &a)
}

/// Runs a probe with --json and returns its single run.
fn probe_json(ns: &Netns, secs: u32, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = probe(ns, secs, &a);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "probe {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    eprintln!("probe {args:?}: {}", v["runs"][0]);
    v["runs"][0].clone()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"))
}

fn ms(v: &Value, k: &str) -> f64 {
    v["rtt"][k]
        .as_u64()
        .unwrap_or_else(|| panic!("no rtt.{k} in {v}")) as f64
        / 1e6
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn clean_path_no_loss() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    let p = path();
    // no impairment: nothing lost, duplicated or reordered (4000 probes)
    let v = probe_json(
        &p.cli,
        20,
        &["--rate", "2000", "--count", "4000", "198.19.0.5"],
    );
    assert_eq!(
        (u(&v, "sent"), u(&v, "received"), u(&v, "lost")),
        (4000, 4000, 0),
        "{v}"
    );
    assert_eq!((u(&v, "duplicates"), u(&v, "reordered")), (0, 0), "{v}");
    assert_eq!((u(&v, "rx_overflow"), u(&v, "stray")), (0, 0), "{v}");
    assert!(
        ms(&v, "max_ns") < 20.0,
        "a veth answers in well under 20 ms: {v}"
    );

    // no privileges needed: the same as user nobody, no capabilities (UDP and TCP)
    for mode in [
        &["--rate", "1000", "--count", "200"][..],
        &["--tcp", "--duration", "1"],
    ] {
        let mut args = vec![
            "--reuid",
            "nobody",
            "--regid",
            "nogroup",
            "--clear-groups",
            "--inh-caps",
            "-all",
            TUNBOX,
            "probe",
        ];
        args.extend_from_slice(mode);
        args.push("198.19.0.5");
        let out = p.cli.run(20, "setpriv", &args);
        assert!(
            out.status.success(),
            "as nobody {mode:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn delay_measured() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    // 20 ms on the reply path: RTT min within [20, 21) ms, avg and p50 below 23 ms (the
    // machine is shared: scheduling adds a little), nothing lost
    let p = path_with(Some(Impair {
        delay_ms: 20,
        ..Impair::default()
    }));
    let v = probe_json(
        &p.cli,
        20,
        &["--rate", "200", "--count", "300", "198.19.0.5"],
    );
    assert_eq!((u(&v, "lost"), u(&v, "duplicates")), (0, 0), "{v}");
    let (min, avg, p50) = (ms(&v, "min_ns"), ms(&v, "avg_ns"), ms(&v, "p50_ns"));
    assert!(
        (20.0..21.0).contains(&min),
        "rtt min {min} ms for 20 ms: {v}"
    );
    assert!((20.0..23.0).contains(&avg), "rtt avg {avg} ms: {v}");
    assert!((20.0..23.0).contains(&p50), "rtt p50 {p50} ms: {v}");
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn loss_and_duplication_measured() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    // Reply frame k (the warm-up probe is k = 0, probe seq s is k = s + 1): lost when
    // k % 10 == 9 (500 of 5000), sent twice when k % 20 == 0 (250 of 5000). Tolerance
    // +-3 probes (a stray warm-up copy, a retried warm-up).
    let p = path_with(Some(Impair {
        lose_every: 10,
        dup_every: 20,
        ..Impair::default()
    }));
    let v = probe_json(
        &p.cli,
        20,
        &["--rate", "2000", "--count", "5000", "198.19.0.5"],
    );
    assert_eq!(u(&v, "sent"), 5000);
    let lost = u(&v, "lost") as i64;
    let dup = u(&v, "duplicates") as i64;
    assert!((lost - 500).abs() <= 3, "lost {lost} of 5000 for 500: {v}");
    assert!((dup - 250).abs() <= 3, "duplicates {dup} for 250: {v}");
    let pct = v["loss_pct"].as_f64().unwrap();
    assert!((pct - 10.0).abs() <= 0.06, "loss {pct} %: {v}");
    assert_eq!(u(&v, "lost"), 5000 - u(&v, "received"));
    assert_eq!(u(&v, "reordered"), 0, "{v}");
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn reordering_measured() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    // Every 5th reply frame goes at once, the others 10 ms later. At 1000 probes/s each
    // delayed probe is overtaken by a later immediate one (at most 4 ms younger), so by
    // RFC 4737 4 of every 5 probes arrive reordered: 1600 of 2000; tolerance +-3 %
    // (60 probes: the first and the last few differ, and on a loaded 2-core box the
    // userspace bridge is now and then scheduled late, so a probe it meant to overtake
    // has already gone; measured 1579-1600 here under load).
    let p = path_with(Some(Impair {
        delay_ms: 10,
        reorder_gap: 5,
        ..Impair::default()
    }));
    let v = probe_json(
        &p.cli,
        20,
        &["--rate", "1000", "--count", "2000", "198.19.0.5"],
    );
    assert_eq!((u(&v, "lost"), u(&v, "duplicates")), (0, 0), "{v}");
    let re = u(&v, "reordered") as i64;
    assert!((re - 1600).abs() <= 60, "reordered {re} for 1600: {v}");
    // the immediate ones come back at once, the others after 10 ms
    assert!(ms(&v, "min_ns") < 5.0 && ms(&v, "max_ns") >= 10.0, "{v}");
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn rfc2544_finds_the_tbf_rate() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    let p = path();
    // 20 Mbit/s on the reply path with a 30 KB queue. Trials of 0.5 s from a 30 Mbit/s
    // ceiling, 1518-byte frames (1500-byte IP packets; tbf counts 1514 bytes of
    // each). Tolerance: -15 % / +10 % of 20 Mbit/s (a trial over the rate passes until
    // its excess fills the queue, about 3 %; a sender stalled by the shared machine
    // bursts and fails a trial below the rate).
    tc(
        &p.refl,
        "qdisc add dev r0 root tbf rate 20mbit burst 5000 limit 30000",
    );
    let out = probe(
        &p.cli,
        60,
        &[
            "--rfc2544",
            "--size",
            "1518",
            "--rate",
            "30M",
            "--trial",
            "500ms",
            "--json",
            "198.19.0.5",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    let row = &v["results"][0];
    eprintln!("rfc2544: {row}");
    assert_eq!(
        (u(row, "frame_size"), u(row, "ip_size")),
        (1518, 1500),
        "{row}"
    );
    let mbps = row["max_bps"].as_f64().unwrap() / 1e6;
    assert!(
        (17.0..=22.0).contains(&mbps),
        "throughput {mbps} Mb/s for 20: {row}"
    );
    let lat = &row["latency"];
    assert_eq!(u(lat, "size"), 1500, "{row}");
    assert!(lat["rtt"]["avg_ns"].as_u64().is_some(), "{row}");
    assert!(u(row, "trials") >= 5, "{row}");
}

/// IPv6, several sizes, every figure in the JSON; the table and the progress line.
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn json_carries_every_figure_and_progress_only_on_a_tty() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    let p = path();
    let out = probe(
        &p.cli,
        20,
        &[
            "--json",
            "--rate",
            "1000",
            "--count",
            "300",
            "--size",
            "100,1280",
            "2001:2:0:b::5",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains('\r'),
        "no progress line when stdout is not a terminal"
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["mode"], "udp");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let keys = [
        "target",
        "port",
        "size",
        "asked_pps",
        "seconds",
        "sent",
        "received",
        "lost",
        "loss_pct",
        "duplicates",
        "reordered",
        "rx_overflow",
        "send_errors",
        "icmp_errors",
        "stray",
        "rtt",
        "send_pps",
        "recv_pps",
        "send_bps",
        "recv_bps",
        "sender_limited",
        "max_lag_ns",
        "interrupted",
    ];
    let rtt_keys = [
        "min_ns",
        "avg_ns",
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "max_ns",
        "jitter_rfc3550_ns",
        "pdv_rfc5481_ns",
    ];
    for (run, size) in runs.iter().zip([100, 1280]) {
        for k in keys {
            assert!(!run[k].is_null(), "{k} missing: {run}");
        }
        for k in rtt_keys {
            assert!(run["rtt"][k].is_u64(), "rtt.{k} missing: {run}");
        }
        assert_eq!(run["target"], "2001:2:0:b::5");
        assert_eq!(
            (u(run, "size"), u(run, "sent"), u(run, "received")),
            (size, 300, 300)
        );
        let r = &run["rtt"];
        let (min, p50, p99, max) = (
            u(r, "min_ns"),
            u(r, "p50_ns"),
            u(r, "p99_ns"),
            u(r, "max_ns"),
        );
        assert!(min <= p50 && p50 <= p99 && p99 <= max, "{run}");
        let pps = run["send_pps"].as_f64().unwrap();
        assert!((900.0..1100.0).contains(&pps), "{run}");
        assert_eq!(run["sender_limited"], false);
    }

    // on a terminal (script(1) gives it a pty) the live line is drawn each second
    let cmd = format!("{TUNBOX} probe --rate 100 --duration 2 198.19.0.5");
    let out = p.cli.run(20, "script", &["-qec", &cmd, "/dev/null"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\r   1 s  sent "),
        "progress line on a tty: {text:?}"
    );
    assert!(text.contains("reordered"), "and the table: {text}");
    // the plain table without a terminal
    let out = probe(
        &p.cli,
        20,
        &["--rate", "100", "--count", "20", "198.19.0.5"],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for want in [
        "sent",
        "received",
        "lost",
        "duplicated",
        "reordered",
        "rtt ms",
        "jitter ms",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tcp_goodput_through_the_reflector() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    let p = path();
    let out = probe(
        &p.cli,
        20,
        &["--tcp", "--duration", "2", "--json", "198.19.0.5"],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["mode"], "tcp");
    assert!(v["bytes"].as_u64().unwrap() > 1_000_000, "{v}");
    assert!(v["mbps"].as_f64().unwrap() > 8.0, "{v}");
    assert!(v["per_second_mbps"].as_array().unwrap().len() >= 2, "{v}");
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn ctrl_c_prints_the_figures_so_far() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    let mut p = path();
    let r = p.cli.spawn_tunbox(
        &["probe", "--rate", "100", "--duration", "30", "198.19.0.5"],
        &[],
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.pid as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    assert!(r.wait_log("interrupted", 5), "{}", r.log());
    let code = p.cli.stop(r.pid);
    let log = r.log();
    assert!(log.contains("received") && log.contains("rtt ms"), "{log}");
    assert!(code == Some(130) || code.is_none(), "exit {code:?}: {log}");
}

fn fails(out: &Output, code: i32, msg: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(err.contains(msg), "'{msg}' in: {err}");
}

/// Bad options fail before any packet, with exit 2 and a message.
#[test]
fn bad_options() {
    let run = |args: &[&str]| {
        std::process::Command::new(TUNBOX)
            .arg("probe")
            .args(args)
            .output()
            .unwrap()
    };
    fails(&run(&["--rate", "0", "198.18.0.5"]), 2, "must be above 0");
    fails(&run(&["--rate", "0M", "198.18.0.5"]), 2, "must be above 0");
    fails(
        &run(&["--size", "43", "198.18.0.5"]),
        2,
        "below the smallest IPv4 probe, 44",
    );
    fails(
        &run(&["--size", "63", "2001:2::5"]),
        2,
        "below the smallest IPv6 probe, 64",
    );
    fails(
        &run(&["--size", "65536", "198.18.0.5"]),
        2,
        "above the largest IP packet",
    );
    fails(
        &run(&["--rfc2544", "--size", "60", "198.18.0.5"]),
        2,
        "smallest is 64",
    );
    fails(
        &run(&["--port", "0", "198.18.0.5"]),
        2,
        "--port: '0' is not a port number",
    );
    fails(
        &run(&["--rate", "10", "--interval", "1", "198.18.0.5"]),
        2,
        "not both",
    );
    fails(&run(&["--tcp", "--rfc2544", "198.18.0.5"]), 2, "give one");
    fails(
        &run(&["--rfc2544", "--duration", "5", "198.18.0.5"]),
        2,
        "--trial",
    );
    fails(
        &run(&["--trial", "5", "198.18.0.5"]),
        2,
        "belong to --rfc2544",
    );
    fails(
        &run(&["--tcp", "--size", "100", "198.18.0.5"]),
        2,
        "do not apply",
    );
    fails(
        &run(&["--rate", "fast", "198.18.0.5"]),
        2,
        "bad rate 'fast'",
    );
    fails(&run(&[]), 2, "target");
    fails(
        &run(&["--every", "soon", "198.18.0.5"]),
        2,
        "--every: bad duration 'soon'",
    );
    fails(
        &run(&["--tcp", "--every", "60", "198.18.0.5"]),
        2,
        "--every repeats the plain UDP probe",
    );
}

fn write_conf(tag: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("tbx-probe-{tag}-{}.conf", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

/// `config check` names the file, the line and the option of a bad probe value, and
/// the environment variable of a bad TUNBOX_ value; a good section passes.
#[test]
fn config_check_probe_sections() {
    let conf = write_conf(
        "bad",
        "config probe 'a'\n\toption target '198.18.0.5'\n\toption rate 'fast'\n\
         config probe 'b'\n\toption target '198.18.0.5'\n\toption every 'soon'\n\
         config probe 'c'\n\toption target '198.18.0.5'\n\tlist size '64,x'\n\
         config probe 'd'\n\toption target '198.18.0.5'\n\toption tcp '1'\n\toption every '60'\n\
         config probe 'e'\n\toption target '198.18.0.5'\n\toption loss_ok '200'\n\
         config probe 'f'\n\toption rate '10'\n",
    );
    let check = |conf: &std::path::Path, env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(TUNBOX);
        c.args(["config", "check"]).env("TUNBOX_CONFIG", conf);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = check(&conf, &[]);
    let f = conf.display();
    for want in [
        format!("{f}:3: option 'rate': bad rate 'fast'"),
        format!("{f}:6: option 'every': bad duration 'soon'"),
        format!("{f}:9: option 'size': bad size 'x'"),
        format!("{f}:13: option 'every': --every repeats the plain UDP probe"),
        format!("{f}:16: option 'loss_ok': percentage '200' must be between 0 and 100"),
        format!("{f}:17: section 'f': no target"),
    ] {
        fails(&out, 2, &want);
    }
    let _ = std::fs::remove_file(&conf);

    let conf = write_conf(
        "good",
        "config probe 'mon'\n\toption target '198.18.0.5'\n\toption count '10'\n\toption every '5m'\n\toption syslog '1'\n",
    );
    let out = check(&conf, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("probe mon"));
    let out = check(&conf, &[("TUNBOX_RATE", "0")]);
    fails(&out, 2, "environment TUNBOX_RATE: rate '0' must be above 0");
    let _ = std::fs::remove_file(&conf);
}

/// A `config probe` section with `every`, run by `tunbox run NAME` as a service: a run
/// every second, one summary line each, until SIGTERM (exit 0).
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn scheduled_probe_section_logs_a_line_per_run() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    let mut p = path();
    let conf = write_conf(
        "mon",
        "config probe 'mon'\n\toption target '198.19.0.5'\n\toption count '5'\n\
         \toption rate '50'\n\toption every '1'\n",
    );
    let r = p.cli.spawn_tunbox(
        &["run", "mon"],
        &[("TUNBOX_CONFIG", conf.to_str().unwrap())],
    );
    let line = "probe 198.19.0.5:7007 128B: sent 5 received 5 lost 0.00% dup 0 reordered 0 rtt";
    let t0 = std::time::Instant::now();
    while r.log().matches(line).count() < 2 && t0.elapsed().as_secs() < 15 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = r.log();
    assert!(log.matches(line).count() >= 2, "{log}");
    assert!(
        log.contains("monitoring 198.19.0.5 port 7007 every 1.0 s"),
        "{log}"
    );
    // one line per run: a table is not printed
    assert!(!log.contains("rtt ms"), "{log}");
    let code = p.cli.stop(r.pid);
    assert_eq!(code, Some(0), "{}", r.log());
    assert!(r.log().contains("probe: stopped"), "{}", r.log());
    let _ = std::fs::remove_file(&conf);
}

/// An unreachable target and a port in use: exit 1 with a message that says what to do.
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn unreachable_target_and_port_in_use() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    let p = path();
    // no route at all
    let out = probe(&p.cli, 10, &["--count", "5", "203.0.113.1"]);
    fails(&out, 1, "no route from this host");
    // routed, but no reflector answers there (nothing on the LAN has 198.18.100.9)
    let t0 = std::time::Instant::now();
    let out = probe(&p.cli, 15, &["--count", "5", "198.18.100.9"]);
    fails(&out, 1, "does not answer");
    assert!(t0.elapsed().as_secs() < 8, "gives up within a few seconds");
    // the port is taken here
    let out = p.cli.run(
        10,
        "sh",
        &[
            "-c",
            &format!(
                "python3 -c 'import socket,subprocess,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
                 s.bind((\"0.0.0.0\", 7007)); sys.exit(subprocess.call([\"{TUNBOX}\", \"probe\", \"--count\", \"5\", \"198.19.0.5\"]))'"
            ),
        ],
    );
    fails(&out, 1, "port 7007 is already in use");
}

/// The TAP reflector on a LAN made by `tunbox bridge up` (as in tests/tap.rs), probed
/// from a "laptop" namespace, optionally through the impairment bridge:
/// lap0 198.18.0.2/15 <-> [m0 impair m1] <-> eth0 + tap0 in br-tunbox 198.18.0.1/15,
/// `tunbox reflect --mode tap --range 198.19.0.0/16`.
struct TapLan {
    laptop: Netns,
    _pi: Netns,
    _r: Spawned,
    _impair: Option<ImpairBridge>,
    state: std::path::PathBuf,
}

impl Drop for TapLan {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.state);
    }
}

fn tap_lan(impair: Option<Impair>) -> TapLan {
    let laptop = Netns::new("ptlap");
    let mut pi = Netns::new("ptpi");
    let bridge = match impair {
        None => {
            veth(&laptop, "lap0", &pi, "eth0");
            None
        }
        Some(imp) => {
            let mid = Netns::new("ptmid");
            veth(&laptop, "lap0", &mid, "m0");
            veth(&mid, "m1", &pi, "eth0");
            mid.ip("link set m0 promisc on");
            mid.ip("link set m1 promisc on");
            Some(ImpairBridge::start(mid, imp))
        }
    };
    laptop.ip("addr add 198.18.0.2/15 dev lap0");
    pi.ip("addr add 198.18.0.1/15 dev eth0");
    let state = std::env::temp_dir().join(format!("{}-bridge.state", pi.name));
    let out = pi.run(
        20,
        TUNBOX,
        &[
            "bridge",
            "up",
            "--ifname",
            "eth0",
            "--tap",
            "tap0",
            "--bridge",
            "br-tunbox",
            "--state-file",
            state.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "tunbox bridge up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = pi.spawn_tunbox(
        &[
            "reflect",
            "--mode",
            "tap",
            "--dev",
            "tap0",
            "--range",
            "198.19.0.0/16",
        ],
        &[],
    );
    assert!(
        r.wait_log("answering for", 5) && pi.wait_dev("tap0", 5),
        "TAP reflector did not start: {}",
        r.log()
    );
    TapLan {
        laptop,
        _pi: pi,
        _r: r,
        _impair: bridge,
        state,
    }
}

#[cfg_attr(
    all(tunbox_qemu, target_endian = "big"),
    ignore = "needs `tunbox bridge up`, which qemu-user cannot run for a big-endian guest (targets/README.md)"
)]
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tap_reflector_on_the_lan() {
    if !need_root() {
        return;
    }
    let _serial = one_at_a_time();
    // clean LAN: the warm-up resolves the reflector's MAC (ARP), then nothing is lost
    let lan = tap_lan(None);
    let v = probe_json(
        &lan.laptop,
        20,
        &["--rate", "1000", "--count", "2000", "198.19.0.5"],
    );
    assert_eq!((u(&v, "sent"), u(&v, "received")), (2000, 2000), "{v}");
    assert_eq!((u(&v, "duplicates"), u(&v, "reordered")), (0, 0), "{v}");
    drop(lan);
    // every 10th reply frame lost, all delayed 5 ms: 200 of 2000 lost (+-3), RTT min
    // within [5, 6) ms
    let lan = tap_lan(Some(Impair {
        lose_every: 10,
        delay_ms: 5,
        ..Impair::default()
    }));
    let v = probe_json(
        &lan.laptop,
        20,
        &["--rate", "1000", "--count", "2000", "198.19.0.5"],
    );
    let lost = u(&v, "lost") as i64;
    assert!((lost - 200).abs() <= 3, "lost {lost} for 200: {v}");
    let min = ms(&v, "min_ns");
    assert!((5.0..6.0).contains(&min), "rtt min {min} ms for 5: {v}");
    assert_eq!((u(&v, "duplicates"), u(&v, "reordered")), (0, 0), "{v}");
}
