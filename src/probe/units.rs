//! What the options mean: rates, sizes and durations as written by a technician, the
//! probe header, and RFC 2544 frame sizes converted to the IP packet sent.

/// IPv4 header without options.
pub const IPV4_HEADER: usize = 20;
/// IPv6 header without extension headers.
pub const IPV6_HEADER: usize = 40;
pub const UDP_HEADER: usize = 8;
/// The probe's own header in the UDP payload: tag (4), sequence (4), send time (8).
pub const PROBE_HEADER: usize = 16;
/// Largest IP packet (the IPv4 total length field; also the UDP length limit).
pub const MAX_IP_PACKET: usize = 65535;
/// An RFC 2544 frame counts the Ethernet header (14) and the FCS (4) around the packet.
pub const ETHERNET_OVERHEAD: usize = 18;
/// The frame sizes of RFC 2544 section 9.1 for Ethernet.
pub const RFC2544_FRAMES: [usize; 7] = [64, 128, 256, 512, 1024, 1280, 1518];

/// The IP packet carried in an RFC 2544 Ethernet frame of `frame` bytes (FCS included).
pub fn frame_to_ip(frame: usize) -> Option<usize> {
    frame.checked_sub(ETHERNET_OVERHEAD)
}

/// The smallest IP packet that carries a probe, by address family.
pub fn min_ip_packet(ipv6: bool) -> usize {
    (if ipv6 { IPV6_HEADER } else { IPV4_HEADER }) + UDP_HEADER + PROBE_HEADER
}

/// The UDP payload of an IP packet of `ip` bytes, or a message saying why not.
pub fn udp_payload(ip: usize, ipv6: bool) -> Result<usize, String> {
    let min = min_ip_packet(ipv6);
    let fam = if ipv6 { "IPv6" } else { "IPv4" };
    if ip < min {
        return Err(format!(
            "size {ip} is below the smallest {fam} probe, {min} bytes \
             (IP header, UDP header and the 16-byte probe header)"
        ));
    }
    if ip > MAX_IP_PACKET {
        return Err(format!(
            "size {ip} is above the largest IP packet, {MAX_IP_PACKET} bytes"
        ));
    }
    let hdr = if ipv6 { IPV6_HEADER } else { IPV4_HEADER };
    Ok(ip - hdr - UDP_HEADER)
}

/// Rates are kept in integers, because f64 arithmetic is a software library on mips:
/// packets per second in thousandths (`mpps`: 1500 is 1.5 packets/s), bits per second.
pub const MILLI: u64 = 1000;

/// A rate as asked for: thousandths of packets per second, or bits per second of IP
/// packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    Mpps(u64),
    Bps(u64),
}

impl Rate {
    /// Thousandths of packets per second for IP packets of `ip` bytes (at least 1).
    pub fn mpps(self, ip: usize) -> u64 {
        match self {
            Rate::Mpps(p) => p,
            Rate::Bps(b) => mul_div(b, MILLI, ip.max(1) as u64 * 8),
        }
        .max(1)
    }
}

/// `a * b / c` in u64 (saturating): exact while `a * b` fits, else `a * (b / c)` plus
/// `a * (b % c) / c`, the last exact while it fits and within `b % c` below it past
/// that. (No u128: its division is a library routine on 32-bit targets.)
pub fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    let c = c.max(1);
    if let Some(ab) = a.checked_mul(b) {
        return ab / c;
    }
    let r = b % c;
    let rest = match a.checked_mul(r) {
        Some(ar) => ar / c,
        None => (a / c).saturating_mul(r),
    };
    a.saturating_mul(b / c).saturating_add(rest)
}

/// A rate in thousandths per second of `n` events in `span_ns` nanoseconds.
pub fn per_second_milli(n: u64, span_ns: u64) -> u64 {
    mul_div(n, 1_000_000_000_000, span_ns)
}

fn split_number(s: &str) -> (&str, &str) {
    let i = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s.split_at(i)
}

