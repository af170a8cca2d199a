//! The pure part of `tunbox bridge`: from a snapshot of links, addresses, routes and
//! bridge-netfilter switches (plus what `up` recorded), compute the list of steps that
//! brings the box to the wanted state. No I/O here; `apply` carries the steps out.
use crate::sys::netlink::{
    AddrEntry, LinkState, RouteEntry, IFA_F_NODAD, RTN_UNICAST, RTPROT_KERNEL, RTPROT_RA,
    RT_TABLE_LOCAL,
};
use std::fmt;

/// The names `up` works with (resolved from CLI, environment and UCI by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The physical port, e.g. eth0.
    pub ifname: String,
    /// The tap device to add (created persistent when missing).
    pub tap: String,
    /// The bridge.
    pub bridge: String,
    /// Owner uid of a tap that has to be created.
    pub owner: Option<u32>,
}

/// What the kernel has right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<LinkState>,
    pub addrs: Vec<AddrEntry>,
    pub routes: Vec<RouteEntry>,
    /// The bridge-nf-call-* switches that exist here (path, value); none in a network
    /// namespace or on a box without br_netfilter.
    pub sysctls: Vec<(String, String)>,
}

impl Snapshot {
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }
    pub fn link_by_index(&self, index: u32) -> Option<&LinkState> {
        self.links.iter().find(|l| l.index == index)
    }
    fn master_name(&self, l: &LinkState) -> Option<String> {
        l.master.map(|m| {
            self.link_by_index(m)
                .map_or_else(|| format!("#{m}"), |b| b.name.clone())
        })
    }
    fn addrs_of(&self, index: u32) -> impl Iterator<Item = &AddrEntry> {
        self.addrs.iter().filter(move |a| a.index == index)
    }
    fn has_addr(&self, index: Option<u32>, a: &AddrEntry) -> Option<&AddrEntry> {
        let index = index?;
        self.addrs_of(index)
            .find(|b| b.addr == a.addr && b.prefix_len == a.prefix_len)
    }
    fn has_route(&self, index: Option<u32>, r: &RouteEntry) -> bool {
        index.is_some_and(|i| {
            self.routes
                .iter()
                .any(|x| x.oif == Some(i) && same_route(x, r))
        })
    }
    fn sysctl(&self, path: &str) -> Option<&str> {
        self.sysctls
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }
}

/// Link properties `down` puts back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkRecord {
    pub mtu: u32,
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    /// Name of the bridge it was a port of.
    pub master: Option<String>,
}

impl LinkRecord {
    fn of(snap: &Snapshot, l: &LinkState) -> LinkRecord {
        LinkRecord {
            mtu: l.mtu,
            up: l.up,
            mac: l.mac,
            master: snap.master_name(l),
        }
    }
}

/// What `up` writes to the state file before changing anything: the original state of
/// the port, and which devices it created (only those are removed by `down`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub ifname: String,
    pub bridge: String,
    pub tap: String,
    pub created_bridge: bool,
    pub created_tap: bool,
    pub port: LinkRecord,
    /// The tap / bridge as they were, when they existed before `up`.
    pub tap_orig: Option<LinkRecord>,
    pub bridge_orig: Option<LinkRecord>,
    /// The port's addresses and routes that move to the bridge (index / oif unset).
    pub addrs: Vec<AddrEntry>,
    pub routes: Vec<RouteEntry>,
    /// Original bridge-nf-call-* values.
    pub sysctls: Vec<(String, String)>,
}

/// One change. Each carries what is needed to undo it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    CreateBridge {
        name: String,
    },
    DeleteLink {
        name: String,
    },
    CreateTap {
        name: String,
        owner: Option<u32>,
    },
    DeleteTap {
        name: String,
    },
    SetMaster {
        dev: String,
        master: Option<String>,
        old: Option<String>,
    },
    SetMac {
        dev: String,
        mac: [u8; 6],
        old: Option<[u8; 6]>,
    },
    SetMtu {
        dev: String,
        mtu: u32,
        old: u32,
    },
    SetUp {
        dev: String,
        up: bool,
    },
    AddAddr {
        dev: String,
        addr: AddrEntry,
    },
    DelAddr {
        dev: String,
        addr: AddrEntry,
    },
    AddRoute {
        dev: String,
        route: RouteEntry,
    },
    DelRoute {
        dev: String,
        route: RouteEntry,
    },
    SetSysctl {
        path: String,
        value: String,
        old: String,
    },
}

