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
