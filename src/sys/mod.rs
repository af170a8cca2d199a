//! The only module that talks to the kernel: ioctls, netlink, capabilities, syslog,
//! signals. Everything here is thin; decisions live in the pure core.
pub mod caps;
pub mod dns;
pub mod lock;
pub mod log;
pub mod net;
pub mod netlink;
pub mod poll;
pub mod probe;
pub mod process;
pub mod signals;
pub mod sysctl;
pub mod thread_name;
pub mod threads;
pub mod trust;
pub mod tun;
pub mod udp;

use std::fmt;

/// An error from the OS layer, with a message a field technician can act on.
#[derive(Debug)]
pub struct SysError {
    pub msg: String,
}

impl SysError {
    pub fn new(msg: impl Into<String>) -> Self {
        SysError { msg: msg.into() }
    }
    /// `what` failed with an OS error; adds a hint for the errors people meet in the field.
    #[inline]
    pub fn os(what: impl fmt::Display, err: impl Into<std::io::Error>) -> Self {
        Self::os_dyn(&what, err.into())
    }
    /// The body of [`SysError::os`], once for every argument type (size).
    #[inline(never)]
    fn os_dyn(what: &dyn fmt::Display, err: std::io::Error) -> Self {
        let what = what.to_string();
        let hint = match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                " (tunbox needs CAP_NET_ADMIN for this: run as root, or under systemd \
                 with AmbientCapabilities=CAP_NET_ADMIN)"
            }
            Some(libc::ENOENT) if what.contains("/dev/net/tun") => {
                " (the kernel has no TUN support loaded: `modprobe tun`, on OpenWrt \
                 `opkg install kmod-tun`)"
            }
            _ => "",
        };
        SysError {
            msg: format!("{what}: {err}{hint}"),
        }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for SysError {}

pub use poll::poll_in;
