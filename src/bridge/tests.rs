//! Unit tests of the pure plan and the state file. A small simulator applies steps to a
//! `Snapshot` the way the kernel would, so whole sequences (up, crash at any step,
//! down, rollback, up twice) can be checked without root.
use super::plan::*;
use super::state;
use crate::sys::netlink::{AddrEntry, LinkState, RouteEntry};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETH_MAC: [u8; 6] = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01];
const NF: &str = "/proc/sys/net/bridge/bridge-nf-call-";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn link(index: u32, name: &str, kind: Option<&str>) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        kind: kind.map(str::to_string),
        ether: true,
        mtu: 1500,
        up: true,
        mac: Some([0x02, 0, 0, 0, 0, index as u8]),
        master: None,
    }
}

fn addr(index: u32, a: &str, len: u8) -> AddrEntry {
    let addr = ip(a);
    AddrEntry {
        index,
        addr,
        prefix_len: len,
        peer: None,
        broadcast: None,
        scope: 0,
        flags: 0x80,
        label: addr.is_ipv4().then(|| "eth0".to_string()),
        lifetimes: None,
        proto: None,
        metric: None,
    }
}

fn route(oif: u32, dst: &str, len: u8, gw: Option<&str>, metric: u32, proto: u8) -> RouteEntry {
    RouteEntry {
        oif: Some(oif),
        table: 254,
        dst: ip(dst),
        dst_len: len,
        gateway: gw.map(ip),
        prefsrc: None,
        metric,
        protocol: proto,
        scope: if gw.is_some() { 0 } else { 253 },
        kind: 1,
        tos: 0,
        onlink: false,
        pref: None,
        multipath: false,
    }
}

/// A Pi: lo, eth0 with two IPv4 addresses (one secondary), a global IPv6 address, a
/// link-local and a SLAAC one, kernel, static, RA, local-table and multipath routes.
fn pi() -> Snapshot {
    let mut lo = link(1, "lo", None);
    lo.ether = false;
    lo.mac = None;
    let mut eth = link(2, "eth0", Some("veth"));
    eth.mac = Some(ETH_MAC);
    let mut lo_addr = addr(1, "127.0.0.1", 8);
    lo_addr.scope = 254;
    lo_addr.label = Some("lo".into());
    let mut primary = addr(2, "198.18.0.2", 24);
    primary.broadcast = Some(Ipv4Addr::new(198, 18, 0, 255));
    let mut secondary = addr(2, "198.18.0.3", 24);
    secondary.flags |= 0x01;
    secondary.label = Some("eth0:1".into());
    let mut dhcp = addr(2, "198.18.7.2", 24);
    dhcp.lifetimes = Some((3600, 3000));
    dhcp.flags = 0;
    let v6 = addr(2, "2001:2::2", 64);
    let mut ll = addr(2, "fe80::1", 64);
    ll.scope = 253;
    ll.proto = Some(2);
    let mut slaac = addr(2, "2001:2:0:1::2", 64);
    slaac.flags = 0x100;
    slaac.proto = Some(3);
    slaac.lifetimes = Some((86400, 14400));
    let mut local = route(2, "198.18.0.2", 32, None, 0, 2);
    local.table = 255;
    local.kind = 2;
    let mut multi = route(2, "198.20.0.0", 16, None, 0, 4);
    multi.multipath = true;
    let mut v6_default = route(2, "::", 0, Some("2001:2::1"), 1024, 3);
    v6_default.pref = Some(0);
    let mut with_src = route(2, "198.21.0.0", 24, None, 10, 4);
    with_src.prefsrc = Some(ip("198.18.0.2"));
    Snapshot {
        links: vec![lo, eth],
        addrs: vec![lo_addr, primary, secondary, dhcp, v6, ll, slaac],
        routes: vec![
            route(2, "198.18.0.0", 24, None, 0, 2),
            route(2, "0.0.0.0", 0, Some("198.18.0.1"), 0, 3),
            route(2, "198.19.0.0", 24, Some("198.18.0.1"), 50, 4),
            with_src,
            local,
            multi,
            route(2, "::", 0, Some("fe80::1"), 1024, 9),
            v6_default,
            route(1, "127.0.0.0", 8, None, 0, 2),
        ],
        sysctls: ["arptables", "ip6tables", "iptables"]
            .iter()
            .map(|n| (format!("{NF}{n}"), "1".to_string()))
            .collect(),
    }
}

fn opts() -> Options {
    Options {
        ifname: "eth0".into(),
        tap: "tap0".into(),
        bridge: "br-tunbox".into(),
        owner: Some(1000),
    }
}

