//! Logging to stderr (procd and systemd collect it) or to the local syslog (OpenWrt's
//! logd: `logread`). A line is formatted into a fixed stack buffer, so logging from the
//! packet loop allocates nothing on the stderr path.
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
}

type SyslogWriter = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

static SYSLOG: OnceLock<Mutex<SyslogWriter>> = OnceLock::new();

/// Sends log lines to syslog instead of stderr when `syslog` is set. Falls back to
/// stderr, saying so, when no syslog socket is there.
pub fn init(use_syslog: bool) {
    if !use_syslog {
        return;
    }
    let fmt = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: "tunbox".into(),
        pid: std::process::id(),
    };
    match syslog::unix(fmt) {
        Ok(w) => {
            let _ = SYSLOG.set(Mutex::new(w));
        }
        Err(e) => emit(
            Level::Warn,
            format_args!("no local syslog ({e}); logging to stderr"),
        ),
    }
}

/// Writes one line. Lines longer than the buffer are cut, never dropped.
pub fn emit(level: Level, args: fmt::Arguments<'_>) {
    let mut line: heapless::String<512> = heapless::String::new();
    let _ = line.write_fmt(args);
    if let Some(sys) = SYSLOG.get() {
        if let Ok(mut w) = sys.lock() {
            let _ = match level {
                Level::Error => w.err(line.as_str()),
                Level::Warn => w.warning(line.as_str()),
                Level::Info => w.info(line.as_str()),
            };
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
                let ms = now.saturating_duration_since(last).as_millis();
                let add = ms * self.per_sec as u128 / 1000;
                if add > 0 {
                    self.tokens = (self.tokens as u128 + add).min(self.burst as u128) as u32;
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
