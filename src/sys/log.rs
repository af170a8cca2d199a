//! Logging to stderr (procd and systemd collect it) or to the local syslog (OpenWrt's
//! logd: `logread`; rsyslog or journald on a Pi). A line is formatted into a fixed stack
//! buffer and written with one system call, so logging from the packet loop allocates
//! nothing on either path.
//!
//! Syslog is spoken directly: one datagram per line to /dev/log in the local form
//! `<PRI>tunbox[PID]: message` (facility daemon), which logd, busybox syslogd, rsyslog
//! and journald all accept; they stamp the time themselves. (The `syslog` crate did the
//! same but pulled in date formatting and hostname lookup: 28 KiB of a router's flash.)
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    /// Syslog priority: facility daemon (3) * 8 + severity.
    fn syslog_pri(self) -> u8 {
        3 * 8
            + match self {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
            }
    }
}

/// The local syslog socket and where it lives (to reconnect after logd restarts).
struct Syslog {
    sock: UnixDatagram,
    path: &'static str,
}

static SYSLOG: OnceLock<Syslog> = OnceLock::new();

/// The local syslog socket.
pub const SYSLOG_PATH: &str = "/dev/log";

/// Sends log lines to syslog instead of stderr when `syslog` is set. Falls back to
/// stderr, saying so, when no syslog socket is there.
pub fn init(use_syslog: bool) {
    if use_syslog {
        init_at(SYSLOG_PATH);
    }
}

/// [`init`] with another socket path (tests).
pub fn init_at(path: &'static str) {
    let sock = UnixDatagram::unbound().and_then(|s| s.connect(path).map(|()| s));
    match sock {
        Ok(sock) => {
            let _ = SYSLOG.set(Syslog { sock, path });
        }
        Err(e) => emit(
            Level::Warn,
            format_args!("no local syslog at {path} ({e}); logging to stderr"),
        ),
    }
}

/// Formats one syslog datagram: `<PRI>tunbox[PID]: line`.
fn syslog_line(level: Level, line: &str, pid: u32) -> heapless::String<600> {
    let mut out = heapless::String::new();
    let _ = write!(out, "<{}>tunbox[{pid}]: {line}", level.syslog_pri());
    out
}

/// Writes one line. Lines longer than the buffer are cut, never dropped.
pub fn emit(level: Level, args: fmt::Arguments<'_>) {
    let mut line: heapless::String<512> = heapless::String::new();
    let _ = line.write_fmt(args);
    if let Some(sys) = SYSLOG.get() {
        let msg = syslog_line(level, &line, std::process::id());
        let sent = sys.sock.send(msg.as_bytes()).or_else(|_| {
            // logd restarted: its socket is new, connect again once
            sys.sock
                .connect(sys.path)
                .and_then(|()| sys.sock.send(msg.as_bytes()))
        });
        if sent.is_ok() {
            return;
        }
    }
    let tag = match level {
        Level::Error => "error: ",
        Level::Warn => "warning: ",
        Level::Info => "",
    };
    let mut out: heapless::String<600> = heapless::String::new();
    let _ = writeln!(out, "tunbox: {tag}{line}");
    let _ = std::io::stderr().write_all(out.as_bytes());
}

#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::sys::log::emit($crate::sys::log::Level::Info, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::sys::log::emit($crate::sys::log::Level::Warn, format_args!($($t)*)) };
}
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::sys::log::emit($crate::sys::log::Level::Error, format_args!($($t)*)) };
}

/// A token bucket for log lines: `burst` lines at once, then `per_sec` a second.
/// Counts what it suppressed so the next allowed line can say so.
#[derive(Debug)]
pub struct RateLimit {
    tokens: u32,
    burst: u32,
    per_sec: u32,
    last: Option<Instant>,
    suppressed: u32,
}

impl RateLimit {
    pub const fn new(burst: u32, per_sec: u32) -> RateLimit {
        RateLimit {
            tokens: burst,
            burst,
            per_sec,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged now. Refills whole tokens by elapsed time.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            None => self.last = Some(now),
            Some(last) => {
                let ms = crate::clock::millis(now.saturating_duration_since(last));
                let add = ms.saturating_mul(u64::from(self.per_sec)) / 1000;
                if add > 0 {
                    self.tokens = (u64::from(self.tokens).saturating_add(add))
                        .min(u64::from(self.burst)) as u32;
                    self.last = Some(now);
                }
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            false
        }
    }

    /// How many lines were suppressed since the last call; resets the count.
    pub fn take_suppressed(&mut self) -> u32 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn syslog_datagrams_carry_priority_and_tag() {
        assert_eq!(
            syslog_line(Level::Error, "boom", 42).as_str(),
            "<27>tunbox[42]: boom"
        );
        assert_eq!(
            syslog_line(Level::Warn, "hm", 7).as_str(),
            "<28>tunbox[7]: hm"
        );
        assert_eq!(
            syslog_line(Level::Info, "ok", 1).as_str(),
            "<30>tunbox[1]: ok"
        );
        // an over-long line is cut, not dropped
        let long = "x".repeat(2000);
        assert!(syslog_line(Level::Info, &long, 1).len() <= 600);
    }

    #[test]
    fn lines_reach_a_syslog_socket() {
        let dir = std::env::temp_dir().join(format!("tbx-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path: &'static str = Box::leak(
            dir.join("log")
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        );
        let _ = std::fs::remove_file(path);
        let server = UnixDatagram::bind(path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        init_at(path);
        crate::warn!("disk {} is {}% full", "sda", 99);
        let mut buf = [0u8; 700];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            got,
            format!("<28>tunbox[{}]: disk sda is 99% full", std::process::id())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rate_limit_bursts_then_refills() {
        let t0 = Instant::now();
        let mut rl = RateLimit::new(3, 10);
        assert!(rl.allow(t0));
        assert!(rl.allow(t0));
        assert!(rl.allow(t0));
        assert!(!rl.allow(t0));
        assert!(!rl.allow(t0 + Duration::from_millis(50)));
        assert_eq!(rl.take_suppressed(), 2);
        // 10/s: after 100 ms one more line.
        assert!(rl.allow(t0 + Duration::from_millis(100)));
        assert!(!rl.allow(t0 + Duration::from_millis(120)));
        // a long pause refills only up to the burst
        let later = t0 + Duration::from_secs(60);
        assert!(rl.allow(later) && rl.allow(later) && rl.allow(later));
        assert!(!rl.allow(later));
    }
}