/// Applies one step as the kernel would; errors where the kernel would refuse.
fn sim(s: &mut Snapshot, step: &Step) -> Result<(), String> {
    let idx = |s: &Snapshot, n: &str| s.link(n).map(|l| l.index).ok_or(format!("no {n}"));
    let next = s.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
    match step {
        Step::CreateBridge { name } | Step::CreateTap { name, .. } => {
            if s.link(name).is_some() {
                return Err("EEXIST".into());
            }
            let bridge = matches!(step, Step::CreateBridge { .. });
            let mut l = link(next, name, Some(if bridge { "bridge" } else { "tun" }));
            l.up = false;
            l.mac = Some([0x06, 0, 0, 0, 0, next as u8]);
            s.links.push(l);
        }
        Step::DeleteLink { name } | Step::DeleteTap { name } => {
            let i = idx(s, name)?;
            s.links.retain(|l| l.index != i);
            s.addrs.retain(|a| a.index != i);
            s.routes.retain(|r| r.oif != Some(i));
            for l in &mut s.links {
                if l.master == Some(i) {
                    l.master = None;
                }
            }
        }
        Step::SetMaster { dev, master, .. } => {
            let m = match master {
                Some(m) => Some(idx(s, m)?),
                None => None,
            };
            let i = idx(s, dev)?;
            s.links.iter_mut().find(|l| l.index == i).unwrap().master = m;
        }
        Step::SetMac { dev, mac, .. } => {
            let i = idx(s, dev)?;
            s.links.iter_mut().find(|l| l.index == i).unwrap().mac = Some(*mac);
        }
        Step::SetMtu { dev, mtu, .. } => {
            let i = idx(s, dev)?;
            s.links.iter_mut().find(|l| l.index == i).unwrap().mtu = *mtu;
        }
        Step::SetUp { dev, up } => {
            let i = idx(s, dev)?;
            s.links.iter_mut().find(|l| l.index == i).unwrap().up = *up;
        }
        Step::AddAddr { dev, addr } => {
            let i = idx(s, dev)?;
            if s.addrs
                .iter()
                .any(|a| a.index == i && a.addr == addr.addr && a.prefix_len == addr.prefix_len)
            {
                return Err("EEXIST".into());
            }
            s.addrs.push(AddrEntry {
                index: i,
                ..addr.clone()
            });
        }
        Step::DelAddr { dev, addr } => {
            let i = idx(s, dev)?;
            let n = s.addrs.len();
            s.addrs.retain(|a| {
                !(a.index == i && a.addr == addr.addr && a.prefix_len == addr.prefix_len)
            });
            if s.addrs.len() == n {
                return Err("EADDRNOTAVAIL".into());
            }
        }
        Step::AddRoute { dev, route } => {
            let i = idx(s, dev)?;
            if s.routes
                .iter()
                .any(|r| r.oif == Some(i) && same_route(r, route))
            {
                return Err("EEXIST".into());
            }
            if let Some(src) = route.prefsrc {
                if !s.addrs.iter().any(|a| a.addr == src) {
                    return Err("EINVAL: prefsrc not local".into());
                }
            }
            s.routes.push(RouteEntry {
                oif: Some(i),
                ..route.clone()
            });
        }
        Step::DelRoute { dev, route } => {
            let i = idx(s, dev)?;
            let n = s.routes.len();
            s.routes
                .retain(|r| !(r.oif == Some(i) && same_route(r, route)));
            if s.routes.len() == n {
                return Err("ESRCH".into());
            }
        }
        Step::SetSysctl { path, value, .. } => {
            let v = s
                .sysctls
                .iter_mut()
                .find(|(p, _)| p == path)
                .ok_or("ENOENT")?;
            v.1 = value.clone();
        }
    }
    Ok(())
}

fn sim_all(s: &mut Snapshot, steps: &[Step]) {
    for st in steps {
        sim(s, st).unwrap_or_else(|e| panic!("{st}: {e}"));
    }
}

/// The state compared before and after: addresses and routes as sets (the kernel's
/// order between devices is not ours to keep), links exactly.
fn norm(s: &Snapshot) -> Snapshot {
    let mut n = s.clone();
    n.links.sort_by_key(|l| l.index);
    n.addrs.sort_by_key(|a| (a.index, a.addr));
    n.routes.sort_by_key(|r| format!("{r:?}"));
    n
}

fn v4_order(s: &Snapshot, index: u32) -> Vec<IpAddr> {
    s.addrs
        .iter()
        .filter(|a| a.index == index && a.addr.is_ipv4())
        .map(|a| a.addr)
        .collect()
}

