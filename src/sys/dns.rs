//! Host name look-up for `tunnel --remote HOST` and `probe TARGET`, in place of libc's
//! `getaddrinfo` (musl's resolver and what it pulls in were about 30 KB of the mipsel
//! binary). It follows musl's rules, so a name resolves as it did before:
//!
//! - /etc/hosts first (every address of the name, in file order; names compared
//!   without regard to case);
//! - then DNS: A and AAAA queries over UDP, sent at once to every `nameserver` of
//!   /etc/resolv.conf (at most 3; 127.0.0.1 when there is none, which is OpenWrt's
//!   dnsmasq), resent every `timeout / attempts` seconds until each query has an answer
//!   or `timeout` seconds passed (`options timeout:N attempts:N`, defaults 5 and 2);
//!   the first usable answer to each query wins. A SERVFAIL answer is not used (the
//!   query is resent at the next round); NXDOMAIN and NOERROR are final;
//! - a name with fewer dots than `ndots` (default 1) is tried with each `search` (or
//!   `domain`) suffix first, then as given; NXDOMAIN moves on to the next, anything else
//!   ends the search; a trailing dot turns the search off;
//! - with addresses of both families, the first is chosen by RFC 6724's destination
//!   rules as musl applies them (reachable, matching scope and label, precedence,
//!   longest common prefix with the source the kernel would pick, then answer order).
//!
//! Replies are only taken from a server that was asked, with the query's id and its
//! question echoed. A truncated reply is used for the addresses it holds (no retry over
//! TCP): a host's A or AAAA records fit a UDP reply.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

/// The settings of /etc/resolv.conf that the look-up uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub servers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
    /// Seconds.
    pub timeout: u32,
    pub attempts: u32,
}

/// Reads resolv.conf as musl does: at most 3 name servers, the last `search`/`domain`
/// line, `options ndots:N timeout:N attempts:N` (capped at 15, 60 and 10).
pub fn parse_resolv_conf(text: &str) -> Conf {
    let mut c = Conf {
        servers: Vec::new(),
        search: Vec::new(),
        ndots: 1,
        timeout: 5,
        attempts: 2,
    };
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") if c.servers.len() < 3 => {
                if let Some(ip) = w.next().and_then(parse_server) {
                    c.servers.push(ip);
                }
            }
            Some("search") | Some("domain") => {
                c.search.clear();
                for d in w {
                    c.search.push(d.to_string());
                }
            }
            Some("options") => {
                for o in w {
                    let Some((k, v)) = o.split_once(':') else {
                        continue;
                    };
                    let Ok(n) = v.parse::<u32>() else { continue };
                    match k {
                        "ndots" => c.ndots = n.min(15) as usize,
                        "timeout" => c.timeout = n.min(60),
                        "attempts" => c.attempts = n.clamp(1, 10),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if c.servers.is_empty() {
        c.servers
            .push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53));
    }
    c
}

/// A `nameserver` value: an address, IPv6 possibly with `%scope` (a name or a number).
fn parse_server(v: &str) -> Option<SocketAddr> {
    let (a, scope) = match v.split_once('%') {
        Some((a, s)) => (a, Some(s)),
        None => (v, None),
    };
    match a.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) if scope.is_none() => Some(SocketAddr::new(ip.into(), 53)),
        IpAddr::V4(_) => None,
        IpAddr::V6(ip) => {
            let id = match scope {
                None => 0,
                Some(s) => match s.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => nix::net::if_::if_nametoindex(s).ok()?,
                },
            };
            Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, id)))
        }
    }
}

/// The addresses /etc/hosts gives `name`, in file order.
pub fn from_hosts(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut w = line.split_whitespace();
        let Some(ip) = w.next() else { continue };
        if w.any(|n| n.eq_ignore_ascii_case(name)) {
            if let Ok(ip) = ip.split('%').next().unwrap_or(ip).parse() {
                out.push(ip);
            }
        }
    }
    out
}

/// Builds a query for `name` (a valid host name, see [`valid_name`]) of type `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    // RD; one question
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// Whether `name` can be asked for: labels of 1 to 63 bytes (a trailing dot allowed),
/// 253 bytes in all, letters, digits, `-`, `_` or non-ASCII bytes (as musl checks).
pub fn valid_name(name: &str) -> bool {
    let n = name.strip_suffix('.').unwrap_or(name);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| !l.is_empty() && l.len() <= 63)
        && n.bytes()
            .all(|b| b >= 0x80 || b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// What one reply says.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// NOERROR with the addresses of the queried type found (maybe none).
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN: the name does not exist.
    NoName,
    /// SERVFAIL: ask again.
    Retry,
    /// Another error code (refused, format error...).
    Failed(u8),
}

