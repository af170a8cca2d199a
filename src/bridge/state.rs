//! The state file `bridge up` writes before changing anything: a small line-based
//! text file, one fact per line, `key value` or `key k=v k=v ...`. Pure: text in,
//! text out; reading and writing the file happens in `bridge::apply`.
use super::plan::{fmt_mac, LinkRecord, Record};
use crate::sys::netlink::{AddrEntry, RouteEntry};
use std::fmt::Write as _;
use std::net::IpAddr;

const MAGIC: &str = "tunbox-bridge-state 1";

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), |x| x.to_string())
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn link_line(key: &str, l: &LinkRecord) -> String {
    format!(
        "{key} mtu={} up={} mac={} master={}\n",
        l.mtu,
        yes(l.up),
        l.mac.as_ref().map_or_else(|| "-".to_string(), fmt_mac),
        opt(&l.master)
    )
}

/// The file's text.
pub fn to_text(r: &Record) -> String {
    let mut s = String::new();
    s.push_str(MAGIC);
    s.push('\n');
    s.push_str(
        "# written by `tunbox bridge up`: the original state `tunbox bridge down` restores\n",
    );
    let _ = writeln!(s, "ifname {}", r.ifname);
    let _ = writeln!(s, "bridge {}", r.bridge);
    let _ = writeln!(s, "tap {}", r.tap);
    let _ = writeln!(s, "created_bridge {}", yes(r.created_bridge));
    let _ = writeln!(s, "created_tap {}", yes(r.created_tap));
    s.push_str(&link_line("port", &r.port));
    if let Some(t) = &r.tap_orig {
        s.push_str(&link_line("tap_orig", t));
    }
    if let Some(b) = &r.bridge_orig {
        s.push_str(&link_line("bridge_orig", b));
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
            opt(&a.label),
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
        let _ = writeln!(s, "sysctl {p} {v}");
    }
    s.push_str("end\n");
    s
}

struct Fields<'a> {
    line: usize,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Fields<'a> {
    fn new(line: usize, words: &[&'a str]) -> Result<Fields<'a>, String> {
        let mut pairs = Vec::new();
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(format!("line {line}: '{w}' is not key=value"));
            };
            pairs.push((k, v));
        }
        Ok(Fields { line, pairs })
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
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = v.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("line {line}: '{v}' is not a MAC address"));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)
            .map_err(|_| format!("line {line}: '{v}' is not a MAC address"))?;
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
        master: f.opt("master")?,
    })
}

/// Parses the file's text; errors name the line.
pub fn from_text(text: &str) -> Result<Record, String> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, l)) if l.trim() == MAGIC => {}
        _ => {
            return Err(format!(
                "line 1: not a tunbox bridge state file (expected '{MAGIC}')"
            ))
        }
    }
    let mut ifname = None;
    let mut bridge = None;
    let mut tap = None;
    let mut created_bridge = None;
    let mut created_tap = None;
    let mut port = None;
    let mut tap_orig = None;
    let mut bridge_orig = None;
    let mut addrs = Vec::new();
    let mut routes = Vec::new();
    let mut sysctls = Vec::new();
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
        match key {
            "ifname" => ifname = Some(one()?.to_string()),
            "bridge" => bridge = Some(one()?.to_string()),
            "tap" => tap = Some(one()?.to_string()),
            "created_bridge" => created_bridge = Some(parse_yes(n, one()?)?),
            "created_tap" => created_tap = Some(parse_yes(n, one()?)?),
            "port" => port = Some(link_record(&Fields::new(n, rest)?)?),
            "tap_orig" => tap_orig = Some(link_record(&Fields::new(n, rest)?)?),
            "bridge_orig" => bridge_orig = Some(link_record(&Fields::new(n, rest)?)?),
            "addr" => {
                let Some((first, more)) = rest.split_first() else {
                    return Err(format!("line {n}: addr without an address"));
                };
                let (addr, prefix_len) = parse_prefix(n, first)?;
                let f = Fields::new(n, more)?;
                let lifetimes = match f.raw("life")? {
                    "-" => None,
                    v => {
                        let bad = || format!("line {n}: '{v}' is not VALID,PREFERRED");
                        let (a, b) = v.split_once(',').ok_or_else(bad)?;
                        Some((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
                    }
                };
                addrs.push(AddrEntry {
                    index: 0,
                    addr,
                    prefix_len,
                    peer: f.opt("peer")?,
                    broadcast: f.opt("brd")?,
                    scope: f.get("scope")?,
                    flags: f.get("flags")?,
                    label: f.opt("label")?,
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
                let f = Fields::new(n, more)?;
                let gateway: Option<IpAddr> = f.opt("gw")?;
                let prefsrc: Option<IpAddr> = f.opt("src")?;
                for ip in gateway.iter().chain(prefsrc.iter()) {
                    if ip.is_ipv4() != dst.is_ipv4() {
                        return Err(format!("line {n}: {ip} is not of the family of {dst}"));
                    }
                }
                routes.push(RouteEntry {
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
            "sysctl" => match rest {
                [p, v] if p.starts_with("/proc/sys/") && !p.contains("..") => {
                    sysctls.push((p.to_string(), v.to_string()))
                }
                _ => {
                    return Err(format!(
                        "line {n}: sysctl takes a /proc/sys path and a value"
                    ))
                }
            },
            "end" => ended = true,
            _ => return Err(format!("line {n}: unknown key '{key}'")),
        }
    }
    if !ended {
        return Err("the file is cut short (no 'end' line)".into());
    }
    let need = |what: &str| format!("'{what}' missing");
    Ok(Record {
        ifname: ifname.ok_or_else(|| need("ifname"))?,
        bridge: bridge.ok_or_else(|| need("bridge"))?,
        tap: tap.ok_or_else(|| need("tap"))?,
        created_bridge: created_bridge.ok_or_else(|| need("created_bridge"))?,
        created_tap: created_tap.ok_or_else(|| need("created_tap"))?,
        port: port.ok_or_else(|| need("port"))?,
        tap_orig,
        bridge_orig,
        addrs,
        routes,
        sysctls,
    })
}
