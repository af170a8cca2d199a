//! `tunbox tunnel` and `tunbox genkey`: options, commands, exit status (0, or 1 / 2
//! through `AppError`).
use super::{options, AppError, ToolOptions};
use crate::cli;
use crate::config::schema::{self, SectionSpec};
use crate::config::{self, ConfigError, Resolved};
use crate::sys::tun::Mode;
use crate::sys::SysError;
use crate::tunnel::key::Key;
use crate::tunnel::{Role, Transport};
use crate::tunnel_run::{self, keyfile, PeerOptions, TunnelOptions, MAX_MTU};
use std::path::PathBuf;
use std::time::Duration;

const NO_KEY: &str =
    "no 'key_file': make one with `tunbox genkey /etc/tunbox/key`, copy it to both \
    ends and give --key-file (or option key_file); --plaintext is for lab use only";

const NO_ROLE: &str = "give 'listen [ADDR:]PORT' (server) or 'remote HOST:PORT' (client)";

impl ToolOptions for TunnelOptions {
    const SPEC: &'static SectionSpec = &schema::TUNNEL;

    /// The tunnel's settings; defaults come from the schema.
    fn from_resolved(r: &Resolved) -> Result<TunnelOptions, ConfigError> {
        // every error is collected (`config check` lists them all); a rule about an
        // option whose value is bad is skipped (that value's error is in the list)
        let mut errors = Vec::new();
        let listen = r.one("listen");
        let remote = r.one("remote");
        let role = match (&listen, &remote) {
            (Some(_), None) => Role::Server,
            (None, Some(_)) => Role::Client,
            (Some(_), Some(_)) => {
                errors.extend(r.rule_error(
                    &["remote", "listen"],
                    format_args!("give either 'listen' (server) or 'remote' (client), not both"),
                ));
                Role::Client
            }
            // A client's server may be a `config peer` section with an endpoint
            // (checked once the peers are read, in `add_peers`).
            (None, None) if r.section.is_some() => Role::Client,
            (None, None) => {
                errors.extend(r.rule_error(&["listen", "remote"], format_args!("{NO_ROLE}")));
                Role::Client
            }
        };
        let plaintext = r.flag("plaintext");
        let key_file = r.one::<String>("key_file").map(PathBuf::from);
        // With a section, `config peer` sections may give the keys instead (checked
        // once they are read, in `add_peers`).
        if !plaintext && key_file.is_none() && r.section.is_none() {
            errors.extend(r.rule_error(&["key_file", "plaintext"], format_args!("{NO_KEY}")));
        }
        let mode: Mode = r.one("mode").unwrap_or_default();
        let mac = r.one("mac");
        if mac.is_some() && mode != Mode::Tap {
            errors.push(r.option_error("mac", "a MAC is for --mode tap (a tun device has none)"));
        }
        let routes: Vec<(std::net::IpAddr, u8)> = r.all("route");
        if plaintext && !routes.is_empty() {
            errors.push(r.option_error("route", "routes need keys: not with --plaintext"));
        }
        let mtu: Option<u32> = r.one("mtu");
        if let Some(m) = mtu.filter(|m| *m > MAX_MTU) {
            errors.push(r.option_error(
                "mtu",
                format_args!("{m} is larger than the tunnel's maximum MTU {MAX_MTU}"),
            ));
        }
        let secs = |name| Duration::from_secs(r.one::<u32>(name).unwrap_or_default().into());
        let (keepalive, timeout) = (secs("keepalive"), secs("timeout"));
        if timeout <= keepalive {
            errors.extend(r.rule_error(
                &["timeout", "keepalive"],
                format_args!(
                    "timeout ({} s) must be longer than keepalive ({} s), or a quiet but live peer counts as dead",
                    timeout.as_secs(),
                    keepalive.as_secs()
                ),
            ));
        }
        ConfigError::join(errors)?;
        Ok(TunnelOptions {
            mode,
            dev: r.one("dev").unwrap_or_default(),
            role,
            listen,
            remote,
            transport: r.one("transport").unwrap_or(Transport::Udp),
            key_file,
            plaintext,
            addresses: r.all("address"),
            mtu,
            keepalive,
            timeout,
            threads: r.one::<u32>("threads").unwrap_or_default() as usize,
            user: r.one("user"),
            verbose: r.flag("verbose"),
            syslog: r.flag("syslog"),
            routes,
            mac,
            peers: Vec::new(),
        })
    }
}

