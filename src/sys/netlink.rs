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

// ---------------------------------------------------------------------------------
// Plain views of links, addresses and routes (what `tunbox bridge` plans with), and
// the requests that change them. Indexes are the kernel's; names are resolved by the
// caller.

use netlink_packet_route::address::{AddressFlags, AddressProtocol, AddressScope, CacheInfo};
use netlink_packet_route::link::{InfoKind, LinkInfo, LinkLayerType};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHopFlags,
    RoutePreference, RouteProtocol, RouteScope, RouteType,
};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One network device as `ip link` shows it, reduced to what tunbox changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND: "bridge", "tun", "veth", ... (None for plain hardware).
    pub kind: Option<String>,
    /// Ethernet framing (ARPHRD_ETHER): a tap is, a tun is not.
    pub ether: bool,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    /// Index of the bridge (or bond) this device is a port of.
    pub master: Option<u32>,
}

/// One address as `ip addr` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrEntry {
    pub index: u32,
    /// IFA_LOCAL (IPv4) or IFA_ADDRESS (IPv6): the address itself.
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// The far end of a point-to-point address (IFA_ADDRESS when it differs).
    pub peer: Option<IpAddr>,
    pub broadcast: Option<Ipv4Addr>,
    pub scope: u8,
    /// IFA_F_* flags (IFA_FLAGS, 32 bits).
    pub flags: u32,
    pub label: Option<String>,
    /// Remaining (valid, preferred) lifetimes in seconds; None = forever.
    pub lifetimes: Option<(u32, u32)>,
    /// IFA_PROTO: who made the address (1 loopback, 2 link-local, 3 router advert.).
    pub proto: Option<u8>,
    /// IFA_RT_PRIORITY: metric of the prefix route.
    pub metric: Option<u32>,
}

/// One unicast route as `ip route show table all` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub oif: Option<u32>,
    pub table: u32,
    /// The destination network; the unspecified address with length 0 for a default route.
    pub dst: IpAddr,
    pub dst_len: u8,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    pub metric: u32,
    pub protocol: u8,
    pub scope: u8,
    /// RTN_* type (1 = unicast).
    pub kind: u8,
    pub tos: u8,
    pub onlink: bool,
    /// IPv6 router preference (RTA_PREF).
    pub pref: Option<u8>,
    /// Has more than one next hop (RTA_MULTIPATH); such routes are reported, not moved.
    pub multipath: bool,
}

/// Address flags a request may set (the rest are kernel state).
const SETTABLE_ADDR_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400; // nodad homeaddress mngtmpaddr noprefixroute autojoin

pub const RTPROT_KERNEL: u8 = 2;
pub const RTPROT_RA: u8 = 9;
pub const RTN_UNICAST: u8 = 1;
pub const RT_TABLE_LOCAL: u32 = 255;
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_PERMANENT: u32 = 0x80;

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn family_of(a: &IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn link_state(m: &LinkMessage) -> Option<LinkState> {
    let mut l = LinkState {
        index: m.header.index,
        name: String::new(),
        kind: None,
        ether: m.header.link_layer_type == LinkLayerType::Ether,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        mac: None,
        master: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(b);
                l.mac = Some(mac);
            }
            LinkAttribute::Controller(i) if *i != 0 => l.master = Some(*i),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    (!l.name.is_empty()).then_some(l)
}

fn addr_entry(m: &AddressMessage) -> Option<AddrEntry> {
    let mut local = None;
    let mut address = None;
    let mut e = AddrEntry {
        index: m.header.index,
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix_len: m.header.prefix_len,
        peer: None,
        broadcast: None,
        scope: u8::from(m.header.scope),
        flags: u32::from(m.header.flags.bits()),
        label: None,
        lifetimes: None,
        proto: None,
        metric: None,
    };
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Broadcast(b) => e.broadcast = Some(*b),
            AddressAttribute::Label(s) => e.label = Some(s.clone()),
            AddressAttribute::Flags(f) => e.flags = f.bits(),
            AddressAttribute::CacheInfo(c)
                if c.ifa_valid != u32::MAX || c.ifa_preferred != u32::MAX =>
            {
                e.lifetimes = Some((c.ifa_valid, c.ifa_preferred));
            }
            AddressAttribute::Protocol(p) => e.proto = Some(u8::from(*p)),
            AddressAttribute::RoutePriority(p) => e.metric = Some(*p),
            _ => {}
        }
    }
    match (local, address) {
        (Some(l), Some(a)) => {
            e.addr = l;
            if a != l {
                e.peer = Some(a);
            }
        }
        (Some(x), None) | (None, Some(x)) => e.addr = x,
        (None, None) => return None,
    }
    Some(e)
}

