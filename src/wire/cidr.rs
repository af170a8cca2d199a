//! Address ranges in CIDR form (`198.18.0.0/15`, `2001:2::/48`) and the set of ranges a
//! TAP reflector answers for.
use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 prefix with the host bits zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv4Cidr {
    net: u32,
    len: u8,
}

/// An IPv6 prefix with the host bits zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv6Cidr {
    net: u128,
    len: u8,
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

// not inlined: u128 shifts are long on 32-bit targets (size)
#[inline(never)]
fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Ipv4Cidr {
    /// `None` if `len > 32` or `addr` has host bits set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        let a = u32::from(addr);
        (len <= 32 && a & !mask4(len) == 0).then_some(Ipv4Cidr { net: a, len })
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net)
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: [u8; 4]) -> bool {
        (u32::from_be_bytes(ip) ^ self.net) & mask4(self.len) == 0
    }

    /// The directed broadcast address (all host bits one) of a prefix that has one: /31
    /// (RFC 3021) and /32 do not.
    pub fn broadcast(&self) -> Option<[u8; 4]> {
        (self.len <= 30).then(|| (self.net | !mask4(self.len)).to_be_bytes())
    }
}

impl Ipv6Cidr {
    /// `None` if `len > 128` or `addr` has host bits set.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        let a = u128::from(addr);
        (len <= 128 && a & !mask6(len) == 0).then_some(Ipv6Cidr { net: a, len })
    }

    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.net)
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: &[u8; 16]) -> bool {
        (u128::from_be_bytes(*ip) ^ self.net) & mask6(self.len) == 0
    }
}

/// A range of either family.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cidr {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

/// Why a range string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrParseError {
    /// Neither an IPv4 nor an IPv6 address before the '/'.
    Address,
    /// The prefix length is not a number in 0..=32 (IPv4) or 0..=128 (IPv6).
    PrefixLen,
    /// The address has bits set past the prefix; carries the range that was probably meant.
    HostBits(Cidr),
    /// The range contains only multicast addresses, which are never answered.
    Multicast,
}

impl fmt::Display for CidrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrParseError::Address => f.write_str(
                "not an address range (expected ADDRESS/LEN, e.g. 198.18.0.0/15 or 2001:2::/48)",
            ),
            CidrParseError::PrefixLen => {
                f.write_str("prefix length must be 0..=32 for IPv4, 0..=128 for IPv6")
            }
            CidrParseError::HostBits(c) => {
                write!(
                    f,
                    "address has bits set past the prefix length; did you mean {c}?"
                )
            }
            CidrParseError::Multicast => f.write_str("a multicast range cannot be answered"),
        }
    }
}

impl std::error::Error for CidrParseError {}

impl FromStr for Cidr {
    type Err = CidrParseError;

    /// `ADDRESS/LEN`, or a bare address for a single host (/32, /128).
    fn from_str(s: &str) -> Result<Cidr, CidrParseError> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let parse_len = |l: &str, max: u8| -> Result<u8, CidrParseError> {
            if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CidrParseError::PrefixLen);
            }
            match l.parse::<u8>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(CidrParseError::PrefixLen),
            }
        };
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            let len = len.map_or(Ok(32), |l| parse_len(l, 32))?;
            if a.is_multicast() && len >= 4 {
                return Err(CidrParseError::Multicast);
            }
            let net = u32::from(a) & mask4(len);
            return match Ipv4Cidr::new(a, len) {
                Some(c) => Ok(Cidr::V4(c)),
                None => Err(CidrParseError::HostBits(Cidr::V4(Ipv4Cidr { net, len }))),
            };
        }
        if let Ok(a) = addr.parse::<Ipv6Addr>() {
            let len = len.map_or(Ok(128), |l| parse_len(l, 128))?;
            if a.is_multicast() && len >= 8 {
                return Err(CidrParseError::Multicast);
            }
            let net = u128::from(a) & mask6(len);
            return match Ipv6Cidr::new(a, len) {
                Some(c) => Ok(Cidr::V6(c)),
                None => Err(CidrParseError::HostBits(Cidr::V6(Ipv6Cidr { net, len }))),
            };
        }
        Err(CidrParseError::Address)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4(c) => write!(f, "{}/{}", c.network(), c.len),
            Cidr::V6(c) => write!(f, "{}/{}", c.network(), c.len),
        }
    }
}

