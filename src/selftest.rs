//! `tunbox selftest`: checks the prerequisites, then runs a reflector in a throwaway
//! network namespace (made with unshare, so it vanishes with the process) and pings
//! and connects through it. For a technician with a new router.
use crate::reflect::{self, LoopState, ReflectOptions, TunIo, TunReflector, BUF_SIZE};
use crate::sys::net::IcmpSocket;
use crate::sys::poll::{wait_one, PollSet, Want};
use crate::sys::process::{spawn_child, ChildSide};
use crate::sys::{caps, netlink::Rtnl, tun::Mode};
use crate::wire::ip::checksum;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Outcome {
    name: &'static str,
    result: Result<String, String>,
}

fn prerequisites() -> [(&'static str, Result<(), String>); 3] {
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map(drop)
        .map_err(|e| {
            format!("{e}: load the tun module (`modprobe tun`; OpenWrt: `opkg install kmod-tun`)")
        });
    let admin = caps::require_net_admin("the self-test's namespace and device").map_err(|e| e.msg);
    let netns = if std::path::Path::new("/proc/self/ns/net").exists() {
        Ok(())
    } else {
        Err("the kernel has no network namespaces (CONFIG_NET_NS)".to_string())
    };
    [
        ("/dev/net/tun", tun),
        ("CAP_NET_ADMIN", admin),
        ("network namespaces", netns),
    ]
}

fn icmp_socket(v6: bool) -> Result<IcmpSocket, String> {
    IcmpSocket::new(v6).map_err(|e| format!("raw ICMP socket: {e}"))
}

/// Sends one echo request and waits up to `wait` for its reply. `Ok(None)`: no reply.
fn echo_once(
    fd: &IcmpSocket,
    dst: IpAddr,
    id: u16,
    seq: u16,
    wait: Duration,
) -> Result<Option<Duration>, String> {
    let v6 = dst.is_ipv6();
    let (req, reply) = if v6 { (128u8, 129u8) } else { (8u8, 0u8) };
    let mut pkt = [0u8; 64];
    pkt[0] = req;
    pkt[4..6].copy_from_slice(&id.to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..16].copy_from_slice(b"tunbox!!");
    if !v6 {
        // the kernel fills in the ICMPv6 checksum (it covers the pseudo-header)
        let c = checksum(&pkt);
        pkt[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let t0 = Instant::now();
    fd.send_to(&pkt, dst)
        .map_err(|e| format!("send to {dst}: {e}"))?;
    let mut buf = [0u8; 2048];
    while t0.elapsed() < wait {
        let n = match fd.recv(&mut buf) {
            Ok(Some(n)) => n,
            Ok(None) => continue,
            Err(e) => return Err(format!("receive: {e}")),
        };
        // IPv4 raw sockets hand over the IP header too; IPv6 ones do not. The reflected
        // echo request (type 8/128) arrives here as well and is skipped.
        let off = if v6 {
            0
        } else {
            usize::from(buf[0] & 0x0f) * 4
        };
        let icmp = &buf[off.min(n)..n];
        if icmp.len() >= 8
            && icmp[0] == reply
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
        {
            return Ok(Some(t0.elapsed()));
        }
    }
    Ok(None)
}

/// Pings `dst` until `count` replies came back, sending at most two requests more
/// (like `ping`, a lost request is not resent: the next has a new sequence number).
/// Returns the round-trip times and how many requests went unanswered. Seen here: about
/// one run in 25 loses the very first IPv6 echo on a device up for a few milliseconds.
fn ping(dst: IpAddr, count: u16) -> Result<(Vec<Duration>, u16), String> {
    let fd = icmp_socket(dst.is_ipv6())?;
    let id = (std::process::id() & 0xffff) as u16;
    let mut rtts = Vec::new();
    let mut lost = 0;
    for seq in 1..=count + 2 {
        match echo_once(&fd, dst, id, seq, Duration::from_millis(700))? {
            Some(rtt) => rtts.push(rtt),
            None => lost += 1,
        }
        if rtts.len() == usize::from(count) {
            return Ok((rtts, lost));
        }
    }
    Err(format!(
        "only {} of {} echo requests to {dst} were answered",
        rtts.len(),
        count + 2
    ))
}

/// The echo server's side: one connection, everything read is written back, until
/// the client closes. Errors go to the report.
fn echo_server(l: &TcpListener, me: ChildSide<'_>) -> bool {
    let serve = || -> io::Result<()> {
        let mut set = PollSet::<2>::new();
        let li = set.add(l.as_fd(), Want::In);
        set.add(me.stop_fd(), Want::In);
        if !set.wait(Duration::from_secs(5))?.is(li) {
            return Err(crate::io_error(
                io::ErrorKind::TimedOut,
                "no connection came",
            ));
        }
        let (mut s, _) = l.accept()?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = vec![0u8; 16384];
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(()),
                n => s.write_all(&buf[..n])?,
            }
        }
    };
    match serve() {
        Ok(()) => true,
        Err(e) => {
            let _ = write!(me.report, "echo server: {e}");
            false
        }
    }
}

/// Sends `data` and reads until the peer closes, both at once (the echo comes back
/// while we still write; waiting would fill both socket buffers and stall).
fn exchange(c: &mut TcpStream, data: &[u8]) -> io::Result<Vec<u8>> {
    c.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut sent, mut back) = (0, Vec::with_capacity(data.len()));
    let mut buf = vec![0u8; 16384];
    while Instant::now() < deadline {
        let want = if sent < data.len() {
            Want::InOut
        } else {
            Want::In
        };
        wait_one(c.as_fd(), want, Duration::from_secs(1))?;
        if sent < data.len() {
            match c.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if sent == data.len() {
                c.shutdown(std::net::Shutdown::Write)?;
            }
        }
        match c.read(&mut buf) {
            Ok(0) => return Ok(back),
            Ok(n) => back.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Err(crate::io_error(
        io::ErrorKind::TimedOut,
        format!("{} of {} bytes back after 10 s", back.len(), data.len()),
    ))
}

/// Connects to `target` (which the reflector turns back to a listener on the same
/// port here), sends 256 KiB through an echo server, checks it; returns connect time.
fn tcp(listen: SocketAddr, target: SocketAddr) -> Result<Duration, String> {
    let l = TcpListener::bind(listen).map_err(|e| format!("listen on {listen}: {e}"))?;
    let server =
        spawn_child(&mut |me| echo_server(&l, me)).map_err(|e| format!("echo server: {e}"))?;
    drop(l);
    let t0 = Instant::now();
    let result = TcpStream::connect_timeout(&target, Duration::from_secs(3))
        .map_err(|e| format!("connect to {target}: {e}"))
        .and_then(|mut c| {
            let connect = t0.elapsed();
            let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
            let back = exchange(&mut c, &data).map_err(|e| format!("echo via {target}: {e}"))?;
            if back != data {
                return Err(format!(
                    "echo came back wrong: {} of {} bytes",
                    back.len(),
                    data.len()
                ));
            }
            Ok(connect)
        });
    let (_, report) = server.finish();
    match result {
        Err(e) if !report.is_empty() => Err(format!("{e} ({report})")),
        r => r,
    }
}

/// A duration as milliseconds with three decimals ("0.025"), in integers: formatting an
/// f64 would link the float formatter (about 12 KB on mips) for these two lines.
struct Ms(Duration);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whole milliseconds and the microseconds below them, in u64 (as_micros is a
        // u128, whose formatter is another 1.3 KB).
        let (s, us) = (self.0.as_secs(), self.0.subsec_micros());
        write!(f, "{}.{:03}", s * 1000 + u64::from(us / 1000), us % 1000)
    }
}

/// What is checked through the reflector: a ping (the address answered), or a TCP echo
/// (the address listened on, the address connected to, which the reflector turns back).
enum Check {
    Ping(IpAddr),
    Tcp(SocketAddr, SocketAddr),
}

/// The checks, in the order they run and are listed. Constants, not parsed text, and a
/// table rather than a loop per kind (size).
const CHECKS: [(&str, Check); 4] = [
    (
        "ping IPv4 198.18.0.41",
        Check::Ping(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 41))),
    ),
    (
        "ping IPv6 2001:2::41",
        Check::Ping(IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x41))),
    ),
    (
        "TCP IPv4 198.18.7.7:7777",
        Check::Tcp(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 7777),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 7, 7)), 7777),
        ),
    ),
    (
        "TCP IPv6 [2001:2::7]:7778",
        Check::Tcp(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 7778),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 7)), 7778),
        ),
    ),
];

