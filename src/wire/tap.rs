//! The TAP reflector's frame transform: given one Ethernet frame read from a tap device,
//! decide in place what to send back (an ARP reply, a neighbour advertisement, the frame
//! reflected, an echo reply) or why to drop it. No I/O, no allocation.
use super::arp::{self, ArpPacket};
use super::cidr::{Ranges, V4Match};
use super::ethernet::{ethertype, EthernetFrame, MacAddr};
use super::icmp::{self, ICMPV6_NEIGHBOR_SOLICIT, PROTO_ICMP, PROTO_ICMPV6};
use super::ip::{self, IpPacket};
use super::ndp::{self, NdpError};
use core::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// What the reflector answers for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapConfig {
    /// The one MAC address that owns every address in `ranges`.
    pub mac: MacAddr,
    pub ranges: Ranges,
    /// Answer ICMP/ICMPv6 echo requests with echo replies (one trip) instead of reflecting
    /// them as requests (which the sender answers, and that answer comes back: two trips).
    pub icmp_echo: bool,
}

/// The kind of frame sent back, for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// ARP reply for an IPv4 address in the ranges.
    Arp,
    /// Neighbour advertisement for an IPv6 address in the ranges.
    NeighborAdvert,
    /// IP frame sent back with MACs and IP addresses swapped.
    Reflect,
    /// ICMP/ICMPv6 echo request turned into an echo reply (MACs and addresses swapped too).
    EchoReply,
}

impl Reply {
    pub const ALL: [Reply; 4] = [
        Reply::Arp,
        Reply::NeighborAdvert,
        Reply::Reflect,
        Reply::EchoReply,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Reply::Arp => "arp_reply",
            Reply::NeighborAdvert => "neighbor_advert",
            Reply::Reflect => "reflected",
            Reply::EchoReply => "echo_reply",
        }
    }
}

/// Why a frame was not answered. Every frame read gets exactly one `Action`, so the
/// counters per reason plus the replies add up to the frames read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than its headers, or than a length field in them says.
    Truncated,
    /// 802.1Q / 802.1ad tagged.
    Vlan,
    /// Neither ARP, IPv4 nor IPv6 (also 802.3 length-field frames: LLDP, STP, ...).
    UnknownEthertype,
    /// Source MAC is a broadcast/multicast address, or our own (a loop).
    SourceMac,
    /// Unicast to another station's MAC (flooded by the bridge; not ours to answer).
    NotOurMac,
    /// A unicast IP packet in a broadcast/multicast frame.
    GroupMac,
    /// IP version / header length / length fields inconsistent.
    BadHeader,
    /// ARP for something other than IPv4 over Ethernet.
    ArpUnsupported,
    /// An ARP reply (or other operation): only requests are answered.
    ArpNotRequest,
    /// Gratuitous ARP (sender address == target address): nothing to answer.
    ArpAnnouncement,
    /// Destination (or ARP/ND target) in none of the ranges.
    NotInRange,
    /// IP destination is multicast, limited broadcast or a range's directed broadcast.
    Multicast,
    /// IP source is unspecified, loopback, multicast or broadcast: cannot be a destination.
    BadSource,
    /// A neighbour solicitation failing RFC 4861 validation (hop limit, code, options,
    /// destination).
    NdpInvalid,
    /// Another neighbour discovery message (RS, RA, NA, redirect) to an address in the ranges.
    NdpOther,
    /// A neighbour solicitation with a wrong ICMPv6 checksum.
    BadChecksum,
    /// The buffer is too small for the neighbour advertisement (86 bytes): a caller bug.
    NoRoom,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl DropReason {
    pub const COUNT: usize = 17;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::Vlan,
        DropReason::UnknownEthertype,
        DropReason::SourceMac,
        DropReason::NotOurMac,
        DropReason::GroupMac,
        DropReason::BadHeader,
        DropReason::ArpUnsupported,
        DropReason::ArpNotRequest,
        DropReason::ArpAnnouncement,
        DropReason::NotInRange,
        DropReason::Multicast,
        DropReason::BadSource,
        DropReason::NdpInvalid,
        DropReason::NdpOther,
        DropReason::BadChecksum,
        DropReason::NoRoom,
    ];

    /// The IP-level reason from `wire::ip` for a packet inside a frame whose Ethernet
    /// type already said which IP version it is.
    fn from_ip(r: ip::DropReason) -> DropReason {
        match r {
            ip::DropReason::Truncated => DropReason::Truncated,
            ip::DropReason::Multicast | ip::DropReason::Broadcast => DropReason::Multicast,
            ip::DropReason::Unspecified => DropReason::BadSource,
            ip::DropReason::BadVersion
            | ip::DropReason::BadHeader
            | ip::DropReason::LengthMismatch
            | ip::DropReason::NotForUs
            | ip::DropReason::WouldLoop => DropReason::BadHeader,
        }
    }

    /// Position in `ALL`, for a counter array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Vlan => "vlan",
            DropReason::UnknownEthertype => "ethertype",
            DropReason::SourceMac => "source_mac",
            DropReason::NotOurMac => "not_our_mac",
            DropReason::GroupMac => "group_mac",
            DropReason::BadHeader => "bad_header",
            DropReason::ArpUnsupported => "arp_unsupported",
            DropReason::ArpNotRequest => "arp_not_request",
            DropReason::ArpAnnouncement => "arp_announcement",
            DropReason::NotInRange => "not_in_range",
            DropReason::Multicast => "multicast",
            DropReason::BadSource => "bad_source",
            DropReason::NdpInvalid => "ndp_invalid",
            DropReason::NdpOther => "ndp_other",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::NoRoom => "no_room",
        }
    }
}

