//! A hub with three spokes (needs root; namespaces made here). Each spoke has its own key
//! and a LAN namespace behind it (pings go from the spoke's LAN address); the hub's `config peer` sections give each
//! spoke's routes, the spokes' `--route` the LANs behind the hub. No `ip route` here:
//! every route comes from tunbox.
//!
//! Underlay: hub 198.19.1N.1/24 <-> spoke N 198.19.1N.2/24 (one veth per spoke).
//! Tunnel: hub 198.19.0.1/24, spoke N 198.19.0.1N/32. LAN of spoke N: 198.18.1N.1/24.
mod common;
use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tunnel-peers-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn genkey(name: &str) -> PathBuf {
    let p = dir().join(name);
    let _ = std::fs::remove_file(&p);
    let out = Command::new(TUNBOX)
        .args(["genkey", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    p
}

struct Hub {
    // Children before namespaces.
    hub: Option<Spawned>,
    spokes: Vec<Option<Spawned>>,
    hub_ns: Netns,
    spoke_ns: Vec<Netns>,
    /// Behind each spoke (its LAN side is the spoke's lan0 address).
    _lans: Vec<Netns>,
    keys: Vec<PathBuf>,
    conf: PathBuf,
}

impl Hub {
    /// `tag` keeps the key and config files of tests running at once apart.
    fn new(tag: &str) -> Hub {
        let hub_ns = Netns::new("hub");
        let out = hub_ns.run(5, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        assert!(out.status.success());
        let mut spoke_ns = Vec::new();
        let mut keys = Vec::new();
        let mut lans = Vec::new();
        for i in 0..3 {
            let ns = Netns::new(&format!("sp{i}"));
            veth(&hub_ns, &format!("u{i}"), &ns, "u");
            hub_ns.ip(&format!("addr add 198.19.1{i}.1/24 dev u{i}"));
            ns.ip(&format!("addr add 198.19.1{i}.2/24 dev u"));
            let lan = Netns::new(&format!("lan{i}"));
            veth(&ns, "lan0", &lan, "eth0");
            ns.ip(&format!("addr add 198.18.1{i}.1/24 dev lan0"));
            lan.ip(&format!("addr add 198.18.1{i}.2/24 dev eth0"));
            spoke_ns.push(ns);
            lans.push(lan);
            keys.push(genkey(&format!("{tag}-spoke{i}.key")));
        }
        let conf = dir().join(format!("{tag}.conf"));
        let mut h = Hub {
            hub: None,
            spokes: vec![None, None, None],
            hub_ns,
            spoke_ns,
            _lans: lans,
            keys,
            conf,
        };
        h.write_conf(&[0, 1, 2]);
        h.start_hub();
        for i in 0..3 {
            h.start_spoke(i);
        }
        for i in 0..3 {
            h.wait_session(i);
        }
        h
    }

    /// The hub's UCI file with the peers `with`.
    fn write_conf(&self, with: &[usize]) {
        let mut t = String::from(
            "config tunnel 'hub'\n\toption listen '5555'\n\toption dev 'hub0'\n\
             \tlist address '198.19.0.1/24'\n\toption keepalive '1'\n\toption timeout '3'\n",
        );
        for &i in with {
            t += &format!(
                "config peer 'spoke{i}'\n\toption tunnel 'hub'\n\toption key_file '{}'\n\
                 \tlist route '198.19.0.1{i}/32'\n\tlist route '198.18.1{i}.0/24'\n",
                self.keys[i].display()
            );
        }
        std::fs::write(&self.conf, t).unwrap();
    }

    fn start_hub(&mut self) {
        let conf = self.conf.to_str().unwrap().to_string();
        let s = self
            .hub_ns
            .spawn_tunbox(&["tunnel", "--section", "hub"], &[("TUNBOX_CONFIG", &conf)]);
        assert!(s.wait_log("tunnel on hub0", 5), "hub: {}", s.log());
        self.hub = Some(s);
    }

    fn stop_hub(&mut self) {
        let pid = self.hub.take().unwrap().pid;
        self.hub_ns.stop(pid);
    }

    /// Spokes 0 and 1 from the command line; spoke 2 from a UCI file whose one peer
    /// section names the hub (`option endpoint`).
    fn start_spoke(&mut self, i: usize) {
        let key = self.keys[i].to_str().unwrap().to_string();
        let remote = format!("198.19.1{i}.1:5555");
        let addr = format!("198.19.0.1{i}/32");
        if i == 2 {
            let conf = self.conf.with_extension("spoke2");
            let text = format!(
                "config tunnel 'site'\n\toption dev 'sp0'\n\tlist address '{addr}'\n\
                 \toption keepalive '1'\n\toption timeout '3'\n\
                 config peer 'hub'\n\toption tunnel 'site'\n\toption endpoint '{remote}'\n\
                 \toption key_file '{key}'\n\tlist route '198.19.0.0/24'\n\
                 \tlist route '198.18.0.0/16'\n"
            );
            std::fs::write(&conf, text).unwrap();
            let conf = conf.to_str().unwrap().to_string();
            let s = self.spoke_ns[i].spawn_tunbox(
                &["tunnel", "--section", "site"],
                &[("TUNBOX_CONFIG", &conf)],
            );
            assert!(s.wait_log("tunnel on sp0", 5), "spoke {i}: {}", s.log());
            self.spokes[i] = Some(s);
            return;
        }
        let s = self.spoke_ns[i].spawn_tunbox(
            &[
                "tunnel",
                "--remote",
                &remote,
                "--key-file",
                &key,
                "--dev",
                "sp0",
                "--address",
                &addr,
                "--route",
                "198.19.0.0/24",
                "--route",
                "198.18.0.0/16",
                "--keepalive",
                "1",
                "--timeout",
                "3",
            ],
            &[],
        );
        assert!(s.wait_log("tunnel on sp0", 5), "spoke {i}: {}", s.log());
        self.spokes[i] = Some(s);
    }

    fn hub_log(&self) -> String {
        self.hub.as_ref().unwrap().log()
    }

    fn wait_session(&self, i: usize) {
        let s = self.spokes[i].as_ref().unwrap();
        assert!(
            s.wait_log("session up", 10),
            "spoke {i}: {}\nhub: {}",
            s.log(),
            self.hub_log()
        );
    }

    /// Ping from spoke `from`'s LAN address to spoke `to`'s LAN address.
    fn lan_ping(&self, from: usize, to: usize, count: u32) -> (u32, String) {
        let out = self.spoke_ns[from].run(
            count + 5,
            "ping",
            &[
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                "-I",
                &format!("198.18.1{from}.1"),
                &format!("198.18.1{to}.1"),
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let n = text
            .lines()
            .find_map(|l| {
                l.split(", ")
                    .find(|p| p.ends_with("received"))
                    .and_then(|p| p.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0);
        (n, text)
    }

    /// The hub's counters line after SIGUSR1.
    fn hub_counters(&self) -> String {
        let h = self.hub.as_ref().unwrap();
        // The line of all peers together (each peer's follows it).
        let before = h.log().matches("hub0: rx ").count();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(h.pid as i32),
            nix::sys::signal::Signal::SIGUSR1,
        );
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            let log = h.log();
            if log.matches("hub0: rx ").count() > before {
                return log
                    .lines()
                    .rev()
                    .find(|l| l.contains("hub0: rx "))
                    .unwrap()
                    .into();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no counters after SIGUSR1: {}", h.log());
    }
}

fn drop_count(line: &str, reason: &str) -> u64 {
    line.split([' ', '(', ')'])
        .find_map(|w| w.strip_prefix(&format!("{reason}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn hub_routes_between_spoke_lans_checks_sources_and_revokes_one_key() {
    if !need_root() {
        return;
    }
    let mut h = Hub::new("routes");
    // Routes from the configuration, on both ends.
    let routes = h.hub_ns.ip_out(&["route", "show", "dev", "hub0"]);
    for i in 0..3 {
        assert!(routes.contains(&format!("198.18.1{i}.0/24")), "{routes}");
    }
    let routes = h.spoke_ns[0].ip_out(&["route", "show", "dev", "sp0"]);
    assert!(routes.contains("198.18.0.0/16"), "{routes}");
    // Every LAN reaches every other LAN through the hub.
    for (a, b) in [(0, 1), (1, 2), (2, 0), (0, 2)] {
        let (n, text) = h.lan_ping(a, b, 3);
        assert!(n >= 2, "LAN {a} -> LAN {b}: {text}\nhub: {}", h.hub_log());
    }
    // Spoke 2 sends with spoke 0's LAN source: dropped at the hub and counted.
    let before = drop_count(&h.hub_counters(), "inner_source");
    h.spoke_ns[2].ip("addr add 198.18.10.99/32 dev lan0");
    let out = h.spoke_ns[2].run(
        8,
        "ping",
        &[
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            "198.18.10.99",
            "198.19.0.1",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" 0 received"),
        "spoofed source answered"
    );
    let after = drop_count(&h.hub_counters(), "inner_source");
    assert!(after >= before + 3, "inner_source {before} -> {after}");

    // Spoke 1's key removed, hub restarted: spoke 1 is out, the others are fine.
    h.stop_hub();
    h.write_conf(&[0, 2]);
    h.start_hub();
    let t0 = Instant::now();
    let mut ok = false;
    while t0.elapsed() < Duration::from_secs(20) && !ok {
        ok = h.lan_ping(0, 2, 1).0 == 1;
    }
    assert!(ok, "spokes 0 and 2 not back: {}", h.hub_log());
    let (n, _) = h.lan_ping(1, 0, 3);
    assert_eq!(n, 0, "revoked spoke 1 still gets through");
    let (n, text) = h.lan_ping(2, 0, 3);
    assert!(n >= 2, "{text}");
    // The routes go with the hub (removed at exit, or with its device).
    h.stop_hub();
    let routes = h.hub_ns.ip_out(&["route", "show"]);
    assert!(!routes.contains("198.18.10.0/24"), "{routes}");
}

/// A server namespace with `n` client namespaces, each on its own veth:
/// server 198.19.2N.1/24 <-> client N 198.19.2N.2/24.
fn star(tag: &str, n: usize) -> (Netns, Vec<Netns>) {
    let srv = Netns::new(&format!("{tag}s"));
    let mut cls = Vec::new();
    for i in 0..n {
        let c = Netns::new(&format!("{tag}c{i}"));
        veth(&srv, &format!("v{i}"), &c, "v");
        srv.ip(&format!("addr add 198.19.2{i}.1/24 dev v{i}"));
        c.ip(&format!("addr add 198.19.2{i}.2/24 dev v"));
        cls.push(c);
    }
    (srv, cls)
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[cfg_attr(
    all(tunbox_qemu, any(target_arch = "mips", target_arch = "mips64")),
    ignore = "qemu-user 7.2 hands SO_ERROR's errno to a mips guest untranslated, so a refused TCP connect is not recognised"
)]
#[test]
fn wrong_key_mode_or_transport_the_client_says_the_likely_cause() {
    if !need_root() {
        return;
    }
    let (mut srv, mut cls) = star("diag", 3);
    let key = genkey("diag.key");
    let other = genkey("diag-other.key");
    let (k, o) = (key.to_str().unwrap(), other.to_str().unwrap());
    let s = srv.spawn_tunbox(
        &["tunnel", "--listen", "5555", "--key-file", k, "--dev", "t0"],
        &[],
    );
    assert!(s.wait_log("tunnel on t0", 5), "{}", s.log());
    let client = |ns: &mut Netns, i: usize, extra: &[&str], key: &str| {
        let remote = format!("198.19.2{i}.1:5555");
        let mut args = vec![
            "tunnel",
            "--remote",
            &remote,
            "--key-file",
            key,
            "--dev",
            "t0",
        ];
        args.extend_from_slice(extra);
        ns.spawn_tunbox(&args, &[])
    };
    let wrong_key = client(&mut cls[0], 0, &[], o);
    let wrong_mode = client(&mut cls[1], 1, &["--mode", "tap"], k);
    let wrong_transport = client(&mut cls[2], 2, &["--transport", "tcp"], k);
    for (c, what) in [(&wrong_key, "key"), (&wrong_mode, "mode")] {
        assert!(
            c.wait_log("Likely causes: the key or --mode differs", 15),
            "wrong {what}: {}",
            c.log()
        );
    }
    assert!(
        wrong_transport.wait_log(
            "refused: is the server running, and using --transport tcp?",
            10
        ),
        "{}",
        wrong_transport.log()
    );
    assert!(
        s.wait_log("wrong key, or not a tunbox client", 5),
        "server: {}",
        s.log()
    );
    assert!(
        s.log().contains("198.19.20.2"),
        "source not named: {}",
        s.log()
    );
    assert!(s.wait_log("runs mode tap", 5), "server: {}", s.log());
    // Said once, not at every attempt.
    assert_eq!(wrong_key.log().matches("Likely causes").count(), 1);
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn two_clients_with_one_key_are_reported_with_both_endpoints() {
    if !need_root() {
        return;
    }
    let (mut srv, mut cls) = star("twin", 2);
    let key = genkey("twin.key");
    let k = key.to_str().unwrap();
    let fast = ["--keepalive", "1", "--timeout", "3"];
    let mut args = vec!["tunnel", "--listen", "5555", "--key-file", k, "--dev", "t0"];
    args.extend_from_slice(&fast);
    let s = srv.spawn_tunbox(&args, &[]);
    assert!(s.wait_log("tunnel on t0", 5), "{}", s.log());
    for (i, c) in cls.iter_mut().enumerate() {
        let remote = format!("198.19.2{i}.1:5555");
        let mut args = vec![
            "tunnel",
            "--remote",
            &remote,
            "--key-file",
            k,
            "--dev",
            "t0",
        ];
        args.extend_from_slice(&fast);
        c.spawn_tunbox(&args, &[]);
    }
    assert!(
        s.wait_log("two clients use the same key", 20),
        "server: {}",
        s.log()
    );
    let line = s
        .log()
        .lines()
        .find(|l| l.contains("two clients use the same key"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("198.19.20.2") && line.contains("198.19.21.2"),
        "{line}"
    );
    assert!(
        line.starts_with("warning: "),
        "not at warning level: {line}"
    );
}

/// The MAC of `dev` in `ns`.
fn mac_of(ns: &Netns, dev: &str) -> String {
    let out = ns.ip_out(&["-o", "link", "show", dev]);
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {out}"))
        .to_string()
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tap_tunnel_between_bridged_lans_passes_full_size_frames_and_keeps_its_mac() {
    if !need_root() {
        return;
    }
    // Box A and box B on a 1500-byte underlay; each bridges its tap to a LAN namespace.
    let mut a = Netns::new("tapa");
    let mut b = Netns::new("tapb");
    let lan_a = Netns::new("tlana");
    let lan_b = Netns::new("tlanb");
    veth(&a, "u", &b, "u");
    a.ip("addr add 198.19.30.1/24 dev u");
    b.ip("addr add 198.19.30.2/24 dev u");
    veth(&a, "lan", &lan_a, "eth0");
    veth(&b, "lan", &lan_b, "eth0");
    lan_a.ip("addr add 198.18.50.1/24 dev eth0");
    lan_b.ip("addr add 198.18.50.2/24 dev eth0");
    let key = genkey("tap.key");
    let k = key.to_str().unwrap().to_string();
    let start = |ns: &mut Netns, role: &[&str]| {
        let mut args = vec!["tunnel", "--mode", "tap", "--dev", "tap0", "--key-file", &k];
        args.extend_from_slice(role);
        let s = ns.spawn_tunbox(&args, &[]);
        assert!(s.wait_log("tunnel on tap0", 5), "{}", s.log());
        s
    };
    let bridge = |ns: &Netns| {
        ns.ip("link add br0 type bridge");
        ns.ip("link set lan master br0");
        ns.ip("link set tap0 master br0");
        ns.ip("link set br0 up");
    };
    let srv = start(&mut a, &["--listen", "5555"]);
    let cli = start(&mut b, &["--remote", "198.19.30.1:5555"]);
    assert!(
        cli.wait_log("session up", 10),
        "{}\n{}",
        cli.log(),
        srv.log()
    );
    // MTU 1500 by default: the bridge (and so the LAN) keeps 1500.
    assert!(srv.log().contains("mtu 1500"), "{}", srv.log());
    let mac_before = mac_of(&a, "tap0");
    bridge(&a);
    bridge(&b);
    let br = a.ip_out(&["link", "show", "br0"]);
    assert!(br.contains("mtu 1500"), "{br}");
    // 1500-byte IP packets with DF set, LAN to LAN: the outer packets are fragmented.
    let out = lan_a.run(
        15,
        "ping",
        &[
            "-c",
            "5",
            "-i",
            "0.2",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            "1472",
            "198.18.50.2",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 5 received") || text.contains(" 4 received"),
        "{text}\n{}\n{}",
        srv.log(),
        cli.log()
    );
    // The same MAC after a restart (the far LAN's ARP entries stay right).
    a.stop(srv.pid);
    let srv = start(&mut a, &["--listen", "5555"]);
    assert_eq!(mac_of(&a, "tap0"), mac_before);
    let m: Vec<u8> = mac_before
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    assert!(
        m[0] & 2 == 2 && m[0] & 1 == 0,
        "not local unicast: {mac_before}"
    );
    a.stop(srv.pid);
    // --mac sets it.
    let s = start(&mut a, &["--listen", "5555", "--mac", "02:00:5e:10:20:30"]);
    assert_eq!(mac_of(&a, "tap0"), "02:00:5e:10:20:30");
    a.stop(s.pid);
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn with_default_timers_service_is_back_within_15_s_of_a_server_restart() {
    if !need_root() {
        return;
    }
    let (mut srv_ns, mut cls) = star("rst", 1);
    let key = genkey("restart.key");
    let k = key.to_str().unwrap();
    let server = |ns: &mut Netns| {
        let s = ns.spawn_tunbox(
            &[
                "tunnel",
                "--listen",
                "5555",
                "--key-file",
                k,
                "--dev",
                "t0",
                "--address",
                "198.19.40.1/24",
            ],
            &[],
        );
        assert!(s.wait_log("tunnel on t0", 5), "{}", s.log());
        s
    };
    let srv = server(&mut srv_ns);
    let cli = cls[0].spawn_tunbox(
        &[
            "tunnel",
            "--remote",
            "198.19.20.1:5555",
            "--key-file",
            k,
            "--dev",
            "t0",
            "--address",
            "198.19.40.2/24",
        ],
        &[],
    );
    assert!(cli.wait_log("session up", 10), "{}", cli.log());
    assert!(ping(&cls[0], "198.19.40.1", 2).0 >= 1);
    // Worst case for the client: it just heard from the server.
    srv_ns.stop(srv.pid);
    let srv = server(&mut srv_ns);
    let t0 = Instant::now();
    let mut back = None;
    while t0.elapsed() < Duration::from_secs(25) {
        let out = cls[0].run(3, "ping", &["-c", "1", "-W", "1", "198.19.40.1"]);
        if out.status.success() {
            back = Some(t0.elapsed());
            break;
        }
    }
    let back = back.unwrap_or_else(|| panic!("not back in 25 s: {}\n{}", cli.log(), srv.log()));
    eprintln!("service back {back:?} after the server restarted");
    assert!(
        back <= Duration::from_secs(15),
        "service back after {back:?}: {}",
        cli.log()
    );
}

/// `tunbox status NAME --json` in namespace `ns`.
fn status_json(ns: &Netns, name: &str) -> serde_json::Value {
    let out = ns.tunbox_status(&[name, "--json"]);
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v[0].clone()
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
fn status_json_shows_growing_counters_and_the_last_handshake() {
    if !need_root() {
        return;
    }
    let mut h = Hub::new("status");
    // The namespaces' tunbox processes use <target tmp>/<ns>-run as run directory.
    let dir = h.hub_ns.run_dir();
    let a = status_json(&h.hub_ns, "hub0");
    assert_eq!(a["version"], 1);
    assert_eq!(a["tool"], "tunnel");
    assert_eq!(a["role"], "server");
    assert_eq!(a["transport"], "udp");
    assert_eq!(a["mode"], "tun");
    assert!(a["socket_drops"].is_u64(), "{a}");
    let peers = a["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 3);
    assert_eq!(peers[0]["name"], "spoke0");
    assert!(peers[0]["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("198.19.10.2:"));
    assert!(
        peers[0]["last_handshake_secs"].as_u64().unwrap() < 60,
        "{a}"
    );
    assert!(peers[0]["drops"]["inner_source"].is_u64());
    let (n, text) = h.lan_ping(0, 1, 5);
    assert!(n >= 4, "{text}");
    let b = status_json(&h.hub_ns, "hub0");
    for (i, key) in [
        (0, "rx_packets"),
        (0, "rx_bytes"),
        (1, "tx_packets"),
        (1, "tx_bytes"),
    ] {
        let (x, y) = (
            a["peers"][i][key].as_u64().unwrap(),
            b["peers"][i][key].as_u64().unwrap(),
        );
        assert!(y >= x + 4, "peer {i} {key}: {x} -> {y}");
    }
    // The client side and the human form.
    let c = status_json(&h.spoke_ns[0], "sp0");
    assert_eq!(c["role"], "client");
    assert_eq!(c["remote"], "198.19.10.1:5555");
    let out = h.hub_ns.tunbox_status(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("peer spoke1:") && text.contains("latest handshake"),
        "{text}"
    );
    // Unknown name: exit 1 with a message.
    let out = h.hub_ns.tunbox_status(&["nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    h.stop_hub();
    assert!(!dir.join("hub0.status").exists(), "socket left behind");
}