fn route_entry(m: &RouteMessage) -> Option<RouteEntry> {
    let unspecified = match m.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut r = RouteEntry {
        oif: None,
        table: u32::from(m.header.table),
        dst: unspecified,
        dst_len: m.header.destination_prefix_length,
        gateway: None,
        prefsrc: None,
        metric: 0,
        protocol: u8::from(m.header.protocol),
        scope: u8::from(m.header.scope),
        kind: u8::from(m.header.kind),
        tos: m.header.tos,
        onlink: m.header.flags.contains(RouteFlags::Onlink),
        pref: None,
        multipath: false,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Table(t) => r.table = *t,
            RouteAttribute::Destination(d) => r.dst = ip_of(d)?,
            RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
            RouteAttribute::PrefSource(s) => r.prefsrc = ip_of(s),
            RouteAttribute::Priority(p) => r.metric = *p,
            RouteAttribute::Preference(p) => r.pref = Some(u8::from(*p)),
            RouteAttribute::MultiPath(_) => r.multipath = true,
            _ => {}
        }
    }
    Some(r)
}

/// A route with several next hops becomes one entry per hop. IPv6 keeps such
/// "siblings" as separate routes (a dump merely groups them), so each is a route of
/// its own there; an IPv4 multipath route is one route, and its entries keep
/// `multipath` set.
fn route_entries(m: &RouteMessage) -> Vec<RouteEntry> {
    let Some(base) = route_entry(m) else {
        return Vec::new();
    };
    let hops = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::MultiPath(h) => Some(h),
        _ => None,
    });
    let Some(hops) = hops else {
        return vec![base];
    };
    hops.iter()
        .map(|h| {
            let mut r = base.clone();
            r.oif = Some(h.interface_index);
            r.gateway = h.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => ip_of(g),
                _ => None,
            });
            r.onlink = h.flags.contains(RouteNextHopFlags::Onlink);
            r.multipath = base.dst.is_ipv4();
            r
        })
        .collect()
}

fn route_message(r: &RouteEntry) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family_of(&r.dst);
    m.header.destination_prefix_length = r.dst_len;
    m.header.tos = r.tos;
    m.header.table = if r.table < 256 {
        r.table as u8
    } else {
        RouteHeader::RT_TABLE_UNSPEC
    };
    m.header.protocol = RouteProtocol::from(r.protocol);
    m.header.scope = RouteScope::from(r.scope);
    m.header.kind = RouteType::from(r.kind);
    if r.onlink {
        m.header.flags = RouteFlags::Onlink;
    }
    if r.dst_len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(r.dst)));
    }
    m.attributes.push(RouteAttribute::Table(r.table));
    if let Some(g) = r.gateway {
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(g)));
    }
    if let Some(s) = r.prefsrc {
        m.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(s)));
    }
    m.attributes.push(RouteAttribute::Priority(r.metric));
    if let Some(o) = r.oif {
        m.attributes.push(RouteAttribute::Oif(o));
    }
    if let Some(p) = r.pref {
        m.attributes
            .push(RouteAttribute::Preference(RoutePreference::from(p)));
    }
    m
}

fn addr_message(a: &AddrEntry, for_add: bool) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = a.index;
    m.header.prefix_len = a.prefix_len;
    m.header.family = family_of(&a.addr);
    m.header.scope = AddressScope::from(a.scope);
    m.attributes.push(AddressAttribute::Local(a.addr));
    m.attributes
        .push(AddressAttribute::Address(a.peer.unwrap_or(a.addr)));
    if for_add {
        let flags = a.flags & SETTABLE_ADDR_FLAGS;
        m.header.flags = AddressHeaderFlags::from_bits_retain(flags as u8);
        m.attributes
            .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                flags,
            )));
        if let Some(b) = a.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        if let Some(l) = &a.label {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        if let Some((valid, preferred)) = a.lifetimes {
            let mut info = CacheInfo::default();
            info.ifa_preferred = preferred;
            info.ifa_valid = valid;
            m.attributes.push(AddressAttribute::CacheInfo(info));
        }
        if let Some(p) = a.proto {
            m.attributes
                .push(AddressAttribute::Protocol(AddressProtocol::from(p)));
        }
        if let Some(p) = a.metric {
            m.attributes.push(AddressAttribute::RoutePriority(p));
        }
    }
    m
}

