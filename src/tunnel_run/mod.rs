//! `tunbox tunnel` and `tunbox genkey`: the I/O around the pure protocol core in
//! [`crate::tunnel`]: options, device and socket setup, privilege drop, and the poll
//! loop in [`engine`].
pub mod engine;
pub mod hwm;
pub mod keyfile;
pub mod net;

use crate::app::{resolve_cmd, AppError, CliOpts};
use crate::cli;
use crate::config::{schema, ConfigError, Resolved};
use crate::sys::netlink::Rtnl;
use crate::sys::tun::{Mode, Tun};
use crate::sys::{caps, log, signals, SysError};
use crate::tunnel::{self, Role, Transport, Tunnel, TunnelConfig};
use crate::{info, warn};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
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

/// `[ADDR:]PORT` to a socket address; a bare port listens on every address (IPv6 and,
/// dual-stack, IPv4; [`net`] falls back to IPv4 when the box has no IPv6).
pub fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    if !v.contains(':') {
        let port: u16 = v
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("'{v}' is not a port number from 1 to 65535"))?;
        return Ok(SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            port,
        ));
    }
    let (host, port) = schema::split_host_port(v)?;
    let ip: IpAddr = host.parse().map_err(|_| {
        format!("'{host}' is not an IP address to listen on (names are not resolved here)")
    })?;
    Ok(SocketAddr::new(ip, port))
}

fn secs(r: &Resolved, name: &str) -> Result<Option<Duration>, ConfigError> {
    r.parse(name, |v| {
        v.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| e.to_string())
    })
}

impl TunnelOptions {
    /// Builds the tunnel's settings from merged configuration, with the checks that
    /// need more than one option.
    pub fn from_resolved(r: &Resolved) -> Result<TunnelOptions, ConfigError> {
        let mode = r.parse("mode", Mode::parse)?.unwrap_or_default();
        let dev = r.get("dev").unwrap_or("tbx%d").to_string();
        let listen = r.parse("listen", parse_listen)?;
        let remote = r.parse("remote", |v| {
            schema::split_host_port(v).map(|(h, p)| (h.to_string(), p))
        })?;
        let role = match (&listen, &remote) {
            (Some(_), None) => Role::Server,
            (None, Some(_)) => Role::Client,
            (Some(_), Some(_)) => {
                return Err(r.error("give either 'listen' (server) or 'remote' (client), not both"))
            }
            (None, None) => {
                return Err(
                    r.error("give 'listen [ADDR:]PORT' (server) or 'remote HOST:PORT' (client)")
                )
            }
        };
        let transport = match r.get("transport").unwrap_or("udp") {
            "tcp" => Transport::Tcp,
            _ => Transport::Udp,
        };
        let plaintext = r.flag("plaintext");
        let key_file = r.get("key_file").map(PathBuf::from);
        if !plaintext && key_file.is_none() {
            return Err(r.error(
                "no 'key_file': make one with `tunbox genkey /etc/tunbox/key`, copy it to both ends \
                 and give --key-file (or option key_file); --plaintext is for lab use only",
            ));
        }
        let mtu = r.parse("mtu", |v| v.parse::<u32>().map_err(|e| e.to_string()))?;
        if let Some(m) = mtu {
            if m > MAX_MTU {
                let s = r.setting("mtu").map(|s| s.source.clone());
                let msg = format!("{m} is larger than the tunnel's maximum MTU {MAX_MTU}");
                return Err(match s {
                    Some(src) => src.error("mtu", msg),
                    None => r.error(msg),
                });
            }
        }
        let keepalive = secs(r, "keepalive")?.unwrap_or(Duration::from_secs(10));
        let timeout = secs(r, "timeout")?.unwrap_or(Duration::from_secs(30));
        if timeout <= keepalive {
            return Err(r.error(format!(
                "timeout ({} s) must be longer than keepalive ({} s), or a quiet but live peer counts as dead",
                timeout.as_secs(),
                keepalive.as_secs()
            )));
        }
        Ok(TunnelOptions {
            mode,
            dev,
            role,
            listen,
            remote,
            transport,
            key_file,
            plaintext,
            addresses: r.parse_list("address", schema::parse_cidr)?,
            mtu,
            keepalive,
            timeout,
            user: r.get("user").map(str::to_string),
            verbose: r.flag("verbose"),
            syslog: r.flag("syslog"),
        })
    }

    pub fn tunnel_config(&self) -> TunnelConfig {
        let mut c = TunnelConfig::new(self.role, self.mode == Mode::Tap);
        c.keepalive = Some(self.keepalive);
        c.timeout = Some(self.timeout);
        c
    }
}

pub fn tunnel_cli(a: &cli::Tunnel) -> CliOpts {
    CliOpts::default()
        .opt("mode", &a.mode)
        .opt("dev", &a.dev)
        .opt("listen", &a.listen)
        .opt("remote", &a.remote)
        .opt("transport", &a.transport)
        .opt("key_file", &a.key_file)
        .switch("plaintext", a.plaintext)
        .list("address", &a.address)
        .opt("mtu", &a.mtu)
        .opt("keepalive", &a.keepalive)
        .opt("timeout", &a.timeout)
        .opt("user", &a.user)
        .switch("verbose", a.verbose)
        .switch("syslog", a.syslog)
}

