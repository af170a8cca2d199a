//! The TAP reflector on a (simulated) LAN, in namespaces the tests create (needs root):
//!
//! ```text
//!  ns "laptop"                       ns "pi"
//!  lap0 198.18.0.2/15  <--veth-->  eth0 --+-- br-tunbox 198.18.0.1/15, 2001:2::1/48
//!       2001:2::2/48                      |
//!                                  tap0 --+   tunbox reflect --mode tap --dev tap0
//!                                             ranges 198.19.0.0/16, 2001:2:0:1::/64
//! ```
//!
//! The bridge is made by `tunbox bridge up` (eth0's addresses move to br-tunbox, tap0 is
//! created persistent and enslaved).
//! The configuration checks at the end need no root.
mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const RANGE4: &str = "198.19.0.0/16";
const RANGE6: &str = "2001:2:0:1::/64";

struct Lan {
    laptop: Netns,
    pi: Netns,
    /// `tunbox bridge up`'s record of eth0's original state.
    state: std::path::PathBuf,
}

fn lan() -> Lan {
    let laptop = Netns::new("taplap");
    let pi = Netns::new("tappi");
    veth(&laptop, "lap0", &pi, "eth0");
    laptop.ip("addr add 198.18.0.2/15 dev lap0");
    laptop.ip("addr add 2001:2::2/48 dev lap0 nodad");
    pi.ip("addr add 198.18.0.1/15 dev eth0");
    pi.ip("addr add 2001:2::1/48 dev eth0 nodad");
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
        "tunbox bridge up failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Lan { laptop, pi, state }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // The namespaces go with their own Drop; the state file lives outside them.
        let _ = std::fs::remove_file(&self.state);
    }
}

fn start(lan: &mut Lan, args: &[&str], env: &[(&str, &str)]) -> Spawned {
    let r = lan.pi.spawn_tunbox(args, env);
    assert!(
        r.wait_log("answering for", 5) && lan.pi.wait_dev("tap0", 5),
        "TAP reflector did not start: {}",
        r.log()
    );
    r
}

/// The laptop's neighbour entry for `addr`: the MAC it resolved to.
fn neighbour(ns: &Netns, addr: &str) -> Option<String> {
    let out = ns.run(5, "ip", &["neigh", "show", addr]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_string)
}