/// The decision for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `buf[..len]` back to the tap.
    Send {
        len: usize,
        kind: Reply,
    },
    Drop(DropReason),
}

const ETH: usize = EthernetFrame::<&[u8]>::HEADER_LEN;

/// Transforms the frame `buf[..len]` in place. `buf` is the whole receive buffer (a
/// neighbour advertisement can be longer than the solicitation it answers, up to
/// `ndp::NA_FRAME_LEN` = 86 bytes). Never panics, never allocates; a `len` past the end of
/// `buf` is treated as `buf.len()`.
pub fn transform(buf: &mut [u8], len: usize, cfg: &TapConfig) -> Action {
    let len = len.min(buf.len());
    let Ok(eth) = EthernetFrame::new_checked(&buf[..len]) else {
        return Action::Drop(DropReason::Truncated);
    };
    let (dst, src, etype) = (eth.dst(), eth.src(), eth.ethertype());
    if src.is_group() || src == cfg.mac {
        return Action::Drop(DropReason::SourceMac);
    }
    let r = match etype {
        ethertype::ARP => arp_request(&mut buf[..len], dst, cfg),
        ethertype::IPV4 => ipv4(&mut buf[..len], dst, cfg),
        ethertype::IPV6 => ipv6(buf, len, dst, src, cfg),
        t if ethertype::is_vlan(t) => Err(DropReason::Vlan),
        _ => Err(DropReason::UnknownEthertype),
    };
    match r {
        Ok((len, kind)) => Action::Send { len, kind },
        Err(reason) => Action::Drop(reason),
    }
}

/// Source and destination of a frame for verbose logging: the IP addresses of an IPv4 or
/// IPv6 packet, sender and target address of an ARP packet; `None` for anything else.
pub fn frame_addrs(frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let p = eth.payload();
    match eth.ethertype() {
        ethertype::ARP => {
            let a = ArpPacket::new_checked(p).ok()?;
            Some((a.spa().into(), a.tpa().into()))
        }
        ethertype::IPV4 if p.len() >= 20 => {
            let s: [u8; 4] = p[12..16].try_into().ok()?;
            let d: [u8; 4] = p[16..20].try_into().ok()?;
            Some((s.into(), d.into()))
        }
        ethertype::IPV6 if p.len() >= 40 => {
            let s: [u8; 16] = p[8..24].try_into().ok()?;
            let d: [u8; 16] = p[24..40].try_into().ok()?;
            Some((s.into(), d.into()))
        }
        _ => None,
    }
}

