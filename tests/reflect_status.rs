//! `tunbox status` for reflectors (needs root): a TUN reflector with two queues, a
//! plain one and a tunnel in one namespace, each serving its document on
//! `<run dir>/DEV.status`; the run directory is the namespace's own (a test-hooks
//! build), never the shared /var/run/tunbox. The TAP reflector's status is tested in
//! tests/tap.rs, on its LAN.
mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

/// The run directory of the tunbox processes started in `ns` (see `spawn_tunbox`).
/// `tunbox status ARGS` in `ns` with the run directory of `ns`: (exit code, stdout, stderr).
fn status(ns: &Netns, args: &[&str]) -> (Option<i32>, String, String) {
    let out = ns.tunbox_status(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON document of device `name`.
fn status_json(ns: &Netns, name: &str) -> serde_json::Value {
    let (code, out, err) = status(ns, &[name, "--json"]);
    assert_eq!(code, Some(0), "status {name}: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    v[0].clone()
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"))
}

/// Sends `per` UDP datagrams from each of `flows` sockets on 198.18.0.1 to
/// 198.18.5.N:9000 (one destination and source port per flow, so the flows spread over
/// the queues); the reflector swaps the addresses, not the ports, so each comes back to
/// a listener on 198.18.0.1:9000. Returns the datagrams that came back.
fn udp_flows(ns: &Netns, flows: u8, per: usize) -> usize {
    ns.within(move || {
        let rx = std::net::UdpSocket::bind("198.18.0.1:9000").expect("bind 9000");
        rx.set_read_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        let mut back = 0;
        let mut buf = [0u8; 256];
        for i in 0..flows {
            let s = std::net::UdpSocket::bind("198.18.0.1:0").expect("bind");
            for _ in 0..per {
                s.send_to(&[0x5a; 64], format!("198.18.5.{}:9000", i + 1))
                    .expect("send");
            }
            // drain as we go: the listener's buffer holds a few hundred at most
            while back < (i as usize + 1) * per {
                match rx.recv_from(&mut buf) {
                    Ok(_) => back += 1,
                    Err(_) => break,
                }
            }
        }
        back
    })
}

fn nobody() -> (u32, u32) {
    let u = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody");
    (u.uid.as_raw(), u.gid.as_raw())
}

#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "the run directory is only test-overridable with --features test-hooks"
)]
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn reflectors_serve_growing_counters_beside_a_tunnel() {
    if !need_root() {
        return;
    }
    let mut ns = Netns::new("rstat");
    let dir = ns.run_dir();
    std::fs::create_dir_all(&dir).unwrap();
    // A socket file left by a reflector that was killed: replaced at start.
    let stale = dir.join("tun0.status");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());

    let r = ns.spawn_tunbox(
        &[
            "reflect",
            "--dev",
            "tun0",
            "--address",
            "198.18.0.1/16",
            "--queues",
            "2",
            "--user",
            "nobody",
        ],
        &[],
    );
    assert!(
        r.wait_log("; queues 2", 5) && ns.wait_dev("tun0", 5),
        "reflector did not start with 2 queues: {}",
        r.log()
    );
    // A second reflector (one queue, no --user) and a tunnel in the same namespace.
    let r1 = ns.spawn_tunbox(
        &[
            "reflect",
            "--dev",
            "tun1",
            "--address",
            "198.19.0.1/24",
            "--queues",
            "1",
        ],
        &[],
    );
    assert!(r1.wait_log("; queues 1", 5), "{}", r1.log());
    let t = ns.spawn_tunbox(
        &["tunnel", "--listen", "5555", "--plaintext", "--dev", "t0"],
        &[],
    );
    assert!(t.wait_log("tunnel on t0", 5), "{}", t.log());
    assert!(
        !r.log().contains("no status socket"),
        "the stale socket was replaced: {}",
        r.log()
    );

    // The socket: mode 0600, owned by the service user (made before dropping root).
    let md = std::fs::metadata(&stale).expect("tun0.status");
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    assert_eq!((md.uid(), md.gid()), nobody(), "owned by --user nobody");

    let a = status_json(&ns, "tun0");
    assert_eq!(a["version"], 1);
    assert_eq!(a["tool"], "reflect");
    assert_eq!(a["device"], "tun0");
    assert_eq!(num(&a, "pid"), u64::from(r.pid));
    assert_eq!(a["mode"], "tun");
    assert_eq!(num(&a, "queues"), 2);
    let offloads = a["offloads"].as_array().expect("offloads");
    assert!(offloads.iter().any(|o| o == "csum"), "{a}");
    assert_eq!(a["addresses"], serde_json::json!(["198.18.0.1/16"]));
    assert_eq!(a["ranges"], serde_json::json!([]));
    assert_eq!(a["excluded"], serde_json::json!([]));
    assert!(a["mac"].is_null() && a["replies"].is_null() && a["ignored"].is_null());
    assert_eq!(a["icmp_echo"], false);
    assert!(num(&a, "uptime_secs") < 60);
    for k in ["tx_errors", "super_packets", "rx_bytes", "tx_bytes"] {
        num(&a, k);
    }
    let drops = a["drops"].as_object().expect("drops");
    for k in [
        "truncated",
        "bad_version",
        "bad_header",
        "length_mismatch",
        "multicast",
        "broadcast",
        "unspecified",
        "not_for_us",
        "would_loop",
    ] {
        assert!(drops[k].is_u64(), "drops.{k}: {a}");
    }

    // 16 flows x 25 datagrams, over both queues: the counters are every thread's,
    // as of the moment of the query.
    let (flows, per) = (16u8, 25usize);
    let back = udp_flows(&ns, flows, per);
    let sent = flows as u64 * per as u64;
    assert_eq!(back as u64, sent, "every datagram came back: {}", r.log());
    let b = status_json(&ns, "tun0");
    for k in ["rx_packets", "tx_packets"] {
        assert!(
            num(&b, k) >= num(&a, k) + sent,
            "{k}: {} -> {} after {sent} datagrams",
            num(&a, k),
            num(&b, k)
        );
    }
    assert!(num(&b, "tx_bytes") >= num(&a, "tx_bytes") + sent * (20 + 8 + 64));
    // Nothing but these datagrams (and the kernel's own multicast) went through.
    assert!(
        num(&b, "rx_packets") < num(&a, "rx_packets") + sent + 50,
        "{b}"
    );

    // All of them, sorted by device; the human form.
    let (code, out, err) = status(&ns, &["--json"]);
    assert_eq!(code, Some(0), "{err}");
    let all: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let kinds: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["device"].as_str().unwrap(), d["tool"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("t0", "tunnel"), ("tun0", "reflect"), ("tun1", "reflect")]
    );
    let (code, text, err) = status(&ns, &["tun0"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.starts_with("reflect tun0: tun, queues 2, pid "),
        "{text}"
    );
    for want in [
        "  addresses: 198.18.0.1/16\n",
        "  offloads: csum",
        &format!("  rx: {} packets, ", num(&b, "rx_packets")),
        "  super-packets: ",
    ] {
        assert!(text.contains(want), "'{want}' in:\n{text}");
    }
    let (_, text, _) = status(&ns, &[]);
    assert!(
        text.contains("tunnel t0: tun, udp, server listening on")
            && text.contains("reflect tun0:")
            && text.contains("reflect tun1: tun, queues 1"),
        "{text}"
    );
    let (code, _, err) = status(&ns, &["tun9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("tun9: no tunnel or reflector"), "{err}");

    // SIGUSR1 still logs the counters (the same hand-over from the threads).
    let lines = |r: &Spawned| r.log().matches("tun0: rx ").count();
    let before = lines(&r);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    );
    let t0 = std::time::Instant::now();
    while lines(&r) == before && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        lines(&r),
        before + 1,
        "a counter line on SIGUSR1: {}",
        r.log()
    );

    // At exit the socket goes (a reflector still root); with --user it cannot remove
    // it from root's directory: it stays, refuses connections and is not listed.
    let sock1 = dir.join("tun1.status");
    assert!(sock1.exists());
    assert_eq!(ns.stop(r1.pid), Some(0), "{}", r1.log());
    assert!(!sock1.exists(), "tun1.status removed at exit");
    assert_eq!(ns.stop(r.pid), Some(0), "{}", r.log());
    let (code, out, _) = status(&ns, &["--json"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("\"tool\":\"tunnel\"") && !out.contains("\"tool\":\"reflect\""),
        "{out}"
    );
    let (code, _, err) = status(&ns, &["tun0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("tun0: not running"), "{err}");
    ns.stop(t.pid);
    let _ = std::fs::remove_dir_all(&dir);
}