/// `tunbox tunnel ...`
pub fn cmd_tunnel(a: &cli::Tunnel) -> Result<(), AppError> {
    let r = resolve_cmd(&schema::TUNNEL, a.section.as_deref(), &tunnel_cli(a))?;
    let o = TunnelOptions::from_resolved(&r)?;
    Ok(run(&o)?)
}

/// `tunbox genkey PATH`
pub fn cmd_genkey(a: &cli::Genkey) -> Result<(), AppError> {
    let path = PathBuf::from(&a.path);
    keyfile::genkey(&path).map_err(|e| AppError::Sys(SysError::new(e.to_string())))?;
    info!(
        "wrote a new key to {} (mode 0600); copy it to the other end, e.g. with scp",
        path.display()
    );
    Ok(())
}

/// Resolves HOST:PORT (names through the system resolver); the first address wins.
pub fn resolve_remote(host: &str, port: u16) -> Result<SocketAddr, SysError> {
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| SysError::new(format!("cannot resolve remote '{host}': {e}")))?;
    addrs
        .next()
        .ok_or_else(|| SysError::new(format!("remote '{host}' has no address")))
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
    log::init(o.syslog);
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
    let remote = match &o.remote {
        Some((h, p)) => Some(resolve_remote(h, *p)?),
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
    signals::install();
    let name = tun.name().to_string();
    let mut eng = engine::Engine::new(tun, net, tunnel, &name, o.mode == Mode::Tap, o.verbose);
    eng.keep_high_water_in(mark_file);
    if let Some((h, p)) = &o.remote {
        eng.resolve_again(h, *p);
    }
    let res = eng.run(&signals::exit_requested);
    eng.log_counters();
    res.map_err(|e| SysError::os(format!("{name}: tunnel loop"), e))
}

/// Checks a resolved `tunnel` section the way starting it would.
pub fn check_resolved(r: &Resolved) -> Result<(), ConfigError> {
    TunnelOptions::from_resolved(r).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn resolve(cli: &[(&'static str, &str)]) -> Result<TunnelOptions, ConfigError> {
        let cli: Vec<(&'static str, Vec<String>)> =
            cli.iter().map(|(k, v)| (*k, vec![v.to_string()])).collect();
        let r = config::resolve(&schema::TUNNEL, None, &[], &cli)?;
        TunnelOptions::from_resolved(&r)
    }

    #[test]
    fn client_and_server_options() {
        let o = resolve(&[("remote", "198.18.0.1:5555"), ("key_file", "/k")]).unwrap();
        assert_eq!(o.role, Role::Client);
        assert_eq!(o.remote, Some(("198.18.0.1".into(), 5555)));
        assert_eq!(o.transport, Transport::Udp);
        assert_eq!(o.dev, "tbx%d");
        assert_eq!(o.keepalive, Duration::from_secs(10));
        assert_eq!(o.timeout, Duration::from_secs(30));
        let o = resolve(&[
            ("listen", "5555"),
            ("key_file", "/k"),
            ("transport", "tcp"),
            ("mode", "tap"),
        ])
        .unwrap();
        assert_eq!(o.role, Role::Server);
        assert_eq!(o.listen, Some("[::]:5555".parse().unwrap()));
        assert_eq!(o.transport, Transport::Tcp);
        assert_eq!(o.mode, Mode::Tap);
        let o = resolve(&[("listen", "198.18.0.1:7"), ("plaintext", "1")]).unwrap();
        assert_eq!(o.listen, Some("198.18.0.1:7".parse().unwrap()));
        assert!(o.plaintext);
    }

    #[test]
    fn bad_combinations_are_rejected_with_a_reason() {
        let e = resolve(&[("remote", "h:1"), ("listen", "1"), ("key_file", "/k")]).unwrap_err();
        assert!(e.msg.contains("not both"), "{e}");
        let e = resolve(&[("key_file", "/k")]).unwrap_err();
        assert!(e.msg.contains("listen"), "{e}");
        let e = resolve(&[("remote", "h:1")]).unwrap_err();
        assert!(e.msg.contains("tunbox genkey"), "{e}");
        let e = resolve(&[
            ("remote", "h:1"),
            ("key_file", "/k"),
            ("keepalive", "30"),
            ("timeout", "30"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("longer than keepalive"), "{e}");
        let e = resolve(&[("remote", "h:1"), ("key_file", "/k"), ("mtu", "60000")]).unwrap_err();
        assert!(
            e.to_string().contains("--mtu") && e.msg.contains("maximum MTU"),
            "{e}"
        );
        let e = resolve(&[("listen", "myhost:1"), ("key_file", "/k")]).unwrap_err();
        assert!(e.msg.contains("not an IP address"), "{e}");
    }

    #[test]
    fn uci_errors_name_file_and_line() {
        let text = "config tunnel 'a'\n\toption remote 'h:1'\n\toption key_file '/k'\n\toption keepalive '40'\n";
        let f = config::uci::parse("/etc/config/tunbox", text).unwrap();
        let s = f.section("a").unwrap();
        let r =
            config::resolve(&schema::TUNNEL, Some(("/etc/config/tunbox", s)), &[], &[]).unwrap();
        let e = TunnelOptions::from_resolved(&r).unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.to_string().starts_with("/etc/config/tunbox:1:"), "{e}");
    }
}
