//! A small synchronous rtnetlink client over a raw NETLINK_ROUTE socket: enough to
//! configure links, addresses and routes without the `ip` tool, which a router may lack.
//! The messages themselves are built and parsed in `msg` (no I/O, unit-tested).
mod msg;

pub use msg::{
    AddrEntry, LinkState, RouteEntry, IFA_F_NODAD, IFA_F_PERMANENT, RTN_UNICAST, RTPROT_KERNEL,
    RTPROT_RA, RT_TABLE_LOCAL,
};

/// The reply parsers on arbitrary bytes, for the fuzz targets in fuzz/ (cargo-fuzz
/// builds with `--cfg fuzzing`; never in a normal build).
#[cfg(fuzzing)]
pub mod fuzz_api {
    pub use super::msg::{parse_addr, parse_link, parse_routes, process, Step};
}

use super::tun::ifreq_for;
use super::SysError;
use msg::{Malformed, Step};
use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

enum IfIoctl {
    Mtu(u32),
    Up(bool),
}

nix::ioctl_write_ptr_bad!(siocsifmtu, libc::SIOCSIFMTU, libc::ifreq);
nix::ioctl_readwrite_bad!(siocgifflags, libc::SIOCGIFFLAGS, libc::ifreq);
nix::ioctl_write_ptr_bad!(siocsifflags, libc::SIOCSIFFLAGS, libc::ifreq);

/// A route-netlink socket. Requests are sent one at a time and answered synchronously.
pub struct Rtnl {
    sock: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

fn malformed(e: Malformed) -> io::Error {
    crate::io_error(
        io::ErrorKind::InvalidData,
        format!("netlink: malformed reply ({})", e.0),
    )
}

/// What [`Rtnl::request`] calls for each message of a reply (type, payload).
type OnMsg<'a> = &'a mut dyn FnMut(u16, &[u8]) -> Result<(), Malformed>;

impl Rtnl {
    pub fn new() -> Result<Rtnl, SysError> {
        let sock = socket::socket(
            socket::AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| SysError::os("cannot open netlink socket", e))?;
        socket::bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| SysError::os("cannot bind netlink socket", e))?;
        socket::connect(sock.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| SysError::os("cannot connect netlink socket", e))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends one request (built by `msg`, acknowledgement requested) and collects the
    /// answer: `on_msg` sees each message of a dump (type and payload); a change only
    /// waits for its acknowledgement. A netlink error comes back as `io::Error`.
    fn request(
        &mut self,
        mut req: Vec<u8>,
        dump: bool,
        // dyn, not generic: one copy of the send/receive loop for every caller (size)
        mut on_msg: OnMsg<'_>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        msg::set_seq(&mut req, self.seq);
        let fd = self.sock.as_raw_fd();
        loop {
            match socket::send(fd, &req, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(n) if n != req.len() => {
                    return Err(crate::io_error(
                        io::ErrorKind::WriteZero,
                        "netlink: short send",
                    ))
                }
                Ok(_) => break,
            }
        }
        loop {
            let n = match socket::recv(fd, &mut self.buf, MsgFlags::MSG_TRUNC) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(n) => n,
            };
            if n == 0 {
                return Err(crate::io_error(
                    io::ErrorKind::UnexpectedEof,
                    "netlink: empty reply",
                ));
            }
            if n > self.buf.len() {
                return Err(crate::io_error(
                    io::ErrorKind::InvalidData,
                    format!("netlink: reply of {n} bytes truncated"),
                ));
            }
            match msg::process(&self.buf[..n], self.seq, dump, &mut on_msg).map_err(malformed)? {
                Step::More => {}
                Step::Finished => return Ok(()),
                Step::Failed(errno) => return Err(io::Error::from_raw_os_error(errno)),
            }
        }
    }

    /// A change: sent, acknowledged, nothing to collect.
    fn change(&mut self, req: Vec<u8>) -> io::Result<()> {
        self.request(req, false, &mut |_, _| Ok(()))
    }

