//! Requests against the bytes the kernel expects, replies captured from a real kernel
//! (src/sys/netlink/testdata/*.hex: one message a line, from a network namespace with
//! a bridge, a veth pair, IPv4/IPv6 addresses and multipath routes), and every prefix
//! and some corruptions of them (no panics).
use super::*;

/// Builds expected bytes field by field, in host byte order like the kernel wants.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_ne_bytes());
        self
    }
    fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    /// An attribute with padding to 4.
    fn nla(self, ty: u16, data: &[u8]) -> Self {
        let mut b = self.u16(4 + data.len() as u16).u16(ty).raw(data);
        while b.0.len() % 4 != 0 {
            b.0.push(0);
        }
        b
    }
    fn nla_u32(self, ty: u16, v: u32) -> Self {
        self.nla(ty, &v.to_ne_bytes())
    }
    /// Prefixes the netlink header (request + ack + `flags`, sequence 0, port 0).
    fn msg(self, ty: u16, flags: u16) -> Vec<u8> {
        Bytes::default()
            .u32(16 + self.0.len() as u32)
            .u16(ty)
            .u16(1 | 4 | flags)
            .u32(0)
            .u32(0)
            .raw(&self.0)
            .0
    }
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> Bytes {
    Bytes::default()
        .u8(0)
        .u8(0)
        .u16(0)
        .u32(index)
        .u32(flags)
        .u32(change)
}

#[test]
fn link_requests_are_encoded_exactly() {
    assert_eq!(
        set_master(4, Some(2)),
        ifinfomsg(4, 0, 0).nla_u32(10, 2).msg(RTM_SETLINK, 0)
    );
    assert_eq!(
        set_master(4, None),
        ifinfomsg(4, 0, 0).nla_u32(10, 0).msg(RTM_SETLINK, 0)
    );
    assert_eq!(
        set_mac(5, [2, 0, 0, 0, 0, 0x0a]),
        ifinfomsg(5, 0, 0)
            .nla(1, &[2, 0, 0, 0, 0, 0x0a])
            .msg(RTM_SETLINK, 0)
    );
    let kind = Bytes::default().nla(1, b"bridge\0").0;
    let bridge = create_bridge("br-tunbox");
    assert_eq!(
        bridge,
        ifinfomsg(0, 0, 0)
            .nla(3, b"br-tunbox\0")
            .nla(18, &kind)
            .msg(RTM_NEWLINK, 0x400 | 0x200)
    );
    // Length 16 + 16 + (4+10 → 16) + (4 + (4+7 → 12)) = 64.
    assert_eq!(bridge.len(), 64);
    assert_eq!(&bridge[..4], &64u32.to_ne_bytes());
    assert_eq!(delete_link(9), ifinfomsg(9, 0, 0).msg(RTM_DELLINK, 0));
    assert_eq!(dump_links(), ifinfomsg(0, 0, 0).msg(RTM_GETLINK, 0x300));
}