/// `tunbox tunnel ...`
pub fn cmd_tunnel(a: &cli::Tunnel) -> Result<(), AppError> {
    let mut o: TunnelOptions = options(a.section.as_deref(), &a.layered())?;
    if let Some(name) = a.section.as_deref() {
        let path = config::config_path(&super::tunbox_env());
        add_peers(&mut o, &path, name)?;
    }
    Ok(tunnel_run::run(&o)?)
}

/// `tunbox run SECTION` of a tunnel section.
pub fn run_resolved(r: &Resolved) -> Result<(), AppError> {
    let mut o = TunnelOptions::from_resolved(r)?;
    if let (Some((path, _)), Some(name)) = (&r.origin, &r.section) {
        add_peers(&mut o, path, name)?;
    }
    Ok(tunnel_run::run(&o)?)
}

/// `config check` of a tunnel section: its options and its peer sections.
pub fn check_resolved(r: &Resolved) -> Result<(), ConfigError> {
    let mut o = TunnelOptions::from_resolved(r)?;
    if let (Some((path, _)), Some(name)) = (&r.origin, &r.section) {
        add_peers(&mut o, path, name)?;
    }
    Ok(())
}

/// Reads the `config peer` sections of tunnel section `name` in `path` into `o`.
fn add_peers(o: &mut TunnelOptions, path: &str, name: &str) -> Result<(), ConfigError> {
    let file = config::load(path)?;
    let tunnel = file.section(name).map_or(name, |s| s.name.as_str());
    o.peers = peers_of(&file, tunnel)?;
    let err = |m: &str| ConfigError::plain(format!("{path}: tunnel '{name}': {m}"));
    if o.listen.is_none() && o.remote.is_none() {
        // A client whose server is its one peer section.
        match &o.peers[..] {
            [p] if p.endpoint.is_some() => {
                if o.key_file.is_some() || !o.routes.is_empty() {
                    return Err(err("the key_file and routes are the peer section's: remove them from the tunnel section"));
                }
                let p = o.peers.remove(0);
                o.remote = p.endpoint;
                o.key_file = Some(p.key_file);
                o.routes = p.routes;
            }
            [] => return Err(err(NO_ROLE)),
            _ => {
                return Err(err(
                    "a client has one peer section, with 'option endpoint HOST:PORT' (its server); a server needs 'listen'",
                ))
            }
        }
    }
    check_peers(o).map_err(|m| err(&m))?;
    if o.peers.is_empty() && !o.plaintext && o.key_file.is_none() {
        return Err(err(NO_KEY));
    }
    Ok(())
}

/// What a `config peer` section needs (for `config check`).
pub fn check_peer(r: &Resolved) -> Result<(), ConfigError> {
    if r.one::<String>("tunnel").is_none() {
        return Err(r.error("a peer needs 'option tunnel' (the name of its tunnel section)"));
    }
    peer_options(r, "").map(drop)
}

/// The options of one resolved `config peer` section named `name`.
fn peer_options(r: &Resolved, name: &str) -> Result<PeerOptions, ConfigError> {
    let key_file = r
        .one::<String>("key_file")
        .map(PathBuf::from)
        .ok_or_else(|| {
            r.error("a peer needs 'option key_file' (its own key, made with `tunbox genkey`)")
        })?;
    let routes: Vec<(std::net::IpAddr, u8)> = r.all("route");
    if routes.is_empty() {
        return Err(r.error(
            "a peer needs at least one 'list route' (the inner addresses behind it, e.g. its tunnel address/32 and its LAN)",
        ));
    }
    Ok(PeerOptions {
        name: name.to_string(),
        key_file,
        routes,
        endpoint: r.one("endpoint"),
    })
}

/// The enabled `config peer` sections of `file` whose `option tunnel` is `tunnel`.
pub fn peers_of(
    file: &config::uci::UciFile,
    tunnel: &str,
) -> Result<Vec<PeerOptions>, ConfigError> {
    let mut peers = Vec::new();
    for s in file.sections.iter().filter(|s| s.kind == "peer") {
        let r = config::resolve(&schema::PEER, Some((&file.path, s)), &[], &[])?;
        if r.one::<String>("tunnel").as_deref() != Some(tunnel) || !r.flag("enabled") {
            continue;
        }
        peers.push(peer_options(&r, &s.name)?);
    }
    Ok(peers)
}

