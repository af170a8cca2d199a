//! tunbox: TUN/TAP reflector, point-to-point tunnel and eth0-to-tap bridge setup.
//!
//! The core (`wire`, `tunnel`, `config`, the bridge plan) does no I/O; `sys` is the
//! only module that talks to the kernel.
pub mod bridge;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod counters;
pub mod probe;
pub mod ratelimit;
pub mod reflect;
pub mod selftest;
pub mod status;
pub mod sys;
pub mod tunnel;
pub mod tunnel_run;
pub mod wire;

/// `println!` that never panics: a closed stdout (`tunbox --help | head -1`, a log
/// collector gone away) is not a reason to die, so write errors are ignored.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::print_out(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::print_out(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` that never panics (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {
        $crate::print_out(format_args!($($t)*))
    };
}

/// What [`outln!`] and [`out!`] expand to: one call per use instead of the stdout
/// handle, the write and the dropped error inlined at each of ~45 places.
#[doc(hidden)]
pub fn print_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = std::io::stdout().write_fmt(args);
}

/// An `io::Error` with a message. `io::Error::new(kind, "text")` boxes the text as std's
/// private `StringError`, whose `Debug` (string escaping with the Unicode grapheme
/// tables, about 3 KB on mipsel) stays linked as long as one such call remains: build
/// such errors here. Display shows the message, as `io::Error::new`'s does.
pub fn io_error(kind: std::io::ErrorKind, msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(kind, IoMsg(msg.into()))
}

/// The message of [`io_error`]; `Debug` writes it as it is (no escaping code).
struct IoMsg(String);

impl std::fmt::Debug for IoMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for IoMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IoMsg {}
