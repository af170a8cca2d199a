//! The backend of the `log` facade: lines go to stderr (procd and systemd collect it)
//! or, with `--syslog`, to the local syslog socket through the `syslog` crate
//! (OpenWrt's logd: `logread`; rsyslog or journald on a Pi).
//!
//! A line is formatted into a fixed stack buffer and written with one system call, so
//! logging from the packet loop allocates nothing on either path.
//!
//! Syslog datagrams are RFC 3164 in the local form `<PRI>tunbox[PID]: message`
//! (facility daemon), as logd, busybox syslogd, rsyslog and journald accept it; they
//! stamp the time and host themselves. The crate's own `Formatter3164` is not used: it
//! formats a local-time timestamp through the `time` crate on every line (allocating,
//! and panicking where `time` cannot determine the UTC offset in a threaded process),
//! and its hostname lookup is of no use on the local socket; nor is `unix_custom`: its
//! boxed errors link the whole `Debug` machinery of `io::Error` (about 4 KB on mips)
//! and its TCP/UDP/stream branches ride along. So the crate's `Logger` and `LogFormat`
//! run over a connected datagram socket of our own (logd, busybox syslogd, rsyslog and
//! journald all listen on a datagram /dev/log).
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::os::unix::net::UnixDatagram;
use syslog::{Facility, LogFormat, Logger, Severity};

/// The local syslog socket.
pub const SYSLOG_PATH: &str = "/dev/log";

/// Longest line kept; longer ones are cut, never dropped.
const LINE: usize = 512;
/// A syslog datagram: priority, tag and pid, then the line.
const DATAGRAM: usize = LINE + 40;

/// A line buffer that keeps what fits and cuts the rest at a character boundary
/// (heapless' own `write_str` refuses a piece that does not fit whole).
struct Cut<const N: usize>(heapless::String<N>);

impl<const N: usize> Cut<N> {
    fn new() -> Self {
        Cut(heapless::String::new())
    }
}

impl<const N: usize> std::fmt::Write for Cut<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = N - self.0.len();
        let mut end = s.len().min(room);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let _ = self.0.push_str(&s[..end]);
        if end < s.len() {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The RFC 3164 formatter for the local socket: `<PRI>tunbox[PID]: line`.
#[derive(Clone, Copy)]
struct Local {
    pid: u32,
}

impl Local {
    fn datagram(&self, severity: Severity, line: &str) -> heapless::String<DATAGRAM> {
        let pri = Facility::LOG_DAEMON as u8 | severity as u8;
        let mut out = Cut::new();
        let _ = write!(out, "<{pri}>tunbox[{}]: {line}", self.pid);
        out.0
    }
}

impl LogFormat<&str> for Local {
    fn format<W: std::io::Write>(
        &self,
        w: &mut W,
        severity: Severity,
        line: &str,
    ) -> syslog::Result<()> {
        // One write: one datagram.
        let msg = self.datagram(severity, line);
        w.write(msg.as_bytes())
            .map(drop)
            .map_err(syslog::Error::Write)
    }
}

/// The connected /dev/log socket as the crate's logger backend: a write is a datagram.
struct Dgram(UnixDatagram);

impl std::io::Write for Dgram {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn connect(path: &str) -> std::io::Result<Dgram> {
    let sock = UnixDatagram::unbound()?;
    sock.connect(path)?;
    Ok(Dgram(sock))
}

/// Where lines go once `--syslog` connected: the crate's logger and its socket path
/// (to connect again after logd restarts).
struct Syslog {
    logger: Mutex<Logger<Dgram, Local>>,
    path: &'static str,
}

/// The one logger of the process: stderr until [`init`] connects syslog.
struct Backend {
    syslog: OnceLock<Syslog>,
    /// Whether stderr lines start with `tunbox: `. Only on a terminal: procd and
    /// journald tag what they collect from stderr themselves (`tunbox[PID]: ...`),
    /// and so does the init script's `logger -t tunbox` for `tunbox config check`;
    /// a second program name there gave `tunbox: tunbox:` in logread.
    tag: AtomicBool,
}

static BACKEND: Backend = Backend {
    syslog: OnceLock::new(),
    tag: AtomicBool::new(false),
};

/// One line through the crate's logger, at the syslog severity of `level`.
fn send(logger: &mut Logger<Dgram, Local>, level: Level, line: &str) -> bool {
    match level {
        Level::Error => logger.err(line),
        Level::Warn => logger.warning(line),
        Level::Info => logger.info(line),
        Level::Debug | Level::Trace => logger.debug(line),
    }
    .is_ok()
}

impl Backend {
    /// Sends one line to syslog; false when that failed even after reconnecting.
    fn to_syslog(&self, sys: &Syslog, level: Level, line: &str) -> bool {
        let Ok(mut logger) = sys.logger.lock() else {
            return false;
        };
        if send(&mut logger, level, line) {
            return true;
        }
        // logd restarted: its socket is new, connect once more
        match connect(sys.path) {
            Ok(fresh) => {
                logger.backend = fresh;
                send(&mut logger, level, line)
            }
            Err(_) => false,
        }
    }

    fn to_stderr(&self, level: Level, line: &str) {
        let tag = match level {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            Level::Info => "",
            Level::Debug | Level::Trace => "debug: ",
        };
        let name = if self.tag.load(Ordering::Relaxed) {
            "tunbox: "
        } else {
            ""
        };
        let mut out: heapless::String<{ LINE + 20 }> = heapless::String::new();
        let _ = writeln!(out, "{name}{tag}{line}");
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

impl Log for Backend {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = Cut::<LINE>::new();
        let _ = line.write_fmt(*record.args());
        let line = line.0;
        if let Some(sys) = self.syslog.get() {
            if self.to_syslog(sys, record.level(), &line) {
                return;
            }
        }
        self.to_stderr(record.level(), &line);
    }

    fn flush(&self) {}
}

/// Installs the backend (stderr) once per process; later calls do nothing. The
/// `log::info!`-style macros call it, so every command logs without setup.
pub fn ensure_init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        BACKEND
            .tag
            .store(std::io::stderr().is_terminal(), Ordering::Relaxed);
        // Fails only when another logger is installed already (a test harness's):
        // then that one gets the lines.
        if log::set_logger(&BACKEND).is_ok() {
            log::set_max_level(LevelFilter::Info);
        }
    });
}

