//! What each section type accepts: option names, list or single, value kind, default.
//! One table serves the UCI file, the environment, `config show` and the checks, and it
//! is the one place for each option's name (UCI option; TUNBOX_NAME in the
//! environment; `--name` on the command line, `_` as `-`), kind and default. What an
//! option means is in its doc comment in `cli`.
use crate::sys::tun::Mode;
use crate::tunnel::Transport;
use crate::wire::cidr::Cidr;
use crate::wire::ethernet::MacAddr;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

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

/// `'VALUE' is not WHAT`: the message of most bad values, formatted in one place (size).
#[inline(never)]
fn not_a(v: &str, what: &str) -> String {
    format!("'{v}' is not {what}")
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
        .ok_or_else(|| not_a(v, "ADDRESS/PREFIX (e.g. 198.18.0.1/15)"))?;
    let addr: IpAddr = a.parse().map_err(|_| not_a(a, "an IPv4 or IPv6 address"))?;
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
        .ok_or_else(|| not_a(p, "a port number from 1 to 65535"))
}

/// Splits `HOST:PORT` / `[V6]:PORT`.
pub fn split_host_port(v: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| not_a(v, "[IPV6]:PORT"))?;
        (h, p)
    } else {
        v.rsplit_once(':').ok_or_else(|| not_a(v, "HOST:PORT"))?
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("'{v}' has no host before the port"));
    }
    Ok((host, parse_port(port)?))
}

/// `[ADDR:]PORT` to a socket address; a bare port listens on every address (IPv6 and,
/// dual-stack, IPv4; the tunnel falls back to IPv4 when the box has no IPv6).
pub fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    if !v.contains(':') {
        return Ok(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            parse_port(v)?,
        ));
    }
    let (host, port) = split_host_port(v)?;
    let ip: IpAddr = host.parse().map_err(|_| {
        not_a(
            host,
            "an IP address to listen on (names are not resolved here)",
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// An option's value in its typed form: what [`Kind::parse`] makes of the text, once,
/// when the layers are merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Uint(u32),
    /// An interface name, a path or an account name, checked.
    Text(String),
    Cidr(IpAddr, u8),
    Mode(Mode),
    Transport(Transport),
    Mac(MacAddr),
    Range(Cidr),
    Listen(SocketAddr),
    HostPort(String, u16),
}

/// A typed value read back from a [`Value`] (see `config::Resolved::one`).
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

macro_rules! from_value {
    ($($t:ty => $p:pat => $e:expr;)*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Option<Self> {
                match v {
                    $p => Some($e),
                    _ => None,
                }
            }
        }
    )*};
}

from_value! {
    bool => Value::Bool(b) => *b;
    u32 => Value::Uint(n) => *n;
    String => Value::Text(t) => t.clone();
    (IpAddr, u8) => Value::Cidr(a, l) => (*a, *l);
    Mode => Value::Mode(m) => *m;
    Transport => Value::Transport(t) => *t;
    MacAddr => Value::Mac(m) => *m;
    Cidr => Value::Range(c) => *c;
    SocketAddr => Value::Listen(a) => *a;
    (String, u16) => Value::HostPort(h, p) => (h.clone(), *p);
}

impl Kind {
    /// Parses one value of this kind; the message says what is wrong with a bad one.
    pub fn parse(self, v: &str) -> Result<Value, String> {
        Ok(match self {
            Kind::Bool => Value::Bool(
                parse_bool(v)
                    .ok_or_else(|| not_a(v, "a boolean (use 1/0, yes/no, on/off, true/false)"))?,
            ),
            Kind::Uint { min, max } => Value::Uint(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| format!("'{v}' is not a whole number from {min} to {max}"))?,
            ),
            Kind::IfName => {
                if v.is_empty()
                    || v.len() > 15
                    || v.contains(['/', ':'])
                    || v.contains(char::is_whitespace)
                {
                    return Err(not_a(
                        v,
                        "an interface name (1 to 15 characters, no '/', ':' or spaces)",
                    ));
                }
                Value::Text(v.to_string())
            }
            Kind::Cidr => {
                let (a, l) = parse_cidr(v)?;
                Value::Cidr(a, l)
            }
            Kind::Mode => Value::Mode(Mode::parse(v)?),
            Kind::Transport => Value::Transport(match v {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                _ => return Err(not_a(v, "a transport: use udp or tcp")),
            }),
            Kind::Mac => Value::Mac(v.parse::<MacAddr>().map_err(|e| format!("'{v}': {e}"))?),
            Kind::Range => Value::Range(v.parse::<Cidr>().map_err(|e| format!("'{v}': {e}"))?),
            Kind::Listen => Value::Listen(parse_listen(v)?),
            Kind::HostPort => {
                let (h, p) = split_host_port(v)?;
                Value::HostPort(h.to_string(), p)
            }
            Kind::Path => {
                if !v.starts_with('/') {
                    return Err(not_a(v, "an absolute path"));
                }
                Value::Text(v.to_string())
            }
            Kind::Account => {
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
                {
                    return Err(not_a(v, "a user or group name"));
                }
                Value::Text(v.to_string())
            }
        })
    }

    /// Checks a value without keeping the parsed form.
    pub fn check(self, v: &str) -> Result<(), String> {
        self.parse(v).map(drop)
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
        opt("queues", Kind::Uint { min: 1, max: 64 }, None),
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