#[test]
fn up_moves_exactly_the_movable_addresses_and_routes() {
    let snap = pi();
    let (rec, steps) = plan_up(&opts(), &snap, None).unwrap();
    let added: Vec<IpAddr> = steps
        .iter()
        .filter_map(|s| match s {
            Step::AddAddr { dev, addr } if dev == "br-tunbox" => Some(addr.addr),
            _ => None,
        })
        .collect();
    assert_eq!(
        added,
        vec![
            ip("198.18.0.2"),
            ip("198.18.0.3"),
            ip("198.18.7.2"),
            ip("2001:2::2")
        ]
    );
    let moved: Vec<(IpAddr, u8, u32)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::AddRoute { route, .. } => Some((route.dst, route.dst_len, route.metric)),
            _ => None,
        })
        .collect();
    // Gateway-less first; kernel, RA, local-table and multipath routes stay.
    assert_eq!(
        moved,
        vec![
            (ip("198.21.0.0"), 24, 10),
            (ip("0.0.0.0"), 0, 0),
            (ip("198.19.0.0"), 24, 50),
            (ip("::"), 0, 1024),
        ]
    );
    assert_eq!(rec.addrs.len(), 4);
    assert!(rec.addrs.iter().all(|a| a.index == 0));
    assert_eq!(rec.routes.len(), 4);
    assert!(rec.routes.iter().all(|r| r.oif.is_none()));
    assert!(rec.created_bridge && rec.created_tap);
    assert_eq!(
        rec.port,
        LinkRecord {
            mtu: 1500,
            up: true,
            mac: Some(ETH_MAC),
            master: None
        }
    );
    assert_eq!(rec.sysctls.len(), 3);
}

#[test]
fn up_step_order_keeps_the_box_reachable() {
    let (_, steps) = plan_up(&opts(), &pi(), None).unwrap();
    let pos = |f: &dyn Fn(&Step) -> bool| steps.iter().position(f).unwrap();
    let last = |f: &dyn Fn(&Step) -> bool| steps.iter().rposition(f).unwrap();
    assert_eq!(
        steps[0],
        Step::CreateBridge {
            name: "br-tunbox".into()
        }
    );
    assert_eq!(
        steps[1],
        Step::SetMac {
            dev: "br-tunbox".into(),
            mac: ETH_MAC,
            old: None
        }
    );
    assert!(steps.contains(&Step::CreateTap {
        name: "tap0".into(),
        owner: Some(1000)
    }));
    let enslave = pos(&|s| matches!(s, Step::SetMaster { dev, .. } if dev == "eth0"));
    let first_add_addr = pos(&|s| matches!(s, Step::AddAddr { .. }));
    let last_add_addr = last(&|s| matches!(s, Step::AddAddr { .. }));
    let first_add_route = pos(&|s| matches!(s, Step::AddRoute { .. }));
    let last_add_route = last(&|s| matches!(s, Step::AddRoute { .. }));
    let first_del_route = pos(&|s| matches!(s, Step::DelRoute { .. }));
    let last_del_route = last(&|s| matches!(s, Step::DelRoute { .. }));
    let first_del_addr = pos(&|s| matches!(s, Step::DelAddr { .. }));
    assert!(enslave < first_add_addr);
    assert!(last_add_addr < first_add_route, "prefsrc needs the address");
    assert!(
        last_add_route < first_del_route,
        "add on the bridge before removing from eth0"
    );
    assert!(last_del_route < first_del_addr);
    // Secondary addresses go before the primary (deleting a primary drops its secondaries).
    let dels: Vec<IpAddr> = steps
        .iter()
        .filter_map(|s| match s {
            Step::DelAddr { addr, .. } if addr.addr.is_ipv4() => Some(addr.addr),
            _ => None,
        })
        .collect();
    assert_eq!(
        dels,
        vec![ip("198.18.7.2"), ip("198.18.0.3"), ip("198.18.0.2")]
    );
}

#[test]
fn moved_addresses_lose_label_and_ipv6_skips_dad() {
    let (_, steps) = plan_up(&opts(), &pi(), None).unwrap();
    for s in &steps {
        if let Step::AddAddr { addr, .. } = s {
            assert_eq!(addr.label, None);
            assert_eq!(addr.addr.is_ipv6(), addr.flags & 0x02 != 0, "{s}");
            if addr.addr == ip("198.18.0.2") {
                assert_eq!(addr.broadcast, Some(Ipv4Addr::new(198, 18, 0, 255)));
            }
            if addr.addr == ip("198.18.7.2") {
                assert_eq!(addr.lifetimes, Some((3600, 3000)));
            }
        }
    }
}

#[test]
fn full_up_then_up_again_is_a_no_op_and_status_matches() {
    let mut s = pi();
    let (rec, steps) = plan_up(&opts(), &s, None).unwrap();
    sim_all(&mut s, &steps);
    let br = s.link("br-tunbox").unwrap().clone();
    assert_eq!(br.mac, Some(ETH_MAC));
    assert!(br.up);
    assert_eq!(s.link("eth0").unwrap().master, Some(br.index));
    assert_eq!(s.link("tap0").unwrap().master, Some(br.index));
    assert!(s.sysctls.iter().all(|(_, v)| v == "0"));
    assert_eq!(v4_order(&s, br.index), v4_order(&pi(), 2));
    let (rec2, steps2) = plan_up(&opts(), &s, Some(&rec)).unwrap();
    assert_eq!(steps2, vec![], "second up must change nothing");
    assert_eq!(rec2, rec, "second up must keep the original record");
    assert_eq!(moved_to(&s, &rec), (4, 4));
}

