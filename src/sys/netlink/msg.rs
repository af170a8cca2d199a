//! rtnetlink messages without I/O: the requests tunbox sends, encoded byte by byte, and
//! the kernel's replies, decoded into the plain views of `super`. Netlink headers and
//! attributes are in host byte order (the binary also runs on big-endian MIPS), IP
//! addresses in network order. Every read of a reply is bounds-checked: a short or
//! garbled reply is an error, never a panic.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_DUMP: u16 = 0x300;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_SETLINK: u16 = 19;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

const IFF_UP: u32 = 0x1;
const ARPHRD_ETHER: u16 = 1;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;
const IFA_RT_PRIORITY: u16 = 9;
const IFA_PROTO: u16 = 11;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTA_PREF: u16 = 20;
/// RTNH_F_ONLINK, in rtm_flags as well as in rtnh_flags.
const RTNH_F_ONLINK: u32 = 4;
const RT_TABLE_UNSPEC: u8 = 0;

/// Address flags a request may set (the rest are kernel state).
const SETTABLE_ADDR_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400; // nodad homeaddress mngtmpaddr noprefixroute autojoin

pub const RTPROT_KERNEL: u8 = 2;
pub const RTPROT_RA: u8 = 9;
pub const RTN_UNICAST: u8 = 1;
pub const RT_TABLE_LOCAL: u32 = 255;
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_PERMANENT: u32 = 0x80;

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

/// A reply that does not parse; says what was wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

type Result<T> = std::result::Result<T, Malformed>;

// ---------------------------------------------------------------------------------
// Encoding