    /// The index of the link called `name` (SIOCGIFINDEX via if_nametoindex, not an
    /// RTM_GETLINK reply: that reply carries dozens of nested attributes we would parse only
    /// to throw away, and qemu-user mis-converts the nested ones it doesn't know for
    /// big-endian guests, which broke the mips tests under QEMU).
    pub fn link_index(&mut self, name: &str) -> Result<u32, SysError> {
        match nix::net::if_::if_nametoindex(name) {
            Ok(index) => Ok(index),
            Err(Errno::ENODEV) => Err(SysError::new(format!("no network device called '{name}'"))),
            Err(e) => Err(SysError::os(
                format_args!("cannot look up device '{name}'"),
                io::Error::from(e),
            )),
        }
    }

    /// Adds `addr/prefix_len` to link `index` (IPv6 without duplicate address detection,
    /// which a point-to-point device doesn't need). An address already there is fine.
    pub fn add_address(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), SysError> {
        match self.change(msg::new_address(index, addr, prefix_len)) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(SysError::os(
                format_args!("cannot add address {addr}/{prefix_len}"),
                e,
            )),
        }
    }

    fn set_link(&mut self, index: u32, what: &str, req: Vec<u8>) -> Result<(), SysError> {
        self.change(req)
            .map_err(|e| SysError::os(format_args!("cannot {what} (link {index})"), e))
    }

    /// MTU and IFF_UP go through the classic ioctls (SIOCSIFMTU, SIOCGIFFLAGS +
    /// SIOCSIFFLAGS) on this socket, which the kernel hands to dev_ioctl: qemu-user
    /// translates those ifreqs for big-endian guests, but not the IFLA_* attributes of an
    /// RTM_SETLINK request, so the reflector and the tunnel are tested under qemu-mips.
    fn ifreq(&self, name: &str, what: &str, cmd: IfIoctl) -> Result<(), SysError> {
        let fd = self.sock.as_raw_fd();
        let mut req = ifreq_for(name, 0)?;
        // SAFETY: fd is an open socket and req a valid ifreq with a NUL-terminated name;
        // SIOCGIFFLAGS writes only into req.
        let r = unsafe {
            match cmd {
                IfIoctl::Mtu(mtu) => {
                    req.ifr_ifru.ifru_mtu = mtu.min(libc::c_int::MAX as u32) as libc::c_int;
                    siocsifmtu(fd, &req)
                }
                IfIoctl::Up(up) => siocgifflags(fd, &mut req).and_then(|_| {
                    let up_flag = libc::IFF_UP as libc::c_short;
                    let flags = req.ifr_ifru.ifru_flags & !up_flag;
                    req.ifr_ifru.ifru_flags = if up { flags | up_flag } else { flags };
                    siocsifflags(fd, &req)
                }),
            }
        };
        r.map(drop)
            .map_err(|e| SysError::os(format_args!("cannot {what} (link '{name}')"), e))
    }

    pub fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), SysError> {
        self.ifreq(name, &format!("set MTU {mtu}"), IfIoctl::Mtu(mtu))
    }

    pub fn set_up(&self, name: &str, up: bool) -> Result<(), SysError> {
        let what = if up {
            "bring link up"
        } else {
            "bring link down"
        };
        self.ifreq(name, what, IfIoctl::Up(up))
    }

    /// `parse` sees each message of type `want` (`dyn`: one copy for every kind; size).
    fn dump(
        &mut self,
        req: Vec<u8>,
        what: &str,
        want: u16,
        parse: &mut dyn FnMut(&[u8]) -> Result<(), Malformed>,
    ) -> Result<(), SysError> {
        self.request(req, true, &mut |t, payload| {
            if t == want {
                parse(payload)
            } else {
                Ok(())
            }
        })
        .map_err(|e| SysError::os(format_args!("cannot list {what}"), e))
    }

    /// Every network device.
    pub fn links(&mut self) -> Result<Vec<LinkState>, SysError> {
        let mut out = Vec::new();
        self.dump(msg::dump_links(), "links", msg::RTM_NEWLINK, &mut |p| {
            out.extend(msg::parse_link(p)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Every IPv4 and IPv6 address, in the kernel's order (primary before secondary).
    pub fn addresses(&mut self) -> Result<Vec<AddrEntry>, SysError> {
        let mut out = Vec::new();
        self.dump(
            msg::dump_addresses(),
            "addresses",
            msg::RTM_NEWADDR,
            &mut |p| {
                out.extend(msg::parse_addr(p)?);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Every IPv4 and IPv6 route of every table.
    pub fn routes(&mut self) -> Result<Vec<RouteEntry>, SysError> {
        let mut out = Vec::new();
        for family in [msg::AF_INET, msg::AF_INET6] {
            self.dump(
                msg::dump_routes(family),
                "routes",
                msg::RTM_NEWROUTE,
                &mut |p| {
                    out.extend(msg::parse_routes(p)?);
                    Ok(())
                },
            )?;
        }
        Ok(out)
    }

    /// Creates a bridge device called `name` (down, kernel-chosen MAC).
    pub fn create_bridge(&mut self, name: &str) -> Result<(), SysError> {
        self.change(msg::create_bridge(name))
            .map_err(|e| SysError::os(format_args!("cannot create bridge '{name}'"), e))
    }

    /// Deletes a virtual device (bridge, veth, tun, ...).
    pub fn delete_link(&mut self, index: u32) -> Result<(), SysError> {
        self.change(msg::delete_link(index))
            .map_err(|e| SysError::os(format_args!("cannot delete link {index}"), e))
    }

    /// Makes link `index` a port of `master`, or of nothing with `None`.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<(), SysError> {
        let what = match master {
            Some(m) => format!("add it to bridge {m}"),
            None => "remove it from its bridge".to_string(),
        };
        self.set_link(index, &what, msg::set_master(index, master))
    }

    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), SysError> {
        self.set_link(index, "set its MAC address", msg::set_mac(index, mac))
    }

    /// Adds an address with its flags, broadcast, label and lifetimes (to `a.index`).
    pub fn add_addr(&mut self, a: &AddrEntry) -> Result<(), SysError> {
        self.change_addr(a, true)
    }

    pub fn del_addr(&mut self, a: &AddrEntry) -> Result<(), SysError> {
        self.change_addr(a, false)
    }

    /// Adds (`add`) or deletes an address: one request path and message for both.
    pub fn change_addr(&mut self, a: &AddrEntry, add: bool) -> Result<(), SysError> {
        self.change(msg::addr_request(a, add)).map_err(|e| {
            SysError::os(
                format_args!(
                    "cannot {} address {}/{} (link {})",
                    if add { "add" } else { "delete" },
                    a.addr,
                    a.prefix_len,
                    a.index
                ),
                e,
            )
        })
    }

    /// Adds a route (`r.oif` says through which link). An identical route through
    /// another link may exist: both are kept.
    pub fn add_route(&mut self, r: &RouteEntry) -> Result<(), SysError> {
        self.change_route(r, true)
    }

    pub fn del_route(&mut self, r: &RouteEntry) -> Result<(), SysError> {
        self.change_route(r, false)
    }

    /// Adds (`add`) or deletes a route: one request path and message for both.
    pub fn change_route(&mut self, r: &RouteEntry, add: bool) -> Result<(), SysError> {
        self.change(msg::route_request(r, add)).map_err(|e| {
            SysError::os(
                format_args!(
                    "cannot {} route to {}/{}",
                    if add { "add" } else { "delete" },
                    r.dst,
                    r.dst_len
                ),
                e,
            )
        })
    }
}
