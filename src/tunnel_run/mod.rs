//! `tunbox tunnel`: the I/O around the pure protocol core in [`crate::tunnel`]: device
//! and socket setup, privilege drop, and the poll loop in [`engine`]. Its options are
//! built from the configuration in `commands::tunnel`.
pub mod crypto_pool;
pub mod engine;
pub mod hwm;
pub mod keyfile;
pub mod net;

use crate::sys::netlink::Rtnl;
use crate::sys::netlink::{RouteEntry, RTN_UNICAST};
use crate::sys::tun::{
    Mode, OpenFlags, Tun, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_USO4, TUN_F_USO6,
};
use crate::sys::{caps, signals, SysError};
use crate::tunnel::hub::{Hub, Peer, Prefix};
use crate::tunnel::{self, Role, Transport, Tunnel, TunnelConfig};
use crate::wire::ethernet::MacAddr;
use crate::wire::virtio;
use log::{info, warn};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Default MTU of a TAP tunnel: the LAN's.
pub const TAP_MTU: u32 = 1500;

/// Largest tunnel MTU accepted: frames must fit the fixed TCP frame limit.
pub const MAX_MTU: u32 = (net::MAX_FRAME - tunnel::noise::DATA_OVERHEAD - 18) as u32;

/// The resolved settings of one tunnel end.
#[derive(Clone, Debug, PartialEq)]
pub struct TunnelOptions {
    pub mode: Mode,
    pub dev: String,
    pub role: Role,
    /// Server: where to listen.
    pub listen: Option<SocketAddr>,
    /// Client: the server as given (HOST, PORT); resolved at start.
    pub remote: Option<(String, u16)>,
    pub transport: Transport,
    pub key_file: Option<PathBuf>,
    pub plaintext: bool,
    pub addresses: Vec<(IpAddr, u8)>,
    pub mtu: Option<u32>,
    pub keepalive: Duration,
    pub timeout: Duration,
    /// UDP: threads for the encryption (`--threads`; 0: one per online CPU).
    pub threads: usize,
    pub user: Option<String>,
    pub verbose: bool,
    pub syslog: bool,
    /// The one peer's routes (`--route`); with `peers`, each peer has its own.
    pub routes: Vec<(IpAddr, u8)>,
    /// TAP: the device's MAC (default: [`crate::reflect::tap::default_mac`]).
    pub mac: Option<MacAddr>,
    /// Server: the peers of `config peer` sections naming this tunnel (empty: the one
    /// peer of `key_file`).
    pub peers: Vec<PeerOptions>,
}

/// One peer of a hub (a `config peer` section).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerOptions {
    pub name: String,
    pub key_file: PathBuf,
    /// Its inner addresses: packets to them go to this peer, packets from it must come
    /// from them. Installed as routes on the device.
    pub routes: Vec<(IpAddr, u8)>,
    /// A client's peer (its server): HOST, PORT.
    pub endpoint: Option<(String, u16)>,
}

impl TunnelOptions {
    pub fn tunnel_config(&self) -> TunnelConfig {
        let mut c = TunnelConfig::new(self.role, self.mode == Mode::Tap);
        c.keepalive = Some(self.keepalive);
        c.timeout = Some(self.timeout);
        c
    }
}

/// Resolves HOST:PORT (names through the system resolver); the first address wins.
pub fn resolve_remote(host: &str, port: u16) -> Result<SocketAddr, SysError> {
    net::lookup(host, port)
        .map_err(|e| SysError::new(format!("cannot resolve remote '{host}': {e}")))
}

/// TUN offload sets tried in turn (USO needs Linux 6.2, TSO and CSUM are much older).
const OFFLOAD_SETS: [u32; 3] = [
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6,
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
    TUN_F_CSUM,
];

