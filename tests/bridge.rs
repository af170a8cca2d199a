//! `tunbox bridge` and `tunbox mktun/rmtun` against the real kernel, as root, inside
//! network namespaces the tests create and remove (also on failure, by Drop guards).
//! Addresses are from 198.18.0.0/15 and 2001:2::/48.
//!
//! Namespace "pi" has a veth called eth0 (the Pi's port) with IPv4 and IPv6 addresses,
//! a secondary address, static routes (one in another table) and default routes;
//! namespace "lan" is the other end of the cable. Every external command runs under
//! `timeout`, every ping is bounded in count and wait.
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Netns, TUNBOX};

mod common;

/// Root is needed for namespaces: without it the test fails loudly; built with
/// TUNBOX_SKIP_NETNS=1 the tests are ignored (the shared policy of tests/common).
macro_rules! require_root {
    () => {
        if !common::need_root() {
            return;
        }
    };
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new("timeout");
    c.arg("30").args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(args: &[&str]) -> String {
    let o = run(args, &[]);
    assert!(o.status.success(), "{args:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the bridge tests do in a namespace of tests/common, on top of its own methods.
trait NetnsExt {
    /// `ARGS[0] ARGS[1..]` inside the namespace, bounded to 30 s.
    fn exec(&self, args: &[&str], envs: &[(&str, &str)]) -> Output;
    fn tunbox(&self, args: &[&str], envs: &[(&str, &str)]) -> Output;
    /// Two echo replies within 4 s.
    fn ping_ok(&self, addr: &str) -> bool;
    fn sysctl(&self, path: &str) -> Option<String>;
}

impl NetnsExt for Netns {
    fn exec(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        self.run_env(30, args[0], &args[1..], envs)
    }
    fn tunbox(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        self.run_env(30, TUNBOX, args, envs)
    }
    fn ping_ok(&self, addr: &str) -> bool {
        self.exec(
            &["ping", "-c", "2", "-i", "0.2", "-W", "1", "-w", "4", addr],
            &[],
        )
        .status
        .success()
    }
    fn sysctl(&self, path: &str) -> Option<String> {
        let o = self.exec(&["cat", path], &[]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    }
}

/// A scratch directory for state files, removed when dropped.
struct TempDir(String);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = format!("/tmp/tbx-br-{tag}-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The "pi" and "lan" namespaces joined by a veth: eth0 in pi, lan0 in lan.
struct Lab {
    pi: Netns,
    lan: Netns,
    _dir: TempDir,
    state_file: String,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let pi = Netns::new(&format!("br-{tag}-pi"));
        let lan = Netns::new(&format!("br-{tag}-lan"));
        let dir = TempDir::new(tag);
        let state_file = format!("{}/bridge.state", dir.0);
        common::veth(&pi, "eth0", &lan, "lan0");
        lan.ip_out(&["link", "set", "lan0", "up"]);
        lan.ip_out(&["addr", "add", "198.18.0.1/24", "dev", "lan0"]);
        lan.ip_out(&["addr", "add", "2001:2::1/64", "dev", "lan0", "nodad"]);
        pi.ip_out(&["link", "set", "eth0", "mtu", "1400", "up"]);
        pi.ip_out(&["addr", "add", "198.18.0.2/24", "brd", "+", "dev", "eth0"]);
        pi.ip_out(&[
            "addr",
            "add",
            "198.18.0.3/24",
            "dev",
            "eth0",
            "label",
            "eth0:1",
        ]);
        pi.ip_out(&["addr", "add", "2001:2::2/64", "dev", "eth0"]);
        pi.ip_out(&["route", "add", "default", "via", "198.18.0.1"]);
        pi.ip_out(&[
            "route",
            "add",
            "198.19.0.0/24",
            "via",
            "198.18.0.1",
            "metric",
            "50",
            "proto",
            "static",
        ]);
        pi.ip_out(&[
            "route",
            "add",
            "198.19.1.0/24",
            "dev",
            "eth0",
            "src",
            "198.18.0.3",
            "table",
            "100",
        ]);
        pi.ip_out(&["-6", "route", "add", "default", "via", "2001:2::1"]);
        pi.ip_out(&[
            "-6",
            "route",
            "add",
            "2001:2:0:5::/64",
            "via",
            "fe80::1",
            "dev",
            "eth0",
            "metric",
            "7",
        ]);
        let lab = Lab {
            pi,
            lan,
            _dir: dir,
            state_file,
        };
        lab.wait_settled();
        lab
    }

    fn tunbox(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--state-file", &self.state_file]);
        self.pi.tunbox(&a, envs)
    }

    /// Waits until no IPv6 address in pi is tentative (duplicate address detection
    /// runs again when `down` puts an address back, as it did when it was first added).
    fn wait_settled(&self) {
        let t = Instant::now();
        while self.pi.ip_out(&["addr"]).contains("tentative") {
            assert!(t.elapsed() < Duration::from_secs(10), "DAD never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Lab::state`] once it stops changing by itself: right after `bridge up` the
    /// kernel still moves carrier, port states and link-local addresses for a moment.
    fn steady_state(&self) -> String {
        let t = Instant::now();
        let mut last = self.state();
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.state();
            if now == last {
                return now;
            }
            assert!(t.elapsed() < Duration::from_secs(15), "never settled");
            last = now;
        }
    }

    /// Everything `down` must restore, as `ip` prints it.
    fn state(&self) -> String {
        self.wait_settled();
        let sorted = |s: String| {
            let mut l: Vec<&str> = s.lines().collect();
            l.sort();
            l.join("\n")
        };
        // The bridge's running timers are the only thing that moves by itself.
        let untimed = |s: String| {
            let mut out = String::new();
            for line in s.lines() {
                let mut after_timer = false;
                for w in line.split_whitespace() {
                    out.push_str(if after_timer { "T" } else { w });
                    out.push(' ');
                    after_timer = w.ends_with("_timer");
                }
                out.push('\n');
            }
            out
        };
        format!(
            "== links\n{}\n== addresses\n{}\n== routes\n{}\n== routes6\n{}\n== rules\n{}",
            untimed(self.pi.ip_out(&["-d", "link", "show"])),
            self.pi.ip_out(&["addr", "show"]),
            sorted(self.pi.ip_out(&["route", "show", "table", "all"])),
            sorted(self.pi.ip_out(&["-6", "route", "show", "table", "all"])),
            self.pi.ip_out(&["rule", "show"]),
        )
    }

    fn nf(&self) -> Vec<Option<String>> {
        ["iptables", "ip6tables", "arptables"]
            .iter()
            .map(|n| {
                self.pi
                    .sysctl(&format!("/proc/sys/net/bridge/bridge-nf-call-{n}"))
            })
            .collect()
    }

    fn pings(&self) -> bool {
        self.lan.ping_ok("198.18.0.2")
            && self.lan.ping_ok("2001:2::2")
            && self.lan.ping_ok("198.18.0.3")
    }

    fn up_steps(&self) -> usize {
        let o = self.tunbox(&["bridge", "up", "--dry-run"], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let n = out
            .lines()
            .filter(|l| l.trim_start().starts_with('['))
            .count();
        assert!(n > 10, "implausible plan: {out}");
        n
    }
}

fn root_nf() -> Option<String> {
    std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .ok()
        .map(|s| s.trim().to_string())
}

fn exists(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn up_status_up_again_down_round_trip() {
    require_root!();
    let root_before = root_nf();
    let lab = Lab::new("rt");
    assert!(lab.pings(), "lan cannot reach pi before up");
    let before = lab.state();
    let nf_before = lab.nf();
    let eth_json = lab.pi.ip_out(&["-j", "link", "show", "eth0"]);

    let dry = lab.tunbox(&["bridge", "up", "--dry-run"], &[]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert_eq!(lab.state(), before, "--dry-run changed something");
    assert!(!exists(&lab.state_file));

    let up = lab.tunbox(&["bridge", "up", "--user", "65534"], &[]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(exists(&lab.state_file));
    let br = lab.pi.ip_out(&["-d", "link", "show", "br-tunbox"]);
    assert!(br.contains("bridge"), "{br}");
    assert!(lab
        .pi
        .ip_out(&["link", "show", "eth0"])
        .contains("master br-tunbox"));
    let tap = lab.pi.ip_out(&["-d", "link", "show", "tap0"]);
    assert!(
        tap.contains("master br-tunbox") && tap.contains("persist on"),
        "{tap}"
    );
    assert!(
        tap.contains("user nobody") || tap.contains("user 65534"),
        "{tap}"
    );
    assert!(
        tap.contains("mtu 1400"),
        "the tap must get eth0's MTU: {tap}"
    );
    // The bridge wears eth0's MAC, so the LAN's neighbour caches stay right.
    let mac_of = |j: &str| {
        let i = j.find("\"address\":\"").unwrap() + 11;
        j[i..i + 17].to_string()
    };
    assert_eq!(
        mac_of(&lab.pi.ip_out(&["-j", "link", "show", "br-tunbox"])),
        mac_of(&eth_json)
    );
    let br_addrs = lab.pi.ip_out(&["addr", "show", "br-tunbox"]);
    for a in ["198.18.0.2/24", "198.18.0.3/24", "2001:2::2/64"] {
        assert!(br_addrs.contains(a), "{a} not on the bridge: {br_addrs}");
    }
    let eth_addrs = lab.pi.ip_out(&["addr", "show", "eth0"]);
    assert!(
        !eth_addrs.contains("inet ") && !eth_addrs.contains("scope global"),
        "{eth_addrs}"
    );
    let routes = lab.pi.ip_out(&["route", "show", "table", "all"]);
    for want in [
        "default via 198.18.0.1 dev br-tunbox",
        "198.19.0.0/24 via 198.18.0.1 dev br-tunbox proto static metric 50",
        "198.19.1.0/24 dev br-tunbox table 100",
    ] {
        assert!(routes.contains(want), "no '{want}' in {routes}");
    }
    let routes4 = lab.pi.ip_out(&["-4", "route", "show", "table", "all"]);
    assert!(!routes4.contains("dev eth0"), "{routes4}");
    let routes6 = lab.pi.ip_out(&["-6", "route", "show"]);
    assert!(
        routes6.contains("default via 2001:2::1 dev br-tunbox")
            && routes6.contains("2001:2:0:5::/64 via fe80::1 dev br-tunbox"),
        "{routes6}"
    );
    for v in lab.nf().into_iter().flatten() {
        assert_eq!(v, "0");
    }
    assert_eq!(
        root_nf(),
        root_before,
        "the root namespace's bridge-nf switch changed"
    );
    assert!(lab.pings(), "lan cannot reach pi through the bridge");

    let bridged = lab.state();
    let again = lab.tunbox(&["bridge", "up"], &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to do"),
        "{}",
        text(&again)
    );
    assert_eq!(lab.state(), bridged, "a second up changed something");

    let st = lab.tunbox(&["bridge", "status"], &[]);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    let out = String::from_utf8_lossy(&st.stdout);
    assert!(
        out.contains("ports: eth0 tap0") && out.contains("matches the recorded state"),
        "{out}"
    );

    let down = lab.tunbox(&["bridge", "down"], &[]);
    assert!(down.status.success(), "{}", text(&down));
    assert!(!exists(&lab.state_file));
    assert_eq!(lab.state(), before, "down did not restore pi exactly");
    assert_eq!(lab.nf(), nf_before);
    assert!(lab.pings(), "lan cannot reach pi after down");

    let twice = lab.tunbox(&["bridge", "down"], &[]);
    assert!(twice.status.success(), "{}", text(&twice));
    assert_eq!(lab.state(), before);

    // The lock file stays (unlinking a flocked file lets two runs overlap), unlocked.
    let lock = format!("{}.lock", lab.state_file);
    assert!(exists(&lock), "the lock file must stay in place");
    let f = std::fs::File::open(&lock).unwrap();
    assert!(
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok(),
        "nobody may hold the lock after down"
    );
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn killed_in_the_middle_of_up_then_down_restores_everything() {
    require_root!();
    let lab = Lab::new("kill");
    let before = lab.state();
    let n = lab.up_steps();
    for stop in 1..n {
        let s = stop.to_string();
        let up = lab.tunbox(&["bridge", "up"], &[("TUNBOX_TEST_STOP_AFTER_STEP", &s)]);
        assert_eq!(
            up.status.code(),
            Some(99),
            "stop after {stop}: {}",
            text(&up)
        );
        let st = lab.tunbox(&["bridge", "status"], &[]);
        assert_eq!(
            st.status.code(),
            Some(3),
            "half-up must not look complete: {}",
            text(&st)
        );
        if stop == n / 2 {
            // A second `up` after the crash finishes the job; `down` still restores.
            let up = lab.tunbox(&["bridge", "up"], &[]);
            assert!(up.status.success(), "{}", text(&up));
            assert!(lab.pings(), "bridge finished after a crash does not work");
        }
        let down = lab.tunbox(&["bridge", "down"], &[]);
        assert!(down.status.success(), "stop after {stop}: {}", text(&down));
        assert_eq!(
            lab.state(),
            before,
            "stop after step {stop} of {n}, then down"
        );
    }
    assert!(lab.pings());
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
#[cfg_attr(not(feature = "test-hooks"), ignore = "needs --features test-hooks")]
fn a_failure_half_way_rolls_back() {
    require_root!();
    let lab = Lab::new("fail");
    let before = lab.state();
    let n = lab.up_steps();
    for fail in [2, n / 2, n] {
        let s = fail.to_string();
        let up = lab.tunbox(&["bridge", "up"], &[("TUNBOX_TEST_FAIL_AT_STEP", &s)]);
        assert_eq!(up.status.code(), Some(1), "{}", text(&up));
        let err = String::from_utf8_lossy(&up.stderr);
        assert!(
            err.contains(&format!("step {fail} failed")) && err.contains("were undone"),
            "{err}"
        );
        assert_eq!(
            lab.state(),
            before,
            "failure at step {fail} of {n} not rolled back"
        );
        assert!(!exists(&lab.state_file));
    }
    assert!(lab.pings());
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn errors_are_actionable_and_change_nothing() {
    require_root!();
    let lab = Lab::new("err");
    let before = lab.state();
    let o = lab.tunbox(&["bridge", "up", "--ifname", "eth9"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no network device called 'eth9'"));
    {
        // Without CAP_NET_ADMIN: --dry-run still plans (reading needs no privilege),
        // `up` refuses with the fix, and nothing changes.
        let nobody = |args: &[&str]| {
            let mut a = vec![
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                TUNBOX,
            ];
            a.extend_from_slice(args);
            a.extend_from_slice(&["--state-file", &lab.state_file]);
            lab.pi.exec(&a, &[])
        };
        let dry = nobody(&["bridge", "up", "--dry-run"]);
        assert!(dry.status.success(), "{}", text(&dry));
        assert!(String::from_utf8_lossy(&dry.stdout).contains("ip link set eth0 master br-tunbox"));
        let up = nobody(&["bridge", "up"]);
        assert_eq!(up.status.code(), Some(1), "{}", text(&up));
        assert!(String::from_utf8_lossy(&up.stderr).contains("CAP_NET_ADMIN"));
        assert!(!exists(&lab.state_file));
    }
    {
        // A second `up` while one holds the lock refuses instead of interleaving.
        let f = std::fs::File::create(format!("{}.lock", lab.state_file)).unwrap();
        let _held =
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
        let o = lab.tunbox(&["bridge", "up"], &[]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("another `tunbox bridge up/down`"));
        assert!(!exists(&lab.state_file));
    }
    std::fs::write(&lab.state_file, "garbage\n").unwrap();
    let o = lab.tunbox(&["bridge", "down"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&lab.state_file) && err.contains("line 1"),
        "{err}"
    );
    assert_eq!(lab.state(), before);
}

/// Run as a child process by `mktun_owner_attaches_without_capabilities`, under
/// setpriv with another uid and no capabilities: attaches to the tap named in
/// TBX_ATTACH_DEV and exits 0 on success.
#[test]
#[ignore = "helper process of mktun_owner_attaches_without_capabilities"]
fn attach_child() {
    let dev = std::env::var("TBX_ATTACH_DEV").expect("run by the mktun test");
    // SAFETY: geteuid has no preconditions.
    assert_ne!(unsafe { libc::geteuid() }, 0, "must not run as root");
    assert!(
        !tunbox::sys::caps::has_net_admin(),
        "must run without CAP_NET_ADMIN"
    );
    let t = tunbox::sys::tun::Tun::open(&dev, tunbox::sys::tun::Mode::Tap)
        .unwrap_or_else(|e| panic!("attach to {dev}: {e}"));
    assert_eq!(t.name(), dev);
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn mktun_owner_attaches_without_capabilities() {
    require_root!();
    let ns = Netns::new("br-mktun");
    let dev = "tbxtap0";
    let o = ns.tunbox(
        &[
            "mktun", "--dev", dev, "--mode", "tap", "--user", "65534", "--group", "65534",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let l = ns.ip_out(&["-d", "link", "show", dev]);
    assert!(
        l.contains("tun type tap") && l.contains("persist on"),
        "{l}"
    );
    // `ip` prints names where it can: 65534 is nobody / nogroup on Debian.
    let named = l.contains("user nobody group nogroup");
    assert!(named || l.contains("user 65534 group 65534"), "{l}");

    // Debian and OpenWrt ship /dev/net/tun as 0666; this machine may have 0600. The
    // child gets a 0666 node of its own in a private mount namespace (the host's node
    // is left alone), so the test checks TUNSETOWNER/TUNSETGROUP, not file modes.
    let dir = TempDir::new("mktun");
    let node = format!("{}/tun", dir.0);
    ok(&["mknod", "-m", "0666", &node, "c", "10", "200"]);
    let me = std::env::current_exe().unwrap();
    let me = me.to_str().unwrap();
    let attach_as = |uid: &str, gid: &str| {
        let reuid = format!("--reuid={uid}");
        let regid = format!("--regid={gid}");
        ns.exec(
            &[
                "unshare",
                "-m",
                "sh",
                "-c",
                "mount --bind \"$0\" /dev/net/tun && exec \"$@\"",
                &node,
                "setpriv",
                &reuid,
                &regid,
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                me,
                "--ignored",
                "--exact",
                "attach_child",
                "--test-threads=1",
                "--nocapture",
            ],
            &[("TBX_ATTACH_DEV", dev)],
        )
    };
    let owner = attach_as("65534", "65534");
    assert!(
        owner.status.success(),
        "the owner could not attach: {}",
        text(&owner)
    );
    assert!(
        String::from_utf8_lossy(&owner.stdout).contains("1 passed"),
        "{}",
        text(&owner)
    );
    let stranger = attach_as("65533", "65533");
    assert!(
        !stranger.status.success(),
        "another uid and gid could attach: {}",
        text(&stranger)
    );

    let wrong = ns.tunbox(&["rmtun", "--dev", dev, "--mode", "tun"], &[]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(ns.ip_out(&["link", "show"]).contains(dev));
    let o = ns.tunbox(&["rmtun", "--dev", dev, "--mode", "tap"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!ns.ip_out(&["link", "show"]).contains(dev));
    let o = ns.tunbox(&["rmtun", "--dev", dev, "--mode", "tap"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no network device"));
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn uci_section_and_environment_drive_up_status_and_down() {
    require_root!();
    let lab = Lab::new("uci");
    let before = lab.state();
    let conf = format!("{}.conf", lab.state_file);
    let state = format!("{}.uci", lab.state_file);
    std::fs::write(
        &conf,
        format!(
            "config bridge 'lab'\n\toption ifname 'eth0'\n\toption bridge 'br-lab'\n\
             \toption tap 'tap7'\n\toption state_file '{state}'\n"
        ),
    )
    .unwrap();
    // The environment overrides the file: the tap is called tap9.
    let env = [("TUNBOX_CONFIG", conf.as_str()), ("TUNBOX_TAP", "tap9")];
    let up = lab.pi.tunbox(&["bridge", "up", "--section", "lab"], &env);
    assert!(up.status.success(), "{}", text(&up));
    assert!(exists(&state));
    let links = lab.pi.ip_out(&["link", "show"]);
    assert!(
        links.contains("tap9: ") && links.contains("master br-lab"),
        "{links}"
    );
    assert!(!links.contains("tap7"), "{links}");
    let st = lab
        .pi
        .tunbox(&["bridge", "status", "--section", "lab"], &env);
    assert_eq!(st.status.code(), Some(0), "{}", text(&st));
    let down = lab.pi.tunbox(&["bridge", "down", "--section", "lab"], &env);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(lab.state(), before);

    // A bad value is a configuration error (exit 2) naming file and line.
    std::fs::write(
        &conf,
        "config bridge 'lab'\n\toption ifname 'this-name-is-far-too-long'\n",
    )
    .unwrap();
    let bad = lab.pi.tunbox(
        &["bridge", "up", "--section", "lab"],
        &[("TUNBOX_CONFIG", &conf)],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains(&format!("{conf}:2")),
        "{}",
        text(&bad)
    );
    assert_eq!(lab.state(), before);
}

#[test]
#[cfg_attr(
    feature = "test-hooks",
    ignore = "checks a build without --features test-hooks"
)]
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
fn step_hooks_are_not_in_a_production_build() {
    require_root!();
    let lab = Lab::new("nohook");
    let before = lab.state();
    let up = lab.tunbox(
        &["bridge", "up"],
        &[
            ("TUNBOX_TEST_FAIL_AT_STEP", "2"),
            ("TUNBOX_TEST_STOP_AFTER_STEP", "1"),
        ],
    );
    assert!(up.status.success(), "the hooks acted: {}", text(&up));
    assert!(lab.pings(), "lan cannot reach pi through the bridge");
    let down = lab.tunbox(&["bridge", "down"], &[]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(lab.state(), before);

    // `config check` names them as unknown variables (typos or leftovers).
    let conf = format!("{}.conf", lab.state_file);
    std::fs::write(&conf, "config bridge 'lab'\n\toption ifname 'eth0'\n").unwrap();
    let check = lab.pi.tunbox(
        &["config", "check"],
        &[
            ("TUNBOX_CONFIG", conf.as_str()),
            ("TUNBOX_TEST_FAIL_AT_STEP", "2"),
        ],
    );
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stderr)
            .contains("environment variable TUNBOX_TEST_FAIL_AT_STEP is not a tunbox option"),
        "{}",
        text(&check)
    );
}

/// Labels the kernel accepts but version 1 of the state file could not read back
/// (spaces, `=`) survive `up` and `down`; and one state file path shared by two network
/// namespaces (as /var/run is on a box with containers): the second namespace's `up`
/// and `down` refuse the first one's record, say what to do, and change nothing.
#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn odd_labels_round_trip_and_a_foreign_record_is_never_applied() {
    require_root!();
    let a = Lab::new("bind-a");
    let mut b = Lab::new("bind-b");
    a.pi.ip_out(&[
        "addr",
        "add",
        "198.18.0.7/24",
        "dev",
        "eth0",
        "label",
        "eth0:a b=c",
    ]);
    let before_a = a.state();
    let before_b = b.state();
    b.state_file = a.state_file.clone();

    let up = a.tunbox(&["bridge", "up"], &[]);
    assert!(up.status.success(), "{}", text(&up));
    let recorded = std::fs::read_to_string(&a.state_file).unwrap();
    assert!(recorded.contains("label=eth0:a%20b%3Dc"), "{recorded}");
    assert!(recorded.contains("bound netns="), "{recorded}");
    let bridged_a = a.steady_state();

    for cmd in ["up", "down"] {
        let out = b.tunbox(&["bridge", cmd], &[]);
        let msg = text(&out);
        assert!(!out.status.success(), "bridge {cmd} in b: {msg}");
        assert!(
            msg.contains("another network namespace") && msg.contains("--state-file"),
            "bridge {cmd} says why and what to do: {msg}"
        );
        assert_eq!(b.state(), before_b, "bridge {cmd} in b changed b");
        assert_eq!(a.state(), bridged_a, "bridge {cmd} in b changed a");
        assert_eq!(
            std::fs::read_to_string(&a.state_file).unwrap(),
            recorded,
            "bridge {cmd} in b changed the record"
        );
    }

    let down = a.tunbox(&["bridge", "down"], &[]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(a.state(), before_a, "down restored the odd label exactly");
    // With the record gone, b may use the path.
    let up = b.tunbox(&["bridge", "up"], &[]);
    assert!(up.status.success(), "{}", text(&up));
    let down = b.tunbox(&["bridge", "down"], &[]);
    assert!(down.status.success(), "{}", text(&down));
    assert_eq!(b.state(), before_b);
}