impl Rtnl {
    fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, SysError> {
        self.request(msg, NLM_F_DUMP)
            .map_err(|e| SysError::os(format!("cannot list {what}"), e))
    }

    /// Every network device.
    pub fn links(&mut self) -> Result<Vec<LinkState>, SysError> {
        let answers = self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "links",
        )?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => link_state(l),
                _ => None,
            })
            .collect())
    }

    /// Every IPv4 and IPv6 address, in the kernel's order (primary before secondary).
    pub fn addresses(&mut self) -> Result<Vec<AddrEntry>, SysError> {
        let answers = self.dump(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            "addresses",
        )?;
        Ok(answers
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => addr_entry(a),
                _ => None,
            })
            .collect())
    }

    /// Every IPv4 and IPv6 route of every table.
    pub fn routes(&mut self) -> Result<Vec<RouteEntry>, SysError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let answers = self.dump(RouteNetlinkMessage::GetRoute(msg), "routes")?;
            out.extend(answers.iter().flat_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_entries(r),
                _ => Vec::new(),
            }));
        }
        Ok(out)
    }

    /// Creates a bridge device called `name` (down, kernel-chosen MAC).
    pub fn create_bridge(&mut self, name: &str) -> Result<(), SysError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(RouteNetlinkMessage::NewLink(msg), CREATE_EXCL)
            .map(drop)
            .map_err(|e| SysError::os(format!("cannot create bridge '{name}'"), e))
    }

    /// Deletes a virtual device (bridge, veth, tun, ...).
    pub fn delete_link(&mut self, index: u32) -> Result<(), SysError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), 0)
            .map(drop)
            .map_err(|e| SysError::os(format!("cannot delete link {index}"), e))
    }

    /// Makes link `index` a port of `master`, or of nothing with `None`.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<(), SysError> {
        let what = match master {
            Some(m) => format!("add it to bridge {m}"),
            None => "remove it from its bridge".to_string(),
        };
        self.set_link(index, &what, |m| {
            m.attributes
                .push(LinkAttribute::Controller(master.unwrap_or(0)))
        })
    }

    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<(), SysError> {
        self.set_link(index, "set its MAC address", |m| {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()))
        })
    }

    /// Adds an address with its flags, broadcast, label and lifetimes (to `a.index`).
    pub fn add_addr(&mut self, a: &AddrEntry) -> Result<(), SysError> {
        self.request(
            RouteNetlinkMessage::NewAddress(addr_message(a, true)),
            CREATE_EXCL,
        )
        .map(drop)
        .map_err(|e| {
            SysError::os(
                format!(
                    "cannot add address {}/{} (link {})",
                    a.addr, a.prefix_len, a.index
                ),
                e,
            )
        })
    }

    pub fn del_addr(&mut self, a: &AddrEntry) -> Result<(), SysError> {
        self.request(RouteNetlinkMessage::DelAddress(addr_message(a, false)), 0)
            .map(drop)
            .map_err(|e| {
                SysError::os(
                    format!(
                        "cannot delete address {}/{} (link {})",
                        a.addr, a.prefix_len, a.index
                    ),
                    e,
                )
            })
    }

    /// Adds a route (`r.oif` says through which link). An identical route through
    /// another link may exist: both are kept.
    pub fn add_route(&mut self, r: &RouteEntry) -> Result<(), SysError> {
        self.request(
            RouteNetlinkMessage::NewRoute(route_message(r)),
            NLM_F_CREATE,
        )
        .map(drop)
        .map_err(|e| SysError::os(format!("cannot add route to {}/{}", r.dst, r.dst_len), e))
    }

    pub fn del_route(&mut self, r: &RouteEntry) -> Result<(), SysError> {
        self.request(RouteNetlinkMessage::DelRoute(route_message(r)), 0)
            .map(drop)
            .map_err(|e| SysError::os(format!("cannot delete route to {}/{}", r.dst, r.dst_len), e))
    }
}