/// The step that undoes `step`, if there is one (deleting a device cannot be undone;
/// plans put deletions last).
pub fn inverse(step: &Step) -> Option<Step> {
    Some(match step.clone() {
        Step::CreateBridge { name } => Step::DeleteLink { name },
        Step::CreateTap { name, .. } => Step::DeleteTap { name },
        Step::DeleteLink { .. } | Step::DeleteTap { .. } => return None,
        Step::SetMaster { dev, master, old } => Step::SetMaster {
            dev,
            master: old,
            old: master,
        },
        Step::SetMac { dev, mac, old } => Step::SetMac {
            dev,
            mac: old?,
            old: Some(mac),
        },
        Step::SetMtu { dev, mtu, old } => Step::SetMtu {
            dev,
            mtu: old,
            old: mtu,
        },
        Step::SetUp { dev, up } => Step::SetUp { dev, up: !up },
        Step::AddAddr { dev, addr } => Step::DelAddr { dev, addr },
        Step::DelAddr { dev, addr } => Step::AddAddr { dev, addr },
        Step::AddRoute { dev, route } => Step::DelRoute { dev, route },
        Step::DelRoute { dev, route } => Step::AddRoute { dev, route },
        Step::SetSysctl { path, value, old } => Step::SetSysctl {
            path,
            value: old,
            old: value,
        },
    })
}

/// A MAC address as `ip link` prints it (`aa:bb:cc:dd:ee:ff`), or `-` for none (the
/// state file's word for it).
pub struct MacText<'a>(pub &'a Option<[u8; 6]>);

impl fmt::Display for MacText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            None => f.write_str("-"),
        }
    }
}

/// An address as `ip addr add` takes it (`198.18.0.1/15 brd ... nodad`). Written
/// straight into the output: no string per part (size).
pub struct AddrText<'a>(pub &'a AddrEntry);

impl fmt::Display for AddrText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        match a.peer {
            Some(p) => write!(f, "{} peer {}/{}", a.addr, p, a.prefix_len)?,
            None => write!(f, "{}/{}", a.addr, a.prefix_len)?,
        }
        if let Some(b) = a.broadcast {
            write!(f, " brd {b}")?;
        }
        if let Some((valid, preferred)) = a.lifetimes {
            write!(f, " valid_lft {valid} preferred_lft {preferred}")?;
        }
        if a.flags & IFA_F_NODAD != 0 {
            f.write_str(" nodad")?;
        }
        if a.flags & 0x200 != 0 {
            f.write_str(" noprefixroute")?;
        }
        Ok(())
    }
}

/// A route as `ip route add` takes it (`default via ... metric 100 proto dhcp`).
pub struct RouteText<'a>(pub &'a RouteEntry);

impl fmt::Display for RouteText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        if r.dst_len == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}/{}", r.dst, r.dst_len)?;
        }
        if let Some(g) = r.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(p) = r.prefsrc {
            write!(f, " src {p}")?;
        }
        if r.table != 254 {
            write!(f, " table {}", r.table)?;
        }
        write!(f, " metric {} proto ", r.metric)?;
        match proto_name(r.protocol) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "{}", r.protocol)?,
        }
        if r.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

/// `ip route`'s names for the common route protocols (others print as numbers).
pub fn proto_name(p: u8) -> Option<&'static str> {
    Some(match p {
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        9 => "ra",
        16 => "dhcp",
        _ => return None,
    })
}