/// Sends log lines to syslog instead of stderr when `syslog` is set. Falls back to
/// stderr, saying so, when no syslog socket is there.
pub fn init(use_syslog: bool) {
    ensure_init();
    if use_syslog {
        init_at(SYSLOG_PATH);
    }
}

/// [`init`] with another socket path (tests).
pub fn init_at(path: &'static str) {
    ensure_init();
    let fmt = Local {
        pid: std::process::id(),
    };
    match connect(path) {
        Ok(backend) => {
            let _ = BACKEND.syslog.set(Syslog {
                logger: Mutex::new(Logger::new(backend, fmt)),
                path,
            });
        }
        Err(e) => log::warn!("no local syslog at {path} ({e}); logging to stderr"),
    }
}

/// Lets `debug!` lines through (`--verbose`).
pub fn set_debug(on: bool) {
    ensure_init();
    log::set_max_level(if on {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_not_lost() {
        let long = "x".repeat(700);
        let mut line = Cut::<LINE>::new();
        let _ = line.write_fmt(format_args!("state file {long}: bad"));
        assert_eq!(line.0.len(), LINE);
        assert!(line.0.starts_with("state file xxx"));
    }
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    fn severity(level: Level) -> Severity {
        match level {
            Level::Error => Severity::LOG_ERR,
            Level::Warn => Severity::LOG_WARNING,
            Level::Info => Severity::LOG_INFO,
            Level::Debug | Level::Trace => Severity::LOG_DEBUG,
        }
    }

    #[test]
    fn syslog_datagrams_carry_priority_and_tag() {
        let f = Local { pid: 42 };
        let line = |l, s| f.datagram(severity(l), s);
        assert_eq!(line(Level::Error, "boom").as_str(), "<27>tunbox[42]: boom");
        assert_eq!(line(Level::Warn, "hm").as_str(), "<28>tunbox[42]: hm");
        assert_eq!(line(Level::Info, "ok").as_str(), "<30>tunbox[42]: ok");
        assert_eq!(line(Level::Debug, "pkt").as_str(), "<31>tunbox[42]: pkt");
        // an over-long line is cut, not dropped
        let long = "x".repeat(2000);
        let cut = line(Level::Info, &long);
        assert!(cut.starts_with("<30>tunbox[42]: xxx") && cut.len() == DATAGRAM);
        // cut at a character boundary
        let mut c = Cut::<5>::new();
        let rest = "cdé";
        assert!(write!(c, "ab{rest}").is_err());
        assert_eq!(c.0.as_str(), "abcd");
    }

    /// Through the `log` macros, the backend and the `syslog` crate's socket to a
    /// datagram socket standing in for /dev/log; then that socket is replaced (logd
    /// restarting) and the next line reaches the new one.
    #[test]
    fn lines_reach_a_syslog_socket_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("tbx-log-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path: &'static str = Box::leak(
            dir.join("log")
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        );
        let _ = std::fs::remove_file(path);
        let bind = || {
            let s = UnixDatagram::bind(path).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        };
        let server = bind();
        init_at(path);
        let recv = |s: &UnixDatagram| {
            let mut buf = [0u8; 700];
            let n = s.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        log::warn!("disk {} is {}% full", "sda", 99);
        let pid = std::process::id();
        assert_eq!(
            recv(&server),
            format!("<28>tunbox[{pid}]: disk sda is 99% full")
        );
        log::error!("straight through the facade");
        assert_eq!(
            recv(&server),
            format!("<27>tunbox[{pid}]: straight through the facade")
        );
        drop(server);
        std::fs::remove_file(path).unwrap();
        let server = bind();
        log::info!("after the restart");
        assert_eq!(
            recv(&server),
            format!("<30>tunbox[{pid}]: after the restart")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