#[test]
fn address_requests_are_encoded_exactly() {
    let ifaddrmsg = |family: u8, len: u8, flags: u8, scope: u8, index: u32| {
        Bytes::default()
            .u8(family)
            .u8(len)
            .u8(flags)
            .u8(scope)
            .u32(index)
    };
    assert_eq!(
        dump_addresses(),
        ifaddrmsg(0, 0, 0, 0, 0).msg(RTM_GETADDR, 0x300)
    );
    assert_eq!(
        new_address(3, "198.18.0.1".parse().unwrap(), 30),
        ifaddrmsg(2, 30, 0, 0, 3)
            .nla(2, &[198, 18, 0, 1])
            .nla(1, &[198, 18, 0, 1])
            .msg(RTM_NEWADDR, 0x600)
    );
    let v6: Ipv6Addr = "2001:2::1".parse().unwrap();
    assert_eq!(
        new_address(3, IpAddr::V6(v6), 64),
        ifaddrmsg(10, 64, 0x02, 0, 3)
            .nla(2, &v6.octets())
            .nla(1, &v6.octets())
            .msg(RTM_NEWADDR, 0x600)
    );
    let a = AddrEntry {
        index: 3,
        addr: "198.18.0.2".parse().unwrap(),
        prefix_len: 24,
        peer: Some("198.18.0.9".parse().unwrap()),
        broadcast: Some(Ipv4Addr::new(198, 18, 0, 255)),
        scope: 253,
        // permanent (kernel state, not sent) | nodad | noprefixroute
        flags: 0x80 | 0x02 | 0x200,
        label: Some("br0:x".into()),
        lifetimes: Some((3600, 1800)),
        proto: Some(3),
        metric: Some(5),
    };
    assert_eq!(
        addr_request(&a, true),
        ifaddrmsg(2, 24, 0x02, 253, 3)
            .nla(2, &[198, 18, 0, 2])
            .nla(1, &[198, 18, 0, 9])
            .nla_u32(8, 0x202)
            .nla(4, &[198, 18, 0, 255])
            .nla(3, b"br0:x\0")
            .nla(6, &Bytes::default().u32(1800).u32(3600).u32(0).u32(0).0)
            .nla(11, &[3])
            .nla_u32(9, 5)
            .msg(RTM_NEWADDR, 0x600)
    );
    assert_eq!(
        addr_request(&a, false),
        ifaddrmsg(2, 24, 0, 253, 3)
            .nla(2, &[198, 18, 0, 2])
            .nla(1, &[198, 18, 0, 9])
            .msg(RTM_DELADDR, 0)
    );
}

fn route(dst: &str, len: u8, gw: Option<&str>) -> RouteEntry {
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

#[allow(clippy::too_many_arguments)]
fn rtmsg(
    family: u8,
    dst_len: u8,
    tos: u8,
    table: u8,
    proto: u8,
    scope: u8,
    kind: u8,
    flags: u32,
) -> Bytes {
    Bytes::default()
        .u8(family)
        .u8(dst_len)
        .u8(0)
        .u8(tos)
        .u8(table)
        .u8(proto)
        .u8(scope)
        .u8(kind)
        .u32(flags)
}

#[test]
fn route_requests_are_encoded_exactly() {
    assert_eq!(
        dump_routes(AF_INET6),
        rtmsg(10, 0, 0, 0, 0, 0, 0, 0).msg(RTM_GETROUTE, 0x300)
    );
    let mut r = route("198.19.0.0", 24, Some("198.18.0.1"));
    r.prefsrc = Some("198.18.0.2".parse().unwrap());
    r.onlink = true;
    r.tos = 4;
    assert_eq!(
        route_request(&r, true),
        rtmsg(2, 24, 4, 254, 3, 0, 1, 4)
            .nla(1, &[198, 19, 0, 0])
            .nla_u32(15, 254)
            .nla(5, &[198, 18, 0, 1])
            .nla(7, &[198, 18, 0, 2])
            .nla_u32(6, 1024)
            .nla_u32(4, 7)
            .msg(RTM_NEWROUTE, 0x400)
    );
    // A default route has no RTA_DST; a table above 255 goes only in RTA_TABLE.
    let mut d = route("::", 0, Some("2001:2::1"));
    d.table = 1000;
    d.oif = None;
    d.pref = Some(1);
    let gw: Ipv6Addr = "2001:2::1".parse().unwrap();
    assert_eq!(
        route_request(&d, false),
        rtmsg(10, 0, 0, 0, 3, 0, 1, 0)
            .nla_u32(15, 1000)
            .nla(5, &gw.octets())
            .nla_u32(6, 1024)
            .nla(20, &[1])
            .msg(RTM_DELROUTE, 0)
    );
}

fn payload(msg: &[u8]) -> &[u8] {
    &msg[NLMSG_HDRLEN..]
}

#[test]
fn routes_read_back_as_sent() {
    let mut v4 = route("198.19.0.0", 24, Some("198.18.0.1"));
    v4.prefsrc = Some("198.18.0.2".parse().unwrap());
    v4.onlink = true;
    let mut v6 = route("::", 0, Some("2001:2::1"));
    v6.pref = Some(0);
    let mut big_table = route("198.19.1.0", 24, None);
    big_table.table = 1000;
    big_table.scope = 253;
    for r in [v4, v6, big_table] {
        assert_eq!(parse_routes(payload(&route_request(&r, true))), Ok(vec![r]));
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
    v6.proto = Some(3);
    for x in [a, p2p, v6] {
        assert_eq!(parse_addr(payload(&addr_request(&x, true))), Ok(Some(x)));
    }
}

/// A route with RTA_MULTIPATH: two hops (index, gateway, rtnh flags).
fn multipath(dst: &str, hops: &[(u32, &str, u8)]) -> Vec<u8> {
    let mut m = route(dst, 0, None);
    m.oif = None;
    let mut msg = route_request(&m, true);
    let mut nh = Vec::new();
    for &(index, gw, flags) in hops {
        let gw: IpAddr = gw.parse().unwrap();
        let attr = match gw {
            IpAddr::V4(v) => Bytes::default().nla(RTA_GATEWAY, &v.octets()).0,
            IpAddr::V6(v) => Bytes::default().nla(RTA_GATEWAY, &v.octets()).0,
        };
        nh = Bytes(nh)
            .u16(8 + attr.len() as u16)
            .u8(flags)
            .u8(0)
            .u32(index)
            .raw(&attr)
            .0;
    }
    msg.extend(Bytes::default().nla(RTA_MULTIPATH, &nh).0);
    msg
}

#[test]
fn multipath_is_split_per_hop() {
    for (dst, gw1, gw2) in [
        ("::", "2001:2::1", "2001:2::9"),
        ("0.0.0.0", "198.18.0.1", "198.18.0.9"),
    ] {
        let msg = multipath(dst, &[(2, gw1, 0), (3, gw2, 4)]);
        let e = parse_routes(payload(&msg)).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].oif, e[1].oif), (Some(2), Some(3)));
        assert_eq!(e[0].gateway, Some(gw1.parse().unwrap()));
        assert_eq!(e[1].gateway, Some(gw2.parse().unwrap()));
        assert_eq!((e[0].onlink, e[1].onlink), (false, true));
        // IPv6 siblings are routes of their own; an IPv4 multipath route is one.
        assert_eq!(e[0].multipath, dst == "0.0.0.0");
        assert_eq!(e[1].multipath, dst == "0.0.0.0");
        assert_eq!((e[0].metric, e[0].table, e[0].protocol), (1024, 254, 3));
    }
}