impl fmt::Display for Step {
    /// The equivalent `ip` command, which is what a technician reads best.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateBridge { name } => write!(f, "ip link add {name} type bridge"),
            Step::DeleteLink { name } => write!(f, "ip link delete {name}"),
            Step::CreateTap { name, owner } => {
                write!(f, "ip tuntap add {name} mode tap")?;
                match owner {
                    Some(u) => write!(f, " user {u}"),
                    None => Ok(()),
                }
            }
            Step::DeleteTap { name } => write!(f, "ip tuntap del {name} mode tap"),
            Step::SetMaster { dev, master, .. } => match master {
                Some(m) => write!(f, "ip link set {dev} master {m}"),
                None => write!(f, "ip link set {dev} nomaster"),
            },
            Step::SetMac { dev, mac, .. } => {
                write!(f, "ip link set {dev} address {}", MacText(&Some(*mac)))
            }
            Step::SetMtu { dev, mtu, .. } => write!(f, "ip link set {dev} mtu {mtu}"),
            Step::SetUp { dev, up } => {
                write!(f, "ip link set {dev} {}", if *up { "up" } else { "down" })
            }
            Step::AddAddr { dev, addr } => write!(f, "ip addr add {} dev {dev}", AddrText(addr)),
            Step::DelAddr { dev, addr } => {
                write!(f, "ip addr del {}/{} dev {dev}", addr.addr, addr.prefix_len)
            }
            Step::AddRoute { dev, route } => {
                write!(f, "ip route add {} dev {dev}", RouteText(route))
            }
            Step::DelRoute { dev, route } => {
                write!(f, "ip route del {} dev {dev}", RouteText(route))
            }
            Step::SetSysctl { path, value, .. } => write!(f, "echo {value} > {path}"),
        }
    }
}

/// Why a plan cannot be made; the message says what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(msg.into()))
}

/// An address that belongs to the port's network and moves to the bridge: not
/// link-local or host scope, not made by the kernel (IPv6 link-local or SLAAC).
pub fn movable_addr(a: &AddrEntry) -> bool {
    const SCOPE_LINK: u8 = 253;
    const SCOPE_HOST: u8 = 254;
    a.scope != SCOPE_LINK && a.scope != SCOPE_HOST && !matches!(a.proto, Some(1..=3))
}

/// A route through the port that moves to the bridge: unicast, one next hop, not in
/// the local table, not made by the kernel (prefix routes come back with the
/// addresses) or by router advertisements (the kernel redoes those on the bridge).
pub fn movable_route(r: &RouteEntry, port: u32) -> bool {
    r.oif == Some(port)
        && !r.multipath
        && r.table != RT_TABLE_LOCAL
        && r.kind == RTN_UNICAST
        && r.protocol != RTPROT_KERNEL
        && r.protocol != RTPROT_RA
        && r.protocol != 1 // ICMP redirect
}

/// The identity of a route, apart from the device it goes through.
pub fn same_route(a: &RouteEntry, b: &RouteEntry) -> bool {
    a.dst == b.dst
        && a.dst_len == b.dst_len
        && a.table == b.table
        && a.gateway == b.gateway
        && a.metric == b.metric
        && a.tos == b.tos
        && a.kind == b.kind
}

fn same_addr(a: &AddrEntry, b: &AddrEntry) -> bool {
    a.addr == b.addr && a.prefix_len == b.prefix_len
}

/// Routes without a gateway first: a gateway must be reachable when its route is added.
/// In the given order otherwise, as a stable sort would (two passes: no sort code).
fn add_order(routes: &[RouteEntry]) -> Vec<RouteEntry> {
    let mut v = Vec::with_capacity(routes.len());
    for via_gateway in [false, true] {
        for r in routes.iter().filter(|r| r.gateway.is_some() == via_gateway) {
            v.push(r.clone());
        }
    }
    v
}

fn on(index: u32, a: &AddrEntry) -> AddrEntry {
    AddrEntry { index, ..a.clone() }
}

fn via(index: u32, r: &RouteEntry) -> RouteEntry {
    RouteEntry {
        oif: Some(index),
        ..r.clone()
    }
}

/// How an address of the port looks on the bridge: no label (a label must start with
/// the device name), and for IPv6 no duplicate address detection: the address already
/// passed it on this very segment, and DAD would make it unusable for a second.
fn moved(a: &AddrEntry) -> AddrEntry {
    let mut m = a.clone();
    m.label = None;
    if a.addr.is_ipv6() {
        m.flags |= IFA_F_NODAD;
    }
    m
}