type Verdict = Result<(usize, Reply), DropReason>;

/// Ethernet: back to where it came from, from us.
fn swap_macs(frame: &mut [u8], mac: MacAddr) {
    // The caller has checked the header length.
    if let Ok(mut eth) = EthernetFrame::new_checked(frame) {
        let src = eth.src();
        eth.set_dst(src);
        eth.set_src(mac);
    }
}

fn arp_request(frame: &mut [u8], dst: MacAddr, cfg: &TapConfig) -> Verdict {
    // Requests are broadcast, or unicast to the cached MAC when a neighbour entry is
    // re-validated.
    if !dst.is_broadcast() && dst != cfg.mac {
        return Err(if dst.is_group() {
            DropReason::GroupMac
        } else {
            DropReason::NotOurMac
        });
    }
    let len = frame.len();
    let mut p = ArpPacket::new_checked(&mut frame[ETH..]).map_err(|_| DropReason::Truncated)?;
    if !p.is_ethernet_ipv4() {
        return Err(DropReason::ArpUnsupported);
    }
    if p.operation() != arp::OP_REQUEST {
        return Err(DropReason::ArpNotRequest);
    }
    match cfg.ranges.match_v4(p.tpa()) {
        V4Match::Host => {}
        V4Match::Broadcast => return Err(DropReason::Multicast),
        V4Match::Outside => return Err(DropReason::NotInRange),
    }
    if p.spa() == p.tpa() {
        return Err(DropReason::ArpAnnouncement);
    }
    if p.sha().is_group() {
        return Err(DropReason::SourceMac);
    }
    // An RFC 5227 probe (sender 0.0.0.0) is answered too: the address is taken.
    p.make_reply(cfg.mac);
    swap_macs(frame, cfg.mac);
    Ok((len, Reply::Arp))
}

/// The IP destination rules shared by both families: a unicast frame to our MAC.
fn check_unicast_mac(dst: MacAddr, cfg: &TapConfig) -> Result<(), DropReason> {
    if dst.is_group() {
        Err(DropReason::GroupMac)
    } else if dst != cfg.mac {
        Err(DropReason::NotOurMac)
    } else {
        Ok(())
    }
}

fn ipv4(frame: &mut [u8], dst: MacAddr, cfg: &TapConfig) -> Verdict {
    let len = frame.len();
    let ip = &mut frame[ETH..];
    if ip.len() < 20 {
        return Err(DropReason::Truncated);
    }
    if ip[0] >> 4 != 4 {
        return Err(DropReason::BadHeader);
    }
    // Ethernet pads short frames to 60 bytes: the IP packet is what its length says.
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total > ip.len() {
        return Err(DropReason::Truncated);
    }
    if total < 20 {
        return Err(DropReason::BadHeader);
    }
    let ip = &mut ip[..total];
    let mut pkt = IpPacket::new_checked(ip).map_err(DropReason::from_ip)?;
    let IpAddr::V4(d) = pkt.dst() else {
        return Err(DropReason::BadHeader);
    };
    if d.is_multicast() || d.is_broadcast() {
        return Err(DropReason::Multicast);
    }
    check_unicast_mac(dst, cfg)?;
    match cfg.ranges.match_v4(d.octets()) {
        V4Match::Host => {}
        V4Match::Broadcast => return Err(DropReason::Multicast),
        V4Match::Outside => return Err(DropReason::NotInRange),
    }
    // 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 incl. broadcast.
    let IpAddr::V4(s) = pkt.src() else {
        return Err(DropReason::BadHeader);
    };
    let s0 = s.octets()[0];
    if s0 == 0 || s0 == 127 || s0 >= 224 {
        return Err(DropReason::BadSource);
    }
    pkt.check_unicast().map_err(|_| DropReason::BadSource)?;
    pkt.swap_addresses();
    let ip = &mut frame[ETH..ETH + total];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    // More-fragments flag or a fragment offset: only a whole message can be answered.
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    let mut kind = Reply::Reflect;
    if cfg.icmp_echo
        && ip[9] == PROTO_ICMP
        && !fragment
        && icmp::echo_request_to_reply(&mut ip[ihl..], false)
    {
        kind = Reply::EchoReply;
    }
    swap_macs(frame, cfg.mac);
    Ok((len, kind))
}