#[test]
fn down_after_up_restores_everything() {
    let orig = pi();
    let mut s = orig.clone();
    let (rec, steps) = plan_up(&opts(), &s, None).unwrap();
    sim_all(&mut s, &steps);
    let down = plan_down(&rec, &s).unwrap();
    sim_all(&mut s, &down);
    assert_eq!(norm(&s), norm(&orig));
    assert_eq!(v4_order(&s, 2), v4_order(&orig, 2));
    assert_eq!(
        plan_down(&rec, &s).unwrap(),
        vec![],
        "down twice is a no-op"
    );
}

#[test]
fn down_after_a_crash_at_any_step_of_up_restores_everything() {
    let orig = pi();
    let (rec, steps) = plan_up(&opts(), &orig, None).unwrap();
    for k in 0..=steps.len() {
        let mut s = orig.clone();
        sim_all(&mut s, &steps[..k]);
        let down = plan_down(&rec, &s).unwrap();
        for st in &down {
            sim(&mut s, st).unwrap_or_else(|e| panic!("crash after {k}: {st}: {e}"));
        }
        assert_eq!(norm(&s), norm(&orig), "crash after step {k}");
    }
}

#[test]
fn up_after_a_crash_finishes_the_job_with_the_original_record() {
    let orig = pi();
    let (rec, steps) = plan_up(&opts(), &orig, None).unwrap();
    let mut done = orig.clone();
    sim_all(&mut done, &steps);
    for k in 0..=steps.len() {
        let mut s = orig.clone();
        sim_all(&mut s, &steps[..k]);
        let (rec2, rest) = plan_up(&opts(), &s, Some(&rec)).unwrap();
        assert_eq!(rec2, rec, "crash after {k}");
        sim_all(&mut s, &rest);
        assert_eq!(norm(&s).addrs, norm(&done).addrs, "crash after {k}");
        assert_eq!(norm(&s).routes.len(), norm(&done).routes.len());
        let down = plan_down(&rec, &s).unwrap();
        sim_all(&mut s, &down);
        assert_eq!(norm(&s), norm(&orig), "crash after {k}, then up, then down");
    }
}

#[test]
fn rollback_at_any_step_restores_everything() {
    let orig = pi();
    let (_, steps) = plan_up(&opts(), &orig, None).unwrap();
    for k in 0..steps.len() {
        let mut s = orig.clone();
        sim_all(&mut s, &steps[..k]);
        // As apply::run does: undo what can be undone, in reverse order. Only a new
        // bridge's MAC has no undo, and that bridge goes anyway.
        for st in steps[..k].iter().rev() {
            match inverse(st) {
                Some(undo) => {
                    sim(&mut s, &undo).unwrap_or_else(|e| panic!("undo {undo} after {k}: {e}"))
                }
                None => assert!(matches!(st, Step::SetMac { old: None, .. }), "{st}"),
            }
        }
        assert_eq!(norm(&s), norm(&orig), "failure at step {}", k + 1);
    }
}

#[test]
fn rollback_of_down_brings_the_bridge_back() {
    let orig = pi();
    let mut up = orig.clone();
    let (rec, steps) = plan_up(&opts(), &up, None).unwrap();
    sim_all(&mut up, &steps);
    let down = plan_down(&rec, &up).unwrap();
    // The deletions at the end cannot be undone; everything before them can.
    let undoable = down.iter().take_while(|s| inverse(s).is_some()).count();
    assert!(undoable >= down.len() - 2);
    for k in 0..undoable {
        let mut s = up.clone();
        sim_all(&mut s, &down[..k]);
        for st in down[..k].iter().rev() {
            sim(&mut s, &inverse(st).unwrap()).unwrap();
        }
        assert_eq!(norm(&s), norm(&up), "down failing at step {}", k + 1);
    }
}

#[test]
fn inverse_of_inverse_is_the_step() {
    let (_, up) = plan_up(&opts(), &pi(), None).unwrap();
    for s in up.iter() {
        if let Step::SetMac { old: None, .. } = s {
            assert_eq!(inverse(s), None);
            continue;
        }
        let i = inverse(s).unwrap();
        match s {
            // A created device is removed by a delete, which has no inverse.
            Step::CreateBridge { .. } | Step::CreateTap { .. } => assert_eq!(inverse(&i), None),
            _ => assert_eq!(inverse(&i).as_ref(), Some(s)),
        }
    }
}

