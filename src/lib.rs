//! tunbox: TUN/TAP reflector, point-to-point tunnel and eth0-to-tap bridge setup.
//!
//! The core (`wire`, `tunnel`, `config`, the bridge plan) does no I/O; `sys` is the
//! only module that talks to the kernel.
pub mod app;
pub mod bridge;
pub mod cli;
pub mod clock;
pub mod config;
pub mod reflect;
pub mod selftest;
pub mod sys;
pub mod tunnel;
pub mod tunnel_run;
pub mod wire;

/// `println!` that never panics: a closed stdout (`tunbox --help | head -1`, a log
/// collector gone away) is not a reason to die, so write errors are ignored.
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `print!` that never panics (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($t)*);
    }};
}
