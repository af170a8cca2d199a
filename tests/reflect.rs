//! The TUN reflector, for real, in namespaces the tests create (needs root).
mod common;
use common::*;

fn start_reflector(ns: &mut Netns, extra: &[&str]) -> Spawned {
    let mut args = vec![
        "reflect",
        "--dev",
        "tun0",
        "--address",
        "198.18.0.1/15",
        "--address",
        "2001:2::1/48",
    ];
    args.extend_from_slice(extra);
    let r = ns.spawn_tunbox(&args, &[]);
    assert!(
        r.wait_log("reflecting on tun0", 5) && ns.wait_dev("tun0", 5),
        "reflector did not start: {}",
        r.log()
    );
    r
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn ping_and_tcp_v4_v6_then_clean_exit() {
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("refl");
    let r = start_reflector(&mut ns, &[]);
    for addr in [
        "198.18.0.41",
        "198.19.255.1",
        "2001:2::41",
        "2001:2:0:ffff::1",
    ] {
        let (got, out) = ping(&ns, addr, 3);
        assert_eq!(
            got,
            3,
            "ping {addr} through the reflector:\n{out}\n{}",
            r.log()
        );
    }
    let len = 1 << 20;
    let back = tcp_echo_through(&ns, "0.0.0.0:7777", "198.18.7.7:7777", len);
    let want = echo_pattern(len);
    assert!(back == want, "TCP v4 data came back changed");
    let back = tcp_echo_through(&ns, "[::]:7778", "[2001:2::7]:7778", len);
    assert!(back == want, "TCP v6 data came back changed");
    assert_eq!(
        r.status_field("CapEff").as_deref(),
        Some("0000000000000000"),
        "every capability dropped once the device is up"
    );
    assert_eq!(
        ns.stop(r.pid),
        Some(0),
        "SIGTERM ends with status 0: {}",
        r.log()
    );
    let log = r.log();
    assert!(log.contains("tun0: rx "), "counters at exit: {log}");
}

/// Writes raw bytes into the tun device through an AF_PACKET socket, as if the
/// kernel had routed them there: the reflector reads exactly these bytes.
fn inject(ns: &Netns, dev: &'static str, pkts: Vec<Vec<u8>>) {
    ns.within(move || {
        let idx = nix::net::if_::if_nametoindex(dev).expect("ifindex");
        // SAFETY: plain socket calls with a zeroed, filled-in sockaddr_ll.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0);
            assert!(fd >= 0, "AF_PACKET socket");
            for p in &pkts {
                let mut sa: libc::sockaddr_ll = std::mem::zeroed();
                sa.sll_family = libc::AF_PACKET as u16;
                sa.sll_protocol = (libc::ETH_P_IP as u16).to_be();
                sa.sll_ifindex = idx as i32;
                let n = libc::sendto(
                    fd,
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    (&sa as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(n, p.len() as isize, "inject {} bytes", p.len());
            }
            libc::close(fd);
        }
    })
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn malformed_packets_counted_and_dropped_reflector_keeps_working() {
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("bad");
    let r = start_reflector(&mut ns, &[]);
    let mut too_long = vec![0x45u8, 0, 0, 99];
    too_long.resize(40, 0);
    inject(
        &ns,
        "tun0",
        vec![
            vec![0x45, 0, 0], // truncated
            vec![0x75; 40],   // version 7
            vec![0x41; 40],   // IPv4 header length 4 bytes
            too_long,         // length field 99, read 40
        ],
    );
    let (got, out) = ping(&ns, "198.18.0.99", 2);
    assert_eq!(got, 2, "still reflecting after garbage: {out}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    );
    assert!(
        r.wait_log(
            "(truncated=1 bad_version=1 bad_header=1 length_mismatch=1",
            5
        ),
        "drops by reason on SIGUSR1: {}",
        r.log()
    );
    assert!(
        r.log().contains("dropped a 3-byte packet: truncated"),
        "{}",
        r.log()
    );
    assert_eq!(ns.stop(r.pid), Some(0));
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn run_section_from_uci_with_env_override() {
    if !need_root() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tbx-uci-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("tunbox");
    std::fs::write(
        &conf,
        "config reflect 'lab'\n\
         \toption dev 'tunfile'\n\
         \tlist address '198.18.0.1/15'\n\
         \tlist address '2001:2::1/48'\n",
    )
    .unwrap();
    let mut ns = Netns::new("uci");
    let conf_s = conf.to_str().unwrap().to_string();
    let r = ns.spawn_tunbox(
        &["run", "lab"],
        &[("TUNBOX_CONFIG", &conf_s), ("TUNBOX_DEV", "tunenv")],
    );
    assert!(
        r.wait_log("reflecting on tunenv", 5) && ns.wait_dev("tunenv", 5),
        "env TUNBOX_DEV overrides the file's dev: {}",
        r.log()
    );
    let (got, out) = ping(&ns, "2001:2::5", 2);
    assert_eq!(got, 2, "{out}");
    assert_eq!(ns.stop(r.pid), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kernel's own multicast (router solicitations, MLD) is routine: its drops are
/// logged as information, not warnings. Deleting the device under a running reflector
/// (as `tunbox bridge down` does to its tap) ends it with one line saying so, not an
/// error about the read twice.
#[test]
fn routine_drops_are_info_and_a_deleted_device_ends_the_reflector_once() {
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("gone");
    let r = start_reflector(&mut ns, &[]);
    // UDP to 224.0.0.251 (mDNS) from an address of the device's range
    let mut mcast = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 5, 224, 0, 0, 251,
    ];
    let sum = mcast
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    mcast[10..12].copy_from_slice(&sum.to_be_bytes());
    mcast.extend_from_slice(&[0x14, 0xe9, 0x14, 0xe9, 0, 8, 0, 0]);
    inject(&ns, "tun0", vec![mcast]);
    assert!(
        r.wait_log("dropped a 28-byte packet: multicast", 5),
        "{}",
        r.log()
    );
    let log = r.log();
    for line in log.lines().filter(|l| l.contains("multicast")) {
        assert!(
            !line.starts_with("warning:") && !line.contains("tunbox: "),
            "routine drop logged as a warning (or with the program name on a pipe): {line}"
        );
    }
    ns.ip("link del tun0");
    assert!(r.wait_log("went away", 5), "{}", r.log());
    let status = ns.stop(r.pid);
    let log = r.log();
    assert_eq!(status, Some(1), "{log}");
    assert_eq!(
        log.matches("device tun0 went away (deleted?)").count(),
        1,
        "{log}"
    );
    assert!(log.matches("Bad address").count() <= 1, "{log}");
    assert!(log.contains("tun0: rx "), "counters at exit: {log}");
}

/// `--verbose` is rate-limited and says how many per-packet lines it held back.
#[test]
fn verbose_says_how_many_lines_it_suppressed() {
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("verb");
    let r = start_reflector(&mut ns, &["--verbose"]);
    // 60 echo requests in about 0.1 s: more than the 20-line burst
    let out = ns.run(
        10,
        "ping",
        &["-c", "60", "-i", "0.002", "-W", "1", "-q", "198.18.0.77"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(ns.stop(r.pid), Some(0));
    let log = r.log();
    let shown = log.lines().filter(|l| l.contains("198.18.0.77")).count();
    let held: u32 = log
        .lines()
        .filter_map(|l| {
            l.split_once(": --verbose: ")?
                .1
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .sum();
    assert!(held > 0, "{log}");
    // every request read was either shown or counted as held back (the kernel's own
    // packets on the new device may add a few lines of their own)
    assert!(
        shown as u32 + held >= 60,
        "shown {shown}, held {held}: {log}"
    );
    assert!(shown < 60, "{log}");
}

/// An IPv4 UDP packet with a correct header checksum (the kernel checks it before
/// forwarding) from `src` to `dst`, TTL 64.
fn udp_v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0, // ver/ihl .. proto, checksum
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, 0, 9, 0, 0, b'x']);
    let mut sum = 0u32;
    for w in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// With forwarding on, a packet between two non-local addresses of the device's own
/// prefix would be reflected, routed back into the device and reflected again until
/// its TTL runs out. The loop guard drops it once, as `would_loop`; the host's own
/// traffic through the reflector still works.
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn forwarding_on_a_spoofed_packet_is_reflected_once_not_looped() {
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("loop");
    ns.run(5, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    ns.run(5, "sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=0"]);
    let fwd = ns.run(5, "cat", &["/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(
        String::from_utf8_lossy(&fwd.stdout).trim(),
        "1",
        "forwarding on"
    );
    let r = ns.spawn_tunbox(
        &["reflect", "--dev", "tun0", "--address", "198.18.0.1/24"],
        &[],
    );
    assert!(
        r.wait_log("reflecting on tun0", 5) && ns.wait_dev("tun0", 5),
        "reflector did not start: {}",
        r.log()
    );
    inject(&ns, "tun0", vec![udp_v4([198, 18, 0, 5], [198, 18, 0, 6])]);
    let (got, out) = ping(&ns, "198.18.0.9", 2);
    assert_eq!(got, 2, "the host's own pings still come back: {out}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    );
    assert!(
        r.wait_log("would_loop=1", 5),
        "counted as its own reason: {}",
        r.log()
    );
    // 1 spoofed packet + 2 echo requests (+ the odd IPv6 router solicitation), not
    // the 60-odd reads of a looping packet.
    let log = r.log();
    let rx: u64 = log
        .lines()
        .rev()
        .filter_map(|l| l.split("tun0: rx ").nth(1))
        .find_map(|t| t.split_whitespace().next()?.parse().ok())
        .expect("summary line");
    assert!(
        (3..=8).contains(&rx),
        "read once, not again and again: {log}"
    );
    assert_eq!(ns.stop(r.pid), Some(0));
}

/// Reads the summed counters a reflector logs on SIGUSR1 and returns its super-packet
/// count (waiting for a line newer than the `seen` ones).
fn super_packets_after_usr1(r: &Spawned, seen: usize) -> (u64, String) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let log = r.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("super-packets"))
            .collect();
        if lines.len() > seen {
            let n = lines[lines.len() - 1]
                .split("super-packets ")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.parse().ok())
                .expect("a number after super-packets");
            return (n, log);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no counter line on SIGUSR1: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The offload path is really used: a TCP transfer through the reflector reads TCP
/// super-packets larger than the MTU (counted as super-packets) and the data comes
/// back intact, over IPv4 and IPv6, with one queue and with several.
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tcp_goes_through_as_super_packets_intact() {
    if !need_root() {
        return;
    }
    for queues in ["1", "3"] {
        let mut ns = Netns::new("gso");
        let r = start_reflector(&mut ns, &["--queues", queues, "--mtu", "1400"]);
        assert!(
            r.wait_log(&format!("; queues {queues}"), 5),
            "start line says what was detected: {}",
            r.log()
        );
        let log = r.log();
        assert!(
            log.contains("tun0: offloads: csum on, tso4 on, tso6 on"),
            "this kernel has TSO on tun: {log}"
        );
        let (before, _) = super_packets_after_usr1(&r, 0);
        let len = 4 << 20;
        let want = echo_pattern(len);
        let back = tcp_echo_through(&ns, "0.0.0.0:7781", "198.18.9.9:7781", len);
        assert!(
            back == want,
            "TCP v4 data came back changed ({queues} queues)"
        );
        let (v4, _) = super_packets_after_usr1(&r, 1);
        assert!(
            v4 > before,
            "a 4 MiB transfer read super-packets ({queues} queues): {before} -> {v4}\n{}",
            r.log()
        );
        let back = tcp_echo_through(&ns, "[::]:7782", "[2001:2::9]:7782", len);
        assert!(
            back == want,
            "TCP v6 data came back changed ({queues} queues)"
        );
        let (v6, _) = super_packets_after_usr1(&r, 2);
        assert!(v6 > v4, "IPv6 super-packets too: {v4} -> {v6}\n{}", r.log());
        assert_eq!(
            ns.stop(r.pid),
            Some(0),
            "SIGTERM ends every thread: {}",
            r.log()
        );
        let log = r.log();
        let last = log
            .lines()
            .rfind(|l| l.starts_with("tun0: rx ") || l.contains(" tun0: rx "))
            .unwrap_or_default()
            .to_string();
        assert!(last.contains("super-packets"), "counters at exit: {log}");
    }
}

/// A persistent single-queue device (as `tunbox mktun` makes) cannot take more queues:
/// the reflector says so and runs on the one queue.
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn existing_single_queue_device_falls_back_to_one_queue() {
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("mq1");
    ns.ip("tuntap add dev tun0 mode tun");
    let r = start_reflector(&mut ns, &["--queues", "2"]);
    assert!(r.wait_log("; queues 1", 5), "{}", r.log());
    let (got, out) = ping(&ns, "198.18.0.77", 2);
    assert_eq!(got, 2, "{out}\n{}", r.log());
    assert_eq!(ns.stop(r.pid), Some(0), "{}", r.log());
}

/// Offloads stay on a persistent device after its reader is gone: the reflector turns
/// them off at exit, so a later reader without the virtio header (the C reference,
/// `tunbox tunnel`) is not handed TCP super-packets.
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn offloads_are_off_again_for_the_next_plain_reader() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tunbox::sys::tun::{Mode, Tun};
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("plain");
    ns.ip("tuntap add dev tun0 mode tun");
    let r = start_reflector(&mut ns, &["--queues", "1"]);
    assert!(r.wait_log("tso4 on", 5), "{}", r.log());
    assert_eq!(ns.stop(r.pid), Some(0), "{}", r.log());
    // a plain reflector of our own on the persistent device (address and link kept)
    let tun = ns.within(|| Tun::open("tun0", Mode::Tun).expect("attach tun0"));
    tun.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let plain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut biggest = 0;
        while !stop2.load(Ordering::Relaxed) {
            match tun.read(&mut buf) {
                Ok(n) => {
                    biggest = biggest.max(n);
                    if tunbox::wire::ip::reflect(&mut buf[..n]).is_ok() {
                        let _ = tun.write(&buf[..n]);
                    }
                }
                Err(_) => {
                    let _ = tunbox::sys::poll_in(std::os::fd::AsFd::as_fd(&tun), 100);
                }
            }
        }
        biggest
    });
    let len = 1 << 20;
    let back = tcp_echo_through(&ns, "0.0.0.0:7791", "198.18.9.9:7791", len);
    stop.store(true, Ordering::Relaxed);
    let biggest = plain.join().unwrap();
    assert!(back == echo_pattern(len), "TCP data came back changed");
    assert!(
        biggest <= 1500,
        "a plain reader got a {biggest}-byte packet: offloads were left on"
    );
}