/// Opens and configures the device: MTU, addresses, up. A TUN device is opened with a
/// virtio header and offloads where the kernel has them; returns the `TUN_F_*` bits
/// taken (None: plain packets).
fn open_device(o: &TunnelOptions, mtu: u32) -> Result<(Tun, Option<u32>), SysError> {
    caps::require_net_admin(&format!("creating {} device '{}'", o.mode.as_str(), o.dev))?;
    let (tun, offloads) = if o.mode == Mode::Tun && !crate::sys::udp::QEMU_BIG_ENDIAN {
        let fast = OpenFlags {
            vnet_hdr: true,
            ..OpenFlags::default()
        };
        match Tun::open_with(&o.dev, o.mode, fast) {
            Ok(t) => {
                t.set_vnet_hdr_len(virtio::HDR_LEN)?;
                let f = t.negotiate_offload(&OFFLOAD_SETS);
                (t, Some(f))
            }
            Err(e) => {
                info!("{}: not opened with offloads ({e}); plain packets", o.dev);
                (Tun::open(&o.dev, o.mode)?, None)
            }
        }
    } else {
        (Tun::open(&o.dev, o.mode)?, None)
    };
    // A tap's MAC is stable across restarts, so the far LAN's neighbour caches stay right.
    let mac = (o.mode == Mode::Tap).then(|| {
        o.mac
            .unwrap_or_else(|| crate::reflect::tap::default_mac(tun.name()))
    });
    crate::reflect::configure_link(tun.name(), Some(mtu), mac, &o.addresses)?;
    tun.set_nonblocking(true)?;
    Ok((tun, offloads))
}

/// "offloads: tso on, uso off, udp gso on, gro on" (what was found at start).
fn describe_offloads(dev: Option<u32>, net: &net::Net) -> String {
    let on = |b: bool| if b { "on" } else { "off" };
    let mut s = String::from("offloads: ");
    match dev {
        Some(f) => {
            let _ = write!(
                s,
                "csum {}, tso {}, uso {}",
                on(f & TUN_F_CSUM != 0),
                on(f & (TUN_F_TSO4 | TUN_F_TSO6) != 0),
                on(f & (TUN_F_USO4 | TUN_F_USO6) != 0)
            );
        }
        None => s.push_str("device none"),
    }
    if let Some((gso, gro)) = net.udp_offloads() {
        let _ = write!(s, ", udp gso {}, gro {}", on(gso), on(gro));
    }
    s
}

/// The hub of `config peer` sections: one key and its routes per peer.
fn hub_of_peers(o: &TunnelOptions, now: Instant) -> Result<Hub, SysError> {
    let mut peers = Vec::with_capacity(o.peers.len());
    for p in &o.peers {
        let loaded = keyfile::load(&p.key_file)
            .map_err(|e| SysError::new(format!("peer {}: {e}", p.name)))?;
        if let Some(w) = &loaded.warning {
            warn!("peer {}: {w}", p.name);
        }
        let t = Tunnel::new(o.tunnel_config(), loaded.key, now);
        peers.push(Peer::new(p.name.clone(), t, prefixes(&p.routes)));
    }
    for (i, a) in peers.iter().enumerate() {
        let fa = a.tunnel.key_fingerprint();
        if let Some(b) = peers[..i].iter().find(|b| b.tunnel.key_fingerprint() == fa) {
            return Err(SysError::new(format!(
                "peers {} and {} have the same key: give each peer its own (tunbox genkey)",
                b.name, a.name
            )));
        }
    }
    Ok(Hub::with_peers(peers, now))
}

/// The routes of the peers as routes through the device (main table, link scope).
fn device_routes(o: &TunnelOptions, oif: u32) -> Vec<RouteEntry> {
    let mut out = Vec::new();
    let n = o.peers.len();
    // the peers' routes, then the tunnel's own
    for i in 0..=n {
        let routes = if i < n { &o.peers[i].routes } else { &o.routes };
        for p in prefixes(routes) {
            out.push(RouteEntry {
                oif: Some(oif),
                table: 254,
                dst: p.addr(),
                dst_len: p.len(),
                gateway: None,
                prefsrc: None,
                metric: 0,
                protocol: 3, // RTPROT_BOOT, as `ip route add`
                scope: 253,  // RT_SCOPE_LINK
                kind: RTN_UNICAST,
                tos: 0,
                onlink: false,
                pref: None,
                multipath: false,
            });
        }
    }
    out
}

