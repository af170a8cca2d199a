//! Shared helpers for integration tests that need root and network namespaces.
//!
//! Rules (DEVELOPERS.md): every device, address and route lives in a namespace the
//! test made; addresses from 198.18.0.0/15 and 2001:2::/48; every process the test
//! starts is killed by PID and every namespace deleted on Drop, also when the test
//! panics; all traffic bounded in count and time.
#![allow(dead_code)]
pub mod counting;
use std::fs::File;
use std::os::fd::AsFd;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const TUNBOX: &str = env!("CARGO_BIN_EXE_tunbox");

/// Checks that this process can make namespaces (root); returns true or panics.
///
/// Tests that need root carry
/// `#[cfg_attr(tunbox_no_netns, ignore = "needs root and network namespaces ...")]`:
/// with `TUNBOX_SKIP_NETNS=1` set when building (build.rs turns it into that cfg) they
/// are reported as *ignored*; otherwise, run without root, they fail here with this
/// message. Neither way does a test that did not run count as passed. (libtest has no
/// way to ignore a test at run time, so the choice is made when building.)
pub fn need_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    panic!(
        "network namespace tests need root: run as root, or build and run with \
         TUNBOX_SKIP_NETNS=1 to have them reported as ignored"
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace deleted on Drop, with every process started in it killed.
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
    logs: Vec<std::path::PathBuf>,
}

