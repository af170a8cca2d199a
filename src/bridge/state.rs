//! The state file `bridge up` writes before changing anything: a small line-based
//! text file, one fact per line, `key value` or `key k=v k=v ...`. Pure: text in,
//! text out; reading and writing the file happens in `bridge::mod`.
//!
//! Version 2 (this one) escapes every name-like value (device names, address labels,
//! sysctl paths and values): a byte that is whitespace, a control character, `%`, `=`,
//! `#` or not ASCII is written as `%XX` (two upper-case hex digits), a value that is
//! exactly `-` as `%2D` (a lone `-` means "none"), and the empty string as a lone `%`.
//! The kernel accepts labels such as `eth0:my label=x` and version 1 wrote them as they
//! were, which its reader could not read back. It also binds the record to what it
//! describes: the `bound` line holds the network namespace (device and inode of
//! `/proc/self/ns/net`), the port's interface index and MAC address. Version 1 files
//! (no escapes, no binding) are still read.
use super::plan::{LinkRecord, MacText, Record};
use crate::sys::netlink::{AddrEntry, RouteEntry};
use std::fmt::Write as _;
use std::net::IpAddr;

const MAGIC: &str = "tunbox-bridge-state 2";
const MAGIC_V1: &str = "tunbox-bridge-state 1";

/// What a record describes: the port in one network namespace. A record whose binding
/// differs from the running system's (another namespace or container sharing /var/run,
/// or eth0 replaced since) is someone else's: never merged into, never applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// `st_dev` and `st_ino` of /proc/self/ns/net.
    pub netns: (u64, u64),
    /// The port's interface index and MAC address.
    pub ifindex: u32,
    pub mac: Option<[u8; 6]>,
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "netns {}:{} ifindex {} mac {}",
            self.netns.0,
            self.netns.1,
            self.ifindex,
            MacText(&self.mac)
        )
    }
}

/// Escapes a value so it is one word without `=` (see the module notes).
pub fn escape(v: &str) -> String {
    Esc(v).to_string()
}

/// A value as [`escape`] writes it, straight into the file's text.
struct Esc<'a>(&'a str);

impl std::fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            "" => return f.write_str("%"),
            "-" => return f.write_str("%2D"),
            _ => {}
        }
        for &b in self.0.as_bytes() {
            if b <= b' ' || b >= 0x7f || matches!(b, b'%' | b'=' | b'#') {
                write!(f, "%{b:02X}")?;
            } else {
                f.write_char(b as char)?;
            }
        }
        Ok(())
    }
}

/// The inverse of [`escape`]; `None` for a malformed escape or bytes that are not UTF-8.
pub fn unescape(v: &str) -> Option<String> {
    if v == "%" {
        return Some(String::new());
    }
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An optional value as the file writes it: `-` for none. Through `&dyn Display`,
/// written into the text directly (no string per value, one formatting path for every
/// type: size).
struct Or<'a>(Option<&'a dyn std::fmt::Display>);

impl std::fmt::Display for Or<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> Or<'_> {
    Or(v.as_ref().map(|x| x as &dyn std::fmt::Display))
}

/// An optional string value, escaped, or `-`.
struct OptEsc<'a>(&'a Option<String>);

impl std::fmt::Display for OptEsc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(v) => Esc(v).fmt(f),
            None => f.write_str("-"),
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn link_line(s: &mut String, key: &str, l: &LinkRecord) {
    let _ = writeln!(
        s,
        "{key} mtu={} up={} mac={} master={}",
        l.mtu,
        yes(l.up),
        MacText(&l.mac),
        OptEsc(&l.master)
    );
}

