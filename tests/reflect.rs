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