/// Parses a reply to query `q` (the bytes sent); `None` when it is not one (id,
/// response bit or question differ, or it is cut short).
pub fn parse_reply(q: &[u8], r: &[u8]) -> Option<Answer> {
    let qlen = q.len();
    if r.len() < qlen
        || r[..2] != q[..2]
        || r[2] & 0x80 == 0
        || r[4..6] != [0, 1]
        || !r[12..qlen].eq_ignore_ascii_case(&q[12..])
    {
        return None;
    }
    let qtype = u16::from_be_bytes([q[qlen - 4], q[qlen - 3]]);
    match r[3] & 15 {
        0 => {}
        2 => return Some(Answer::Retry),
        3 => return Some(Answer::NoName),
        rc => return Some(Answer::Failed(rc)),
    }
    let mut n = u16::from_be_bytes([r[6], r[7]]);
    let mut p = qlen;
    let mut out = Vec::new();
    while n > 0 {
        n -= 1;
        // the owner name: labels, ended by a zero or a compression pointer
        loop {
            let l = *r.get(p)?;
            if l >= 0xc0 {
                p += 2;
                break;
            }
            p += 1 + l as usize;
            if l == 0 {
                break;
            }
        }
        let h = r.get(p..p + 10)?;
        let (ty, class) = (u16::from_be_bytes([h[0], h[1]]), [h[2], h[3]]);
        let len = u16::from_be_bytes([h[8], h[9]]) as usize;
        let data = r.get(p + 10..p + 10 + len)?;
        p += 10 + len;
        if ty != qtype || class != [0, 1] {
            continue;
        }
        if let Ok(a) = <[u8; 4]>::try_from(data) {
            out.push(IpAddr::V4(a.into()));
        } else if let Ok(a) = <[u8; 16]>::try_from(data) {
            out.push(IpAddr::V6(a.into()));
        }
    }
    Some(Answer::Addrs(out))
}

/// Why a look-up gave no address.
#[derive(Debug, PartialEq, Eq)]
pub enum Fail {
    NoName,
    NoData,
    Timeout,
    Code(u8),
    Other(String),
}

impl Fail {
    pub fn message(&self) -> String {
        match self {
            Fail::NoName => "the name does not exist (NXDOMAIN)".into(),
            Fail::NoData => "the name has no address".into(),
            Fail::Timeout => "no answer from the DNS server(s) of /etc/resolv.conf".into(),
            Fail::Code(c) => format!("the DNS server answered with error code {c}"),
            Fail::Other(m) => m.clone(),
        }
    }
}

/// A UDP socket on an ephemeral port of every address of one family. Bound through a
/// `SocketAddr`, as elsewhere in tunbox: one `bind` in the binary, not one more per
/// tuple type (size).
fn bind_any(v6: bool) -> std::io::Result<UdpSocket> {
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    UdpSocket::bind(SocketAddr::new(any, 0))
}

/// Asks the servers of `c` for the A and AAAA records of `name` (one name, no search).
pub fn ask(c: &Conf, name: &str) -> Result<Vec<IpAddr>, Fail> {
    let v6 = c.servers.iter().any(SocketAddr::is_ipv6);
    let bound = if v6 { bind_any(true).ok() } else { None };
    let (sock, v6) = match bound {
        Some(s) => {
            // the IPv4 servers as v4-mapped addresses on the same socket
            let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Ipv6V6Only, &false);
            (s, true)
        }
        None => (
            bind_any(false).map_err(|e| Fail::Other(e.to_string()))?,
            false,
        ),
    };
    let mut servers: Vec<SocketAddr> = Vec::with_capacity(c.servers.len());
    for s in &c.servers {
        match (s, v6) {
            (SocketAddr::V4(a), true) => {
                servers.push(SocketAddr::new(a.ip().to_ipv6_mapped().into(), a.port()))
            }
            (SocketAddr::V6(_), false) => {}
            _ => servers.push(*s),
        }
    }
    let mut id = [0u8; 2];
    let _ = getrandom::fill(&mut id);
    let id = u16::from_ne_bytes(id);
    let qs = [query(id, name, 1), query(id ^ 1, name, 28)];
    let mut answers: [Option<Answer>; 2] = [None, None];
    let t0 = Instant::now();
    let ms = c.timeout.max(1) * 1000;
    let end = t0 + Duration::from_millis(ms.into());
    let step = Duration::from_millis((ms / c.attempts).max(100).into());
    let mut next = t0;
    let mut buf = [0u8; 1232];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next {
            for (q, a) in qs.iter().zip(&answers) {
                if a.is_none() {
                    for s in &servers {
                        let _ = sock.send_to(q, s);
                    }
                }
            }
            next = now + step;
        }
        let wait = next.min(end).saturating_duration_since(now);
        let _ = sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        // a timeout, EINTR or an ICMP error from a server: go round again
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if !servers.contains(&from) {
            continue;
        }
        for (q, a) in qs.iter().zip(answers.iter_mut()) {
            match parse_reply(q, &buf[..n]) {
                None | Some(Answer::Retry) => {}
                Some(ans) => *a = a.take().or(Some(ans)),
            }
        }
        if answers.iter().all(Option::is_some) {
            break;
        }
    }
    for a in &answers {
        match a {
            None | Some(Answer::Retry) => return Err(Fail::Timeout),
            Some(Answer::NoName) => return Err(Fail::NoName),
            Some(Answer::Failed(c)) => return Err(Fail::Code(*c)),
            Some(Answer::Addrs(_)) => {}
        }
    }
    // as musl: AAAA records first (the order only breaks ties in [`preferred`])
    let mut out = Vec::new();
    for a in answers.into_iter().rev() {
        if let Some(Answer::Addrs(v)) = a {
            out.extend(v);
        }
    }
    if out.is_empty() {
        return Err(Fail::NoData);
    }
    Ok(out)
}

