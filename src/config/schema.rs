//! What each section type accepts: option names, list or single, value kind, default.
//! One table serves the UCI file, the environment, `config show` and the checks, and it
//! is the one place for each option's name (UCI option; TUNBOX_NAME in the
//! environment; `--name` on the command line, `_` as `-`), kind and default. What an
//! option means is in its doc comment in `cli`.
use crate::probe::units::{self, Pct, Rate};
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
    /// A UDP/TCP port, 1 to 65535.
    Port,
    /// An IP address or a host name (resolved when used, not here).
    Host,
    /// `tunbox probe --rate`: packets/s or bit/s with a unit ([`probe::units::parse_rate`]).
    Rate,
    /// A duration: `10`, `10s`, `500ms`, `2m` ([`probe::units::parse_duration`]).
    Duration,
    /// Packet sizes in bytes, comma-separated ([`probe::units::parse_sizes`]).
    Sizes,
    /// A percentage from 0 to 100 ([`probe::units::parse_pct`]).
    Pct,
}

/// `'VALUE' is not WHAT`: the message of most bad values, formatted in one place (size).
#[inline(never)]
fn not_a(v: &str, what: &str) -> String {
    format!("'{v}' is not {what}")
}

/// The words of a boolean, true and false in pairs (uci's list): a table searched by a
/// loop rather than a `match` of ten string comparisons (size).
const BOOL_WORDS: [&str; 10] = [
    "1", "0", "yes", "no", "on", "off", "true", "false", "enabled", "disabled",
];

pub fn parse_bool(v: &str) -> Option<bool> {
    BOOL_WORDS.iter().position(|w| *w == v).map(|i| i % 2 == 0)
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
    Rate(Rate),
    /// A duration in nanoseconds.
    Nanos(u64),
    Sizes(Vec<usize>),
    Pct(Pct),
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
    Rate => Value::Rate(r) => *r;
    u64 => Value::Nanos(n) => *n;
    Vec<usize> => Value::Sizes(v) => v.clone();
    Pct => Value::Pct(p) => *p;
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
            // the kinds kept as text: each its check, then one copy of the rest (size)
            Kind::IfName | Kind::Path | Kind::Account | Kind::Host => {
                let bad = match self {
                    Kind::IfName => (v.is_empty()
                        || v.len() > 15
                        || v.contains(['/', ':'])
                        || v.contains(char::is_whitespace))
                    .then_some("an interface name (1 to 15 characters, no '/', ':' or spaces)"),
                    Kind::Path => (!v.starts_with('/')).then_some("an absolute path"),
                    Kind::Account => (v.is_empty()
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)))
                    .then_some("a user or group name"),
                    _ => {
                        (v.is_empty() || v.contains(['/', ',']) || v.contains(char::is_whitespace))
                            .then_some("an IP address or host name")
                    }
                };
                if let Some(what) = bad {
                    return Err(not_a(v, what));
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
            Kind::Port => Value::Uint(parse_port(v)?.into()),
            Kind::Rate => Value::Rate(units::parse_rate(v)?),
            Kind::Duration => Value::Nanos(units::parse_duration(v)?),
            Kind::Sizes => Value::Sizes(units::parse_sizes(v)?),
            Kind::Pct => Value::Pct(units::parse_pct(v)?),
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
        let mut s = String::new();
        for (i, o) in self.options.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(o.name);
        }
        s
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
        opt("threads", Kind::Uint { min: 0, max: 64 }, Some("0")),
        list("route", Kind::Cidr),
        opt("mac", Kind::Mac, None),
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

/// `config probe 'NAME'`: a probe run once, or every `every` as a link monitor. `rate`
/// and `size` have no default here because theirs follow the test (100 packets/s of
/// 128 bytes; with `rfc2544` up to 1 Gbit/s of the RFC's frame sizes): see
/// `probe::DEFAULT_PPS` and the others next to it.
pub static PROBE: SectionSpec = SectionSpec {
    kind: "probe",
    options: &[
        opt("enabled", Kind::Bool, Some("1")),
        opt("target", Kind::Host, None),
        opt("rate", Kind::Rate, None),
        opt("interval", Kind::Duration, None),
        list("size", Kind::Sizes),
        opt("duration", Kind::Duration, Some("10s")),
        opt(
            "count",
            Kind::Uint {
                min: 1,
                max: u32::MAX,
            },
            None,
        ),
        opt("port", Kind::Port, Some("7007")),
        opt("rfc2544", Kind::Bool, Some("0")),
        opt("loss_ok", Kind::Pct, Some("0")),
        opt("trial", Kind::Duration, Some("2s")),
        opt("tcp", Kind::Bool, Some("0")),
        opt("json", Kind::Bool, Some("0")),
        opt("every", Kind::Duration, None),
        opt("syslog", Kind::Bool, Some("0")),
    ],
};

/// A peer of a tunnel with several peers (a hub): `option tunnel` names the tunnel
/// section, `key_file` its own key, `list route` the inner addresses behind it.
pub static PEER: SectionSpec = SectionSpec {
    kind: "peer",
    options: &[
        opt("enabled", Kind::Bool, Some("1")),
        opt("tunnel", Kind::IfName, None),
        opt("key_file", Kind::Path, None),
        list("route", Kind::Cidr),
        opt("endpoint", Kind::HostPort, None),
    ],
};

/// Every section type the file may contain.
pub static SECTION_TYPES: &[&SectionSpec] = &[&REFLECT, &TUNNEL, &BRIDGE, &PROBE, &PEER];

pub fn section_type(kind: &str) -> Option<&'static SectionSpec> {
    SECTION_TYPES.iter().copied().find(|s| s.kind == kind)
}