fn ack(seq: u32, errno: i32) -> Vec<u8> {
    Bytes::default()
        .u32(36)
        .u16(NLMSG_ERROR)
        .u16(0)
        .u32(seq)
        .u32(0)
        .u32((-errno) as u32)
        .raw(&[0; 16])
        .0
}

fn done(seq: u32, errno: i32) -> Vec<u8> {
    Bytes::default()
        .u32(20)
        .u16(NLMSG_DONE)
        .u16(2)
        .u32(seq)
        .u32(0)
        .u32((-errno) as u32)
        .0
}

fn run(datagram: &[u8], seq: u32, dump: bool) -> (Result<Step>, Vec<u16>) {
    let mut seen = Vec::new();
    let step = process(datagram, seq, dump, &mut |t, _| {
        seen.push(t);
        Ok(())
    });
    (step, seen)
}

#[test]
fn acks_errors_and_sequence_numbers() {
    assert_eq!(run(&ack(5, 0), 5, false), (Ok(Step::Finished), vec![]));
    assert_eq!(
        run(&ack(5, libc::EEXIST), 5, false),
        (Ok(Step::Failed(libc::EEXIST)), vec![])
    );
    // An answer to an earlier request is skipped, the right one still counts.
    let mut two = ack(4, libc::EPERM);
    two.extend(ack(5, 0));
    assert_eq!(run(&two, 5, false), (Ok(Step::Finished), vec![]));
    assert_eq!(run(&ack(4, 0), 5, false), (Ok(Step::More), vec![]));
    // A dump: data, then NLMSG_DONE; an ack inside a dump does not end it.
    let mut d = set_master(1, None);
    set_seq(&mut d, 9);
    d.extend(ack(9, 0));
    assert_eq!(run(&d, 9, true), (Ok(Step::More), vec![RTM_SETLINK]));
    assert_eq!(run(&done(9, 0), 9, true), (Ok(Step::Finished), vec![]));
    assert_eq!(
        run(&done(9, libc::EINTR), 9, true),
        (Ok(Step::Failed(libc::EINTR)), vec![])
    );
    // An old kernel's NLMSG_DONE without an error field.
    let bare = Bytes::default()
        .u32(16)
        .u16(NLMSG_DONE)
        .u16(2)
        .u32(9)
        .u32(0)
        .0;
    assert_eq!(run(&bare, 9, true), (Ok(Step::Finished), vec![]));
    // Garbage.
    assert!(run(&[1, 2, 3], 9, true).0.is_err());
    let mut bad = ack(9, 0);
    bad[..4].copy_from_slice(&200u32.to_ne_bytes());
    assert!(run(&bad, 9, false).0.is_err());
    let short_err = Bytes::default()
        .u32(18)
        .u16(NLMSG_ERROR)
        .u16(0)
        .u32(9)
        .u32(0)
        .u16(0)
        .0;
    assert!(run(&short_err, 9, false).0.is_err());
}