#[cfg(test)]
mod view_tests {
    //! The plain views against the crate's own encoder and parser: what tunbox sends
    //! must read back as the same entry.
    use super::*;
    use netlink_packet_core::{NetlinkDeserializable, NetlinkSerializable};
    use netlink_packet_route::route::RouteNextHop;

    fn wire(m: RouteNetlinkMessage) -> RouteNetlinkMessage {
        let mut header = NetlinkHeader::default();
        header.message_type = m.message_type();
        let mut buf = vec![0u8; m.buffer_len()];
        m.serialize(&mut buf);
        RouteNetlinkMessage::deserialize(&header, &buf).expect("parses back")
    }

    fn entry(dst: &str, len: u8, gw: Option<&str>) -> RouteEntry {
        RouteEntry {
            oif: Some(7),
            table: 254,
            dst: dst.parse().unwrap(),
            dst_len: len,
            gateway: gw.map(|g| g.parse().unwrap()),
            prefsrc: None,
            metric: 1024,
            protocol: 3,
            scope: 0,
            kind: 1,
            tos: 0,
            onlink: false,
            pref: None,
            multipath: false,
        }
    }

    #[test]
    fn routes_read_back_as_sent() {
        let mut v4 = entry("198.19.0.0", 24, Some("198.18.0.1"));
        v4.prefsrc = Some("198.18.0.2".parse().unwrap());
        v4.onlink = true;
        let mut v6 = entry("::", 0, Some("2001:2::1"));
        v6.pref = Some(0);
        let mut big_table = entry("198.19.1.0", 24, None);
        big_table.table = 1000;
        big_table.scope = 253;
        for r in [v4, v6, big_table] {
            match wire(RouteNetlinkMessage::NewRoute(route_message(&r))) {
                RouteNetlinkMessage::NewRoute(m) => assert_eq!(route_entries(&m), vec![r]),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn multipath_is_split_per_hop() {
        for (dst, gw1, gw2) in [
            ("::", "2001:2::1", "2001:2::9"),
            ("0.0.0.0", "198.18.0.1", "198.18.0.9"),
        ] {
            let mut m = route_message(&entry(dst, 0, None));
            m.attributes
                .retain(|a| !matches!(a, RouteAttribute::Oif(_)));
            let hop = |i: u32, g: &str| {
                let mut h = RouteNextHop::default();
                h.interface_index = i;
                h.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::from(
                        g.parse::<IpAddr>().unwrap(),
                    )));
                h
            };
            m.attributes
                .push(RouteAttribute::MultiPath(vec![hop(2, gw1), hop(3, gw2)]));
            let RouteNetlinkMessage::NewRoute(m) = wire(RouteNetlinkMessage::NewRoute(m)) else {
                panic!()
            };
            let e = route_entries(&m);
            assert_eq!(e.len(), 2);
            assert_eq!((e[0].oif, e[1].oif), (Some(2), Some(3)));
            assert_eq!(e[0].gateway, Some(gw1.parse().unwrap()));
            assert_eq!(e[1].gateway, Some(gw2.parse().unwrap()));
            // IPv6 siblings are routes of their own; an IPv4 multipath route is one.
            assert_eq!(e[0].multipath, dst == "0.0.0.0");
        }
    }

    #[test]
    fn addresses_read_back_as_sent() {
        let a = AddrEntry {
            index: 3,
            addr: "198.18.0.2".parse().unwrap(),
            prefix_len: 24,
            peer: None,
            broadcast: Some(Ipv4Addr::new(198, 18, 0, 255)),
            scope: 0,
            flags: 0x200,
            label: Some("br-tunbox".into()),
            lifetimes: Some((3600, 1800)),
            proto: None,
            metric: Some(5),
        };
        let mut p2p = a.clone();
        p2p.peer = Some("198.18.0.9".parse().unwrap());
        p2p.broadcast = None;
        p2p.lifetimes = None;
        let mut v6 = a.clone();
        v6.addr = "2001:2::2".parse().unwrap();
        v6.prefix_len = 64;
        v6.broadcast = None;
        v6.label = None;
        v6.flags = 0x02 | 0x100;
        for x in [a, p2p, v6] {
            let RouteNetlinkMessage::NewAddress(m) =
                wire(RouteNetlinkMessage::NewAddress(addr_message(&x, true)))
            else {
                panic!()
            };
            assert_eq!(addr_entry(&m), Some(x));
        }
    }
}