/// The number after the last `name` in the log (counters are logged at exit).
fn counter(log: &str, name: &str) -> u64 {
    let i = log
        .rfind(name)
        .unwrap_or_else(|| panic!("no '{name}' in {log}"))
        + name.len();
    log[i..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after '{name}' in {log}"))
}

fn mac_in_log(log: &str) -> String {
    let i = log.find(" as ").expect("MAC in the start message") + 4;
    log[i..i + 17].to_string()
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tap_reflector_answers_for_its_ranges_on_the_lan() {
    if !need_root() {
        return;
    }
    let mut lan = lan();
    let r = start(
        &mut lan,
        &[
            "reflect", "--mode", "tap", "--dev", "tap0", "--range", RANGE4, "--range", RANGE6,
            "--user", "nobody",
        ],
        &[],
    );
    let mac = mac_in_log(&r.log());
    let ctx = |what: &str| format!("{what}: {}", r.log());

    // Pure reflection (no --icmp-echo): each echo request comes back as a request, the
    // laptop answers it, and that answer comes back: ping still sees its replies.
    for addr in [
        "198.19.0.5",
        "198.19.255.254",
        "2001:2:0:1::5",
        "2001:2:0:1:ffff::1",
    ] {
        let (got, out) = ping(&lan.laptop, addr, 3);
        assert_eq!(got, 3, "{}", ctx(&format!("ping {addr}:\n{out}")));
        assert_eq!(
            neighbour(&lan.laptop, addr).as_deref(),
            Some(mac.as_str()),
            "{}",
            ctx(&format!("{addr} resolves (ARP/NDP) to the reflector's MAC"))
        );
    }
    // TCP from the laptop to a range address loops back to a listener on the laptop.
    let len = 256 * 1024;
    let want = echo_pattern(len);
    let back = tcp_echo_through(&lan.laptop, "0.0.0.0:7777", "198.19.7.7:7777", len);
    assert!(back == want, "{}", ctx("TCP v4 data came back changed"));
    let back = tcp_echo_through(&lan.laptop, "[::]:7778", "[2001:2:0:1::7]:7778", len);
    assert!(back == want, "{}", ctx("TCP v6 data came back changed"));

    // Outside the ranges: nobody answers (the reflector ignores it).
    for addr in ["198.18.200.200", "2001:2::99", "198.19.255.255"] {
        let (got, out) = ping(&lan.laptop, addr, 2);
        assert_eq!(
            got,
            0,
            "{}",
            ctx(&format!("{addr} must not answer:\n{out}"))
        );
    }
    // The Pi's own addresses still work through the bridge.
    for addr in ["198.18.0.1", "2001:2::1"] {
        let (got, out) = ping(&lan.laptop, addr, 2);
        assert_eq!(
            got,
            2,
            "{}",
            ctx(&format!("the Pi itself at {addr}:\n{out}"))
        );
        assert_ne!(neighbour(&lan.laptop, addr).as_deref(), Some(mac.as_str()));
    }
    assert_eq!(
        r.status_field("CapEff").as_deref(),
        Some("0000000000000000"),
        "{}",
        ctx("every capability dropped once the device is open")
    );
    assert_eq!(
        lan.pi.stop(r.pid),
        Some(0),
        "{}",
        ctx("SIGTERM ends with 0")
    );
    let log = r.log();
    assert!(log.contains("tap0: rx "), "{log}");
    assert!(log.contains("replies arp_reply "), "{log}");
    // 4 addresses x 3 pings x 2 trips, plus both TCP connections.
    assert!(counter(&log, "reflected ") > 24, "{log}");
    assert_eq!(counter(&log, "echo_reply "), 0, "no --icmp-echo: {log}");
    assert!(
        log.contains("not_in_range "),
        "outside pings counted: {log}"
    );
    assert!(
        !log.contains("warning"),
        "ordinary LAN traffic is not warned about: {log}"
    );
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tap_reflector_from_uci_answers_echo_directly() {
    if !need_root() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tbx-tapuci-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("tunbox");
    std::fs::write(
        &conf,
        format!(
            "config reflect 'loop'\n\
             \toption mode 'tap'\n\
             \toption dev 'tap0'\n\
             \tlist range '{RANGE4}'\n\
             \tlist range '{RANGE6}'\n\
             \toption mac '02:00:5e:00:00:42'\n\
             \toption icmp_echo '1'\n"
        ),
    )
    .unwrap();
    let mut lan = lan();
    let conf_s = conf.to_str().unwrap().to_string();
    let r = start(&mut lan, &["run", "loop"], &[("TUNBOX_CONFIG", &conf_s)]);
    assert!(r.log().contains("as 02:00:5e:00:00:42"), "{}", r.log());
    for addr in ["198.19.1.1", "2001:2:0:1::1:1"] {
        let (got, out) = ping(&lan.laptop, addr, 4);
        assert_eq!(got, 4, "ping {addr}:\n{out}\n{}", r.log());
        assert_eq!(
            neighbour(&lan.laptop, addr).as_deref(),
            Some("02:00:5e:00:00:42")
        );
    }
    assert_eq!(lan.pi.stop(r.pid), Some(0));
    let log = r.log();
    // Answered directly: 8 echo replies, nothing needed a second trip.
    assert_eq!(counter(&log, "echo_reply "), 8, "one trip per ping: {log}");
    assert_eq!(counter(&log, "reflected "), 0, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn a_range_holding_the_pis_own_address_leaves_it_to_the_pi() {
    if !need_root() {
        return;
    }
    let mut lan = lan();
    // 198.18.0.0/24 and 2001:2::/64 hold the Pi's 198.18.0.1 and 2001:2::1.
    let r = start(
        &mut lan,
        &[
            "reflect",
            "--mode",
            "tap",
            "--dev",
            "tap0",
            "--range",
            "198.18.0.0/24",
            "--range",
            "2001:2::/64",
            "--mac",
            "02:00:5e:00:00:42",
        ],
        &[],
    );
    // logged just after "answering for" (slowly under qemu): wait for them
    assert!(
        r.wait_log(
            "198.18.0.1 on br-tunbox is inside a range: not answered for",
            5
        ) && r.wait_log("2001:2::1 on br-tunbox is inside a range", 5),
        "{}",
        r.log()
    );
    if cfg!(feature = "test-hooks") {
        let v = tap_status(&lan.pi);
        assert_eq!(
            v["excluded"],
            serde_json::json!(["198.18.0.1", "2001:2::1"]),
            "{v}"
        );
    }
    for (own, other) in [("198.18.0.1", "198.18.0.77"), ("2001:2::1", "2001:2::77")] {
        let (got, out) = ping(&lan.laptop, own, 2);
        assert_eq!(got, 2, "{out}");
        assert_ne!(
            neighbour(&lan.laptop, own).as_deref(),
            Some("02:00:5e:00:00:42"),
            "the Pi's own {own} stays the Pi's"
        );
        let (got, out) = ping(&lan.laptop, other, 2);
        assert_eq!(got, 2, "{other} in the range is answered: {out}");
        assert_eq!(
            neighbour(&lan.laptop, other).as_deref(),
            Some("02:00:5e:00:00:42")
        );
    }
    assert_eq!(lan.pi.stop(r.pid), Some(0));
}

/// `tunbox status ARGS` in `ns`, with the run directory of the tunbox processes started
/// there (a test-hooks build): (exit code, stdout).
fn status_in(ns: &Netns, args: &[&str]) -> (Option<i32>, String) {
    let out = ns.tunbox_status(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn tap_status(ns: &Netns) -> serde_json::Value {
    let (code, out) = status_in(ns, &["tap0", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    v[0].clone()
}

/// The TAP reflector serves `tunbox status`: its ranges and MAC, and counters per reply
/// kind and per ignored reason that grow with the LAN's traffic.
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "the run directory is only test-overridable with --features test-hooks"
)]
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn tap_reflector_serves_its_status() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !need_root() {
        return;
    }
    let mut lan = lan();
    let r = start(
        &mut lan,
        &[
            "reflect", "--mode", "tap", "--dev", "tap0", "--range", RANGE4, "--range", RANGE6,
            "--user", "nobody",
        ],
        &[],
    );
    let mac = mac_in_log(&r.log());
    let sock = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}-run", lan.pi.name))
        .join("tap0.status");
    // "answering for" is logged before the status socket is made.
    let t0 = std::time::Instant::now();
    while !sock.exists() && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let md = std::fs::metadata(&sock).expect("tap0.status");
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(md.uid(), nobody.uid.as_raw(), "owned by --user nobody");

    let a = tap_status(&lan.pi);
    assert_eq!(a["version"], 1);
    assert_eq!(a["tool"], "reflect");
    assert_eq!(a["device"], "tap0");
    assert_eq!(a["mode"], "tap");
    assert_eq!(a["pid"], r.pid);
    assert_eq!(a["queues"], 1);
    assert_eq!(a["offloads"], serde_json::json!([]));
    assert_eq!(a["addresses"], serde_json::json!([]));
    assert_eq!(a["ranges"], serde_json::json!([RANGE4, RANGE6]));
    assert_eq!(a["excluded"], serde_json::json!([]));
    assert_eq!(a["mac"], mac.as_str());
    assert_eq!(a["icmp_echo"], false);
    assert!(a["uptime_secs"].is_u64() && a["super_packets"].is_u64());
    assert!(a["drops"]["not_for_us"].is_u64(), "{a}");
    for k in ["arp_reply", "neighbor_advert", "reflected", "echo_reply"] {
        assert!(a["replies"][k].is_u64(), "replies.{k}: {a}");
    }
    for k in [
        "not_our_mac",
        "not_in_range",
        "ethertype",
        "ndp_other",
        "no_room",
    ] {
        assert!(a["ignored"][k].is_u64(), "ignored.{k}: {a}");
    }

    let (got, out) = ping(&lan.laptop, "198.19.0.5", 5);
    assert_eq!(got, 5, "{out}\n{}", r.log());
    let (got, _) = ping(&lan.laptop, "198.18.200.200", 2);
    assert_eq!(got, 0, "outside the ranges");
    let b = tap_status(&lan.pi);
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    let reply = |v: &serde_json::Value, k: &str| v["replies"][k].as_u64().unwrap();
    // each echo request comes back as a request, the laptop's answer comes back too
    assert!(
        reply(&b, "reflected") >= reply(&a, "reflected") + 10,
        "{a}\n{b}"
    );
    assert!(reply(&b, "arp_reply") > reply(&a, "arp_reply"), "{b}");
    assert!(
        b["ignored"]["not_in_range"].as_u64() > a["ignored"]["not_in_range"].as_u64(),
        "{b}"
    );
    assert!(n(&b, "rx_packets") >= n(&a, "rx_packets") + 12, "{a}\n{b}");
    assert!(n(&b, "tx_packets") >= n(&a, "tx_packets") + 11, "{a}\n{b}");
    // every frame read is answered or ignored for one reason
    let sum = |o: &serde_json::Value| -> u64 {
        o.as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum(&b["replies"]), n(&b, "tx_packets") + n(&b, "tx_errors"));
    assert_eq!(sum(&b["ignored"]), sum(&b["drops"]), "{b}");
    assert_eq!(
        n(&b, "rx_packets"),
        n(&b, "tx_packets") + n(&b, "tx_errors") + sum(&b["drops"])
    );

    let (code, text) = status_in(&lan.pi, &["tap0"]);
    assert_eq!(code, Some(0));
    for want in [
        "reflect tap0: tap, queues 1, pid ".to_string(),
        format!("  answering for: {RANGE4} {RANGE6} as {mac}\n"),
        "  replies: arp_reply=".to_string(),
        "  ignored: ".to_string(),
    ] {
        assert!(text.contains(&want), "'{want}' in:\n{text}");
    }
    assert_eq!(lan.pi.stop(r.pid), Some(0), "{}", r.log());
    let log = r.log();
    assert!(
        log.contains("tap0: replies arp_reply "),
        "detail line at exit: {log}"
    );
}

/// Runs `prog args` in `ns` and returns its stdout.
fn output(ns: &Netns, prog: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&ns.run(5, prog, args).stdout).into_owned()
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn neighbour_solicitations_reach_the_reflector_under_mld_snooping() {
    if !need_root() {
        return;
    }
    let mut lan = lan();
    // An MLD querier on the bridge makes its snooping effective: multicast to groups
    // nobody on a port joined is no longer flooded to that port.
    lan.pi.ip(
        "link set br-tunbox type bridge mcast_snooping 1 mcast_querier 1 \
         mcast_startup_query_interval 100 mcast_query_interval 200",
    );
    let r = start(
        &mut lan,
        &[
            "reflect", "--mode", "tap", "--dev", "tap0", "--range", RANGE6,
        ],
        &[],
    );
    assert_eq!(
        output(
            &lan.pi,
            "cat",
            &["/sys/class/net/tap0/brport/multicast_router"]
        )
        .trim(),
        "2",
        "the reflector made its bridge port a multicast router port: {}",
        r.log()
    );
    // Control: as an ordinary port, the tap stops seeing solicitations once the
    // bridge has heard the laptop's reports and its querier is established (bounded wait,
    // a fresh address each try so no neighbour entry is reused).
    lan.pi.run(
        5,
        "bridge",
        &["link", "set", "dev", "tap0", "mcast_router", "1"],
    );
    let t0 = std::time::Instant::now();
    for n in 1.. {
        let (got, _) = ping(&lan.laptop, &format!("2001:2:0:1::1:{n}"), 1);
        if got == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "snooping never became effective, the test proves nothing: {}",
            output(&lan.pi, "bridge", &["mdb", "show"])
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // ... as a multicast router port it does.
    lan.pi.run(
        5,
        "bridge",
        &["link", "set", "dev", "tap0", "mcast_router", "2"],
    );
    let (got, out) = ping(&lan.laptop, "2001:2:0:1::b", 2);
    assert_eq!(got, 2, "{out}\n{}", r.log());
    assert_eq!(lan.pi.stop(r.pid), Some(0));
}

// ------------------------------------------------------------ configuration (no root)

fn check(tag: &str, text: &str) -> (i32, String, std::path::PathBuf) {
    let p = std::env::temp_dir().join(format!("tbx-tapconf-{tag}-{}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    let out = Command::new(TUNBOX)
        .args(["config", "check"])
        .env("TUNBOX_CONFIG", &p)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, p)
}

#[test]
fn uci_mode_tap_checked_with_file_and_line() {
    let (code, out, p) = check(
        "good",
        "config reflect 'loop'\n\toption mode 'tap'\n\tlist range '198.18.0.0/15'\n\
         \tlist range '2001:2::/48'\n\toption icmp_echo '1'\n",
    );
    assert_eq!(code, 0, "{out}");
    let _ = std::fs::remove_file(p);

    let (code, out, p) = check(
        "hostbits",
        "config reflect 'loop'\n\toption mode 'tap'\n\tlist range '198.18.0.1/15'\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:3: option 'range'", p.display()))
            && out.contains("did you mean 198.18.0.0/15?"),
        "{out}"
    );
    let _ = std::fs::remove_file(p);

    let (code, out, p) = check("norange", "config reflect 'loop'\n\toption mode 'tap'\n");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:2:", p.display())) && out.contains("at least one 'range'"),
        "{out}"
    );
    let _ = std::fs::remove_file(p);

    let (code, out, p) = check(
        "mcastmac",
        "config reflect 'loop'\n\toption mode 'tap'\n\tlist range '198.18.0.0/15'\n\
         \toption mac '01:00:5e:00:00:01'\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("{}:4: option 'mac'", p.display())),
        "{out}"
    );
    let _ = std::fs::remove_file(p);

    let (code, out, p) = check(
        "tunrange",
        "config reflect 'loop'\n\toption mode 'tun'\n\tlist range '198.18.0.0/15'\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("only applies to mode tap"), "{out}");
    let _ = std::fs::remove_file(p);
}