fn stored_addr(a: &AddrEntry) -> AddrEntry {
    AddrEntry {
        index: 0,
        ..a.clone()
    }
}

fn stored_route(r: &RouteEntry) -> RouteEntry {
    RouteEntry {
        oif: None,
        ..r.clone()
    }
}

/// Index placeholder for a link that does not exist yet; `apply` resolves names.
const NEW: u32 = 0;

/// Plans `bridge up`. `recorded` is the state file's content when one exists (a
/// second `up`, or one after a crash): it stays the original, extended by whatever
/// the port has gained since. Returns the record to write before applying, and the
/// steps; no steps means everything is already in place.
pub fn plan_up(
    opts: &Options,
    snap: &Snapshot,
    recorded: Option<&Record>,
) -> Result<(Record, Vec<Step>), PlanError> {
    let names = [&opts.ifname, &opts.tap, &opts.bridge];
    for (i, a) in names.iter().enumerate() {
        if a.is_empty() {
            return err("device names must not be empty");
        }
        if names[i + 1..].contains(a) {
            return err(format!(
                "'{a}' is named twice: the port, the tap and the bridge must be three devices"
            ));
        }
    }
    let Some(port) = snap.link(&opts.ifname) else {
        return err(format!("no network device called '{}'", opts.ifname));
    };
    let bridge = snap.link(&opts.bridge);
    let tap = snap.link(&opts.tap);
    if !port.ether {
        return err(format!(
            "'{}' is not an Ethernet device: only Ethernet ports can join a bridge",
            port.name
        ));
    }
    if port.kind.as_deref() == Some("bridge") {
        return err(format!("'{}' is itself a bridge, not a port", port.name));
    }
    if let Some(b) = bridge {
        if b.kind.as_deref() != Some("bridge") {
            return err(format!("'{}' exists and is not a bridge", b.name));
        }
    }
    if let Some(t) = tap {
        if t.kind.as_deref() != Some("tun") || !t.ether {
            return err(format!("'{}' exists and is not a tap device", t.name));
        }
    }
    let br_index = bridge.map(|b| b.index);
    for l in [Some(port), tap].into_iter().flatten() {
        if l.master.is_some() && l.master != br_index {
            return err(format!(
                "'{}' is already a port of '{}': take it out first (ip link set {} nomaster)",
                l.name,
                snap.master_name(l).unwrap_or_default(),
                l.name
            ));
        }
    }
    if let Some(r) = recorded {
        if r.ifname != opts.ifname || r.tap != opts.tap || r.bridge != opts.bridge {
            return err(format!(
                "the state file records port '{}', tap '{}', bridge '{}': run `tunbox bridge down` first",
                r.ifname, r.tap, r.bridge
            ));
        }
    }

    // plain loops: smaller than filter/cloned/collect chains
    let mut addrs: Vec<&AddrEntry> = Vec::new();
    for a in snap.addrs_of(port.index) {
        if movable_addr(a) {
            addrs.push(a);
        }
    }
    let mut routes: Vec<RouteEntry> = Vec::new();
    for r in &snap.routes {
        if movable_route(r, port.index) {
            routes.push(r.clone());
        }
    }

    let mut rec = match recorded {
        Some(r) => r.clone(),
        None => Record {
            ifname: opts.ifname.clone(),
            bridge: opts.bridge.clone(),
            tap: opts.tap.clone(),
            created_bridge: false,
            created_tap: false,
            port: LinkRecord::of(snap, port),
            tap_orig: tap.map(|t| LinkRecord::of(snap, t)),
            bridge_orig: bridge.map(|b| LinkRecord::of(snap, b)),
            addrs: Vec::new(),
            routes: Vec::new(),
            sysctls: Vec::new(),
        },
    };
    rec.created_bridge |= bridge.is_none();
    rec.created_tap |= tap.is_none();
    for a in &addrs {
        if !rec.addrs.iter().any(|b| same_addr(a, b)) {
            rec.addrs.push(stored_addr(a));
        }
    }
    for r in &routes {
        if !rec.routes.iter().any(|b| same_route(r, b)) {
            rec.routes.push(stored_route(r));
        }
    }
    for (p, v) in &snap.sysctls {
        if !rec.sysctls.iter().any(|(q, _)| q == p) {
            rec.sysctls.push((p.clone(), v.clone()));
        }
    }

    let mut steps = Vec::new();
    let br = opts.bridge.clone();
    if bridge.is_none() {
        steps.push(Step::CreateBridge { name: br.clone() });
    }
    let br_mac = bridge.and_then(|b| b.mac);
    if let Some(mac) = port.mac {
        if br_mac != Some(mac) {
            steps.push(Step::SetMac {
                dev: br.clone(),
                mac,
                old: br_mac,
            });
        }
    }
    if tap.is_none() {
        steps.push(Step::CreateTap {
            name: opts.tap.clone(),
            owner: opts.owner,
        });
    }
    const KERNEL_DEFAULT_MTU: u32 = 1500;
    let tap_mtu = tap.map_or(KERNEL_DEFAULT_MTU, |t| t.mtu);
    if tap_mtu != port.mtu {
        steps.push(Step::SetMtu {
            dev: opts.tap.clone(),
            mtu: port.mtu,
            old: tap_mtu,
        });
    }
    let in_bridge =
        |l: Option<&LinkState>| l.is_some_and(|l| l.master.is_some() && l.master == br_index);
    if !in_bridge(tap) {
        steps.push(Step::SetMaster {
            dev: opts.tap.clone(),
            master: Some(br.clone()),
            old: None,
        });
    }
    if !tap.is_some_and(|t| t.up) {
        steps.push(Step::SetUp {
            dev: opts.tap.clone(),
            up: true,
        });
    }
    if !port.up {
        steps.push(Step::SetUp {
            dev: port.name.clone(),
            up: true,
        });
    }
    if !in_bridge(Some(port)) {
        steps.push(Step::SetMaster {
            dev: port.name.clone(),
            master: Some(br.clone()),
            old: None,
        });
    }
    if !bridge.is_some_and(|b| b.up) {
        steps.push(Step::SetUp {
            dev: br.clone(),
            up: true,
        });
    }
    for a in &addrs {
        if snap.has_addr(br_index, a).is_none() {
            steps.push(Step::AddAddr {
                dev: br.clone(),
                addr: on(NEW, &moved(a)),
            });
        }
    }
    for r in add_order(&routes) {
        if !snap.has_route(br_index, &r) {
            steps.push(Step::AddRoute {
                dev: br.clone(),
                route: via(NEW, &r),
            });
        }
    }
    for r in add_order(&routes).iter().rev() {
        steps.push(Step::DelRoute {
            dev: port.name.clone(),
            route: r.clone(),
        });
    }
    for a in addrs.iter().rev() {
        steps.push(Step::DelAddr {
            dev: port.name.clone(),
            addr: (*a).clone(),
        });
    }
    for (p, v) in &snap.sysctls {
        if v != "0" {
            steps.push(Step::SetSysctl {
                path: p.clone(),
                value: "0".into(),
                old: v.clone(),
            });
        }
    }
    Ok((rec, steps))
}