/// What a tunnel with `config peer` sections must be.
pub fn check_peers(o: &TunnelOptions) -> Result<(), String> {
    if o.peers.is_empty() {
        return Ok(());
    }
    if o.role != Role::Server {
        return Err("peer sections are for the server ('listen'); a client has one 'remote' and one 'key_file'".into());
    }
    if o.transport != Transport::Udp {
        return Err("several peers need transport udp".into());
    }
    if o.mode == Mode::Tap {
        return Err(
            "several peers work in mode tun only (a tap tunnel has one peer; see README)".into(),
        );
    }
    if o.plaintext {
        return Err("several peers need keys: plaintext is one peer only".into());
    }
    // The same prefix at two peers: which one gets its packets would be an accident.
    let mut seen: Vec<(crate::tunnel::hub::Prefix, &str)> = Vec::new();
    for p in &o.peers {
        for &(a, l) in &p.routes {
            let Some(x) = crate::tunnel::hub::Prefix::new(a, l) else {
                continue;
            };
            if let Some((_, other)) = seen.iter().find(|(y, n)| *y == x && *n != p.name) {
                return Err(format!(
                    "route {}/{} is given to peers {other} and {}: each network is behind one peer",
                    x.addr(),
                    x.len(),
                    p.name
                ));
            }
            seen.push((x, &p.name));
        }
    }
    if let Some(p) = o.peers.iter().find(|p| p.endpoint.is_some()) {
        return Err(format!(
            "peer {}: 'endpoint' is for a client's one peer (its server); a server's peers find it",
            p.name
        ));
    }
    if o.key_file.is_some() || !o.routes.is_empty() {
        return Err(
            "with peer sections, each peer has its own key_file and routes: remove key_file and route from the tunnel section".into(),
        );
    }
    Ok(())
}

