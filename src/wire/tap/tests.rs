//! Unit tests of the TAP transform. Known-good frames were captured from Linux 6.x on a
//! veth pair (`tcpdump -xx`): 198.18.0.1 / 2001:2::1 at 02:00:00:00:00:aa talking to
//! 198.18.0.2 / 2001:2::2 at 02:00:00:00:00:bb. With the reflector's MAC set to ...:bb and
//! its ranges covering .2, its answers must equal the kernel's byte for byte (ARP, NA) or in
//! the ICMP message (echo replies; the kernel builds a fresh IP header).
use super::*;
use crate::wire::cidr::Cidr;
use crate::wire::ndp::tests::{KERNEL_DAD_NS, KERNEL_NA, KERNEL_NS};
use std::net::{Ipv4Addr, Ipv6Addr};

const LAPTOP: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xaa]);
const US: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xbb]);
const OTHER: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xcc]);

const KERNEL_ARP_REQ: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xc6, 0x12, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x02,
];
const KERNEL_ARP_REP: [u8; 42] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0x08, 0x06, 0x00, 0x01,
    0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0xc6, 0x12, 0x00, 0x02,
    0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xc6, 0x12, 0x00, 0x01,
];
const KERNEL_ECHO4_REQ: [u8; 54] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x28, 0x4c, 0x01, 0x40, 0x00, 0x40, 0x01, 0x62, 0xac, 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x12,
    0x00, 0x02, 0x08, 0x00, 0x49, 0xdd, 0x20, 0x8e, 0x00, 0x01, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42,
    0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
];
const KERNEL_ECHO4_REP: [u8; 54] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0x08, 0x00, 0x45, 0x00,
    0x00, 0x28, 0x01, 0x45, 0x00, 0x00, 0x40, 0x01, 0xed, 0x68, 0xc6, 0x12, 0x00, 0x02, 0xc6, 0x12,
    0x00, 0x01, 0x00, 0x00, 0x51, 0xdd, 0x20, 0x8e, 0x00, 0x01, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42,
    0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
];
const KERNEL_ECHO6_REQ: [u8; 74] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x86, 0xdd, 0x60, 0x07,
    0xd5, 0xe1, 0x00, 0x14, 0x3a, 0x40, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x00, 0x91, 0x83, 0x20, 0x90, 0x00, 0x01, 0x41, 0x42,
    0x43, 0x44, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
];
const KERNEL_ECHO6_REP: [u8; 74] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0x86, 0xdd, 0x60, 0x0d,
    0x0e, 0x3d, 0x00, 0x14, 0x3a, 0x40, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0x90, 0x83, 0x20, 0x90, 0x00, 0x01, 0x41, 0x42,
    0x43, 0x44, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
];
/// Router solicitation captured from the same run (to ff02::2).
const KERNEL_RS: [u8; 70] = [
    0x33, 0x33, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0x86, 0xdd, 0x60, 0x00,
    0x00, 0x00, 0x00, 0x10, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xfe, 0x00, 0x00, 0xaa, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x85, 0x00, 0x79, 0xda, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01,
    0x02, 0x00, 0x00, 0x00, 0x00, 0xaa,
];

fn cfg(icmp_echo: bool) -> TapConfig {
    TapConfig {
        mac: US,
        ranges: ["198.18.0.0/24", "2001:2::/48"]
            .iter()
            .map(|s| s.parse::<Cidr>().unwrap())
            .collect(),
        icmp_echo,
    }
}