/// A round-trip time in nanoseconds as a `u64`, where summing `Duration`s (and dividing
/// one) costs their normalising arithmetic; the average comes out the same.
fn nanos(d: &Duration) -> u64 {
    d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos())
}

/// `3/3 replies, rtt min 0.025 ms avg 0.031 ms`.
fn ping_detail(rtts: &[Duration], lost: u16) -> String {
    let ns = || rtts.iter().map(nanos);
    let min = ns().min().unwrap_or_default();
    let avg = ns().sum::<u64>() / rtts.len().max(1) as u64;
    format!(
        "{}/{} replies, rtt min {} ms avg {} ms",
        rtts.len(),
        rtts.len() + usize::from(lost),
        Ms(Duration::from_nanos(min)),
        Ms(Duration::from_nanos(avg))
    )
}

fn run_checks() -> Vec<Outcome> {
    CHECKS
        .iter()
        .map(|(name, check)| Outcome {
            name,
            result: match *check {
                Check::Ping(addr) => ping(addr, 3).map(|(r, lost)| ping_detail(&r, lost)),
                Check::Tcp(listen, target) => tcp(listen, target)
                    .map(|c| format!("256 KiB echoed intact, connect {} ms", Ms(c))),
            },
        })
        .collect()
}

/// Runs the self-test; the exit status is 0 only if everything passed.
pub fn main() -> ExitCode {
    crate::outln!("tunbox {} self-test", env!("CARGO_PKG_VERSION"));
    let mut missing = false;
    for (what, res) in prerequisites() {
        match res {
            Ok(()) => crate::outln!("  ok       {what}"),
            Err(e) => {
                crate::outln!("  MISSING  {what}: {e}");
                missing = true;
            }
        }
    }
    if missing {
        crate::outln!("FAILED: prerequisites missing (see above); nothing else was tried");
        return ExitCode::from(1);
    }
    if let Err(e) = crate::sys::process::unshare_net() {
        crate::outln!("FAILED: cannot create a network namespace: {e}");
        return ExitCode::from(1);
    }
    let setup = (|| -> Result<_, String> {
        Rtnl::new()
            .and_then(|nl| nl.set_up("lo", true))
            .map_err(|e| e.msg)?;
        let opts = ReflectOptions {
            dev: "tbxself0".into(),
            mode: Mode::Tun,
            addresses: vec![
                ("198.18.0.1".parse().unwrap(), 15),
                ("2001:2::1".parse().unwrap(), 48),
            ],
            ..Default::default()
        };
        reflect::open_device(&opts).map_err(|e| e.msg)
    })();
    let tun = match setup {
        Ok(t) => t,
        Err(e) => {
            crate::outln!("FAILED: setting up the reflector in the namespace: {e}");
            return ExitCode::from(1);
        }
    };
    crate::outln!(
        "  ok       reflector on {} in a throwaway namespace",
        tun.name()
    );
    let worker = spawn_child(&mut |me| {
        let mut buf = vec![0u8; BUF_SIZE];
        let mut st = LoopState::new(tun.name(), false);
        let res = reflect::run_loop(
            &mut TunIo(&tun),
            &mut TunReflector::default(),
            &mut buf,
            &mut st,
            &|| me.stop_requested(),
        );
        if let Err(e) = &res {
            let _ = writeln!(me.report, "  reflector loop failed: {e}");
        }
        let _ = write!(me.report, "  reflector: {}", st.stats.summary());
        res.is_ok()
    });
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            crate::outln!("FAILED: starting the reflector: {e}");
            return ExitCode::from(1);
        }
    };
    drop(tun);
    let outcomes = run_checks();
    let (loop_ok, loop_report) = worker.finish();
    crate::outln!();
    crate::outln!("  {:<28} {:<6} detail", "check", "result");
    let mut failed = 0;
    for o in &outcomes {
        match &o.result {
            Ok(d) => crate::outln!("  {:<28} {:<6} {d}", o.name, "pass"),
            Err(e) => {
                failed += 1;
                crate::outln!("  {:<28} {:<6} {e}", o.name, "FAIL");
            }
        }
    }
    if !loop_ok {
        failed += 1;
    }
    if loop_report.is_empty() {
        crate::outln!("  reflector process ended without a report");
    } else {
        crate::outln!("{}", loop_report.trim_end());
    }
    if failed == 0 {
        crate::outln!("PASSED: {} of {} checks", outcomes.len(), outcomes.len());
        ExitCode::SUCCESS
    } else {
        crate::outln!("FAILED: {failed} check(s) failed");
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::{ping_detail, Ms};
    use std::time::Duration;

    #[test]
    fn milliseconds_print_with_three_decimals() {
        assert_eq!(Ms(Duration::from_micros(25)).to_string(), "0.025");
        assert_eq!(Ms(Duration::from_micros(1_234_567)).to_string(), "1234.567");
        assert_eq!(Ms(Duration::from_nanos(999)).to_string(), "0.000");
        assert_eq!(Ms(Duration::from_millis(3)).to_string(), "3.000");
    }

    #[test]
    fn ping_detail_gives_replies_min_and_average() {
        let rtts = [25_000, 35_000, 40_001].map(Duration::from_nanos);
        assert_eq!(
            ping_detail(&rtts, 1),
            "3/4 replies, rtt min 0.025 ms avg 0.033 ms"
        );
        let slow = [Duration::from_millis(1500), Duration::from_micros(2500)];
        assert_eq!(
            ping_detail(&slow, 0),
            "2/2 replies, rtt min 2.500 ms avg 751.250 ms"
        );
    }
}