/// The routes given as prefixes (those that are none left out: checked before).
fn prefixes(routes: &[(IpAddr, u8)]) -> Vec<Prefix> {
    let mut v = Vec::with_capacity(routes.len());
    for &(a, l) in routes {
        v.extend(Prefix::new(a, l));
    }
    v
}

/// `tunbox tunnel`: key, socket, device, privilege drop, loop until SIGTERM/SIGINT.
pub fn run(o: &TunnelOptions) -> Result<(), SysError> {
    crate::sys::log::init(o.syslog);
    let now = Instant::now();
    let mut hub = if !o.peers.is_empty() {
        hub_of_peers(o, now)?
    } else if o.plaintext {
        warn!(
            "--plaintext: traffic is neither encrypted nor authenticated; anyone on the path can read \
             and inject packets. For lab use only."
        );
        if o.key_file.is_some() {
            warn!("--plaintext: the key file is ignored");
        }
        Hub::single(Tunnel::plaintext(o.tunnel_config()))
    } else {
        let path = o
            .key_file
            .as_ref()
            .ok_or_else(|| SysError::new("no key file"))?;
        let loaded = keyfile::load(path).map_err(|e| SysError::new(e.to_string()))?;
        if let Some(w) = &loaded.warning {
            warn!("{w}");
        }
        let t = Tunnel::new(o.tunnel_config(), loaded.key, now);
        if o.routes.is_empty() {
            Hub::single(t)
        } else {
            Hub::with_peers(vec![Peer::new(String::new(), t, prefixes(&o.routes))], now)
        }
    };
    // before the wait for the server's name, so that SIGTERM ends it
    signals::install();
    let remote = match &o.remote {
        Some((h, p)) => match net::wait_for_remote(h, *p, &signals::exit_requested) {
            Some(a) => Some(a),
            None => {
                info!("stopped while waiting for {h} to resolve");
                return Ok(());
            }
        },
        None => None,
    };
    let net = net::Net::open(o, remote)?;
    let mtu = o.mtu.unwrap_or_else(|| {
        if o.mode == Mode::Tap {
            // A tap is bridged to a LAN: anything below 1500 would pull the bridge and
            // so the whole LAN down to it. The outer packets are fragmented instead.
            return TAP_MTU.min(MAX_MTU);
        }
        let (underlay, v6) = net.underlay();
        tunnel::default_mtu(underlay, v6, o.transport, o.plaintext, false).min(MAX_MTU)
    });
    if let (Mode::Tap, net::Net::Udp { sock, .. }) = (o.mode, &net) {
        let v6 = sock.local_addr().is_ok_and(|a| a.is_ipv6());
        if let Err(e) = crate::sys::net::allow_fragmentation(sock, v6) {
            warn!("cannot let the kernel fragment tunnel packets ({e}): frames near {mtu} bytes may be lost");
        }
    }
    let (tun, offloads) = open_device(o, mtu)?;
    let mut line = describe_offloads(offloads, &net);
    let threads = crypto_pool::threads_for(o.threads);
    if o.transport == Transport::Udp && !o.plaintext {
        let _ = write!(line, ", crypto threads {threads}");
    }
    info!("{}: {line}", tun.name());
    // The peers' routes, through the device; removed at exit.
    let mut routes = Vec::new();
    if !o.peers.is_empty() || !o.routes.is_empty() {
        let mut nl = Rtnl::new()?;
        let idx = nl.link_index(tun.name())?;
        for r in device_routes(o, idx) {
            // A persistent device may still have it from a run that could not remove it.
            if nl.add_route(&r).is_err() {
                let _ = nl.del_route(&r);
                nl.add_route(&r)?;
            }
            routes.push(r);
        }
    }
    let transport = match o.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    let mut peer = String::new();
    match (&o.listen, &o.remote) {
        (Some(l), _) => {
            let _ = write!(peer, "listening on {transport} {l}");
        }
        (_, Some((h, p))) => {
            let _ = write!(peer, "connecting to {transport} {h}:{p}");
            if let Some(r) = remote {
                // the address looked up, when a name was given
                let at = peer.len();
                let _ = write!(peer, " ({})", r.ip());
                let same = peer[at + 2..peer.len() - 1] == **h;
                peer.truncate(at);
                if !same {
                    let _ = write!(peer, " ({r})");
                }
            }
        }
        _ => {}
    }
    info!(
        "tunnel on {} ({}, mtu {mtu}{}), {peer}{}",
        tun.name(),
        o.mode.as_str(),
        if o.plaintext {
            ", PLAINTEXT"
        } else {
            ", encrypted"
        },
        crate::reflect::AddressList(&o.addresses)
    );
    // Server: the high-water mark of client timestamps survives a restart (hwm.rs);
    // the file is opened before privileges are dropped.
    let mut mark_files = Vec::new();
    for i in 0..hub.len() {
        let mut mark_file = None;
        if let (Some(_), Some(fp)) = (&o.listen, hub.peer(i).key_fingerprint()) {
            let dir = hwm::run_dir();
            match hwm::HwmFile::open(&dir, fp) {
                Ok((f, mark)) => {
                    if let Some(m) = mark {
                        hub.peer_mut(i).restore_init_high_water(m);
                    }
                    mark_file = Some(f);
                }
                Err(e) => warn!(
                    "cannot keep the handshake high-water mark in {}: {e}; initiations recorded \
                     before a restart of this server would be answered again",
                    dir.display()
                ),
            }
        }
        mark_files.push(mark_file);
    }
    // `tunbox status`: the socket, made before privileges are dropped, owned by the
    // service user. Not having one is no reason not to run the tunnel.
    let status = crate::status::StatusSocket::for_service(tun.name(), o.user.as_deref(), "tunnel")?;
    caps::drop_privileges(o.user.as_deref())?;
    let name = tun.name().to_string();
    if hub.len() > 1 {
        let mut names = String::new();
        for (i, p) in hub.peers().iter().enumerate() {
            if i > 0 {
                names.push_str(", ");
            }
            names.push_str(&p.name);
        }
        info!("{name}: {} peers: {names}", hub.len());
    }
    let mut eng = engine::Engine::with_hub(tun, net, hub, &name, o.mode == Mode::Tap, o.verbose);
    if offloads.is_some() {
        eng.with_offloads();
    }
    eng.with_crypto_threads(threads);
    eng.keep_high_water_in(mark_files);
    if let Some(s) = status {
        let info = engine::StatusInfo {
            mode: o.mode.as_str(),
            transport: match o.transport {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
            },
            listen: o.listen.map(|l| l.to_string()),
            remote: o.remote.as_ref().map(|(h, p)| format!("{h}:{p}")),
        };
        eng.serve_status(s, info);
    }
    if let Some((h, p)) = &o.remote {
        eng.resolve_again(h, *p);
    }
    let res = eng.run(&signals::exit_requested);
    eng.log_counters();
    if offloads.is_some_and(|f| f != 0) {
        info!(
            "{name}: {} segments coalesced into super-packets",
            eng.coalesced()
        );
        // A persistent device keeps them; the next plain reader would stall on them.
        let _ = eng.device().set_offload(0);
    }
    if !routes.is_empty() {
        // Without privileges now; a device that goes away takes its routes with it.
        if let Ok(mut nl) = Rtnl::new() {
            for r in &routes {
                let _ = nl.del_route(r);
            }
        }
    }
    res.map_err(|e| {
        if crate::sys::tun::device_gone(&e) {
            SysError::new(format!("device {name} went away (deleted?): {e}"))
        } else {
            SysError::os(format!("{name}: tunnel loop"), e)
        }
    })
}