/// One request being built: the netlink header, the family header, then attributes.
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    fn new(msg_type: u16, flags: u16) -> Request {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by set_seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
        Request { buf }
    }

    /// struct ifinfomsg
    fn link(msg_type: u16, flags: u16, index: u32, ifflags: u32, change: u32) -> Request {
        let mut r = Request::new(msg_type, flags);
        r.buf.extend_from_slice(&[AF_UNSPEC, 0]);
        r.buf.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
        r.buf.extend_from_slice(&index.to_ne_bytes());
        r.buf.extend_from_slice(&ifflags.to_ne_bytes());
        r.buf.extend_from_slice(&change.to_ne_bytes());
        r
    }

    /// struct ifaddrmsg
    fn addr(
        msg_type: u16,
        flags: u16,
        family: u8,
        prefix_len: u8,
        ifa_flags: u8,
        scope: u8,
        index: u32,
    ) -> Request {
        let mut r = Request::new(msg_type, flags);
        r.buf
            .extend_from_slice(&[family, prefix_len, ifa_flags, scope]);
        r.buf.extend_from_slice(&index.to_ne_bytes());
        r
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (NLA_HDRLEN + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.attr(ty, &data);
    }

    // not inlined: used by every address and route request (size)
    #[inline(never)]
    fn attr_ip(&mut self, ty: u16, ip: &IpAddr) {
        match ip {
            IpAddr::V4(v) => self.attr(ty, &v.octets()),
            IpAddr::V6(v) => self.attr(ty, &v.octets()),
        }
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// The finished message, length filled in; the sequence number is still 0.
    #[inline(never)]
    pub fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// Writes the sequence number into a finished request.
pub fn set_seq(msg: &mut [u8], seq: u32) {
    if msg.len() >= NLMSG_HDRLEN {
        msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    }
}

fn family_of(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// RTM_NEWADDR for a plain address (IPv6 without duplicate address detection).
pub fn new_address(index: u32, addr: IpAddr, prefix_len: u8) -> Vec<u8> {
    let flags = if addr.is_ipv6() { IFA_F_NODAD as u8 } else { 0 };
    let mut r = Request::addr(
        RTM_NEWADDR,
        NLM_F_CREATE | NLM_F_EXCL,
        family_of(&addr),
        prefix_len,
        flags,
        0,
        index,
    );
    r.attr_ip(IFA_LOCAL, &addr);
    r.attr_ip(IFA_ADDRESS, &addr);
    r.finish()
}

/// RTM_NEWADDR (`add`) or RTM_DELADDR for an address as `addresses` reported it; an
/// add carries the settable flags, broadcast, label, lifetimes, protocol and metric.
pub fn addr_request(a: &AddrEntry, add: bool) -> Vec<u8> {
    let settable = a.flags & SETTABLE_ADDR_FLAGS;
    let (ty, flags, hdr_flags) = if add {
        (RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, settable as u8)
    } else {
        (RTM_DELADDR, 0, 0)
    };
    let mut r = Request::addr(
        ty,
        flags,
        family_of(&a.addr),
        a.prefix_len,
        hdr_flags,
        a.scope,
        a.index,
    );
    r.attr_ip(IFA_LOCAL, &a.addr);
    r.attr_ip(IFA_ADDRESS, &a.peer.unwrap_or(a.addr));
    if add {
        r.attr_u32(IFA_FLAGS, settable);
        if let Some(b) = a.broadcast {
            r.attr(IFA_BROADCAST, &b.octets());
        }
        if let Some(l) = &a.label {
            r.attr_str(IFA_LABEL, l);
        }
        if let Some((valid, preferred)) = a.lifetimes {
            // struct ifa_cacheinfo: preferred, valid, cstamp, tstamp
            let mut info = [0u8; 16];
            info[..4].copy_from_slice(&preferred.to_ne_bytes());
            info[4..8].copy_from_slice(&valid.to_ne_bytes());
            r.attr(IFA_CACHEINFO, &info);
        }
        if let Some(p) = a.proto {
            r.attr(IFA_PROTO, &[p]);
        }
        if let Some(m) = a.metric {
            r.attr_u32(IFA_RT_PRIORITY, m);
        }
    }
    r.finish()
}

/// RTM_NEWROUTE (`add`, never replacing) or RTM_DELROUTE.
pub fn route_request(rt: &RouteEntry, add: bool) -> Vec<u8> {
    let (ty, flags) = if add {
        (RTM_NEWROUTE, NLM_F_CREATE)
    } else {
        (RTM_DELROUTE, 0)
    };
    let mut r = Request::new(ty, flags);
    let table = if rt.table < 256 {
        rt.table as u8
    } else {
        RT_TABLE_UNSPEC
    };
    // struct rtmsg
    r.buf.extend_from_slice(&[
        family_of(&rt.dst),
        rt.dst_len,
        0, // src_len
        rt.tos,
        table,
        rt.protocol,
        rt.scope,
        rt.kind,
    ]);
    let rtm_flags = if rt.onlink { RTNH_F_ONLINK } else { 0 };
    r.buf.extend_from_slice(&rtm_flags.to_ne_bytes());
    if rt.dst_len > 0 {
        r.attr_ip(RTA_DST, &rt.dst);
    }
    r.attr_u32(RTA_TABLE, rt.table);
    if let Some(g) = &rt.gateway {
        r.attr_ip(RTA_GATEWAY, g);
    }
    if let Some(s) = &rt.prefsrc {
        r.attr_ip(RTA_PREFSRC, s);
    }
    r.attr_u32(RTA_PRIORITY, rt.metric);
    if let Some(o) = rt.oif {
        r.attr_u32(RTA_OIF, o);
    }
    if let Some(p) = rt.pref {
        r.attr(RTA_PREF, &[p]);
    }
    r.finish()
}

/// RTM_SETLINK with IFLA_MASTER (0 = no master).
pub fn set_master(index: u32, master: Option<u32>) -> Vec<u8> {
    let mut r = Request::link(RTM_SETLINK, 0, index, 0, 0);
    r.attr_u32(IFLA_MASTER, master.unwrap_or(0));
    r.finish()
}

/// RTM_SETLINK with the MAC address.
pub fn set_mac(index: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut r = Request::link(RTM_SETLINK, 0, index, 0, 0);
    r.attr(IFLA_ADDRESS, &mac);
    r.finish()
}

/// RTM_NEWLINK creating a bridge.
pub fn create_bridge(name: &str) -> Vec<u8> {
    let mut r = Request::link(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, 0, 0);
    r.attr_str(IFLA_IFNAME, name);
    let mut kind = Request { buf: Vec::new() };
    kind.attr_str(IFLA_INFO_KIND, "bridge");
    // Plain type without NLA_F_NESTED, as netlink-packet-route sent it (the kernel takes
    // both; an emulator converting attributes by type may know only the plain one).
    r.attr(IFLA_LINKINFO, &kind.buf);
    r.finish()
}

pub fn delete_link(index: u32) -> Vec<u8> {
    Request::link(RTM_DELLINK, 0, index, 0, 0).finish()
}

pub fn dump_links() -> Vec<u8> {
    Request::link(RTM_GETLINK, NLM_F_DUMP, 0, 0, 0).finish()
}

pub fn dump_addresses() -> Vec<u8> {
    Request::addr(RTM_GETADDR, NLM_F_DUMP, AF_UNSPEC, 0, 0, 0, 0).finish()
}

pub fn dump_routes(family: u8) -> Vec<u8> {
    let mut r = Request::new(RTM_GETROUTE, NLM_F_DUMP);
    r.buf.extend_from_slice(&[family, 0, 0, 0, 0, 0, 0, 0]);
    r.buf.extend_from_slice(&0u32.to_ne_bytes());
    r.finish()
}

// ---------------------------------------------------------------------------------
// Decoding

fn u16_at(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_ne_bytes([s[0], s[1]]))
        .ok_or(Malformed("short field"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(Malformed("short field"))
}

fn u8_at(b: &[u8], at: usize) -> Result<u8> {
    b.get(at).copied().ok_or(Malformed("short field"))
}

/// The netlink header of one reply message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
}

/// The messages of one datagram: header and payload (after the 16-byte header) each.
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<(Header, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let parsed = (|| {
            let len = u32_at(b, 0)? as usize;
            if len < NLMSG_HDRLEN || len > b.len() {
                return Err(Malformed("bad message length"));
            }
            let h = Header {
                msg_type: u16_at(b, 4)?,
                flags: u16_at(b, 6)?,
                seq: u32_at(b, 8)?,
            };
            let next = (len + 3) & !3;
            Ok((h, &b[NLMSG_HDRLEN..len], b.get(next..).unwrap_or(&[])))
        })();
        match parsed {
            Ok((h, payload, rest)) => {
                self.rest = rest;
                Some(Ok((h, payload)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The errno of an NLMSG_ERROR payload (0 = acknowledgement), as a positive number.
pub fn error_code(payload: &[u8]) -> Result<i32> {
    let code = u32_at(payload, 0)? as i32;
    if code > 0 {
        return Err(Malformed("positive error code"));
    }
    code.checked_neg().ok_or(Malformed("bad error code"))
}

/// The errno an NLMSG_DONE carries (0 = complete dump); older kernels send no payload.
pub fn done_code(payload: &[u8]) -> i32 {
    match u32_at(payload, 0) {
        Ok(c) if (c as i32) < 0 => (c as i32).checked_neg().unwrap_or(0),
        _ => 0,
    }
}

/// The attributes in `b`: type (without the nested/byte-order bits) and payload each.
pub struct Attrs<'a> {
    rest: &'a [u8],
}

pub fn attrs(b: &[u8]) -> Attrs<'_> {
    Attrs { rest: b }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        // Trailing bytes too short for an attribute header are padding.
        if self.rest.len() < NLA_HDRLEN {
            return None;
        }
        let b = self.rest;
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > b.len() {
            self.rest = &[];
            return Some(Err(Malformed("bad attribute length")));
        }
        self.rest = b.get((len + 3) & !3..).unwrap_or(&[]);
        Some(Ok((ty, &b[NLA_HDRLEN..len])))
    }
}

fn attr_u32(v: &[u8]) -> Result<u32> {
    if v.len() != 4 {
        return Err(Malformed("bad u32 attribute"));
    }
    u32_at(v, 0)
}

fn attr_u8(v: &[u8]) -> Result<u8> {
    if v.len() != 1 {
        return Err(Malformed("bad u8 attribute"));
    }
    u8_at(v, 0)
}

fn attr_str(v: &[u8]) -> Result<String> {
    let v = v.split(|&c| c == 0).next().unwrap_or(&[]);
    String::from_utf8(v.to_vec()).map_err(|_| Malformed("bad string attribute"))
}

// not inlined into each of the seven attributes that hold an address (size)
#[inline(never)]
fn attr_ip(v: &[u8]) -> Result<IpAddr> {
    if let Ok(b) = <[u8; 4]>::try_from(v) {
        Ok(IpAddr::V4(Ipv4Addr::from(b)))
    } else if let Ok(b) = <[u8; 16]>::try_from(v) {
        Ok(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        Err(Malformed("bad address attribute"))
    }
}

/// An RTM_NEWLINK payload; None for a device without a name.
pub fn parse_link(p: &[u8]) -> Result<Option<LinkState>> {
    const IFINFOMSG: usize = 16;
    if p.len() < IFINFOMSG {
        return Err(Malformed("short ifinfomsg"));
    }
    let mut l = LinkState {
        index: u32_at(p, 4)?,
        name: String::new(),
        kind: None,
        ether: u16_at(p, 2)? == ARPHRD_ETHER,
        mtu: 0,
        up: u32_at(p, 8)? & IFF_UP != 0,
        mac: None,
        master: None,
    };
    for a in attrs(&p[IFINFOMSG..]) {
        let (ty, v) = a?;
        match ty {
            IFLA_IFNAME => l.name = attr_str(v)?,
            IFLA_MTU => l.mtu = attr_u32(v)?,
            IFLA_ADDRESS => l.mac = <[u8; 6]>::try_from(v).ok(),
            IFLA_MASTER => l.master = Some(attr_u32(v)?).filter(|&m| m != 0),
            IFLA_LINKINFO => {
                for i in attrs(v) {
                    let (ty, v) = i?;
                    if ty == IFLA_INFO_KIND {
                        l.kind = Some(attr_str(v)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok((!l.name.is_empty()).then_some(l))
}

/// An RTM_NEWADDR payload; None for an entry without an address.
pub fn parse_addr(p: &[u8]) -> Result<Option<AddrEntry>> {
    const IFADDRMSG: usize = 8;
    if p.len() < IFADDRMSG {
        return Err(Malformed("short ifaddrmsg"));
    }
    let mut local = None;
    let mut address = None;
    let mut e = AddrEntry {
        index: u32_at(p, 4)?,
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix_len: p[1],
        peer: None,
        broadcast: None,
        scope: p[3],
        flags: u32::from(p[2]),
        label: None,
        lifetimes: None,
        proto: None,
        metric: None,
    };
    for a in attrs(&p[IFADDRMSG..]) {
        let (ty, v) = a?;
        match ty {
            IFA_LOCAL => local = Some(attr_ip(v)?),
            IFA_ADDRESS => address = Some(attr_ip(v)?),
            IFA_BROADCAST => match attr_ip(v)? {
                IpAddr::V4(b) => e.broadcast = Some(b),
                IpAddr::V6(_) => return Err(Malformed("IPv6 broadcast address")),
            },
            IFA_LABEL => e.label = Some(attr_str(v)?),
            IFA_FLAGS => e.flags = attr_u32(v)?,
            IFA_CACHEINFO => {
                if v.len() < 16 {
                    return Err(Malformed("short ifa_cacheinfo"));
                }
                let (preferred, valid) = (u32_at(v, 0)?, u32_at(v, 4)?);
                if valid != u32::MAX || preferred != u32::MAX {
                    e.lifetimes = Some((valid, preferred));
                }
            }
            IFA_PROTO => e.proto = Some(attr_u8(v)?),
            IFA_RT_PRIORITY => e.metric = Some(attr_u32(v)?),
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
        (None, None) => return Ok(None),
    }
    Ok(Some(e))
}

/// An RTM_NEWROUTE payload. A route with several next hops becomes one entry per hop.
/// IPv6 keeps such "siblings" as separate routes (a dump merely groups them), so each
/// is a route of its own there; an IPv4 multipath route is one route, and its entries
/// keep `multipath` set. Routes of other families give nothing.
pub fn parse_routes(p: &[u8]) -> Result<Vec<RouteEntry>> {
    const RTMSG: usize = 12;
    if p.len() < RTMSG {
        return Err(Malformed("short rtmsg"));
    }
    let unspecified = match p[0] {
        AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return Ok(Vec::new()),
    };
    let mut r = RouteEntry {
        oif: None,
        table: u32::from(p[4]),
        dst: unspecified,
        dst_len: p[1],
        gateway: None,
        prefsrc: None,
        metric: 0,
        protocol: p[5],
        scope: p[6],
        kind: p[7],
        tos: p[3],
        onlink: u32_at(p, 8)? & RTNH_F_ONLINK != 0,
        pref: None,
        multipath: false,
    };
    let mut hops = None;
    for a in attrs(&p[RTMSG..]) {
        let (ty, v) = a?;
        match ty {
            RTA_OIF => r.oif = Some(attr_u32(v)?),
            RTA_TABLE => r.table = attr_u32(v)?,
            RTA_DST => r.dst = attr_ip(v)?,
            RTA_GATEWAY => r.gateway = Some(attr_ip(v)?),
            RTA_PREFSRC => r.prefsrc = Some(attr_ip(v)?),
            RTA_PRIORITY => r.metric = attr_u32(v)?,
            RTA_PREF => r.pref = Some(attr_u8(v)?),
            RTA_MULTIPATH => {
                r.multipath = true;
                hops = Some(v);
            }
            _ => {}
        }
    }
    let Some(mut hops) = hops else {
        return Ok(vec![r]);
    };
    let mut out = Vec::new();
    // struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex; } + attributes
    while !hops.is_empty() {
        let len = usize::from(u16_at(hops, 0)?);
        if len < 8 || len > hops.len() {
            return Err(Malformed("bad next hop length"));
        }
        let mut h = r.clone();
        h.oif = Some(u32_at(hops, 4)?);
        h.onlink = u32::from(hops[2]) & RTNH_F_ONLINK != 0;
        h.multipath = r.dst.is_ipv4();
        h.gateway = None;
        for a in attrs(&hops[8..len]) {
            let (ty, v) = a?;
            if ty == RTA_GATEWAY {
                h.gateway = Some(attr_ip(v)?);
            }
        }
        out.push(h);
        hops = hops.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Where an exchange stands after one datagram of replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Wait for the next datagram.
    More,
    /// Acknowledged, or the dump is complete.
    Finished,
    /// The kernel refused the request with this errno.
    Failed(i32),
}

/// Handles one datagram of replies to request `seq`: messages of other requests are
/// skipped, an error or the end of a dump finishes, every other message goes to
/// `on_msg` (type, payload). A change (`dump` false) finishes with its acknowledgement.
pub fn process(
    datagram: &[u8],
    seq: u32,
    dump: bool,
    on_msg: &mut impl FnMut(u16, &[u8]) -> Result<()>,
) -> Result<Step> {
    for m in Messages::new(datagram) {
        let (header, payload) = m?;
        if header.seq != seq {
            continue; // a late answer to an earlier request
        }
        match header.msg_type {
            NLMSG_DONE => {
                return Ok(match done_code(payload) {
                    0 => Step::Finished,
                    errno => Step::Failed(errno),
                })
            }
            NLMSG_ERROR => match error_code(payload)? {
                0 if !dump => return Ok(Step::Finished),
                0 => {}
                errno => return Ok(Step::Failed(errno)),
            },
            NLMSG_NOOP => {}
            t => on_msg(t, payload)?,
        }
    }
    Ok(Step::More)
}

#[cfg(test)]
#[path = "msg_tests.rs"]
mod tests;