/// A decimal number (`12`, `2.5`, `.5`) times 10^`digits`, digits beyond those cut off;
/// in integers, because `str::parse::<f64>` links the float parser (several KB on mips).
pub fn parse_fixed(num: &str, digits: u32) -> Option<u64> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let digit = |c: char| c.to_digit(10).map(u64::from);
    let mut v: u64 = 0;
    for c in int.chars() {
        v = v.checked_mul(10)?.checked_add(digit(c)?)?;
    }
    let mut fr = frac.chars();
    for _ in 0..digits {
        let d = match fr.next() {
            Some(c) => digit(c)?,
            None => 0,
        };
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    if fr.any(|c| c.to_digit(10).is_none()) {
        return None;
    }
    Some(v)
}

/// A fixed-point number `v` x 10^-`exp` shown with `shown` decimals (rounded half
/// up), printed from integers: formatting an f64 links the float formatter and its
/// software arithmetic on mips. Width and alignment flags are honoured.
#[derive(Clone, Copy, Debug)]
pub struct Dec(pub u64, pub u32, pub u32);

impl Dec {
    /// Nanoseconds as milliseconds with three decimals.
    pub fn ms(ns: u64) -> Dec {
        Dec(ns, 6, 3)
    }
    /// Nanoseconds as seconds with `shown` decimals.
    pub fn secs(ns: u64, shown: u32) -> Dec {
        Dec(ns, 9, shown)
    }
    /// Thousandths of packets per second with `shown` decimals.
    pub fn pps(mpps: u64, shown: u32) -> Dec {
        Dec(mpps, 3, shown)
    }
    /// Bits per second as Mb/s with `shown` decimals.
    pub fn mbps(bps: u64, shown: u32) -> Dec {
        Dec(bps, 6, shown)
    }
    /// A [`Pct`] with `shown` decimals.
    pub fn pct(p: Pct, shown: u32) -> Dec {
        Dec(p.0.into(), 4, shown)
    }
}

impl std::fmt::Display for Dec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        let Dec(v, exp, shown) = *self;
        let shown = shown.min(exp);
        let cut = 10u64.pow(exp - shown);
        let n = v / cut + u64::from(v % cut >= cut.div_ceil(2) && cut > 1);
        let scale = 10u64.pow(shown);
        let mut out: heapless::String<32> = heapless::String::new();
        let _ = write!(out, "{}", n / scale);
        if shown > 0 {
            let _ = write!(out, ".{:0w$}", n % scale, w = shown as usize);
        }
        f.pad(&out)
    }
}

fn multiplier(c: &str) -> Option<(u64, &str)> {
    let mut chars = c.chars();
    let m = match chars.next() {
        Some('k' | 'K') => 1_000,
        Some('m' | 'M') => 1_000_000,
        Some('g' | 'G') => 1_000_000_000,
        _ => return Some((1, c)),
    };
    Some((m, chars.as_str()))
}

/// `--rate`: `1000` or `1000pps` or `10kpps` (packets/s); `100M`, `100Mbit`, `2.5G`,
/// `64k`, `500bit` (bits/s of IP packets, 1000-based).
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let bad = || {
        format!(
            "bad rate '{s}': give packets/s (1000, 10kpps) or bits/s with a unit \
             (64k, 100M, 1G, 500bit)"
        )
    };
    let (num, unit) = split_number(s.trim());
    // thousandths
    let n = parse_fixed(num, 3).ok_or_else(bad)?;
    let (mult, rest) = multiplier(unit).ok_or_else(bad)?;
    let big = || format!("rate '{s}' is too high");
    let rate = match rest.to_ascii_lowercase().as_str() {
        "pps" | "p/s" => Rate::Mpps(n.checked_mul(mult).ok_or_else(big)?),
        "" if mult == 1 => Rate::Mpps(n),
        "" | "bit" | "bps" | "b" | "bit/s" | "b/s" => {
            Rate::Bps(n.checked_mul(mult).ok_or_else(big)? / MILLI)
        }
        _ => return Err(bad()),
    };
    if matches!(rate, Rate::Mpps(0) | Rate::Bps(0)) {
        return Err(format!("rate '{s}' must be above 0"));
    }
    Ok(rate)
}