impl Netns {
    /// `ip netns add tbx-<tag>-<pid>-<n>`, with lo up.
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "tbx-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns {
            name,
            children: Vec::new(),
            logs: Vec::new(),
        };
        ns.ip("link set lo up");
        ns
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// `ip ARGS` inside the namespace; panics with ip's message on failure.
    pub fn ip(&self, args: &str) {
        let out = self
            .cmd("ip")
            .args(args.split_whitespace())
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip {args} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ip -n NAME ARGS`; panics with ip's message on failure, returns its stdout.
    pub fn ip_out(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .args(["30", "ip", "-n", &self.name])
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The run directory of the tunbox processes started here (a test-hooks build keeps
    /// status sockets and high-water marks there, not in the shared /var/run/tunbox).
    pub fn run_dir(&self) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}-run", self.name))
    }

    /// `tunbox status ARGS` in this namespace, seeing the processes started here.
    pub fn tunbox_status(&self, args: &[&str]) -> Output {
        let dir = self.run_dir();
        let mut a = vec!["status"];
        a.extend_from_slice(args);
        self.run_env(
            10,
            TUNBOX,
            &a,
            &[("TUNBOX_TEST_RUN_DIR", dir.to_str().unwrap())],
        )
    }

    /// Like [`Netns::run`], with extra environment variables.
    pub fn run_env(&self, secs: u32, prog: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("timeout");
        c.args([&secs.to_string(), "ip", "netns", "exec", &self.name, prog]);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run command in namespace")
    }

    /// Runs a command to completion inside the namespace, bounded by `secs`.
    pub fn run(&self, secs: u32, prog: &str, args: &[&str]) -> Output {
        let mut c = Command::new("timeout");
        c.args([&secs.to_string(), "ip", "netns", "exec", &self.name, prog]);
        c.args(args);
        c.output().expect("run command in namespace")
    }

    /// Starts tunbox inside the namespace; it is killed when the namespace is dropped.
    /// stderr is captured to a file so the test can read the log.
    pub fn spawn_tunbox(&mut self, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let log = std::env::temp_dir().join(format!("{}-{}.log", self.name, self.logs.len()));
        self.logs.push(log.clone());
        let f = File::create(&log).expect("log file");
        let mut c = self.cmd(TUNBOX);
        // Run-time files (the tunnel server's handshake high-water mark) in a directory
        // of this namespace, not the shared /var/run/tunbox (a test-hooks build).
        let run_dir = self.run_dir();
        c.args(args)
            .env_remove("TUNBOX_CONFIG")
            .env("TUNBOX_TEST_RUN_DIR", &run_dir)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().expect("spawn tunbox");
        let pid = child.id();
        self.children.push(child);
        Spawned { pid, log }
    }

    /// Waits up to `secs` for a device to exist in the namespace.
    pub fn wait_dev(&self, dev: &str, secs: u64) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            let out = self.cmd("ip").args(["link", "show", dev]).output().unwrap();
            if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("UP") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Runs `f` on a thread whose network namespace is this one, and returns its result.
    pub fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = File::open(&path).expect("open netns");
            nix::sched::setns(fd.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// Kills (SIGTERM) a process started here and waits up to 5 s for it; returns its
    /// exit status code (None if it had to be SIGKILLed or died from a signal).
    pub fn stop(&mut self, pid: u32) -> Option<i32> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        let mut child = self.children.remove(i);
        // `ip netns exec` execs the program, so the PID is tunbox itself.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        // keep the logs of a failed test for reading; remove them when it passed
        if !std::thread::panicking() {
            for l in &self.logs {
                let _ = std::fs::remove_file(l);
            }
        }
    }
}

/// A tunbox process started by [`Netns::spawn_tunbox`].
pub struct Spawned {
    pub pid: u32,
    pub log: std::path::PathBuf,
}

impl Spawned {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `secs` for `needle` to appear in the log.
    pub fn wait_log(&self, needle: &str, secs: u64) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A line of /proc/PID/status, e.g. "CapEff".
    pub fn status_field(&self, field: &str) -> Option<String> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        s.lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .map(|l| l[field.len() + 1..].trim().to_string())
    }
}

/// Joins two namespaces with a veth pair named `a_if`/`b_if`.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    let tmp_a = format!("tbxa{}", SEQ.fetch_add(1, Ordering::Relaxed));
    let tmp_b = format!("tbxb{}", SEQ.fetch_add(1, Ordering::Relaxed));
    // made inside `a` (never in the root namespace), then one end moved to `b`
    a.ip(&format!("link add {tmp_a} type veth peer name {tmp_b}"));
    a.ip(&format!("link set {tmp_b} netns {}", b.name));
    a.ip(&format!("link set {tmp_a} name {a_if}"));
    b.ip(&format!("link set {tmp_b} name {b_if}"));
    a.ip(&format!("link set {a_if} up"));
    b.ip(&format!("link set {b_if} up"));
}

/// Runs a command (not in a namespace) and panics with its stderr when it fails.
pub fn run_ok(prog: &str, args: &[&str]) -> Output {
    let out = Command::new(prog).args(args).output().expect(prog);
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ping -c COUNT -W 1 ADDR` inside `ns`; returns (received, stdout).
pub fn ping(ns: &Netns, addr: &str, count: u32) -> (u32, String) {
    let out = ns.run(
        count + 5,
        "ping",
        &["-c", &count.to_string(), "-i", "0.2", "-W", "1", addr],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let received = text
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find(|p| p.ends_with("received"))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    (received, text)
}

/// The bytes [`tcp_echo_through`] sends: a pattern that catches reordering and loss.
pub fn echo_pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Sends `len` bytes of [`echo_pattern`] over TCP from `ns` to `target`, which a
/// reflector turns back to a listener on `listen` in the same namespace; the listener
/// echoes. Checks the listener saw the connection come from the target address, and
/// returns what came back.
pub fn tcp_echo_through(
    ns: &Netns,
    listen: &'static str,
    target: &'static str,
    len: usize,
) -> Vec<u8> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    ns.within(move || {
        let l = TcpListener::bind(listen).expect("listen");
        let server = std::thread::spawn(move || {
            let (mut s, peer) = l.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = vec![0u8; 65536];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
            peer
        });
        let addr: SocketAddr = target.parse().unwrap();
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let data = echo_pattern(len);
        let mut w = c.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            w.write_all(&data).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        c.read_to_end(&mut back).expect("read echo");
        writer.join().unwrap();
        let peer = server.join().unwrap();
        assert_eq!(
            peer.ip(),
            addr.ip(),
            "the listener's peer is the address dialled"
        );
        assert_eq!(back.len(), len, "bytes echoed");
        back
    })
}

/// The Internet checksum's end-around-carry fold of a 32-bit sum (RFC 1071), written
/// plainly here so tests check tunbox's checksums against an independent one.
pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The 16-bit big-endian word sum of `d` (an odd last byte padded with zero), unfolded.
pub fn sum(d: &[u8]) -> u32 {
    d.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum()
}