fn ipv6(buf: &mut [u8], len: usize, dst: MacAddr, src: MacAddr, cfg: &TapConfig) -> Verdict {
    let ip = &buf[ETH..len];
    if ip.len() < 40 {
        return Err(DropReason::Truncated);
    }
    if ip[0] >> 4 != 6 {
        return Err(DropReason::BadHeader);
    }
    let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if 40 + plen > ip.len() {
        return Err(DropReason::Truncated);
    }
    let (nh, hop_limit) = (ip[6], ip[7]);
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(&ip[8..24]);
    d.copy_from_slice(&ip[24..40]);
    let icmp_type = (nh == PROTO_ICMPV6 && plen >= 1).then(|| ip[40]);

    if icmp_type == Some(ICMPV6_NEIGHBOR_SOLICIT) {
        if d[0] == 0xff {
            if !dst.is_group() {
                return Err(DropReason::NotOurMac);
            }
        } else {
            check_unicast_mac(dst, cfg)?;
        }
        let target = ndp::parse_solicit(&ip[40..40 + plen], &s, &d, hop_limit).map_err(|e| {
            if e == NdpError::Checksum {
                DropReason::BadChecksum
            } else {
                DropReason::NdpInvalid
            }
        })?;
        if !cfg.ranges.contains_v6(&target) || (d[0] != 0xff && !cfg.ranges.contains_v6(&d)) {
            return Err(DropReason::NotInRange);
        }
        if s[0] == 0xff {
            return Err(DropReason::BadSource);
        }
        let dad = s == [0u8; 16];
        let n = ndp::write_advert(buf, cfg.mac, &target, src, &s, dad).ok_or(DropReason::NoRoom)?;
        return Ok((n, Reply::NeighborAdvert));
    }

    if d[0] == 0xff {
        return Err(DropReason::Multicast);
    }
    check_unicast_mac(dst, cfg)?;
    if !cfg.ranges.contains_v6(&d) {
        return Err(DropReason::NotInRange);
    }
    if s == [0u8; 16] || s == Ipv6Addr::LOCALHOST.octets() || s[0] == 0xff {
        return Err(DropReason::BadSource);
    }
    // Router solicitation/advertisement, neighbour advertisement, redirect: reflecting
    // them (hop limit 255 intact) would feed the sender forged neighbour discovery.
    if let Some(133..=137) = icmp_type {
        return Err(DropReason::NdpOther);
    }
    let ip = &mut buf[ETH..ETH + 40 + plen];
    let mut pkt = IpPacket::new_checked(ip).map_err(DropReason::from_ip)?;
    pkt.check_unicast().map_err(|_| DropReason::BadSource)?;
    pkt.swap_addresses();
    let mut kind = Reply::Reflect;
    if cfg.icmp_echo
        && nh == PROTO_ICMPV6
        && icmp::echo_request_to_reply(&mut buf[ETH + 40..ETH + 40 + plen], true)
    {
        kind = Reply::EchoReply;
    }
    swap_macs(&mut buf[..len], cfg.mac);
    Ok((len, kind))
}

#[cfg(test)]
mod tests;