/// The file's text, bound to `binding` when given.
pub fn to_text(r: &Record, binding: Option<&Binding>) -> String {
    let mut s = String::new();
    s.push_str(MAGIC);
    s.push('\n');
    s.push_str(
        "# written by `tunbox bridge up`: the original state `tunbox bridge down` restores\n",
    );
    if let Some(b) = binding {
        let _ = writeln!(
            s,
            "bound netns={}:{} ifindex={} mac={}",
            b.netns.0,
            b.netns.1,
            b.ifindex,
            MacText(&b.mac)
        );
    }
    let _ = writeln!(s, "ifname {}", Esc(&r.ifname));
    let _ = writeln!(s, "bridge {}", Esc(&r.bridge));
    let _ = writeln!(s, "tap {}", Esc(&r.tap));
    let _ = writeln!(s, "created_bridge {}", yes(r.created_bridge));
    let _ = writeln!(s, "created_tap {}", yes(r.created_tap));
    link_line(&mut s, "port", &r.port);
    if let Some(t) = &r.tap_orig {
        link_line(&mut s, "tap_orig", t);
    }
    if let Some(b) = &r.bridge_orig {
        link_line(&mut s, "bridge_orig", b);
    }
    for a in &r.addrs {
        let _ = writeln!(
            s,
            "addr {}/{} peer={} brd={} scope={} flags={} label={} life={} proto={} metric={}",
            a.addr,
            a.prefix_len,
            opt(&a.peer),
            opt(&a.broadcast),
            a.scope,
            a.flags,
            OptEsc(&a.label),
            a.lifetimes
                .map_or_else(|| "-".to_string(), |(v, p)| format!("{v},{p}")),
            opt(&a.proto),
            opt(&a.metric),
        );
    }
    for r in &r.routes {
        let _ = writeln!(
            s,
            "route {}/{} table={} gw={} src={} metric={} proto={} scope={} type={} tos={} onlink={} pref={}",
            r.dst,
            r.dst_len,
            r.table,
            opt(&r.gateway),
            opt(&r.prefsrc),
            r.metric,
            r.protocol,
            r.scope,
            r.kind,
            r.tos,
            yes(r.onlink),
            opt(&r.pref),
        );
    }
    for (p, v) in &r.sysctls {
        let _ = writeln!(s, "sysctl {} {}", Esc(p), Esc(v));
    }
    s.push_str("end\n");
    s
}

struct Fields<'a> {
    line: usize,
    pairs: Vec<(&'a str, &'a str)>,
    /// Version 2: string values are escaped.
    escaped: bool,
}

/// A string value of the file: unescaped in version 2, as written in version 1.
fn text_value(line: usize, v: &str, escaped: bool) -> Result<String, String> {
    if !escaped {
        return Ok(v.to_string());
    }
    unescape(v).ok_or_else(|| format!("line {line}: bad escape in '{v}'"))
}

impl<'a> Fields<'a> {
    fn new(line: usize, words: &[&'a str], escaped: bool) -> Result<Fields<'a>, String> {
        let mut pairs = Vec::new();
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(format!("line {line}: '{w}' is not key=value"));
            };
            pairs.push((k, v));
        }
        Ok(Fields {
            line,
            pairs,
            escaped,
        })
    }
    /// An optional string value (`-` is none).
    fn opt_s(&self, key: &str) -> Result<Option<String>, String> {
        match self.raw(key)? {
            "-" => Ok(None),
            v => text_value(self.line, v, self.escaped).map(Some),
        }
    }
    fn raw(&self, key: &str) -> Result<&'a str, String> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("line {}: '{key}=' missing", self.line))
    }
    /// The value of `key` parsed as `T`. Numbers of every width go through one `u32`
    /// parser and one error path (fewer copies of the parsing and formatting code).
    fn get<T: FieldValue>(&self, key: &str) -> Result<T, String> {
        let v = self.raw(key)?;
        T::parse(v).ok_or_else(|| self.bad(key, v))
    }
    #[inline(never)]
    fn bad(&self, key: &str, v: &str) -> String {
        format!("line {}: bad value '{v}' for {key}", self.line)
    }
    fn opt<T: FieldValue>(&self, key: &str) -> Result<Option<T>, String> {
        match self.raw(key)? {
            "-" => Ok(None),
            _ => self.get(key).map(Some),
        }
    }
    fn flag(&self, key: &str) -> Result<bool, String> {
        parse_yes(self.line, self.raw(key)?)
    }
}