#[test]
fn existing_bridge_and_tap_are_kept_and_restored_by_down() {
    let mut orig = pi();
    let mut br = link(7, "br-tunbox", Some("bridge"));
    br.up = false;
    let mut tap = link(8, "tap0", Some("tun"));
    tap.mtu = 1400;
    tap.up = false;
    orig.links.push(br);
    orig.links.push(tap);
    let mut s = orig.clone();
    let (rec, steps) = plan_up(&opts(), &s, None).unwrap();
    assert!(!rec.created_bridge && !rec.created_tap);
    assert!(!steps
        .iter()
        .any(|s| matches!(s, Step::CreateBridge { .. } | Step::CreateTap { .. })));
    assert!(steps.contains(&Step::SetMtu {
        dev: "tap0".into(),
        mtu: 1500,
        old: 1400
    }));
    sim_all(&mut s, &steps);
    let down = plan_down(&rec, &s).unwrap();
    assert!(!down
        .iter()
        .any(|s| matches!(s, Step::DeleteLink { .. } | Step::DeleteTap { .. })));
    sim_all(&mut s, &down);
    assert_eq!(norm(&s), norm(&orig));
}

#[test]
fn a_port_that_was_down_is_brought_up_and_back_down() {
    let mut orig = pi();
    orig.links[1].up = false;
    let mut s = orig.clone();
    let (rec, steps) = plan_up(&opts(), &s, None).unwrap();
    assert!(!rec.port.up);
    assert!(steps.contains(&Step::SetUp {
        dev: "eth0".into(),
        up: true
    }));
    sim_all(&mut s, &steps);
    let down = plan_down(&rec, &s).unwrap();
    assert_eq!(
        down.iter()
            .rev()
            .find(|s| matches!(s, Step::SetUp { dev, .. } if dev == "eth0")),
        Some(&Step::SetUp {
            dev: "eth0".into(),
            up: false
        })
    );
    sim_all(&mut s, &down);
    assert_eq!(norm(&s), norm(&orig));
}

#[test]
fn jumbo_port_mtu_is_given_to_the_tap() {
    let mut s = pi();
    s.links[1].mtu = 9000;
    let (_, steps) = plan_up(&opts(), &s, None).unwrap();
    assert!(steps.contains(&Step::SetMtu {
        dev: "tap0".into(),
        mtu: 9000,
        old: 1500
    }));
}

#[test]
fn without_bridge_netfilter_no_sysctl_is_touched() {
    let mut s = pi();
    s.sysctls.clear();
    let (rec, steps) = plan_up(&opts(), &s, None).unwrap();
    assert!(rec.sysctls.is_empty());
    assert!(!steps.iter().any(|s| matches!(s, Step::SetSysctl { .. })));
    sim_all(&mut s, &steps);
    let orig_rec = plan_up(&opts(), &pi(), None).unwrap().0;
    // A record with values for switches this box lacks restores nothing there.
    assert!(!plan_down(&orig_rec, &s)
        .unwrap()
        .iter()
        .any(|s| matches!(s, Step::SetSysctl { .. })));
}

#[test]
fn switches_already_off_stay_untouched() {
    let mut s = pi();
    s.sysctls[0].1 = "0".into();
    let (rec, steps) = plan_up(&opts(), &s, None).unwrap();
    let n = steps
        .iter()
        .filter(|s| matches!(s, Step::SetSysctl { .. }))
        .count();
    assert_eq!(n, 2);
    assert_eq!(rec.sysctls[0].1, "0");
}

#[test]
fn an_address_gained_after_up_is_recorded_and_moved_by_the_next_up() {
    let orig = pi();
    let mut s = orig.clone();
    let (rec, steps) = plan_up(&opts(), &s, None).unwrap();
    sim_all(&mut s, &steps);
    s.addrs.push(addr(2, "198.18.9.9", 24));
    let (rec2, steps2) = plan_up(&opts(), &s, Some(&rec)).unwrap();
    assert_eq!(rec2.addrs.len(), rec.addrs.len() + 1);
    assert_eq!(steps2.len(), 2, "{steps2:?}");
    sim_all(&mut s, &steps2);
    let down = plan_down(&rec2, &s).unwrap();
    sim_all(&mut s, &down);
    let mut expect = orig.clone();
    expect.addrs.push(addr(2, "198.18.9.9", 24));
    assert_eq!(norm(&s), norm(&expect));
}

