//! A tunnel client whose server's name does not resolve yet (boot without WAN or DNS)
//! keeps waiting instead of exiting, and comes up once the name resolves, with no
//! restart; a name that later points elsewhere is looked up again while handshakes go
//! unanswered; SIGTERM ends the wait at once (needs root).
//!
//! Two namespaces joined by a veth pair: server 198.18.0.1 (ns a), client 198.18.0.2
//! (ns b). The client runs in its own mount namespace (`unshare -m`) where a hosts file
//! and a resolv.conf of the test's are bind-mounted over /etc/hosts and
//! /etc/resolv.conf: the test makes the name resolve by rewriting that hosts file in
//! place. The resolv.conf points at the client's own address (198.18.0.2): nothing
//! listens there, so DNS fails at once and never leaves the namespace; for the last
//! part the test binds a UDP socket there that never answers, so a look-up blocks.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NAME: &str = "tbx-server.test";
const SRV_TUN: &str = "198.19.0.1";

/// Files of this test, under cargo's scratch directory; removed on Drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tunnel-dns-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A tunbox client in namespace `ns` and its own mount namespace; killed on Drop.
struct Client {
    child: Child,
    log: PathBuf,
}

impl Client {
    fn start(
        ns: &Netns,
        hosts: &Path,
        resolv: &Path,
        key: &Path,
        log: PathBuf,
        dev: &str,
    ) -> Client {
        let f = std::fs::File::create(&log).unwrap();
        let script = format!(
            "mount --bind '{}' /etc/hosts && mount --bind '{}' /etc/resolv.conf && exec \"$0\" \"$@\"",
            hosts.display(),
            resolv.display()
        );
        // ip netns exec -> unshare -> sh -> tunbox: each execs the next, so the PID
        // is tunbox's
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args([
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .arg(TUNBOX)
            .args(["tunnel", "--remote", &format!("{NAME}:5555"), "--dev", dev])
            .args([
                "--address",
                "198.19.0.2/24",
                "--keepalive",
                "1",
                "--timeout",
                "3",
            ])
            .arg("--key-file")
            .arg(key)
            .env_remove("TUNBOX_CONFIG")
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn client");
        Client { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, secs: u64) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM; the exit status code and how long it took (None: still running after 5 s).
    fn terminate(&mut self) -> Option<(Option<i32>, Duration)> {
        let t0 = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some((st.code(), t0.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn genkey(path: &Path) {
    let out = Command::new(TUNBOX)
        .args(["genkey", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn client_waits_for_its_server_name_to_resolve() {
    if !need_root() {
        return;
    }
    let dir = Scratch::new();
    let key = dir.path("key");
    genkey(&key);
    let hosts = dir.path("hosts");
    let resolv = dir.path("resolv.conf");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    std::fs::write(
        &resolv,
        "nameserver 198.18.0.2\noptions timeout:1 attempts:1\n",
    )
    .unwrap();

    let mut a = Netns::new("dnsa");
    let b = Netns::new("dnsb");
    veth(&a, "va", &b, "vb");
    a.ip("addr add 198.18.0.1/24 dev va");
    b.ip("addr add 198.18.0.2/24 dev vb");
    let srv = a.spawn_tunbox(
        &[
            "tunnel",
            "--listen",
            "5555",
            "--dev",
            "t0",
            "--address",
            "198.19.0.1/24",
            "--keepalive",
            "1",
            "--timeout",
            "3",
            "--key-file",
            key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(srv.wait_log("tunnel on t0", 5), "server: {}", srv.log());

    // 1. The name does not resolve: the client waits, logs it, and does not exit.
    let mut cli = Client::start(&b, &hosts, &resolv, &key, dir.path("cli.log"), "t0");
    assert!(
        cli.wait_log(&format!("waiting for {NAME} to resolve"), 10),
        "client: {}",
        cli.log()
    );
    std::thread::sleep(Duration::from_secs(4)); // retries at 1, 2 (+4) s
    assert!(cli.running(), "client exited: {}", cli.log());
    let log = cli.log();
    assert_eq!(
        log.matches("waiting for").count(),
        1,
        "the same failure is logged once, not per retry: {log}"
    );
    assert!(!log.contains("tunnel on t0"), "{log}");

    // 2. The name starts resolving (the same file, rewritten in place): the tunnel
    //    comes up with no restart, within the backoff (at most 8 s by now) + margin.
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n198.18.0.1 {NAME}\n")).unwrap();
    assert!(
        cli.wait_log("session up", 20),
        "client did not come up: {}\nserver: {}",
        cli.log(),
        srv.log()
    );
    assert!(
        cli.log()
            .contains(&format!("{NAME} resolves to 198.18.0.1:5555")),
        "{}",
        cli.log()
    );
    let (got, out) = ping(&b, SRV_TUN, 3);
    assert!(got >= 1, "no ping through the tunnel: {out}");
    let (code, took) = cli.terminate().expect("client ignored SIGTERM");
    assert_eq!(code, Some(0), "{}", cli.log());
    assert!(took < Duration::from_secs(3), "{took:?}");
    drop(cli);

    // 3. A name that points to an address where no server answers: handshakes go
    //    unanswered, the client looks the name up again and follows the change.
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n198.18.0.3 {NAME}\n")).unwrap();
    let cli = Client::start(&b, &hosts, &resolv, &key, dir.path("cli2.log"), "t1");
    assert!(cli.wait_log("tunnel on t1", 10), "client: {}", cli.log());
    std::thread::sleep(Duration::from_secs(2));
    assert!(!cli.log().contains("session up"), "{}", cli.log());
    std::fs::write(&hosts, format!("127.0.0.1 localhost\n198.18.0.1 {NAME}\n")).unwrap();
    assert!(
        cli.wait_log("session up", 25),
        "client did not follow the name: {}\nserver: {}",
        cli.log(),
        srv.log()
    );
    assert!(
        cli.log()
            .contains(&format!("{NAME} now resolves to 198.18.0.1:5555")),
        "{}",
        cli.log()
    );
    drop(cli);

    // 4. SIGTERM during the wait ends it at once, exit status 0.
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let mut cli = Client::start(&b, &hosts, &resolv, &key, dir.path("cli3.log"), "t2");
    assert!(
        cli.wait_log(&format!("waiting for {NAME} to resolve"), 10),
        "client: {}",
        cli.log()
    );
    let (code, took) = cli
        .terminate()
        .expect("client ignored SIGTERM while waiting");
    assert_eq!(code, Some(0), "{}", cli.log());
    assert!(took < Duration::from_secs(1), "{took:?}: {}", cli.log());
    drop(cli);

    // 5. SIGTERM while a look-up is blocked on a DNS server that does not answer (a
    //    socket of the test's that reads nothing; the resolver waits 2 x 5 s).
    std::fs::write(
        &resolv,
        "nameserver 198.18.0.2\noptions timeout:5 attempts:2\n",
    )
    .unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let netns = format!("/var/run/netns/{}", b.name);
    let silent = std::thread::spawn(move || {
        use std::os::fd::AsFd;
        let fd = std::fs::File::open(&netns).expect("open netns");
        nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let sock = std::net::UdpSocket::bind("198.18.0.2:53").expect("bind 53");
        ready_tx.send(()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(60));
        drop(sock);
    });
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut cli = Client::start(&b, &hosts, &resolv, &key, dir.path("cli4.log"), "t3");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(cli.running(), "{}", cli.log());
    let (code, took) = cli
        .terminate()
        .expect("client ignored SIGTERM in a look-up");
    assert!(
        !cli.log().contains("waiting for"),
        "the first look-up should still have been running: {}",
        cli.log()
    );
    assert_eq!(code, Some(0), "{}", cli.log());
    assert!(took < Duration::from_secs(1), "{took:?}: {}", cli.log());
    done_tx.send(()).unwrap();
    silent.join().unwrap();
    a.stop(srv.pid);
}