/// A duration: `10` or `10s`, `500ms`, `2m`, `1.5s`. Returns nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let (num, unit) = split_number(s.trim());
    let bad = || format!("bad duration '{s}': e.g. 10, 10s, 500ms, 2m");
    // (unit, decimal places kept, multiplier to nanoseconds): a table searched by a
    // loop, smaller than a `match` of string comparisons
    const UNITS: [(&str, u32, u64); 7] = [
        ("", 9, 1),
        ("s", 9, 1),
        ("ms", 6, 1),
        ("us", 3, 1),
        ("m", 9, 60),
        ("min", 9, 60),
        ("h", 9, 3600),
    ];
    let &(_, digits, mult) = UNITS.iter().find(|u| u.0 == unit).ok_or_else(bad)?;
    let ns = parse_fixed(num, digits)
        .and_then(|v| v.checked_mul(mult))
        .ok_or_else(bad)?;
    if ns == 0 || ns > 1_000_000_000_000_000_000 {
        return Err(format!("duration '{s}' must be above 0"));
    }
    Ok(ns)
}

/// One `--size` value: `64` or a list `64,512,1500` (the option may also repeat). Each
/// size is checked against the smallest probe (IPv4's; IPv6's is checked once the
/// target's family is known) and the largest IP packet.
pub fn parse_sizes(item: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in item.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: usize = part
            .parse()
            .map_err(|_| format!("bad size '{part}': a number of bytes, e.g. 64,512,1500"))?;
        udp_payload(n, false)?;
        out.push(n);
    }
    if out.is_empty() {
        return Err(format!(
            "bad size '{item}': a number of bytes, e.g. 64,512,1500"
        ));
    }
    Ok(out)
}

/// A percentage in ten-thousandths of a percent (0.5 % is `Pct(5000)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pct(pub u32);

/// A loss percentage, 0 to 100, to four decimals.
pub fn parse_pct(s: &str) -> Result<Pct, String> {
    let v = parse_fixed(s.trim().trim_end_matches('%'), 4)
        .ok_or_else(|| format!("bad percentage '{s}'"))?;
    if v > 1_000_000 {
        return Err(format!("percentage '{s}' must be between 0 and 100"));
    }
    Ok(Pct(v as u32))
}

/// The probe header at the start of each UDP payload: the run's tag, the sequence
/// number and the send time in nanoseconds, all big-endian.
pub fn write_header(buf: &mut [u8], tag: u32, seq: u32, sent_ns: u64) {
    buf[0..4].copy_from_slice(&tag.to_be_bytes());
    buf[4..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..16].copy_from_slice(&sent_ns.to_be_bytes());
}