#[test]
fn up_refuses_what_it_must_not_touch() {
    let e = |s: &Snapshot, o: &Options| plan_up(o, s, None).unwrap_err().0;
    let mut o = opts();
    o.ifname = "eth9".into();
    assert!(e(&pi(), &o).contains("no network device called 'eth9'"));

    let mut o = opts();
    o.ifname = "lo".into();
    assert!(e(&pi(), &o).contains("not an Ethernet device"));

    let mut s = pi();
    s.links[1].kind = Some("bridge".into());
    assert!(e(&s, &opts()).contains("is itself a bridge"));

    let mut s = pi();
    s.links.push(link(5, "br-lan", Some("bridge")));
    s.links[1].master = Some(5);
    assert!(e(&s, &opts()).contains("already a port of 'br-lan'"));

    let mut s = pi();
    s.links.push(link(5, "br-tunbox", Some("veth")));
    assert!(e(&s, &opts()).contains("not a bridge"));

    let mut s = pi();
    let mut tun = link(5, "tap0", Some("tun"));
    tun.ether = false;
    s.links.push(tun);
    assert!(e(&s, &opts()).contains("not a tap device"));

    let mut o = opts();
    o.tap = "eth0".into();
    assert!(e(&pi(), &o).contains("named twice"));

    let mut o = opts();
    o.bridge = String::new();
    assert!(e(&pi(), &o).contains("empty"));

    let rec = plan_up(&opts(), &pi(), None).unwrap().0;
    let mut o = opts();
    o.bridge = "br-other".into();
    let err = plan_up(&o, &pi(), Some(&rec)).unwrap_err().0;
    assert!(err.contains("run `tunbox bridge down` first"), "{err}");
}

#[test]
fn down_without_the_port_says_so() {
    let rec = plan_up(&opts(), &pi(), None).unwrap().0;
    let mut s = pi();
    s.links.retain(|l| l.name != "eth0");
    assert!(plan_down(&rec, &s).unwrap_err().0.contains("'eth0'"));
}

#[test]
fn steps_read_like_ip_commands() {
    let (_, steps) = plan_up(&opts(), &pi(), None).unwrap();
    let text: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
    for want in [
        "ip link add br-tunbox type bridge",
        "ip link set br-tunbox address 02:aa:bb:cc:dd:01",
        "ip tuntap add tap0 mode tap user 1000",
        "ip link set eth0 master br-tunbox",
        "ip addr add 198.18.0.2/24 brd 198.18.0.255 dev br-tunbox",
        "ip addr add 2001:2::2/64 nodad dev br-tunbox",
        "ip route add default via 198.18.0.1 metric 0 proto boot dev br-tunbox",
        "ip route del 198.19.0.0/24 via 198.18.0.1 metric 50 proto static dev eth0",
        "ip addr del 198.18.0.3/24 dev eth0",
        "echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables",
    ] {
        assert!(
            text.iter().any(|t| t == want),
            "missing '{want}' in {text:#?}"
        );
    }
}

#[test]
fn state_file_round_trips() {
    let mut rec = plan_up(&opts(), &pi(), None).unwrap().0;
    rec.tap_orig = Some(LinkRecord {
        mtu: 1400,
        up: false,
        mac: None,
        master: Some("br-x".into()),
    });
    rec.routes[0].onlink = true;
    rec.addrs[0].peer = Some(ip("198.18.0.9"));
    let text = state::to_text(&rec, None);
    assert_eq!(state::from_text(&text).unwrap(), (rec.clone(), None));
    let v6 = rec
        .routes
        .iter()
        .find(|r| r.dst == IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert!(v6.is_some());
}

#[test]
fn state_file_errors_name_the_line() {
    let rec = plan_up(&opts(), &pi(), None).unwrap().0;
    let good = state::to_text(&rec, None);
    assert!(state::from_text("hello\n").unwrap_err().contains("line 1"));
    let cut = good.replace("end\n", "");
    assert!(state::from_text(&cut).unwrap_err().contains("cut short"));
    let bad_mac = good.replace("mac=02:aa:bb:cc:dd:01", "mac=02:aa:bb");
    assert!(state::from_text(&bad_mac).unwrap_err().contains("line 8"));
    let unknown = good.replacen("tap tap0", "tapp tap0", 1);
    assert!(state::from_text(&unknown)
        .unwrap_err()
        .contains("unknown key 'tapp'"));
    let bad_prefix = good.replace("198.18.0.2/24", "198.18.0.2/33");
    assert!(state::from_text(&bad_prefix).is_err());
    let mixed = good.replace("gw=198.18.0.1 ", "gw=2001:2::1 ");
    assert!(state::from_text(&mixed).unwrap_err().contains("family"));
    let evil = good.replace(
        "/proc/sys/net/bridge/bridge-nf-call-iptables",
        "/etc/passwd",
    );
    assert!(state::from_text(&evil).is_err());
    let missing = good.replace("created_tap yes\n", "");
    assert!(state::from_text(&missing)
        .unwrap_err()
        .contains("created_tap"));
}

#[test]
fn state_parser_survives_garbage() {
    let rec = plan_up(&opts(), &pi(), None).unwrap().0;
    let good = state::to_text(&rec, None).into_bytes();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut rejected = 0;
    for _ in 0..3000 {
        let mut t = good.clone();
        for _ in 0..(rnd() % 4 + 1) {
            if t.is_empty() {
                break;
            }
            let i = (rnd() as usize) % t.len();
            match rnd() % 3 {
                0 => t[i] = (rnd() % 128) as u8,
                1 => {
                    t.remove(i);
                }
                _ => t.truncate(i),
            }
        }
        if let Ok(s) = std::str::from_utf8(&t) {
            if state::from_text(s).is_err() {
                rejected += 1;
            }
        }
    }
    assert!(
        rejected > 1000,
        "only {rejected} of 3000 mutations rejected"
    );
}

/// A scratch directory of this test process, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("tbx-brunit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn restore_record_puts_the_old_file_back_or_removes_it() {
    let dir = Scratch::new("restore");
    let path = dir.path("bridge.state");
    let (old, steps) = plan_up(&opts(), &pi(), None).unwrap();
    let mut s = pi();
    sim_all(&mut s, &steps[..3]);
    let (newer, _) = plan_up(&opts(), &s, None).unwrap();
    assert_ne!(newer, old);

    super::write_record(&path, &newer, None).unwrap();
    super::restore_record(&path, Some(&(old.clone(), None))).unwrap();
    assert_eq!(super::read_record(&path).unwrap(), Some((old, None)));

    super::restore_record(&path, None).unwrap();
    assert_eq!(super::read_record(&path).unwrap(), None);
    // Nothing to remove is no failure either.
    super::restore_record(&path, None).unwrap();
}