/// A value of a `key=value` field.
trait FieldValue: Sized {
    fn parse(v: &str) -> Option<Self>;
}

impl FieldValue for u32 {
    fn parse(v: &str) -> Option<Self> {
        v.parse().ok()
    }
}

impl FieldValue for u8 {
    fn parse(v: &str) -> Option<Self> {
        u32::parse(v).and_then(|n| n.try_into().ok())
    }
}

impl FieldValue for IpAddr {
    fn parse(v: &str) -> Option<Self> {
        v.parse().ok()
    }
}

impl FieldValue for std::net::Ipv4Addr {
    fn parse(v: &str) -> Option<Self> {
        v.parse().ok()
    }
}

impl FieldValue for String {
    fn parse(v: &str) -> Option<Self> {
        Some(v.to_string())
    }
}

fn parse_yes(line: usize, v: &str) -> Result<bool, String> {
    match v {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("line {line}: '{v}' is neither yes nor no")),
    }
}

fn parse_mac(line: usize, v: &str) -> Result<Option<[u8; 6]>, String> {
    if v == "-" {
        return Ok(None);
    }
    let bad = || format!("line {line}: '{v}' is not a MAC address");
    let mut mac = [0u8; 6];
    let mut parts = v.split(':');
    for m in &mut mac {
        *m = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(bad)?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Some(mac))
}

fn parse_prefix(line: usize, v: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("line {line}: '{v}' is not ADDRESS/PREFIX");
    let (a, p) = v.split_once('/').ok_or_else(bad)?;
    let a: IpAddr = a.parse().map_err(|_| bad())?;
    let p: u8 = p.parse().map_err(|_| bad())?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    if p > max {
        return Err(bad());
    }
    Ok((a, p))
}

fn link_record(f: &Fields) -> Result<LinkRecord, String> {
    Ok(LinkRecord {
        mtu: f.get("mtu")?,
        up: f.flag("up")?,
        mac: parse_mac(f.line, f.raw("mac")?)?,
        master: f.opt_s("master")?,
    })
}

fn parse_binding(f: &Fields) -> Result<Binding, String> {
    let line = f.line;
    let ns = f.raw("netns")?;
    let bad = || format!("line {line}: '{ns}' is not DEVICE:INODE");
    let (d, i) = ns.split_once(':').ok_or_else(bad)?;
    Ok(Binding {
        netns: (d.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?),
        ifindex: f.get("ifindex")?,
        mac: parse_mac(line, f.raw("mac")?)?,
    })
}