/// `tunbox genkey PATH`; `-` writes the key to stdout (as `wg genkey`), in the same
/// form as the file, so `tunbox genkey - > key` makes a valid key file.
pub fn cmd_genkey(a: &cli::Genkey) -> Result<(), AppError> {
    if a.path == "-" {
        use std::io::Write as _;
        let key = Key::generate().map_err(|e| AppError::Failed(format!("genkey: {e}")))?;
        let text = key.file_text(); // wiped on drop
        let mut out = std::io::stdout().lock();
        return out
            .write_all(&text[..])
            .and_then(|()| out.flush())
            .map_err(|e| SysError::os("genkey: cannot write the key to stdout", e).into());
    }
    let path = PathBuf::from(&a.path);
    keyfile::genkey(&path).map_err(|e| AppError::Failed(e.to_string()))?;
    log::info!(
        "wrote a new key to {} (mode 0600); copy it to the other end, e.g. with scp",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::from_cli;
    use super::*;

    use crate::sys::tun::Mode;

    #[test]
    fn client_and_server_options() {
        let o = from_cli::<TunnelOptions>(&[("remote", "198.18.0.1:5555"), ("key_file", "/k")])
            .unwrap();
        assert_eq!(o.role, Role::Client);
        assert_eq!(o.remote, Some(("198.18.0.1".into(), 5555)));
        assert_eq!(o.transport, Transport::Udp);
        assert_eq!(o.dev, "tbx%d");
        assert_eq!(o.mode, Mode::Tun);
        assert_eq!(o.keepalive, Duration::from_secs(10));
        assert_eq!(o.timeout, Duration::from_secs(30));
        let o = from_cli::<TunnelOptions>(&[
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
        let o =
            from_cli::<TunnelOptions>(&[("listen", "198.18.0.1:7"), ("plaintext", "1")]).unwrap();
        assert_eq!(o.listen, Some("198.18.0.1:7".parse().unwrap()));
        assert!(o.plaintext);
    }

    #[test]
    fn bad_combinations_are_rejected_with_a_reason() {
        let e =
            from_cli::<TunnelOptions>(&[("remote", "h:1"), ("listen", "1"), ("key_file", "/k")])
                .unwrap_err();
        assert!(e.msg.contains("not both"), "{e}");
        let e = from_cli::<TunnelOptions>(&[("key_file", "/k")]).unwrap_err();
        assert!(e.msg.contains("listen"), "{e}");
        let e = from_cli::<TunnelOptions>(&[("remote", "h:1")]).unwrap_err();
        assert!(e.msg.contains("tunbox genkey"), "{e}");
        let e = from_cli::<TunnelOptions>(&[
            ("remote", "h:1"),
            ("key_file", "/k"),
            ("keepalive", "30"),
            ("timeout", "30"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("longer than keepalive"), "{e}");
        let e =
            from_cli::<TunnelOptions>(&[("remote", "h:1"), ("key_file", "/k"), ("mtu", "60000")])
                .unwrap_err();
        assert!(
            e.to_string().contains("--mtu") && e.msg.contains("maximum MTU"),
            "{e}"
        );
        let e =
            from_cli::<TunnelOptions>(&[("listen", "myhost:1"), ("key_file", "/k")]).unwrap_err();
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
        // the rule between keepalive and timeout points at keepalive, the one set
        assert_eq!(e.line, Some(4));
        assert!(e.to_string().starts_with("/etc/config/tunbox:4:"), "{e}");
    }
}

#[cfg(test)]
mod peer_tests {
    use super::*;

    const FILE: &str = "config tunnel 'hub'\n\toption listen '5555'\n\
        config peer 'a'\n\toption tunnel 'hub'\n\toption key_file '/ka'\n\tlist route '198.18.10.0/24'\n\tlist route '198.18.0.10/32'\n\
        config peer 'b'\n\toption tunnel 'hub'\n\toption key_file '/kb'\n\tlist route '198.18.11.0/24'\n\
        config peer 'off'\n\toption tunnel 'hub'\n\toption enabled '0'\n\toption key_file '/kc'\n\tlist route '198.18.12.0/24'\n\
        config peer 'other'\n\toption tunnel 'elsewhere'\n\toption key_file '/kd'\n\tlist route '198.18.13.0/24'\n";

    #[test]
    fn peer_sections_of_a_tunnel() {
        let f = config::uci::parse("/etc/config/tunbox", FILE).unwrap();
        let p = peers_of(&f, "hub").unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(p[0].key_file, PathBuf::from("/ka"));
        assert_eq!(p[0].routes.len(), 2);
        let s = f.section("hub").unwrap();
        let r =
            config::resolve(&schema::TUNNEL, Some(("/etc/config/tunbox", s)), &[], &[]).unwrap();
        let mut o = TunnelOptions::from_resolved(&r).unwrap();
        o.peers = p;
        assert_eq!(check_peers(&o), Ok(()));
        let mut dup = o.clone();
        dup.peers[1]
            .routes
            .push("198.18.10.7".parse().map(|a| (a, 24)).unwrap());
        assert!(check_peers(&dup).unwrap_err().contains("peers a and b"));
        o.transport = Transport::Tcp;
        assert!(check_peers(&o).unwrap_err().contains("udp"));
        o.transport = Transport::Udp;
        o.mode = Mode::Tap;
        assert!(check_peers(&o).unwrap_err().contains("tun only"));
    }

    #[test]
    fn a_client_whose_server_is_its_peer_section() {
        let dir = std::env::temp_dir().join(format!("tbx-peer-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tunbox");
        let path = path.to_str().unwrap();
        let text = "config tunnel 'site'\n\tlist address '198.18.0.10/32'\n\
            config peer 'hub'\n\toption tunnel 'site'\n\toption endpoint 'hub.example:5555'\n\
            \toption key_file '/k'\n\tlist route '198.18.0.0/24'\n";
        std::fs::write(path, text).unwrap();
        let f = config::load(path).unwrap();
        let r = config::resolve(
            &schema::TUNNEL,
            Some((path, f.section("site").unwrap())),
            &[],
            &[],
        )
        .unwrap();
        let mut o = TunnelOptions::from_resolved(&r).unwrap();
        add_peers(&mut o, path, "site").unwrap();
        assert_eq!(o.role, Role::Client);
        assert_eq!(o.remote, Some(("hub.example".into(), 5555)));
        assert_eq!(o.key_file, Some(PathBuf::from("/k")));
        assert_eq!(o.routes.len(), 1);
        assert!(o.peers.is_empty());
        assert!(check_resolved(&r).is_ok());
        // Without the peer: neither listen nor remote.
        std::fs::write(path, "config tunnel 'site'\n\toption key_file '/k'\n").unwrap();
        let f = config::load(path).unwrap();
        let r = config::resolve(
            &schema::TUNNEL,
            Some((path, f.section("site").unwrap())),
            &[],
            &[],
        )
        .unwrap();
        let e = check_resolved(&r).unwrap_err();
        assert!(e.to_string().contains("give 'listen"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_peer_without_routes_or_key_is_an_error_with_its_line() {
        let text = "config peer 'a'\n\toption tunnel 'hub'\n\toption key_file '/ka'\n";
        let f = config::uci::parse("/etc/config/tunbox", text).unwrap();
        let e = peers_of(&f, "hub").unwrap_err();
        assert!(e.to_string().contains("list route"), "{e}");
        assert!(e.to_string().starts_with("/etc/config/tunbox:1:"), "{e}");
        let text = "config peer 'a'\n\toption tunnel 'hub'\n\tlist route '198.18.0.0/24'\n";
        let f = config::uci::parse("/etc/config/tunbox", text).unwrap();
        assert!(peers_of(&f, "hub")
            .unwrap_err()
            .to_string()
            .contains("key_file"));
    }
}