#[test]
fn restore_record_failure_names_the_path_and_the_cause() {
    let dir = Scratch::new("restorefail");
    let (rec, _) = plan_up(&opts(), &pi(), None).unwrap();
    // A path under a regular file: cannot be removed (ENOTDIR) nor written.
    let file = dir.path("plain");
    std::fs::write(&file, "x").unwrap();
    let path = format!("{file}/bridge.state");
    let stored = (rec, None);
    for old in [None, Some(&stored)] {
        let w = super::restore_record(&path, old).unwrap_err();
        assert!(w.contains(&path), "{w}");
        assert!(
            w.contains("Not a directory") || w.contains("File exists"),
            "{w}"
        );
        assert!(w.contains("tunbox bridge down"), "{w}");
    }
}

#[test]
fn down_checks_given_names_against_the_record() {
    let (rec, _) = plan_up(&opts(), &pi(), None).unwrap();
    let ok = super::Expect {
        ifname: Some(rec.ifname.clone()),
        tap: Some(rec.tap.clone()),
        bridge: None,
    };
    assert!(ok.check(&rec, "/s").is_ok());
    assert!(super::Expect::default().check(&rec, "/s").is_ok());
    let wrong = super::Expect {
        tap: Some("tap9".into()),
        ..Default::default()
    };
    let e = wrong.check(&rec, "/s").unwrap_err().0;
    assert!(
        e.starts_with(&format!("/s records tap '{}', not 'tap9'", rec.tap))
            && e.contains("nothing was changed"),
        "{e}"
    );
    let wrong = super::Expect {
        ifname: Some("eth9".into()),
        ..Default::default()
    };
    assert!(wrong.check(&rec, "/s").unwrap_err().0.contains("--ifname"));
}

