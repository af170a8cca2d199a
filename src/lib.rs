//! tunbox: TUN/TAP reflector, point-to-point tunnel and eth0-to-tap bridge setup.
//!
//! The core (`wire`, `tunnel`, `config`, the bridge plan) does no I/O; `sys` is the
//! only module that talks to the kernel.
pub mod app;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod reflect;
pub mod selftest;
pub mod sys;
pub mod tunnel;
pub mod tunnel_run;
pub mod wire;
