//! `tunbox tunnel`: the I/O around the pure protocol core in [`crate::tunnel`]: device
//! and socket setup, privilege drop, and the poll loop in [`engine`]. Its options are
//! built from the configuration in `commands::tunnel`.
pub mod engine;
pub mod hwm;
pub mod keyfile;
pub mod net;

use crate::sys::netlink::Rtnl;
use crate::sys::tun::{Mode, Tun};
use crate::sys::{caps, signals, SysError};
use crate::tunnel::{self, Role, Transport, Tunnel, TunnelConfig};
use log::{info, warn};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    pub user: Option<String>,
    pub verbose: bool,
    pub syslog: bool,
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

/// Opens and configures the device: MTU, addresses, up.
fn open_device(o: &TunnelOptions, mtu: u32) -> Result<Tun, SysError> {
    caps::require_net_admin(&format!("creating {} device '{}'", o.mode.as_str(), o.dev))?;
    let tun = Tun::open(&o.dev, o.mode)?;
    let mut nl = Rtnl::new()?;
    let idx = nl.link_index(tun.name())?;
    nl.set_mtu(tun.name(), mtu)?;
    for &(addr, len) in &o.addresses {
        nl.add_address(idx, addr, len)?;
    }
    nl.set_up(tun.name(), true)?;
    tun.set_nonblocking(true)?;
    Ok(tun)
}

/// `tunbox tunnel`: key, socket, device, privilege drop, loop until SIGTERM/SIGINT.
pub fn run(o: &TunnelOptions) -> Result<(), SysError> {
    crate::sys::log::init(o.syslog);
    let now = Instant::now();
    let mut tunnel = if o.plaintext {
        warn!(
            "--plaintext: traffic is neither encrypted nor authenticated; anyone on the path can read \
             and inject packets. For lab use only."
        );
        if o.key_file.is_some() {
            warn!("--plaintext: the key file is ignored");
        }
        Tunnel::plaintext(o.tunnel_config())
    } else {
        let path = o
            .key_file
            .as_ref()
            .ok_or_else(|| SysError::new("no key file"))?;
        let loaded = keyfile::load(path).map_err(|e| SysError::new(e.to_string()))?;
        if let Some(w) = &loaded.warning {
            warn!("{w}");
        }
        Tunnel::new(o.tunnel_config(), loaded.key, now)
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
        let (underlay, v6) = net.underlay();
        tunnel::default_mtu(underlay, v6, o.transport, o.plaintext, o.mode == Mode::Tap)
            .min(MAX_MTU)
    });
    let tun = open_device(o, mtu)?;
    let mut desc = String::new();
    for (a, l) in &o.addresses {
        let _ = write!(desc, " {a}/{l}");
    }
    let transport = match o.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    let peer = match (&o.listen, &o.remote) {
        (Some(l), _) => format!("listening on {transport} {l}"),
        (_, Some((h, p))) => match remote {
            Some(r) if r.ip().to_string() != *h => {
                format!("connecting to {transport} {h}:{p} ({r})")
            }
            _ => format!("connecting to {transport} {h}:{p}"),
        },
        _ => String::new(),
    };
    info!(
        "tunnel on {} ({}, mtu {mtu}{}), {peer}{}{}",
        tun.name(),
        o.mode.as_str(),
        if o.plaintext {
            ", PLAINTEXT"
        } else {
            ", encrypted"
        },
        if desc.is_empty() { "" } else { ", addresses" },
        desc
    );
    // Server: the high-water mark of client timestamps survives a restart (hwm.rs);
    // the file is opened before privileges are dropped.
    let mut mark_file = None;
    if let (Some(_), Some(fp)) = (&o.listen, tunnel.key_fingerprint()) {
        let dir = hwm::run_dir();
        match hwm::HwmFile::open(&dir, fp) {
            Ok((f, mark)) => {
                if let Some(m) = mark {
                    tunnel.restore_init_high_water(m);
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
    caps::drop_privileges(o.user.as_deref())?;
    let name = tun.name().to_string();
    let mut eng = engine::Engine::new(tun, net, tunnel, &name, o.mode == Mode::Tap, o.verbose);
    eng.keep_high_water_in(mark_file);
    if let Some((h, p)) = &o.remote {
        eng.resolve_again(h, *p);
    }
    let res = eng.run(&signals::exit_requested);
    eng.log_counters();
    res.map_err(|e| {
        if crate::sys::tun::device_gone(&e) {
            SysError::new(format!("device {name} went away (deleted?): {e}"))
        } else {
            SysError::os(format!("{name}: tunnel loop"), e)
        }
    })
}