/// Parses the file's text into the record and its binding (none in a version 1
/// file); errors name the line.
pub fn from_text(text: &str) -> Result<(Record, Option<Binding>), String> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let escaped = match lines.next() {
        Some((_, l)) if l.trim() == MAGIC => true,
        Some((_, l)) if l.trim() == MAGIC_V1 => false,
        _ => {
            return Err(format!(
                "line 1: not a tunbox bridge state file (expected '{MAGIC}')"
            ))
        }
    };
    // Filled in place, the required lines marked in `seen` (a bit per REQUIRED entry):
    // one value to drop on every error path instead of a dozen (size).
    const REQUIRED: [&str; 6] = [
        "ifname",
        "bridge",
        "tap",
        "created_bridge",
        "created_tap",
        "port",
    ];
    let mut rec = Record::default();
    let mut seen = 0u8;
    let mut binding = None;
    let mut ended = false;
    for (n, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if ended {
            return Err(format!("line {n}: text after 'end'"));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (key, rest) = (words[0], &words[1..]);
        let one = || -> Result<&str, String> {
            match rest {
                [v] => Ok(*v),
                _ => Err(format!("line {n}: '{key}' takes one value")),
            }
        };
        let name = || -> Result<String, String> { text_value(n, one()?, escaped) };
        match key {
            "bound" if escaped => binding = Some(parse_binding(&Fields::new(n, rest, escaped)?)?),
            // one parse per kind of line, then the slot it fills (one copy of the
            // parsing and its error paths instead of three: size)
            "ifname" | "bridge" | "tap" => {
                let v = name()?;
                *match key {
                    "ifname" => &mut rec.ifname,
                    "bridge" => &mut rec.bridge,
                    _ => &mut rec.tap,
                } = v;
            }
            "created_bridge" => rec.created_bridge = parse_yes(n, one()?)?,
            "created_tap" => rec.created_tap = parse_yes(n, one()?)?,
            "port" | "tap_orig" | "bridge_orig" => {
                let l = link_record(&Fields::new(n, rest, escaped)?)?;
                match key {
                    "port" => rec.port = l,
                    "tap_orig" => rec.tap_orig = Some(l),
                    _ => rec.bridge_orig = Some(l),
                }
            }
            "addr" => {
                let Some((first, more)) = rest.split_first() else {
                    return Err(format!("line {n}: addr without an address"));
                };
                let (addr, prefix_len) = parse_prefix(n, first)?;
                let f = Fields::new(n, more, escaped)?;
                let lifetimes = match f.raw("life")? {
                    "-" => None,
                    v => {
                        let bad = || format!("line {n}: '{v}' is not VALID,PREFERRED");
                        let (a, b) = v.split_once(',').ok_or_else(bad)?;
                        Some((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
                    }
                };
                rec.addrs.push(AddrEntry {
                    index: 0,
                    addr,
                    prefix_len,
                    peer: f.opt("peer")?,
                    broadcast: f.opt("brd")?,
                    scope: f.get("scope")?,
                    flags: f.get("flags")?,
                    label: f.opt_s("label")?,
                    lifetimes,
                    proto: f.opt("proto")?,
                    metric: f.opt("metric")?,
                });
            }
            "route" => {
                let Some((first, more)) = rest.split_first() else {
                    return Err(format!("line {n}: route without a destination"));
                };
                let (dst, dst_len) = parse_prefix(n, first)?;
                let f = Fields::new(n, more, escaped)?;
                let gateway: Option<IpAddr> = f.opt("gw")?;
                let prefsrc: Option<IpAddr> = f.opt("src")?;
                for ip in gateway.iter().chain(prefsrc.iter()) {
                    if ip.is_ipv4() != dst.is_ipv4() {
                        return Err(format!("line {n}: {ip} is not of the family of {dst}"));
                    }
                }
                rec.routes.push(RouteEntry {
                    oif: None,
                    table: f.get("table")?,
                    dst,
                    dst_len,
                    gateway,
                    prefsrc,
                    metric: f.get("metric")?,
                    protocol: f.get("proto")?,
                    scope: f.get("scope")?,
                    kind: f.get("type")?,
                    tos: f.get("tos")?,
                    onlink: f.flag("onlink")?,
                    pref: f.opt("pref")?,
                    multipath: false,
                });
            }
            "sysctl" => {
                let pv = match rest {
                    [p, v] => Some((text_value(n, p, escaped)?, text_value(n, v, escaped)?)),
                    _ => None,
                };
                match pv {
                    Some((p, v)) if p.starts_with("/proc/sys/") && !p.contains("..") => {
                        rec.sysctls.push((p, v))
                    }
                    _ => {
                        return Err(format!(
                            "line {n}: sysctl takes a /proc/sys path and a value"
                        ))
                    }
                }
            }
            "end" => ended = true,
            _ => return Err(format!("line {n}: unknown key '{key}'")),
        }
        if let Some(i) = REQUIRED.iter().position(|r| *r == key) {
            seen |= 1 << i;
        }
    }
    if !ended {
        return Err("the file is cut short (no 'end' line)".into());
    }
    if let Some(what) = (0..REQUIRED.len())
        .find(|i| seen & (1 << i) == 0)
        .map(|i| REQUIRED[i])
    {
        return Err(format!("'{what}' missing"));
    }
    Ok((rec, binding))
}