/// The ranges a reflector answers for, split by family, less single addresses excluded
/// from them (the host's own). Built once at start (it owns small `Vec`s); the lookups
/// allocate nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges {
    v4: Vec<Ipv4Cidr>,
    v6: Vec<Ipv6Cidr>,
    except_v4: Vec<[u8; 4]>,
    except_v6: Vec<[u8; 16]>,
}

/// What the ranges say about an IPv4 destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4Match {
    /// Inside a range, a host address: answer.
    Host,
    /// The directed broadcast address of a range that contains it: never answer.
    Broadcast,
    /// In no range.
    Outside,
}

impl Ranges {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, c: Cidr) {
        match c {
            Cidr::V4(c) => self.v4.push(c),
            Cidr::V6(c) => self.v6.push(c),
        }
    }

    /// Never answer for `ip`, although a range contains it.
    pub fn exclude(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.except_v4.push(a.octets()),
            IpAddr::V6(a) => self.except_v6.push(a.octets()),
        }
    }

    /// Whether a range contains `ip` (exclusions aside).
    pub fn covers(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.iter().any(|c| c.contains(a.octets())),
            IpAddr::V6(a) => self.v6.iter().any(|c| c.contains(&a.octets())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn v4(&self) -> &[Ipv4Cidr] {
        &self.v4
    }

    pub fn v6(&self) -> &[Ipv6Cidr] {
        &self.v6
    }

    /// Classifies an IPv4 address. The broadcast address of any range containing `ip` wins
    /// over membership of a wider range: answering it would make LAN hosts treat a
    /// broadcast address as a station.
    pub fn match_v4(&self, ip: [u8; 4]) -> V4Match {
        if self.except_v4.contains(&ip) {
            return V4Match::Outside;
        }
        let mut inside = false;
        for c in &self.v4 {
            if c.contains(ip) {
                if c.broadcast() == Some(ip) {
                    return V4Match::Broadcast;
                }
                inside = true;
            }
        }
        if inside {
            V4Match::Host
        } else {
            V4Match::Outside
        }
    }

    pub fn contains_v6(&self, ip: &[u8; 16]) -> bool {
        !self.except_v6.contains(ip) && self.v6.iter().any(|c| c.contains(ip))
    }
}

impl FromIterator<Cidr> for Ranges {
    fn from_iter<I: IntoIterator<Item = Cidr>>(it: I) -> Self {
        let mut r = Ranges::new();
        for c in it {
            r.push(c);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_ok() {
        assert_eq!(c("198.18.0.0/15").to_string(), "198.18.0.0/15");
        assert_eq!(c("2001:2::/48").to_string(), "2001:2::/48");
        assert_eq!(c("198.18.0.7").to_string(), "198.18.0.7/32");
        assert_eq!(c("2001:2::7").to_string(), "2001:2::7/128");
        assert_eq!(c("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(c("::/0").to_string(), "::/0");
    }

    #[test]
    fn parse_errors() {
        use CidrParseError::*;
        let e = |s: &str| s.parse::<Cidr>().unwrap_err();
        assert_eq!(e(""), Address);
        assert_eq!(e("198.18.0/15"), Address);
        assert_eq!(e("lab/15"), Address);
        assert_eq!(e("198.18.0.0/33"), PrefixLen);
        assert_eq!(e("198.18.0.0/"), PrefixLen);
        assert_eq!(e("198.18.0.0/+5"), PrefixLen);
        assert_eq!(e("198.18.0.0/0015"), PrefixLen);
        assert_eq!(e("2001:2::/129"), PrefixLen);
        assert_eq!(e("2001:2::/999"), PrefixLen);
        assert_eq!(e("198.18.0.1/15"), HostBits(c("198.18.0.0/15")));
        assert_eq!(
            e("198.18.0.1/15").to_string(),
            "address has bits set past the prefix length; did you mean 198.18.0.0/15?"
        );
        assert_eq!(e("2001:2::1/48"), HostBits(c("2001:2::/48")));
        assert_eq!(e("224.0.0.0/4"), Multicast);
        assert_eq!(e("ff02::/16"), Multicast);
    }

    #[test]
    fn contains_edges() {
        let Cidr::V4(r) = c("198.18.0.0/15") else {
            unreachable!()
        };
        assert!(r.contains([198, 18, 0, 0]));
        assert!(r.contains([198, 19, 255, 255]));
        assert!(!r.contains([198, 17, 255, 255]));
        assert!(!r.contains([198, 20, 0, 0]));
        assert_eq!(r.broadcast(), Some([198, 19, 255, 255]));
        let Cidr::V4(all) = c("0.0.0.0/0") else {
            unreachable!()
        };
        assert!(all.contains([1, 2, 3, 4]));
        let Cidr::V4(p31) = c("198.18.0.0/31") else {
            unreachable!()
        };
        assert_eq!(p31.broadcast(), None);
        let Cidr::V6(r6) = c("2001:2::/48") else {
            unreachable!()
        };
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap().octets();
        assert!(r6.contains(&ip("2001:2::1")));
        assert!(r6.contains(&ip("2001:2:0:ffff:ffff:ffff:ffff:ffff")));
        assert!(!r6.contains(&ip("2001:2:1::")));
        assert!(!r6.contains(&ip("2001:3::")));
        let Cidr::V6(h) = c("2001:2::7") else {
            unreachable!()
        };
        assert!(h.contains(&ip("2001:2::7")) && !h.contains(&ip("2001:2::6")));
    }

    #[test]
    fn ranges_classify() {
        let r: Ranges = [c("198.18.0.0/24"), c("198.18.0.0/15"), c("2001:2::/48")]
            .into_iter()
            .collect();
        assert_eq!(r.match_v4([198, 18, 0, 9]), V4Match::Host);
        // Broadcast of the /24 inside the /15: still a broadcast address.
        assert_eq!(r.match_v4([198, 18, 0, 255]), V4Match::Broadcast);
        assert_eq!(r.match_v4([198, 19, 255, 255]), V4Match::Broadcast);
        assert_eq!(r.match_v4([198, 19, 255, 254]), V4Match::Host);
        assert_eq!(r.match_v4([10, 0, 0, 1]), V4Match::Outside);
        assert!(r.contains_v6(&"2001:2::99".parse::<Ipv6Addr>().unwrap().octets()));
        assert!(!r.contains_v6(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()));
        assert!(!r.is_empty() && Ranges::new().is_empty());
        let mut r = r;
        r.exclude("198.18.0.9".parse().unwrap());
        r.exclude("2001:2::99".parse().unwrap());
        assert_eq!(r.match_v4([198, 18, 0, 9]), V4Match::Outside);
        assert_eq!(r.match_v4([198, 18, 0, 8]), V4Match::Host);
        assert!(!r.contains_v6(&"2001:2::99".parse::<Ipv6Addr>().unwrap().octets()));
        assert!(r.contains_v6(&"2001:2::98".parse::<Ipv6Addr>().unwrap().octets()));
        assert!(r.covers("198.18.0.9".parse().unwrap()));
        assert!(!r.covers("10.0.0.1".parse().unwrap()));
        assert_eq!((r.v4().len(), r.v6().len()), (2, 1));
    }
}