/// The name with the search suffixes of `c` applied (see the module's notes).
pub fn ask_search(c: &Conf, name: &str) -> Result<Vec<IpAddr>, Fail> {
    let dots = name.bytes().filter(|&b| b == b'.').count();
    if dots < c.ndots && !name.ends_with('.') {
        for d in &c.search {
            let full = format!("{name}.{}", d.trim_end_matches('.'));
            if full.len() > 253 || !valid_name(&full) {
                continue;
            }
            match ask(c, &full) {
                Err(Fail::NoName) => {}
                r => return r,
            }
        }
    }
    ask(c, name)
}

/// musl's RFC 6724 policy table: (prefix bytes, mask of the next byte, precedence,
/// label).
const POLICY: [(&[u8], u8, u32, u32); 5] = [
    (
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        0xff,
        50,
        0,
    ),
    (&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 0xff, 35, 4),
    (&[0x20, 0x02], 0xff, 30, 2),
    (&[0x20, 0x01, 0, 0], 0xff, 5, 5),
    (&[0xfc], 0xfe, 3, 13),
];

fn policy(a: &[u8; 16]) -> (u32, u32) {
    for (p, mask, prec, label) in POLICY {
        let n = p.len() - 1;
        if a[..n] == p[..n] && a[n] & mask == p[n] {
            return (prec, label);
        }
    }
    (40, 1)
}

fn scope(a: &[u8; 16]) -> u32 {
    let ip = Ipv6Addr::from(*a);
    if a[0] == 0xff {
        u32::from(a[1] & 15)
    } else if a[0] == 0xfe && a[1] & 0xc0 == 0x80 || ip == Ipv6Addr::LOCALHOST {
        2
    } else if a[0] == 0xfe && a[1] & 0xc0 == 0xc0 {
        5
    } else {
        14
    }
}

fn as_v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The sort key musl gives destination `ip` (higher first), with `src` the source
/// address the kernel picks for it (`None`: unreachable) and `i` its place.
pub fn sort_key(ip: IpAddr, src: Option<IpAddr>, i: usize) -> u32 {
    let d = as_v6(ip);
    let (prec, label) = policy(&d);
    let dscope = scope(&d);
    let mut key = (prec << 20) | ((15 - dscope) << 16) | (48u32.saturating_sub(i as u32));
    if let Some(src) = src {
        let s = as_v6(src);
        key |= 0x4000_0000;
        if scope(&s) == dscope {
            key |= 0x2000_0000;
        }
        if policy(&s).1 == label {
            key |= 0x1000_0000;
        }
        let common = s
            .iter()
            .zip(&d)
            .position(|(a, b)| a != b)
            .map_or(128, |i| i as u32 * 8 + (s[i] ^ d[i]).leading_zeros());
        key |= common << 8;
    }
    key
}

/// The source address the kernel would use towards `ip` (a UDP connect sends nothing).
fn source_for(ip: IpAddr) -> Option<IpAddr> {
    let s = bind_any(ip.is_ipv6()).ok()?;
    s.connect(SocketAddr::new(ip, 53)).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// The address musl's sort would put first: the one with the highest [`sort_key`]
/// when IPv6 ones are among them, else the first.
pub fn preferred(addrs: &[IpAddr]) -> Option<IpAddr> {
    if addrs.iter().all(IpAddr::is_ipv4) {
        return addrs.first().copied();
    }
    let key = |(i, &a): (usize, &IpAddr)| (sort_key(a, source_for(a), i), a);
    addrs.iter().enumerate().map(key).max().map(|(_, a)| a)
}

/// Resolves `host` (a name; callers handle IP literals) from /etc/hosts and DNS, and
/// gives the preferred address.
pub fn lookup(host: &str) -> Result<IpAddr, String> {
    if !valid_name(host) {
        return Err(format!("'{host}' is not a valid host name"));
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mut addrs = from_hosts(&read("/etc/hosts"), host);
    if addrs.is_empty() {
        let conf = parse_resolv_conf(&read("/etc/resolv.conf"));
        addrs = ask_search(&conf, host).map_err(|e| e.message())?;
    }
    preferred(&addrs).ok_or_else(|| Fail::NoData.message())
}

#[cfg(test)]
mod tests;