/// The captured messages of one dump (little-endian: captured on x86_64).
fn capture(hex: &str) -> Vec<Vec<u8>> {
    hex.lines()
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

const LINKS: &str = include_str!("testdata/link.hex");
const ADDRS: &str = include_str!("testdata/addr.hex");
const ROUTES4: &str = include_str!("testdata/route4.hex");
const ROUTES6: &str = include_str!("testdata/route6.hex");

/// Every kind of reply through `process`, as the socket would deliver it (one datagram).
fn decode_dump(hex: &str) -> (Vec<LinkState>, Vec<AddrEntry>, Vec<RouteEntry>) {
    let datagram: Vec<u8> = capture(hex).concat();
    let (mut links, mut addrs, mut routes) = (Vec::new(), Vec::new(), Vec::new());
    let step = process(&datagram, 7, true, &mut |t, p| {
        match t {
            RTM_NEWLINK => links.extend(parse_link(p)?),
            RTM_NEWADDR => addrs.extend(parse_addr(p)?),
            RTM_NEWROUTE => routes.extend(parse_routes(p)?),
            _ => panic!("unexpected message type {t}"),
        }
        Ok(())
    });
    assert_eq!(step, Ok(Step::Finished));
    (links, addrs, routes)
}

#[cfg(target_endian = "little")]
#[test]
fn captured_links() {
    let links = decode_dump(LINKS).0;
    let mac = |m: [u8; 6]| Some(m);
    let link = |index, name: &str, kind: Option<&str>, ether, mtu, mac, master| LinkState {
        index,
        name: name.into(),
        kind: kind.map(String::from),
        ether,
        mtu,
        up: true,
        mac,
        master,
    };
    // As `ip -d link` showed them.
    assert_eq!(
        links,
        vec![
            link(1, "lo", None, false, 65536, mac([0; 6]), None),
            link(
                2,
                "br-t",
                Some("bridge"),
                true,
                1500,
                mac([2, 0, 0, 0, 0, 0x0a]),
                None
            ),
            link(
                3,
                "vB",
                Some("veth"),
                true,
                1500,
                mac([0x9e, 0x68, 0xb1, 0x1d, 0xb2, 0x7c]),
                None
            ),
            link(
                4,
                "vA",
                Some("veth"),
                true,
                1500,
                mac([2, 0, 0, 0, 0, 0x0a]),
                Some(2)
            ),
        ]
    );
}

#[cfg(target_endian = "little")]
#[test]
fn captured_addresses() {
    let addrs = decode_dump(ADDRS).1;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let found = |a: &str| {
        addrs
            .iter()
            .find(|e| e.addr == ip(a))
            .unwrap_or_else(|| panic!("{a} missing"))
            .clone()
    };
    assert_eq!(addrs.len(), 9);
    assert_eq!(
        found("198.18.0.2"),
        AddrEntry {
            index: 2,
            addr: ip("198.18.0.2"),
            prefix_len: 24,
            peer: None,
            broadcast: Some(Ipv4Addr::new(198, 18, 0, 255)),
            scope: 0,
            flags: IFA_F_PERMANENT,
            label: Some("br-t:x".into()),
            lifetimes: None,
            proto: None,
            metric: None,
        }
    );
    let p2p = found("198.18.5.1");
    assert_eq!((p2p.index, p2p.prefix_len), (3, 32));
    assert_eq!(p2p.peer, Some(ip("198.18.5.9")));
    assert_eq!(p2p.label.as_deref(), Some("vB"));
    let timed = found("2001:2::2");
    assert_eq!((timed.index, timed.prefix_len, timed.scope), (2, 64, 0));
    assert_eq!(timed.flags & IFA_F_NODAD, IFA_F_NODAD);
    assert_eq!(timed.flags & IFA_F_PERMANENT, 0);
    let (valid, preferred) = timed.lifetimes.unwrap();
    assert!((3590..=3600).contains(&valid) && (1790..=1800).contains(&preferred));
    assert_eq!(found("2001:2:1::5").metric, Some(7));
    let lo = found("::1");
    assert_eq!(
        (lo.index, lo.prefix_len, lo.scope, lo.lifetimes),
        (1, 128, 254, None)
    );
}

#[cfg(target_endian = "little")]
#[test]
fn captured_routes() {
    let mut routes = decode_dump(ROUTES4).2;
    routes.extend(decode_dump(ROUTES6).2);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let to = |dst: &str| -> Vec<RouteEntry> {
        routes
            .iter()
            .filter(|r| r.dst == ip(dst))
            .cloned()
            .collect()
    };
    assert_eq!(
        to("198.19.0.0"),
        vec![RouteEntry {
            oif: Some(2),
            table: 254,
            dst: ip("198.19.0.0"),
            dst_len: 24,
            gateway: Some(ip("198.18.0.1")),
            prefsrc: None,
            metric: 10,
            protocol: 4, // static
            scope: 0,
            kind: RTN_UNICAST,
            tos: 0,
            onlink: false,
            pref: None,
            multipath: false,
        }]
    );
    // IPv4 multipath: one route, both hops marked.
    let mp4 = to("198.19.1.0");
    assert_eq!(mp4.len(), 2);
    assert!(mp4.iter().all(|r| r.multipath && r.table == 254));
    assert_eq!(
        mp4.iter()
            .map(|r| (r.oif, r.gateway, r.onlink))
            .collect::<Vec<_>>(),
        vec![
            (Some(2), Some(ip("198.18.0.1")), false),
            (Some(3), Some(ip("198.18.5.9")), true)
        ]
    );
    // IPv6 "multipath": two sibling routes of their own.
    let mp6 = to("2001:2:9::");
    assert_eq!(
        mp6.iter()
            .map(|r| (r.oif, r.gateway, r.multipath, r.dst_len, r.metric))
            .collect::<Vec<_>>(),
        vec![
            (Some(2), Some(ip("2001:2::1")), false, 48, 1024),
            (Some(3), Some(ip("2001:2:1::1")), false, 48, 1024)
        ]
    );
    let table = to("198.19.2.0");
    assert_eq!(table.len(), 1);
    assert_eq!((table[0].table, table[0].scope), (1000, 253));
    assert_eq!(table[0].prefsrc, Some(ip("198.18.5.1")));
    let default6: Vec<_> = to("::").into_iter().filter(|r| r.table == 1000).collect();
    assert_eq!(default6.len(), 1);
    assert_eq!(default6[0].gateway, Some(ip("2001:2::1")));
    assert_eq!(default6[0].pref, Some(1)); // high
    assert_eq!(default6[0].dst_len, 0);
    let local = to("198.18.0.2");
    assert_eq!((local[0].table, local[0].kind), (RT_TABLE_LOCAL, 2));
    // Connected route of the kernel, IPv6 preference medium (0).
    let connected = to("2001:2:1::");
    assert_eq!(connected[0].protocol, RTPROT_KERNEL);
    assert_eq!((connected[0].metric, connected[0].pref), (7, Some(0)));
}

/// Every parser on `bytes`: errors are fine, panics are not.
/// Every parser on `bytes` (as a payload, and as a datagram through `process`);
/// returns how many messages `process` handed on and what it ended with.
fn parse_all(bytes: &[u8]) -> (usize, Result<Step>) {
    let _ = parse_link(bytes);
    let _ = parse_addr(bytes);
    let _ = parse_routes(bytes);
    let mut handed = 0;
    let step = process(bytes, 7, true, &mut |t, p| {
        handed += 1;
        match t {
            RTM_NEWLINK => parse_link(p).map(drop),
            RTM_NEWADDR => parse_addr(p).map(drop),
            _ => parse_routes(p).map(drop),
        }
    });
    (handed, step)
}

/// Header length of the netlink message at the start of `m`.
fn nlmsg_len(m: &[u8]) -> usize {
    u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize
}

#[test]
fn truncated_replies_are_errors_and_garbled_ones_stay_bounded() {
    let mut samples: Vec<Vec<u8>> = [LINKS, ADDRS, ROUTES4, ROUTES6]
        .iter()
        .flat_map(|h| capture(h))
        .collect();
    samples.push(multipath("::", &[(2, "2001:2::1", 0), (3, "2001:2::9", 4)]));
    samples.push(multipath("0.0.0.0", &[(2, "198.18.0.1", 0)]));
    let a = AddrEntry {
        index: 3,
        addr: "198.18.0.2".parse().unwrap(),
        prefix_len: 24,
        peer: None,
        broadcast: Some(Ipv4Addr::new(198, 18, 0, 255)),
        scope: 0,
        flags: 0,
        label: Some("x".into()),
        lifetimes: Some((1, 2)),
        proto: Some(1),
        metric: Some(5),
    };
    samples.push(addr_request(&a, true));
    samples.push(create_bridge("br-x"));
    let mut rng = 0x1234_5678u32;
    for s in &samples {
        // The whole message reads (handed on at most once: a done or an ack, or
        // another request's sequence number, is not handed on).
        let single = nlmsg_len(s) == s.len();
        let (handed, step) = parse_all(s);
        if single {
            assert!(handed <= 1 && step.is_ok(), "{handed} {step:?}");
        }
        assert_eq!(parse_all(&[]), (0, Ok(Step::More)));
        for n in (1..s.len()).filter(|_| single) {
            // A message cut short is never handed on: the datagram is an error.
            let (handed, step) = parse_all(&s[..n]);
            assert_eq!(handed, 0, "cut at {n} of {}: {step:?}", s.len());
            assert!(step.is_err(), "cut at {n} of {}: {step:?}", s.len());
        }
        for n in NLMSG_HDRLEN..s.len() {
            let _ = parse_all(&s[NLMSG_HDRLEN..n]);
        }
        // Corruptions: single bytes set to extremes, lengths included. Whatever the
        // parsers make of them, no more messages than headers fit are handed on.
        let most = s.len() / NLMSG_HDRLEN;
        for i in 0..s.len() {
            for v in [0u8, 1, 3, 0x7f, 0xff] {
                let mut c = s.clone();
                c[i] = v;
                assert!(parse_all(&c).0 <= most);
                let _ = parse_all(&c[NLMSG_HDRLEN.min(c.len())..]);
            }
        }
        for _ in 0..200 {
            let mut c = s.clone();
            for _ in 0..4 {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                let i = rng as usize % c.len();
                c[i] = (rng >> 24) as u8;
            }
            assert!(parse_all(&c).0 <= most);
        }
    }
}

#[test]
fn short_reply_is_an_error_not_an_entry() {
    let r = route_request(&route("198.19.0.0", 24, Some("198.18.0.1")), true);
    assert!(parse_routes(&payload(&r)[..11]).is_err());
    // An attribute that claims more bytes than there are.
    let mut p = payload(&r).to_vec();
    p[12..14].copy_from_slice(&200u16.to_ne_bytes());
    assert!(parse_routes(&p).is_err());
    // An address of a wrong size.
    let bad = ifinfomsg(0, 0, 0).0;
    let mut m = Bytes::default()
        .u8(2)
        .u8(24)
        .u8(0)
        .u8(0)
        .u32(1)
        .nla(IFA_LOCAL, &[1, 2, 3])
        .0;
    assert!(parse_addr(&m).is_err());
    m.truncate(3);
    assert!(parse_addr(&m).is_err());
    assert!(parse_link(&bad[..15]).is_err());
}