/// Plans `bridge down` from the record: the port gets back its addresses, routes, MTU,
/// MAC, up/down state and bridge membership, the bridge-nf switches their values, and
/// what `up` created is removed. Works from any point of a half-done `up`.
pub fn plan_down(rec: &Record, snap: &Snapshot) -> Result<Vec<Step>, PlanError> {
    let Some(port) = snap.link(&rec.ifname) else {
        return err(format!(
            "no network device called '{}' (the recorded port): nothing can be restored",
            rec.ifname
        ));
    };
    let bridge = snap.link(&rec.bridge);
    let tap = snap.link(&rec.tap);
    let br_index = bridge.map(|b| b.index);
    let dev = port.name.clone();
    let mut steps = Vec::new();

    if rec.port.up && !port.up {
        steps.push(Step::SetUp {
            dev: dev.clone(),
            up: true,
        });
    }
    let cur_master = snap.master_name(port);
    if cur_master != rec.port.master {
        steps.push(Step::SetMaster {
            dev: dev.clone(),
            master: rec.port.master.clone(),
            old: cur_master,
        });
    }
    for a in &rec.addrs {
        if snap.has_addr(Some(port.index), a).is_none() {
            let mut back = on(NEW, a);
            // Lifetimes run on: take the current ones from the bridge's copy.
            if let Some(cur) = snap.has_addr(br_index, a) {
                back.lifetimes = cur.lifetimes.or(a.lifetimes);
            }
            steps.push(Step::AddAddr {
                dev: dev.clone(),
                addr: back,
            });
        }
    }
    let routes = add_order(&rec.routes);
    for r in &routes {
        if !snap.has_route(Some(port.index), r) {
            steps.push(Step::AddRoute {
                dev: dev.clone(),
                route: via(NEW, r),
            });
        }
    }
    if let Some(b) = bridge {
        for r in routes.iter().rev() {
            if snap.has_route(br_index, r) {
                steps.push(Step::DelRoute {
                    dev: b.name.clone(),
                    route: via(b.index, r),
                });
            }
        }
        for a in rec.addrs.iter().rev() {
            if let Some(cur) = snap.has_addr(br_index, a) {
                steps.push(Step::DelAddr {
                    dev: b.name.clone(),
                    addr: cur.clone(),
                });
            }
        }
    }
    if port.mtu != rec.port.mtu {
        steps.push(Step::SetMtu {
            dev: dev.clone(),
            mtu: rec.port.mtu,
            old: port.mtu,
        });
    }
    if let Some(mac) = rec.port.mac {
        if port.mac != Some(mac) {
            steps.push(Step::SetMac {
                dev: dev.clone(),
                mac,
                old: port.mac,
            });
        }
    }
    if !rec.port.up && port.up {
        steps.push(Step::SetUp {
            dev: dev.clone(),
            up: false,
        });
    }
    for (p, v) in &rec.sysctls {
        if let Some(cur) = snap.sysctl(p) {
            if cur != v {
                steps.push(Step::SetSysctl {
                    path: p.clone(),
                    value: v.clone(),
                    old: cur.to_string(),
                });
            }
        }
    }
    if let Some(t) = tap {
        if rec.created_tap {
            steps.push(Step::DeleteTap {
                name: t.name.clone(),
            });
        } else if let Some(orig) = &rec.tap_orig {
            restore_link(snap, t, orig, &mut steps);
        }
    }
    if let Some(b) = bridge {
        if rec.created_bridge {
            steps.push(Step::DeleteLink {
                name: b.name.clone(),
            });
        } else if let Some(orig) = &rec.bridge_orig {
            restore_link(snap, b, orig, &mut steps);
        }
    }
    Ok(steps)
}