/// A small deterministic generator (xorshift) for the round-trip property test.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bit(&mut self) -> bool {
        self.next() & 1 == 1
    }
    /// A string biased towards what broke version 1: spaces, `=`, `-`, `%`, `#`,
    /// control characters, non-ASCII, empty.
    fn string(&mut self) -> String {
        const SPECIAL: [&str; 12] = [
            "-", "", " ", "=", "%", "#", "\t", "\n", "é", "%2D", "- -", "a=b c",
        ];
        if self.below(4) == 0 {
            return SPECIAL[self.below(SPECIAL.len() as u64) as usize].to_string();
        }
        let len = self.below(12);
        (0..len)
            .map(|_| match self.below(6) {
                0 => char::from_u32(self.below(0x20) as u32).unwrap(),
                1 => [' ', '=', '-', '%', '#', ':'][self.below(6) as usize],
                2 => char::from_u32(0xa0 + self.below(0x300) as u32).unwrap_or('x'),
                _ => (b'a' + self.below(26) as u8) as char,
            })
            .collect()
    }
    fn opt_string(&mut self) -> Option<String> {
        self.bit().then(|| self.string())
    }
    fn ip(&mut self, v4: bool) -> IpAddr {
        if v4 {
            IpAddr::V4(Ipv4Addr::from(self.next() as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(
                (u128::from(self.next()) << 64) | u128::from(self.next()),
            ))
        }
    }
    fn mac(&mut self) -> Option<[u8; 6]> {
        self.bit().then(|| {
            let b = self.next().to_le_bytes();
            [b[0], b[1], b[2], b[3], b[4], b[5]]
        })
    }
    fn link(&mut self) -> LinkRecord {
        LinkRecord {
            mtu: self.next() as u32,
            up: self.bit(),
            mac: self.mac(),
            master: self.opt_string(),
        }
    }
    fn record(&mut self) -> Record {
        let addrs = (0..self.below(4))
            .map(|_| {
                let v4 = self.bit();
                AddrEntry {
                    index: 0,
                    addr: self.ip(v4),
                    prefix_len: self.below(if v4 { 33 } else { 129 }) as u8,
                    peer: self.bit().then(|| self.ip(self.0 & 2 == 0)),
                    broadcast: self.bit().then(|| Ipv4Addr::from(self.next() as u32)),
                    scope: self.next() as u8,
                    flags: self.next() as u32,
                    label: self.opt_string(),
                    lifetimes: self.bit().then(|| (self.next() as u32, self.next() as u32)),
                    proto: self.bit().then(|| self.next() as u8),
                    metric: self.bit().then(|| self.next() as u32),
                }
            })
            .collect();
        let routes = (0..self.below(4))
            .map(|_| {
                let v4 = self.bit();
                RouteEntry {
                    oif: None,
                    table: self.next() as u32,
                    dst: self.ip(v4),
                    dst_len: self.below(if v4 { 33 } else { 129 }) as u8,
                    gateway: self.bit().then(|| self.ip(v4)),
                    prefsrc: self.bit().then(|| self.ip(v4)),
                    metric: self.next() as u32,
                    protocol: self.next() as u8,
                    scope: self.next() as u8,
                    kind: self.next() as u8,
                    tos: self.next() as u8,
                    onlink: self.bit(),
                    pref: self.bit().then(|| self.next() as u8),
                    multipath: false,
                }
            })
            .collect();
        let sysctls = (0..self.below(3))
            .map(|_| {
                let name = self.string().replace("..", "").replace('/', "");
                (format!("/proc/sys/net/bridge/{name}"), self.string())
            })
            .collect();
        Record {
            ifname: self.string(),
            bridge: self.string(),
            tap: self.string(),
            created_bridge: self.bit(),
            created_tap: self.bit(),
            port: self.link(),
            tap_orig: self.bit().then(|| self.link()),
            bridge_orig: self.bit().then(|| self.link()),
            addrs,
            routes,
            sysctls,
        }
    }
}

/// Property: any record (with or without a binding) survives write-then-read exactly,
/// whatever its names and labels hold.
#[test]
fn any_state_record_round_trips_exactly() {
    let mut g = Gen(0x2545_f491_4f6c_dd1d);
    for i in 0..5000 {
        let rec = g.record();
        let binding = g.bit().then(|| state::Binding {
            netns: (g.next(), g.next()),
            ifindex: g.next() as u32,
            mac: g.mac(),
        });
        let text = state::to_text(&rec, binding.as_ref());
        match state::from_text(&text) {
            Ok(back) => assert_eq!(back, (rec, binding), "case {i}:\n{text}"),
            Err(e) => panic!("case {i}: {e}\n{text}"),
        }
    }
}

#[test]
fn escapes_of_the_state_file() {
    for (v, want) in [
        ("-", "%2D"),
        ("", "%"),
        ("eth0:my label", "eth0:my%20label"),
        ("a=b", "a%3Db"),
        ("50%", "50%25"),
        ("é", "%C3%A9"),
        ("br-lan", "br-lan"),
    ] {
        assert_eq!(state::escape(v), want);
        assert_eq!(state::unescape(want).as_deref(), Some(v));
    }
    for bad in ["%", "%2", "%zz", "%FF"] {
        if bad != "%" {
            assert_eq!(state::unescape(bad), None, "{bad}");
        }
    }
}

/// Version 1 files (unescaped, unbound) written by an older tunbox are still read.
#[test]
fn version_1_state_file_is_still_read() {
    let rec = plan_up(&opts(), &pi(), None).unwrap().0;
    let v1 =
        state::to_text(&rec, None).replacen("tunbox-bridge-state 2", "tunbox-bridge-state 1", 1);
    assert_eq!(state::from_text(&v1).unwrap(), (rec, None));
}

#[test]
fn state_temp_and_lock_files_never_follow_symlinks() {
    let dir = Scratch::new("symlink");
    let path = dir.path("bridge.state");
    let target = dir.path("target");
    std::fs::write(&target, "precious").unwrap();
    let rec = plan_up(&opts(), &pi(), None).unwrap().0;
    // A link planted where the temporary file goes is replaced, not written through.
    let tmp = format!("{path}.tmp.{}", std::process::id());
    std::os::unix::fs::symlink(&target, &tmp).unwrap();
    super::write_record(&path, &rec, None).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    assert_eq!(super::read_record(&path).unwrap(), Some((rec, None)));
    // A state file or lock that is a symlink is refused.
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert!(super::read_record(&path).is_err());
    std::os::unix::fs::symlink(&target, format!("{path}.lock")).unwrap();
    assert!(super::lock(&path).is_err());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
}
