//! Ethernet II frames and MAC addresses.
//!
//! `EthernetFrame` is a view in the style of smoltcp's `wire` module: `new_checked` validates
//! the length once, the accessors after that index without further checks.
use core::fmt;
use core::str::FromStr;

/// The buffer is shorter than the header (or the length fields) say it must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Broadcast or multicast (the I/G bit is set).
    pub fn is_group(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// A locally administered address (the U/L bit is set).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// A stable locally administered unicast address derived from `seed` (for example the
    /// host name and device name): FNV-1a 64 over the seed, low 48 bits, U/L bit set, I/G bit
    /// cleared. The same seed always gives the same address, so a reflector keeps its MAC
    /// across restarts and the LAN's neighbour caches stay valid.
    pub fn derived(seed: &[u8]) -> MacAddr {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in seed {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        MacAddr([(b[2] & 0xfc) | 0x02, b[3], b[4], b[5], b[6], b[7]])
    }

    /// The Ethernet multicast address an IPv6 multicast address maps to (RFC 2464 §7):
    /// 33:33 followed by the last four bytes.
    pub fn ipv6_multicast(ip: &[u8; 16]) -> MacAddr {
        MacAddr([0x33, 0x33, ip[12], ip[13], ip[14], ip[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a MAC address string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MacParseError {
    /// Not six pairs of hex digits separated by ':' or '-'.
    Syntax,
    /// A broadcast/multicast address cannot be a station's own address.
    Group,
}

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MacParseError::Syntax => {
                f.write_str("not a MAC address (expected six hex pairs, e.g. 02:00:5e:10:00:01)")
            }
            MacParseError::Group => f.write_str(
                "a multicast/broadcast MAC (lowest bit of the first byte set) cannot be used; \
                 use a locally administered unicast address such as 02:xx:xx:xx:xx:xx",
            ),
        }
    }
}

impl std::error::Error for MacParseError {}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case) and rejects group
    /// addresses, which can never be the reflector's own address.
    fn from_str(s: &str) -> Result<MacAddr, MacParseError> {
        let b = s.as_bytes();
        if b.len() != 17 {
            return Err(MacParseError::Syntax);
        }
        let sep = b[2];
        if sep != b':' && sep != b'-' {
            return Err(MacParseError::Syntax);
        }
        let mut out = [0u8; 6];
        for (i, o) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && b[at - 1] != sep {
                return Err(MacParseError::Syntax);
            }
            let hi = hex(b[at]).ok_or(MacParseError::Syntax)?;
            let lo = hex(b[at + 1]).ok_or(MacParseError::Syntax)?;
            *o = hi << 4 | lo;
        }
        let mac = MacAddr(out);
        if mac.is_group() {
            return Err(MacParseError::Group);
        }
        Ok(mac)
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// EtherType values this crate looks at.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ tag still used by some switches.
    pub const QINQ_OLD: u16 = 0x9100;

    /// Any of the VLAN tag protocol identifiers.
    pub fn is_vlan(t: u16) -> bool {
        t == VLAN || t == QINQ || t == QINQ_OLD
    }
}

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// An Ethernet II frame (no FCS, as a tap device delivers it).
#[derive(Debug)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = 14;

    /// Wraps `buffer` after checking it holds at least the 14-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst(&self) -> MacAddr {
        MacAddr(mac_at(self.buffer.as_ref(), field::DST.start))
    }

    pub fn src(&self) -> MacAddr {
        MacAddr(mac_at(self.buffer.as_ref(), field::SRC.start))
    }

    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac.0);
    }

    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    pub fn set_ethertype(&mut self, t: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&t.to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[Self::HEADER_LEN..]
    }
}

/// Six bytes at `at` (callers have checked the length).
pub(crate) fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[at..at + 6]);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let m: MacAddr = "02:00:5e:10:00:0A".parse().unwrap();
        assert_eq!(m, MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x0a]));
        assert_eq!(m.to_string(), "02:00:5e:10:00:0a");
        let d: MacAddr = "02-00-5e-10-00-0a".parse().unwrap();
        assert_eq!(d, m);
    }

    #[test]
    fn parse_rejects_garbage() {
        for s in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:0a:",
            "02:00:5e:10:00:0g",
            "02:00-5e:10:00:0a",
            "02.00.5e.10.00.0a",
            "0200:5e:10:00:0a:",
            "02:00:5e:10:00:+a",
            "é2:00:5e:10:00:a",
        ] {
            assert_eq!(s.parse::<MacAddr>(), Err(MacParseError::Syntax), "{s:?}");
        }
        assert_eq!(
            "ff:ff:ff:ff:ff:ff".parse::<MacAddr>(),
            Err(MacParseError::Group)
        );
        assert_eq!(
            "33:33:00:00:00:01".parse::<MacAddr>(),
            Err(MacParseError::Group)
        );
    }

    #[test]
    fn derived_is_stable_local_unicast() {
        let a = MacAddr::derived(b"pi-lab\0tap0");
        assert_eq!(a, MacAddr::derived(b"pi-lab\0tap0"));
        assert_ne!(a, MacAddr::derived(b"pi-lab\0tap1"));
        assert!(a.is_local());
        assert!(!a.is_group());
        // FNV-1a 64 of the empty input is the offset basis 0xcbf29ce484222325:
        // bytes 2..8 are 9c e4 84 22 23 25; 0x9c & 0xfc | 0x02 = 0x9e.
        assert_eq!(
            MacAddr::derived(b""),
            MacAddr([0x9e, 0xe4, 0x84, 0x22, 0x23, 0x25])
        );
        // Many seeds: always local unicast.
        for i in 0u32..2000 {
            let m = MacAddr::derived(&i.to_le_bytes());
            assert!(m.is_local() && !m.is_group(), "{m}");
        }
    }

    #[test]
    fn frame_view() {
        let mut buf = [0u8; 20];
        assert_eq!(
            EthernetFrame::new_checked(&buf[..13]).unwrap_err(),
            Truncated
        );
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst(MacAddr::BROADCAST);
        f.set_src(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(ethertype::ARP);
        f.payload_mut()[0] = 0x42;
        assert!(f.dst().is_broadcast());
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), 0x0806);
        assert_eq!(f.payload().len(), 6);
        assert_eq!(buf[12..15], [0x08, 0x06, 0x42]);
    }

    #[test]
    fn ipv6_multicast_mapping() {
        let ip = "ff02::1:ff00:2".parse::<std::net::Ipv6Addr>().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(&ip.octets()),
            MacAddr([0x33, 0x33, 0xff, 0x00, 0x00, 0x02])
        );
        assert!(ethertype::is_vlan(0x8100) && ethertype::is_vlan(0x88a8));
        assert!(!ethertype::is_vlan(0x0800));
    }
}
