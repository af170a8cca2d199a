//! What each section type accepts: option names, list or single, value kind, default,
//! help. One table serves the UCI file, the environment, `config show` and the checks.
use std::net::IpAddr;

/// The kind of value an option takes; `check` says what is wrong with a bad one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Uint {
        min: u32,
        max: u32,
    },
    /// A network interface name (IFNAMSIZ); `%d` allowed for a kernel-chosen number.
    IfName,
    /// ADDRESS/PREFIX, IPv4 or IPv6.
    Cidr,
    /// tun or tap
    Mode,
    /// udp or tcp
    Transport,
    /// aa:bb:cc:dd:ee:ff, unicast
    Mac,
    /// A range of addresses: NETWORK/PREFIX (no host bits) or a single address.
    Range,
    /// [ADDR:]PORT to listen on
    Listen,
    /// HOST:PORT (host may be a name; IPv6 in brackets)
    HostPort,
    /// An absolute path.
    Path,
    /// A user or group name, or a number.
    Account,
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "yes" | "on" | "true" | "enabled" => Some(true),
        "0" | "no" | "off" | "false" | "disabled" => Some(false),
        _ => None,
    }
}

/// Parses `ADDRESS/PREFIX`.
pub fn parse_cidr(v: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = v
        .split_once('/')
        .ok_or_else(|| format!("'{v}' is not ADDRESS/PREFIX (e.g. 198.18.0.1/15)"))?;
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("'{a}' is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = p
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("'{p}' is not a prefix length from 0 to {max}"))?;
    Ok((addr, len))
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{p}' is not a port number from 1 to 65535"))
}

/// Splits `HOST:PORT` / `[V6]:PORT`.
pub fn split_host_port(v: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("'{v}' is not [IPV6]:PORT"))?;
        (h, p)
    } else {
        v.rsplit_once(':')
            .ok_or_else(|| format!("'{v}' is not HOST:PORT"))?
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("'{v}' has no host before the port"));
    }
    Ok((host, parse_port(port)?))
}

impl Kind {
    pub fn check(self, v: &str) -> Result<(), String> {
        match self {
            Kind::Bool => parse_bool(v).map(drop).ok_or_else(|| {
                format!("'{v}' is not a boolean (use 1/0, yes/no, on/off, true/false)")
            }),
            Kind::Uint { min, max } => v
                .parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .map(drop)
                .ok_or_else(|| format!("'{v}' is not a whole number from {min} to {max}")),
            Kind::IfName => {
                if v.is_empty()
                    || v.len() > 15
                    || v.contains(['/', ':'])
                    || v.contains(char::is_whitespace)
                {
                    Err(format!("'{v}' is not an interface name (1 to 15 characters, no '/', ':' or spaces)"))
                } else {
                    Ok(())
                }
            }
            Kind::Cidr => parse_cidr(v).map(drop),
            Kind::Mode => crate::sys::tun::Mode::parse(v).map(drop),
            Kind::Transport => match v {
                "udp" | "tcp" => Ok(()),
                _ => Err(format!("'{v}' is not a transport: use udp or tcp")),
            },
            Kind::Mac => v
                .parse::<crate::wire::ethernet::MacAddr>()
                .map(drop)
                .map_err(|e| format!("'{v}': {e}")),
            Kind::Range => v
                .parse::<crate::wire::cidr::Cidr>()
                .map(drop)
                .map_err(|e| format!("'{v}': {e}")),
            Kind::Listen => {
                if v.contains(':') {
                    split_host_port(v).map(drop)
                } else {
                    parse_port(v).map(drop)
                }
            }
            Kind::HostPort => split_host_port(v).map(drop),
            Kind::Path => {
                if v.starts_with('/') {
                    Ok(())
                } else {
                    Err(format!("'{v}' is not an absolute path"))
                }
            }
            Kind::Account => {
                if !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                {
                    Ok(())
                } else {
                    Err(format!("'{v}' is not a user or group name"))
                }
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct OptSpec {
    pub name: &'static str,
    pub list: bool,
    pub kind: Kind,
    pub default: Option<&'static str>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct SectionSpec {
    /// The UCI section type, which is also the subcommand: `config reflect 'lab'`.
    pub kind: &'static str,
    pub options: &'static [OptSpec],
}

impl SectionSpec {
    pub fn option(&self, name: &str) -> Option<&'static OptSpec> {
        self.options.iter().find(|o| o.name == name)
    }
    pub fn option_names(&self) -> String {
        self.options
            .iter()
            .map(|o| o.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const fn opt(name: &'static str, kind: Kind, default: Option<&'static str>) -> OptSpec {
    OptSpec {
        name,
        list: false,
        kind,
        default,
    }
}

const fn list(name: &'static str, kind: Kind) -> OptSpec {
    OptSpec {
        name,
        list: true,
        kind,
        default: None,
    }
}

const MTU: Kind = Kind::Uint {
    min: 68,
    max: 65535,
};

pub static REFLECT: SectionSpec = SectionSpec {
    kind: "reflect",
    options: &[
        opt("enabled", Kind::Bool, Some("1")),
        opt("mode", Kind::Mode, Some("tun")),
        opt("dev", Kind::IfName, None),
        list("address", Kind::Cidr),
        opt("mtu", MTU, None),
        list("range", Kind::Range),
        opt("mac", Kind::Mac, None),
        opt("icmp_echo", Kind::Bool, Some("0")),
        opt("user", Kind::Account, None),
        opt("verbose", Kind::Bool, Some("0")),
        opt("syslog", Kind::Bool, Some("0")),
    ],
};

pub static TUNNEL: SectionSpec = SectionSpec {
    kind: "tunnel",
    options: &[
        opt("enabled", Kind::Bool, Some("1")),
        opt("mode", Kind::Mode, Some("tun")),
        opt("dev", Kind::IfName, Some("tbx%d")),
        opt("listen", Kind::Listen, None),
        opt("remote", Kind::HostPort, None),
        opt("transport", Kind::Transport, Some("udp")),
        opt("key_file", Kind::Path, None),
        opt("plaintext", Kind::Bool, Some("0")),
        list("address", Kind::Cidr),
        opt("mtu", MTU, None),
        opt("keepalive", Kind::Uint { min: 1, max: 3600 }, Some("10")),
        opt("timeout", Kind::Uint { min: 2, max: 86400 }, Some("30")),
        opt("user", Kind::Account, None),
        opt("verbose", Kind::Bool, Some("0")),
        opt("syslog", Kind::Bool, Some("0")),
    ],
};

pub static BRIDGE: SectionSpec = SectionSpec {
    kind: "bridge",
    options: &[
        opt("enabled", Kind::Bool, Some("1")),
        opt("ifname", Kind::IfName, Some("eth0")),
        opt("tap", Kind::IfName, Some("tap0")),
        opt("bridge", Kind::IfName, Some("br-tunbox")),
        opt("user", Kind::Account, None),
        opt("state_file", Kind::Path, None),
    ],
};

/// Every section type the file may contain.
pub static SECTION_TYPES: &[&SectionSpec] = &[&REFLECT, &TUNNEL, &BRIDGE];

pub fn section_type(kind: &str) -> Option<&'static SectionSpec> {
    SECTION_TYPES.iter().copied().find(|s| s.kind == kind)
}
