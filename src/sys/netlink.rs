//! A small synchronous rtnetlink client (netlink-packet-route + netlink-sys): enough to
//! configure links, addresses and routes without the `ip` tool, which a router may lack.
use super::SysError;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;

/// A route-netlink socket. Requests are sent one at a time and answered synchronously.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Flags for a request that creates something and must fail if it exists.
pub const CREATE_EXCL: u16 = NLM_F_CREATE | NLM_F_EXCL;
/// Flags for a request that creates or replaces.
pub const CREATE_REPLACE: u16 = NLM_F_CREATE | NLM_F_REPLACE;

impl Rtnl {
    pub fn new() -> Result<Rtnl, SysError> {
        let mut sock = Socket::new(NETLINK_ROUTE)
            .map_err(|e| SysError::os("cannot open netlink socket", e))?;
        sock.bind_auto()
            .map_err(|e| SysError::os("cannot bind netlink socket", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| SysError::os("cannot connect netlink socket", e))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends one request and collects the answer: the messages of a dump, or nothing
    /// for an acknowledged change. A netlink error comes back as `io::Error`.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answers = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[off..n]).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {e}"))
                    })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "netlink: zero-length message",
                    ));
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None if !dump => Ok(answers),
                            None => continue,
                            Some(_) => Err(e.to_io()),
                        }
                    }
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The index of the link called `name` (SIOCGIFINDEX via if_nametoindex, not an
    /// RTM_GETLINK reply: that reply carries dozens of nested attributes we would parse only
    /// to throw away, and qemu-user mis-converts the nested ones it doesn't know for
    /// big-endian guests, which broke the mips tests under QEMU).
    pub fn link_index(&mut self, name: &str) -> Result<u32, SysError> {
        match nix::net::if_::if_nametoindex(name) {
            Ok(index) => Ok(index),
            Err(nix::errno::Errno::ENODEV) => {
                Err(SysError::new(format!("no network device called '{name}'")))
            }
            Err(e) => Err(SysError::os(
                format!("cannot look up device '{name}'"),
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
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix_len;
        msg.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        if addr.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
        }
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        match self.request(RouteNetlinkMessage::NewAddress(msg), CREATE_EXCL) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(SysError::os(
                format!("cannot add address {addr}/{prefix_len}"),
                e,
            )),
        }
    }

    fn set_link(
        &mut self,
        index: u32,
        what: &str,
        edit: impl FnOnce(&mut LinkMessage),
    ) -> Result<(), SysError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        edit(&mut msg);
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .map(drop)
            .map_err(|e| SysError::os(format!("cannot {what} (link {index})"), e))
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), SysError> {
        self.set_link(index, &format!("set MTU {mtu}"), |m| {
            m.attributes.push(LinkAttribute::Mtu(mtu))
        })
    }

    pub fn set_up(&mut self, index: u32, up: bool) -> Result<(), SysError> {
        self.set_link(
            index,
            if up {
                "bring link up"
            } else {
                "bring link down"
            },
            |m| {
                if up {
                    m.header.flags = LinkFlags::Up;
                }
                m.header.change_mask = LinkFlags::Up;
            },
        )
    }
}