/// (tag, sequence, send time) of a received payload, None when it is too short.
pub fn read_header(buf: &[u8]) -> Option<(u32, u32, u64)> {
    let h = buf.get(..PROBE_HEADER)?;
    Some((
        u32::from_be_bytes(h[0..4].try_into().ok()?),
        u32::from_be_bytes(h[4..8].try_into().ok()?),
        u64::from_be_bytes(h[8..16].try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("1000"), Ok(Rate::Mpps(1_000_000)));
        assert_eq!(parse_rate("0.5"), Ok(Rate::Mpps(500)));
        assert_eq!(parse_rate("1000pps"), Ok(Rate::Mpps(1_000_000)));
        assert_eq!(parse_rate("10kpps"), Ok(Rate::Mpps(10_000_000)));
        assert_eq!(parse_rate("100M"), Ok(Rate::Bps(100_000_000)));
        assert_eq!(parse_rate("100Mbit"), Ok(Rate::Bps(100_000_000)));
        assert_eq!(parse_rate("2.5G"), Ok(Rate::Bps(2_500_000_000)));
        assert_eq!(parse_rate("64k"), Ok(Rate::Bps(64_000)));
        assert_eq!(parse_rate("500bit"), Ok(Rate::Bps(500)));
        for bad in ["", "x", "10q", "1Mpp", "-5", "1e3"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        for zero in ["0", "0M", "0pps", "0.0", "0.5bit"] {
            assert!(parse_rate(zero).unwrap_err().contains("above 0"), "{zero}");
        }
        // 100 Mbit/s of 1250-byte packets is 10000 packets/s
        assert_eq!(Rate::Bps(100_000_000).mpps(1250), 10_000_000);
        assert_eq!(Rate::Mpps(7_000).mpps(1250), 7_000);
        assert_eq!(Rate::Bps(1).mpps(1500), 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(10_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("2m"), Ok(120_000_000_000));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn sizes_and_limits() {
        assert_eq!(parse_sizes("64,512, 1500").unwrap(), [64, 512, 1500]);
        assert!(parse_sizes("64,x").is_err());
        assert!(parse_sizes(",").is_err());
        assert!(parse_sizes("43").unwrap_err().contains("below"));
        assert!(parse_sizes("65536").unwrap_err().contains("above"));
        assert_eq!(min_ip_packet(false), 44);
        assert_eq!(min_ip_packet(true), 64);
        assert_eq!(udp_payload(44, false), Ok(16));
        assert_eq!(udp_payload(1500, true), Ok(1452));
        assert!(udp_payload(43, false).unwrap_err().contains("below"));
        assert!(udp_payload(63, true).unwrap_err().contains("IPv6"));
        assert_eq!(udp_payload(65535, false), Ok(65507));
        assert!(udp_payload(65536, false).unwrap_err().contains("above"));
    }

    /// RFC 2544 frame sizes include the 14-byte Ethernet header and the 4-byte FCS.
    #[test]
    fn frames() {
        let ip: Vec<_> = RFC2544_FRAMES
            .iter()
            .map(|&f| frame_to_ip(f).unwrap())
            .collect();
        assert_eq!(ip, [46, 110, 238, 494, 1006, 1262, 1500]);
        // a 64-byte frame carries an IPv4 probe, not an IPv6 one
        assert!(udp_payload(46, false).is_ok());
        assert!(udp_payload(46, true).is_err());
        assert_eq!(frame_to_ip(10), None);
    }

    #[test]
    fn header_roundtrip() {
        let mut b = [0u8; 20];
        write_header(&mut b, 0xdead_beef, 7, 123_456_789_012);
        assert_eq!(read_header(&b), Some((0xdead_beef, 7, 123_456_789_012)));
        assert_eq!(read_header(&b[..15]), None);
    }

    #[test]
    fn fixed_point() {
        assert_eq!(parse_fixed("12", 3), Some(12_000));
        assert_eq!(parse_fixed("2.5", 3), Some(2_500));
        assert_eq!(parse_fixed(".25", 2), Some(25));
        assert_eq!(parse_fixed("1.23456", 2), Some(123));
        for bad in ["", ".", "1.2.3", "1e3", "x", "1.x", "99999999999999999999"] {
            assert_eq!(parse_fixed(bad, 3), None, "{bad}");
        }
        assert_eq!(Dec(123_456, 5, 3).to_string(), "1.235");
        assert_eq!(Dec(0, 3, 2).to_string(), "0.00");
        assert_eq!(Dec(1_999_960, 3, 1).to_string(), "2000.0");
        assert_eq!(Dec(42_400, 3, 0).to_string(), "42");
        assert_eq!(Dec(42_500, 3, 0).to_string(), "43");
        assert_eq!(Dec(7, 0, 2).to_string(), "7");
        assert_eq!(Dec::ms(1_234_567).to_string(), "1.235");
        assert_eq!(Dec(u64::MAX, 3, 3).to_string(), "18446744073709551.615");
        assert_eq!(format!("[{:>7}]", Dec(7_254, 3, 2)), "[   7.25]");
    }

    #[test]
    fn integer_rates() {
        assert_eq!(mul_div(6, 7, 4), 10);
        assert_eq!(mul_div(u64::MAX / 2, 4, 4), u64::MAX / 2);
        assert_eq!(mul_div(u64::MAX, 3, 2), u64::MAX);
        assert_eq!(mul_div(1 << 40, 1 << 40, 1 << 30), 1 << 50);
        // 10 events in 1 s: 10 per second
        assert_eq!(per_second_milli(10, 1_000_000_000), 10_000);
        // 2e7 events in 100 s (past the exact range): 200000 per second
        assert_eq!(per_second_milli(20_000_000, 100_000_000_000), 200_000_000);
        assert_eq!(per_second_milli(5, 0), 5_000_000_000_000);
    }

    #[test]
    fn pct() {
        assert_eq!(parse_pct("0.5"), Ok(Pct(5_000)));
        assert_eq!(parse_pct("1%"), Ok(Pct(10_000)));
        assert_eq!(parse_pct("100"), Ok(Pct(1_000_000)));
        assert!(parse_pct("101").is_err());
        assert!(parse_pct("x").is_err());
    }
}