fn v4(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().unwrap().octets()
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

/// Runs the transform on a copy of `frame` inside a 64 KiB buffer; returns the action and
/// the bytes to send (empty on drop).
fn run(frame: &[u8], c: &TapConfig) -> (Action, Vec<u8>) {
    let mut buf = vec![0u8; 65536];
    buf[..frame.len()].copy_from_slice(frame);
    let a = transform(&mut buf, frame.len(), c);
    match a {
        Action::Send { len, .. } => (a, buf[..len].to_vec()),
        Action::Drop(_) => (a, Vec::new()),
    }
}

fn dropped(frame: &[u8], c: &TapConfig) -> DropReason {
    match run(frame, c).0 {
        Action::Drop(r) => r,
        a => panic!("expected a drop, got {a:?}"),
    }
}

fn eth(dst: MacAddr, src: MacAddr, t: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&t.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn arp(op: u16, sha: MacAddr, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha.0);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&tpa);
    p
}

fn ipv4_packet(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = icmp::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn ipv6_packet(src: [u8; 16], dst: [u8; 16], nh: u8, hop: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.push(nh);
    h.push(hop);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// ICMPv6 message with its checksum filled for (src, dst).
fn icmp6(src: &[u8; 16], dst: &[u8; 16], mut m: Vec<u8>) -> Vec<u8> {
    m[2] = 0;
    m[3] = 0;
    let c = icmp::finish(icmp::pseudo_v6(src, dst, 58, m.len() as u32) + icmp::sum(&m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn ns_msg(target: [u8; 16], slla: Option<MacAddr>) -> Vec<u8> {
    let mut m = vec![135, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target);
    if let Some(mac) = slla {
        m.extend_from_slice(&[1, 1]);
        m.extend_from_slice(&mac.0);
    }
    m
}

/// A whole NS frame: from `src` to `dst` (IPv6) in a frame to `eth_dst`.
fn ns_frame(eth_dst: MacAddr, src: [u8; 16], dst: [u8; 16], target: [u8; 16], hop: u8) -> Vec<u8> {
    let slla = (src != [0; 16]).then_some(LAPTOP);
    let m = icmp6(&src, &dst, ns_msg(target, slla));
    eth(eth_dst, LAPTOP, 0x86dd, &ipv6_packet(src, dst, 58, hop, &m))
}

fn udp(src: &[u8], dst: &[u8], v6: bool) -> Vec<u8> {
    let payload = b"tunbox tap reflector";
    let len = (8 + payload.len()) as u16;
    let mut u = vec![0x9c, 0x40, 0x13, 0x89];
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = udp_sum(src, dst, &u, v6);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

fn udp_sum(src: &[u8], dst: &[u8], u: &[u8], v6: bool) -> u16 {
    let ph = if v6 {
        icmp::pseudo_v6(
            src.try_into().unwrap(),
            dst.try_into().unwrap(),
            17,
            u.len() as u32,
        )
    } else {
        icmp::sum(src) + icmp::sum(dst) + 17 + u.len() as u32
    };
    icmp::finish(ph + icmp::sum(u))
}

fn sends(a: Action) -> (usize, Reply) {
    match a {
        Action::Send { len, kind } => (len, kind),
        Action::Drop(r) => panic!("expected a reply, dropped: {r:?}"),
    }
}

// ---------------------------------------------------------------- ARP

#[test]
fn arp_reply_matches_kernel() {
    let (a, out) = run(&KERNEL_ARP_REQ, &cfg(false));
    assert_eq!(
        a,
        Action::Send {
            len: 42,
            kind: Reply::Arp
        }
    );
    assert_eq!(out, KERNEL_ARP_REP);
}

#[test]
fn arp_padded_unicast_and_probe() {
    let c = cfg(false);
    // Padded to the 60-byte Ethernet minimum: answered, padding kept.
    let mut f = KERNEL_ARP_REQ.to_vec();
    f.resize(60, 0);
    let (a, out) = run(&f, &c);
    assert_eq!(
        a,
        Action::Send {
            len: 60,
            kind: Reply::Arp
        }
    );
    assert_eq!(out[..42], KERNEL_ARP_REP);
    // Unicast re-validation to our MAC.
    let f = eth(
        US,
        LAPTOP,
        0x0806,
        &arp(1, LAPTOP, v4("198.18.0.1"), v4("198.18.0.77")),
    );
    let (_, out) = run(&f, &c);
    assert_eq!(out[..6], LAPTOP.0);
    assert_eq!(out[6..12], US.0);
    assert_eq!(out[20..22], [0, 2]);
    assert_eq!(out[22..28], US.0);
    assert_eq!(out[28..32], v4("198.18.0.77"));
    assert_eq!(out[32..38], LAPTOP.0);
    assert_eq!(out[38..42], v4("198.18.0.1"));
    // RFC 5227 probe (sender 0.0.0.0): defended.
    let f = eth(
        MacAddr::BROADCAST,
        LAPTOP,
        0x0806,
        &arp(1, LAPTOP, [0; 4], v4("198.18.0.9")),
    );
    let (a, out) = run(&f, &c);
    assert_eq!(sends(a).1, Reply::Arp);
    assert_eq!(out[28..32], v4("198.18.0.9"));
    assert_eq!(out[38..42], [0; 4]);
}

#[test]
fn arp_drops() {
    let c = cfg(false);
    let req = |tpa: &str| arp(1, LAPTOP, v4("198.18.0.1"), v4(tpa));
    let bc = MacAddr::BROADCAST;
    assert_eq!(
        dropped(&eth(bc, LAPTOP, 0x0806, &req("10.1.2.3")), &c),
        DropReason::NotInRange
    );
    assert_eq!(
        dropped(&eth(bc, LAPTOP, 0x0806, &req("198.18.1.1")), &c),
        DropReason::NotInRange
    );
    assert_eq!(
        dropped(&eth(bc, LAPTOP, 0x0806, &req("198.18.0.255")), &c),
        DropReason::Multicast
    );
    assert_eq!(
        dropped(&eth(OTHER, LAPTOP, 0x0806, &req("198.18.0.5")), &c),
        DropReason::NotOurMac
    );
    let mcast = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(
        dropped(&eth(mcast, LAPTOP, 0x0806, &req("198.18.0.5")), &c),
        DropReason::GroupMac
    );
    let rep = arp(2, LAPTOP, v4("198.18.0.1"), v4("198.18.0.5"));
    assert_eq!(
        dropped(&eth(bc, LAPTOP, 0x0806, &rep), &c),
        DropReason::ArpNotRequest
    );
    let ann = arp(1, LAPTOP, v4("198.18.0.5"), v4("198.18.0.5"));
    assert_eq!(
        dropped(&eth(bc, LAPTOP, 0x0806, &ann), &c),
        DropReason::ArpAnnouncement
    );
    let mut other = req("198.18.0.5");
    other[2..4].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(
        dropped(&eth(bc, LAPTOP, 0x0806, &other), &c),
        DropReason::ArpUnsupported
    );
    let bad_sha = arp(
        1,
        MacAddr([3, 0, 0, 0, 0, 1]),
        v4("198.18.0.1"),
        v4("198.18.0.5"),
    );
    assert_eq!(
        dropped(&eth(bc, LAPTOP, 0x0806, &bad_sha), &c),
        DropReason::SourceMac
    );
}

// ---------------------------------------------------------------- NDP

#[test]
fn neighbor_advert_matches_kernel() {
    let (a, out) = run(&KERNEL_NS, &cfg(false));
    assert_eq!(
        a,
        Action::Send {
            len: 86,
            kind: Reply::NeighborAdvert
        }
    );
    assert_eq!(out, KERNEL_NA);
}

#[test]
fn ns_without_option_grows_the_frame() {
    let c = cfg(false);
    let (s, t) = (v6("2001:2::1"), v6("2001:2::1234"));
    let m = icmp6(&s, &ndp::solicited_node(&t), ns_msg(t, None));
    let f = eth(
        MacAddr::ipv6_multicast(&ndp::solicited_node(&t)),
        LAPTOP,
        0x86dd,
        &ipv6_packet(s, ndp::solicited_node(&t), 58, 255, &m),
    );
    assert_eq!(f.len(), 78);
    let (a, out) = run(&f, &c);
    assert_eq!(
        a,
        Action::Send {
            len: 86,
            kind: Reply::NeighborAdvert
        }
    );
    // To the solicitor, from the target, S+O flags, option = our MAC, valid checksum.
    assert_eq!(out[..6], LAPTOP.0);
    assert_eq!(out[6..12], US.0);
    assert_eq!(out[22..38], t);
    assert_eq!(out[38..54], s);
    assert_eq!(out[54], 136);
    assert_eq!(out[58], 0x60);
    assert_eq!(out[62..78], t);
    assert_eq!(out[78..86], [2, 1, 2, 0, 0, 0, 0, 0xbb]);
    assert_eq!(
        icmp::finish(icmp::pseudo_v6(&t, &s, 58, 32) + icmp::sum(&out[54..])),
        0
    );
    // A buffer exactly as long as the solicitation has no room for the answer.
    let mut buf = f.clone();
    assert_eq!(
        transform(&mut buf, 78, &c),
        Action::Drop(DropReason::NoRoom)
    );
}

#[test]
fn ns_unicast_and_dad() {
    let c = cfg(false);
    let (s, t) = (v6("2001:2::1"), v6("2001:2::42"));
    // Neighbour unreachability detection: unicast to the target, to our MAC.
    let (a, out) = run(&ns_frame(US, s, t, t, 255), &c);
    assert_eq!(sends(a), (86, Reply::NeighborAdvert));
    assert_eq!(out[38..54], s);
    // ... but not if the frame is for another station.
    assert_eq!(
        dropped(&ns_frame(OTHER, s, t, t, 255), &c),
        DropReason::NotOurMac
    );
    // Unicast IP in a multicast frame.
    let sn = ndp::solicited_node(&t);
    assert_eq!(
        dropped(&ns_frame(MacAddr::ipv6_multicast(&sn), s, t, t, 255), &c),
        DropReason::GroupMac
    );
    // Multicast IP in a unicast frame.
    assert_eq!(
        dropped(&ns_frame(US, s, sn, t, 255), &c),
        DropReason::NotOurMac
    );
    // Duplicate address detection for a range address: defended towards all nodes.
    let (a, out) = run(
        &ns_frame(MacAddr::ipv6_multicast(&sn), [0; 16], sn, t, 255),
        &c,
    );
    assert_eq!(sends(a), (86, Reply::NeighborAdvert));
    assert_eq!(out[..6], [0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(out[38..54], ndp::ALL_NODES);
    assert_eq!(out[58], ndp::FLAG_OVERRIDE);
    let all = ndp::ALL_NODES;
    assert_eq!(
        icmp::finish(icmp::pseudo_v6(&t, &all, 58, 32) + icmp::sum(&out[54..])),
        0
    );
    // The kernel's DAD for a link-local address (from another station): not ours.
    let mut dad = KERNEL_DAD_NS;
    dad[6..12].copy_from_slice(&OTHER.0);
    assert_eq!(dropped(&dad, &c), DropReason::NotInRange);
    // The same frame from our own MAC: a loop.
    assert_eq!(dropped(&KERNEL_DAD_NS, &c), DropReason::SourceMac);
}

#[test]
fn ns_drops() {
    let c = cfg(false);
    let s = v6("2001:2::1");
    let t = v6("2001:2::42");
    let sn = ndp::solicited_node(&t);
    let sn_mac = MacAddr::ipv6_multicast(&sn);
    assert_eq!(
        dropped(&ns_frame(sn_mac, s, sn, t, 64), &c),
        DropReason::NdpInvalid
    );
    let out = v6("2001:db8::42");
    let osn = ndp::solicited_node(&out);
    assert_eq!(
        dropped(
            &ns_frame(MacAddr::ipv6_multicast(&osn), s, osn, out, 255),
            &c
        ),
        DropReason::NotInRange
    );
    // Unicast NS to an address outside the ranges asking about one inside.
    assert_eq!(
        dropped(&ns_frame(US, s, out, t, 255), &c),
        DropReason::NotInRange
    );
    let mut f = ns_frame(sn_mac, s, sn, t, 255);
    f[70] ^= 0x80; // a target bit, checksum now wrong
    assert_eq!(dropped(&f, &c), DropReason::BadChecksum);
    // Source multicast (checksum right for it).
    let ms = v6("ff02::1");
    assert_eq!(
        dropped(&ns_frame(sn_mac, ms, sn, t, 255), &c),
        DropReason::BadSource
    );
    // Other neighbour discovery to a range address: never reflected.
    let mut na = KERNEL_NA.to_vec(); // from ...:bb; pretend it comes from the laptop to us
    na[..6].copy_from_slice(&US.0);
    na[6..12].copy_from_slice(&LAPTOP.0);
    assert_eq!(dropped(&na, &c), DropReason::NdpOther);
    // RS to all-routers: multicast.
    assert_eq!(dropped(&KERNEL_RS, &c), DropReason::Multicast);
}

// ---------------------------------------------------------------- reflect / echo

#[test]
fn echo4_matches_kernel_and_reflects_without_echo() {
    let (a, out) = run(&KERNEL_ECHO4_REQ, &cfg(true));
    assert_eq!(
        a,
        Action::Send {
            len: 54,
            kind: Reply::EchoReply
        }
    );
    // Ethernet as the kernel's, IP addresses swapped, ICMP message identical to the kernel's.
    assert_eq!(out[..14], KERNEL_ECHO4_REP[..14]);
    assert_eq!(out[26..34], KERNEL_ECHO4_REP[26..34]);
    assert_eq!(out[34..], KERNEL_ECHO4_REP[34..]);
    // Rest of our IP header is the request's, checksum still valid.
    assert_eq!(out[14..26], KERNEL_ECHO4_REQ[14..26]);
    assert_eq!(icmp::checksum(&out[14..34]), 0);
    // Without --icmp-echo: a pure swap, the request goes back as a request.
    let (a, out) = run(&KERNEL_ECHO4_REQ, &cfg(false));
    assert_eq!(
        a,
        Action::Send {
            len: 54,
            kind: Reply::Reflect
        }
    );
    assert_eq!(out[..14], KERNEL_ECHO4_REP[..14]);
    assert_eq!(out[26..34], KERNEL_ECHO4_REP[26..34]);
    assert_eq!(out[34..], KERNEL_ECHO4_REQ[34..]);
}

#[test]
fn echo6_matches_kernel() {
    let (a, out) = run(&KERNEL_ECHO6_REQ, &cfg(true));
    assert_eq!(
        a,
        Action::Send {
            len: 74,
            kind: Reply::EchoReply
        }
    );
    assert_eq!(out[..14], KERNEL_ECHO6_REP[..14]);
    assert_eq!(out[22..], KERNEL_ECHO6_REP[22..]);
    assert_eq!(out[14..22], KERNEL_ECHO6_REQ[14..22]);
    let (a, out) = run(&KERNEL_ECHO6_REQ, &cfg(false));
    assert_eq!(sends(a).1, Reply::Reflect);
    assert_eq!(out[22..54], KERNEL_ECHO6_REP[22..54]);
    assert_eq!(out[54..], KERNEL_ECHO6_REQ[54..]);
}

#[test]
fn udp_checksums_survive_the_swap() {
    let c = cfg(true);
    let (s, d) = (v4("198.18.0.1"), v4("198.18.0.200"));
    let f = eth(
        US,
        LAPTOP,
        0x0800,
        &ipv4_packet(s, d, 17, &udp(&s, &d, false)),
    );
    let (a, out) = run(&f, &c);
    assert_eq!(sends(a), (f.len(), Reply::Reflect));
    assert_eq!(out[26..30], d);
    assert_eq!(out[30..34], s);
    assert_eq!(icmp::checksum(&out[14..34]), 0);
    assert_eq!(udp_sum(&d, &s, &out[34..], false), 0);
    assert_eq!(out[..6], LAPTOP.0);
    assert_eq!(out[6..12], US.0);

    let (s, d) = (v6("2001:2:0:1::1"), v6("2001:2:0:ffff::9"));
    let f = eth(
        US,
        LAPTOP,
        0x86dd,
        &ipv6_packet(s, d, 17, 64, &udp(&s, &d, true)),
    );
    let (a, out) = run(&f, &c);
    assert_eq!(sends(a), (f.len(), Reply::Reflect));
    assert_eq!(out[22..38], d);
    assert_eq!(out[38..54], s);
    assert_eq!(udp_sum(&d, &s, &out[54..], true), 0);
}

#[test]
fn fragments_and_options() {
    let c = cfg(true);
    let (s, d) = (v4("198.18.0.1"), v4("198.18.0.2"));
    // First fragment of a big echo request (MF set): reflected as is, not answered.
    let mut p = KERNEL_ECHO4_REQ[14..].to_vec();
    p[6] = 0x20;
    p[10] = 0;
    p[11] = 0;
    let ck = icmp::checksum(&p);
    p[10..12].copy_from_slice(&ck.to_be_bytes());
    let (a, out) = run(&eth(US, LAPTOP, 0x0800, &p), &c);
    assert_eq!(sends(a).1, Reply::Reflect);
    assert_eq!(out[34], 8);
    // Header with options (IHL 6): the echo message is found after them.
    let icmp_msg = &KERNEL_ECHO4_REQ[34..];
    let mut h = vec![0x46, 0];
    h.extend_from_slice(&((24 + icmp_msg.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 1, 0, 0, 64, 1, 0, 0]);
    h.extend_from_slice(&s);
    h.extend_from_slice(&d);
    h.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
    let ck = icmp::checksum(&h);
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h.extend_from_slice(icmp_msg);
    let (a, out) = run(&eth(US, LAPTOP, 0x0800, &h), &c);
    assert_eq!(sends(a).1, Reply::EchoReply);
    assert_eq!(out[38..], KERNEL_ECHO4_REP[34..]);
    // Trailing Ethernet padding beyond the IP total length is sent back unchanged.
    let mut f = KERNEL_ECHO4_REQ.to_vec();
    f.extend_from_slice(&[0xee; 6]);
    let (a, out) = run(&f, &c);
    assert_eq!(sends(a), (60, Reply::EchoReply));
    assert_eq!(out[34..54], KERNEL_ECHO4_REP[34..]);
    assert_eq!(out[54..], [0xee; 6]);
}

#[test]
fn ip_drops() {
    let c = cfg(true);
    let l = v4("198.18.0.1");
    let f4 = |dmac: MacAddr, s: [u8; 4], d: [u8; 4]| {
        eth(
            dmac,
            LAPTOP,
            0x0800,
            &ipv4_packet(s, d, 17, &udp(&s, &d, false)),
        )
    };
    assert_eq!(
        dropped(&f4(OTHER, l, v4("198.18.0.2")), &c),
        DropReason::NotOurMac
    );
    assert_eq!(
        dropped(&f4(MacAddr::BROADCAST, l, v4("198.18.0.2")), &c),
        DropReason::GroupMac
    );
    assert_eq!(
        dropped(&f4(US, l, v4("198.18.1.2")), &c),
        DropReason::NotInRange
    );
    assert_eq!(
        dropped(&f4(US, l, v4("224.0.0.251")), &c),
        DropReason::Multicast
    );
    assert_eq!(
        dropped(&f4(US, l, v4("255.255.255.255")), &c),
        DropReason::Multicast
    );
    assert_eq!(
        dropped(&f4(US, l, v4("198.18.0.255")), &c),
        DropReason::Multicast
    );
    for s in [
        "0.0.0.0",
        "127.0.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
    ] {
        assert_eq!(
            dropped(&f4(US, v4(s), v4("198.18.0.2")), &c),
            DropReason::BadSource,
            "{s}"
        );
    }
    let good = f4(US, l, v4("198.18.0.2"));
    let mut f = good.clone();
    f[14] = 0x55; // version 5
    assert_eq!(dropped(&f, &c), DropReason::BadHeader);
    let mut f = good.clone();
    f[14] = 0x44; // IHL 16 bytes
    assert_eq!(dropped(&f, &c), DropReason::BadHeader);
    let mut f = good.clone();
    f[16..18].copy_from_slice(&[0, 19]); // total length < header
    assert_eq!(dropped(&f, &c), DropReason::BadHeader);

    let l6 = v6("2001:2::1");
    let f6 = |dmac: MacAddr, s: [u8; 16], d: [u8; 16]| {
        eth(
            dmac,
            LAPTOP,
            0x86dd,
            &ipv6_packet(s, d, 17, 64, &udp(&s, &d, true)),
        )
    };
    let d6 = v6("2001:2::2");
    assert_eq!(dropped(&f6(OTHER, l6, d6), &c), DropReason::NotOurMac);
    let mm = MacAddr::ipv6_multicast(&v6("ff02::fb"));
    assert_eq!(
        dropped(&f6(mm, l6, v6("ff02::fb")), &c),
        DropReason::Multicast
    );
    assert_eq!(dropped(&f6(mm, l6, d6), &c), DropReason::GroupMac);
    assert_eq!(
        dropped(&f6(US, l6, v6("ff02::fb")), &c),
        DropReason::Multicast
    );
    assert_eq!(
        dropped(&f6(US, l6, v6("2001:3::2")), &c),
        DropReason::NotInRange
    );
    for s in ["::", "::1", "ff02::1"] {
        assert_eq!(
            dropped(&f6(US, v6(s), d6), &c),
            DropReason::BadSource,
            "{s}"
        );
    }
    let mut f = f6(US, l6, d6);
    f[14] = 0x40;
    assert_eq!(dropped(&f, &c), DropReason::BadHeader);
}

#[test]
fn ethernet_drops() {
    let c = cfg(true);
    let mut vlan = KERNEL_ECHO4_REQ.to_vec();
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    assert_eq!(dropped(&vlan, &c), DropReason::Vlan);
    vlan[12..14].copy_from_slice(&[0x88, 0xa8]);
    assert_eq!(dropped(&vlan, &c), DropReason::Vlan);
    let lldp = eth(
        MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]),
        LAPTOP,
        0x88cc,
        &[0; 46],
    );
    assert_eq!(dropped(&lldp, &c), DropReason::UnknownEthertype);
    // 802.3 length field (STP, LLC).
    let stp = eth(
        MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]),
        LAPTOP,
        39,
        &[0x42; 46],
    );
    assert_eq!(dropped(&stp, &c), DropReason::UnknownEthertype);
    let mut f = KERNEL_ECHO4_REQ.to_vec();
    f[6] = 0x03; // multicast source
    assert_eq!(dropped(&f, &c), DropReason::SourceMac);
    let mut f = KERNEL_ECHO4_REQ.to_vec();
    f[6..12].copy_from_slice(&US.0); // our own frame coming back: a loop
    assert_eq!(dropped(&f, &c), DropReason::SourceMac);
}

// ---------------------------------------------------------------- robustness

fn good_frames() -> Vec<Vec<u8>> {
    let s = v6("2001:2::1");
    let t = v6("2001:2::9");
    let s4 = v4("198.18.0.1");
    let d4 = v4("198.18.0.3");
    vec![
        KERNEL_ARP_REQ.to_vec(),
        KERNEL_NS.to_vec(),
        KERNEL_ECHO4_REQ.to_vec(),
        KERNEL_ECHO6_REQ.to_vec(),
        ns_frame(US, s, t, t, 255),
        eth(
            US,
            LAPTOP,
            0x0800,
            &ipv4_packet(s4, d4, 17, &udp(&s4, &d4, false)),
        ),
    ]
}

#[test]
fn truncated_at_every_length() {
    for echo in [false, true] {
        let c = cfg(echo);
        for f in good_frames() {
            assert!(matches!(run(&f, &c).0, Action::Send { .. }));
            for n in 0..f.len() {
                // In a big buffer (stale bytes after the end must not matter) ...
                let mut buf = vec![0x5au8; 65536];
                buf[..f.len()].copy_from_slice(&f);
                assert_eq!(
                    transform(&mut buf, n, &c),
                    Action::Drop(DropReason::Truncated),
                    "frame {:02x?} cut at {n}",
                    &f[..14]
                );
                // ... and in a buffer exactly that long.
                let mut short = f[..n].to_vec();
                assert_eq!(
                    transform(&mut short, n, &c),
                    Action::Drop(DropReason::Truncated)
                );
            }
        }
    }
    // A length past the buffer is clamped, not trusted.
    let mut b = KERNEL_ARP_REQ.to_vec();
    assert_eq!(
        transform(&mut b[..20], 42, &cfg(false)),
        Action::Drop(DropReason::Truncated)
    );
}

#[test]
fn garbage_never_panics() {
    let c = cfg(true);
    let mut seed: u64 = 0x243f_6a88_85a3_08d3;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut buf = vec![0u8; 65536];
    // Random bytes behind each real header, and random single/multi-byte mutations.
    for round in 0..20_000 {
        let frames = good_frames();
        let base = &frames[round % frames.len()];
        let mut f = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % f.len();
            f[i] = next() as u8;
        }
        if round % 5 == 0 {
            f.truncate((next() as usize) % (f.len() + 1));
        }
        if round % 7 == 0 {
            f = (0..(next() % 200) as usize).map(|_| next() as u8).collect();
        }
        buf[..f.len()].copy_from_slice(&f);
        match transform(&mut buf, f.len(), &c) {
            Action::Send { len, .. } => assert!(len <= ndp::NA_FRAME_LEN.max(f.len())),
            Action::Drop(_) => {}
        }
    }
}

#[test]
fn every_drop_reason_has_a_name_and_index() {
    let mut names = std::collections::HashSet::new();
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
        assert!(names.insert(r.name()), "duplicate name {}", r.name());
    }
    for (i, r) in Reply::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}

#[test]
fn addresses_for_logging() {
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert_eq!(
        frame_addrs(&KERNEL_ARP_REQ),
        Some((ip("198.18.0.1"), ip("198.18.0.2")))
    );
    assert_eq!(
        frame_addrs(&KERNEL_ECHO4_REQ),
        Some((ip("198.18.0.1"), ip("198.18.0.2")))
    );
    assert_eq!(
        frame_addrs(&KERNEL_NS),
        Some((ip("2001:2::1"), ip("ff02::1:ff00:2")))
    );
    assert_eq!(frame_addrs(&KERNEL_ECHO4_REQ[..33]), None);
    assert_eq!(frame_addrs(&KERNEL_NS[..53]), None);
    assert_eq!(frame_addrs(&KERNEL_ARP_REQ[..41]), None);
    assert_eq!(frame_addrs(&[0u8; 13]), None);
    let lldp = eth(
        MacAddr([0x01, 0x80, 0xc2, 0, 0, 0x0e]),
        LAPTOP,
        0x88cc,
        &[0; 46],
    );
    assert_eq!(frame_addrs(&lldp), None);
}