fn restore_link(snap: &Snapshot, l: &LinkState, orig: &LinkRecord, steps: &mut Vec<Step>) {
    let cur_master = snap.master_name(l);
    if cur_master != orig.master {
        steps.push(Step::SetMaster {
            dev: l.name.clone(),
            master: orig.master.clone(),
            old: cur_master,
        });
    }
    if l.mtu != orig.mtu {
        steps.push(Step::SetMtu {
            dev: l.name.clone(),
            mtu: orig.mtu,
            old: l.mtu,
        });
    }
    if let Some(mac) = orig.mac {
        if l.mac != Some(mac) {
            steps.push(Step::SetMac {
                dev: l.name.clone(),
                mac,
                old: l.mac,
            });
        }
    }
    if l.up != orig.up {
        steps.push(Step::SetUp {
            dev: l.name.clone(),
            up: orig.up,
        });
    }
}

/// Whether an address or route of the record still sits on the bridge (for status).
pub fn moved_to(snap: &Snapshot, rec: &Record) -> (usize, usize) {
    let Some(b) = snap.link(&rec.bridge) else {
        return (0, 0);
    };
    let a = rec
        .addrs
        .iter()
        .filter(|a| snap.has_addr(Some(b.index), a).is_some())
        .count();
    let r = rec
        .routes
        .iter()
        .filter(|r| snap.has_route(Some(b.index), r))
        .count();
    (a, r)
}
