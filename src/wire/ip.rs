//! IPv4/IPv6 views and the reflector's transform: swap source and destination in
//! place. The transport checksums need no change, because the pseudo-header sum does
//! not depend on the order of the two addresses; the IPv4 header checksum likewise.
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_HEADER: usize = 20;
const V6_HEADER: usize = 40;
const V4_SRC: core::ops::Range<usize> = 12..16;
const V4_DST: core::ops::Range<usize> = 16..20;
const V6_SRC: core::ops::Range<usize> = 8..24;
const V6_DST: core::ops::Range<usize> = 24..40;

/// Why a packet was not reflected. Each has a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than the smallest header of its version (or empty).
    Truncated,
    /// Neither IPv4 nor IPv6.
    BadVersion,
    /// IPv4 header length field below 5 words or past the end of the packet.
    BadHeader,
    /// The packet's length field disagrees with the size that was read.
    LengthMismatch,
    /// A multicast source or destination (e.g. IPv6 router solicitations to ff02::2).
    Multicast,
    /// The IPv4 limited broadcast address as source or destination.
    Broadcast,
    /// An unspecified (0.0.0.0 / ::) source or destination.
    Unspecified,
    /// TAP: a frame this reflector does not answer (see wire::tap).
    NotForUs,
    /// TUN: the source lies in the device's own prefix but is not one of its own
    /// addresses: on a forwarding box the reflection would be routed back into the
    /// device, again and again (the policy is `crate::reflect::loop_guard`).
    WouldLoop,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadHeader,
        DropReason::LengthMismatch,
        DropReason::Multicast,
        DropReason::Broadcast,
        DropReason::Unspecified,
        DropReason::NotForUs,
        DropReason::WouldLoop,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn index(self) -> usize {
        self as usize
    }

    /// Traffic the kernel sends by itself on any new point-to-point device (IPv6
    /// router solicitations to ff02::2, MLD reports, DHCP broadcasts): expected at
    /// every start, so its drops are logged as information, not as warnings.
    pub fn is_routine(self) -> bool {
        matches!(
            self,
            DropReason::Multicast | DropReason::Broadcast | DropReason::Unspecified
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadVersion => "bad_version",
            DropReason::BadHeader => "bad_header",
            DropReason::LengthMismatch => "length_mismatch",
            DropReason::Multicast => "multicast",
            DropReason::Broadcast => "broadcast",
            DropReason::Unspecified => "unspecified",
            DropReason::NotForUs => "not_for_us",
            DropReason::WouldLoop => "would_loop",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated IPv4 or IPv6 packet: the header fits, the version is known and the
/// length field matches the buffer. Accessors after that cannot fail.
#[derive(Debug)]
pub enum IpPacket<'a> {
    V4(&'a mut [u8]),
    V6(&'a mut [u8]),
}

fn v4_check(addr: Ipv4Addr) -> Result<(), DropReason> {
    if addr.is_multicast() {
        Err(DropReason::Multicast)
    } else if addr.is_broadcast() {
        Err(DropReason::Broadcast)
    } else if addr.is_unspecified() {
        Err(DropReason::Unspecified)
    } else {
        Ok(())
    }
}

fn v6_check(addr: Ipv6Addr) -> Result<(), DropReason> {
    if addr.is_multicast() {
        Err(DropReason::Multicast)
    } else if addr.is_unspecified() {
        Err(DropReason::Unspecified)
    } else {
        Ok(())
    }
}

fn v4_at(p: &[u8], r: core::ops::Range<usize>) -> Ipv4Addr {
    let mut a = [0u8; 4];
    a.copy_from_slice(&p[r]);
    Ipv4Addr::from(a)
}

fn v6_at(p: &[u8], r: core::ops::Range<usize>) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&p[r]);
    Ipv6Addr::from(a)
}

impl<'a> IpPacket<'a> {
    /// Checks the header once. Does not judge the addresses (see [`reflect`]).
    pub fn new_checked(p: &'a mut [u8]) -> Result<IpPacket<'a>, DropReason> {
        let Some(&first) = p.first() else {
            return Err(DropReason::Truncated);
        };
        match first >> 4 {
            4 => {
                if p.len() < V4_HEADER {
                    return Err(DropReason::Truncated);
                }
                let ihl = usize::from(first & 0x0f) * 4;
                if ihl < V4_HEADER || ihl > p.len() {
                    return Err(DropReason::BadHeader);
                }
                let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
                if total != p.len() {
                    return Err(DropReason::LengthMismatch);
                }
                Ok(IpPacket::V4(p))
            }
            6 => {
                if p.len() < V6_HEADER {
                    return Err(DropReason::Truncated);
                }
                let payload = usize::from(u16::from_be_bytes([p[4], p[5]]));
                if payload + V6_HEADER != p.len() {
                    return Err(DropReason::LengthMismatch);
                }
                Ok(IpPacket::V6(p))
            }
            _ => Err(DropReason::BadVersion),
        }
    }

    pub fn src(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(v4_at(p, V4_SRC)),
            IpPacket::V6(p) => IpAddr::V6(v6_at(p, V6_SRC)),
        }
    }

    pub fn dst(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(v4_at(p, V4_DST)),
            IpPacket::V6(p) => IpAddr::V6(v6_at(p, V6_DST)),
        }
    }

    /// Both addresses must be unicast and specified, since each becomes a destination.
    pub fn check_unicast(&self) -> Result<(), DropReason> {
        match self {
            IpPacket::V4(p) => {
                v4_check(v4_at(p, V4_DST))?;
                v4_check(v4_at(p, V4_SRC))
            }
            IpPacket::V6(p) => {
                v6_check(v6_at(p, V6_DST))?;
                v6_check(v6_at(p, V6_SRC))
            }
        }
    }

    /// Swaps source and destination in place.
    pub fn swap_addresses(&mut self) {
        match self {
            IpPacket::V4(p) => swap_ranges(p, V4_SRC.start, V4_DST.start, 4),
            IpPacket::V6(p) => swap_ranges(p, V6_SRC.start, V6_DST.start, 16),
        }
    }
}

fn swap_ranges(p: &mut [u8], a: usize, b: usize, n: usize) {
    let (head, tail) = p.split_at_mut(b);
    head[a..a + n].swap_with_slice(&mut tail[..n]);
}

/// The Internet checksum (RFC 1071) of `data`: ones' complement of the ones'
/// complement sum of its 16-bit big-endian words (an odd last byte padded with zero).
/// Over data that already holds a correct checksum field it gives 0.
pub fn checksum(data: &[u8]) -> u16 {
    super::icmp::finish(super::icmp::sum(data))
}

/// The TUN reflector's transform: validates `p` and swaps its addresses in place.
pub fn reflect(p: &mut [u8]) -> Result<(), DropReason> {
    let mut pkt = IpPacket::new_checked(p)?;
    pkt.check_unicast()?;
    pkt.swap_addresses();
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn checksum_known_values() {
        // RFC 1071 example words 0001 f203 f4f5 f6f7 sum to ddf2 (complement 220d)
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(checksum(&[0xff]), !0xff00);
        assert_eq!(checksum(&[]), 0xffff);
    }

    /// An IPv4 ICMP echo request 198.18.0.1 -> 198.18.0.41 with a correct checksum.
    pub fn v4_echo() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 18, 0, 41, 8, 0,
            0, 0, 0xab, 0xcd, 0, 1,
        ];
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let c = checksum(&p[20..]);
        p[22..24].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// IPv6 UDP 2001:2::1 -> 2001:2::41, 4 bytes of payload.
    pub fn v6_udp() -> Vec<u8> {
        let mut p = vec![0u8; 40 + 12];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&12u16.to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        p[8..24].copy_from_slice(&"2001:2::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"2001:2::41".parse::<Ipv6Addr>().unwrap().octets());
        p[40..42].copy_from_slice(&5000u16.to_be_bytes());
        p[42..44].copy_from_slice(&7u16.to_be_bytes());
        p[44..46].copy_from_slice(&12u16.to_be_bytes());
        p[48..52].copy_from_slice(b"ping");
        p
    }

    #[test]
    fn v4_reflected_and_checksum_still_valid() {
        let mut p = v4_echo();
        reflect(&mut p).unwrap();
        assert_eq!(&p[12..16], &[198, 18, 0, 41]);
        assert_eq!(&p[16..20], &[198, 18, 0, 1]);
        assert_eq!(
            checksum(&p[..20]),
            0,
            "IPv4 header checksum unchanged and valid"
        );
        assert_eq!(checksum(&p[20..]), 0);
        // reflecting twice gives the original back
        reflect(&mut p).unwrap();
        assert_eq!(p, v4_echo());
    }

    #[test]
    fn v6_reflected() {
        let mut p = v6_udp();
        reflect(&mut p).unwrap();
        let pkt = IpPacket::new_checked(&mut p).unwrap();
        assert_eq!(pkt.src(), "2001:2::41".parse::<IpAddr>().unwrap());
        assert_eq!(pkt.dst(), "2001:2::1".parse::<IpAddr>().unwrap());
        assert_eq!(&p[40..], &v6_udp()[40..], "payload untouched");
    }

    #[test]
    fn v4_with_options_reflected() {
        let mut p = vec![0u8; 24 + 8];
        p[0] = 0x46;
        p[2..4].copy_from_slice(&32u16.to_be_bytes());
        p[12..16].copy_from_slice(&[198, 18, 0, 1]);
        p[16..20].copy_from_slice(&[198, 18, 3, 3]);
        reflect(&mut p).unwrap();
        assert_eq!(&p[12..16], &[198, 18, 3, 3]);
    }

    #[test]
    fn every_drop_reason() {
        let cases: Vec<(Vec<u8>, DropReason)> = vec![
            (vec![], DropReason::Truncated),
            (v4_echo()[..19].to_vec(), DropReason::Truncated),
            (v6_udp()[..39].to_vec(), DropReason::Truncated),
            (
                {
                    let mut p = v4_echo();
                    p[0] = 0x55;
                    p
                },
                DropReason::BadVersion,
            ),
            (vec![0u8; 60], DropReason::BadVersion),
            (
                {
                    let mut p = v4_echo();
                    p[0] = 0x44;
                    p
                },
                DropReason::BadHeader,
            ),
            (
                {
                    let mut p = v4_echo();
                    p[0] = 0x4f;
                    p
                },
                DropReason::BadHeader,
            ),
            (
                {
                    let mut p = v4_echo();
                    p.push(0);
                    p
                },
                DropReason::LengthMismatch,
            ),
            (
                {
                    let mut p = v4_echo();
                    p[3] = 200;
                    p
                },
                DropReason::LengthMismatch,
            ),
            (
                {
                    let mut p = v6_udp();
                    p[5] = 0;
                    p
                },
                DropReason::LengthMismatch,
            ),
            (
                {
                    let mut p = v6_udp();
                    p.truncate(50);
                    p
                },
                DropReason::LengthMismatch,
            ),
            (
                {
                    let mut p = v4_echo();
                    p[16..20].copy_from_slice(&[224, 0, 0, 1]);
                    p
                },
                DropReason::Multicast,
            ),
            (
                {
                    let mut p = v4_echo();
                    p[12..16].copy_from_slice(&[239, 1, 1, 1]);
                    p
                },
                DropReason::Multicast,
            ),
            (
                {
                    let mut p = v4_echo();
                    p[16..20].copy_from_slice(&[255; 4]);
                    p
                },
                DropReason::Broadcast,
            ),
            (
                {
                    let mut p = v4_echo();
                    p[12..16].copy_from_slice(&[0; 4]);
                    p
                },
                DropReason::Unspecified,
            ),
            (
                {
                    let mut p = v6_udp();
                    p[24] = 0xff;
                    p[25] = 0x02;
                    p
                },
                DropReason::Multicast,
            ),
            (
                {
                    let mut p = v6_udp();
                    p[8..24].fill(0);
                    p
                },
                DropReason::Unspecified,
            ),
        ];
        for (i, (mut p, want)) in cases.into_iter().enumerate() {
            let before = p.clone();
            assert_eq!(reflect(&mut p), Err(want), "case {i}");
            assert_eq!(p, before, "case {i}: a dropped packet is not modified");
        }
    }

    #[test]
    fn router_solicitation_dropped() {
        // :: -> ff02::2, ICMPv6 type 133, as the kernel sends when a tun comes up.
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&8u16.to_be_bytes());
        p[6] = 58;
        p[24..40].copy_from_slice(&"ff02::2".parse::<Ipv6Addr>().unwrap().octets());
        p[40] = 133;
        assert_eq!(reflect(&mut p), Err(DropReason::Multicast));
    }

    #[test]
    fn every_length_of_garbage_gives_the_right_reason_and_stays_unchanged() {
        use DropReason::*;
        for len in 0..128 {
            for fill in [0u8, 0x45, 0x60, 0xff] {
                let mut p = vec![fill; len];
                let want = match (fill, len) {
                    (_, 0) => Truncated,
                    (0 | 0xff, _) => BadVersion,
                    (0x45, 0..20) | (0x60, 0..40) => Truncated,
                    // total length 0x4545 / payload length 0x6060: never what was read
                    _ => LengthMismatch,
                };
                assert_eq!(reflect(&mut p), Err(want), "fill {fill:#x} len {len}");
                assert!(
                    p.iter().all(|b| *b == fill),
                    "a dropped packet is left as it was"
                );
            }
            for (orig, min) in [(v4_echo(), 20), (v6_udp(), 40)] {
                let mut p = orig.clone();
                p.resize(len, 0);
                let before = p.clone();
                let r = reflect(&mut p);
                if len == orig.len() {
                    assert_eq!(r, Ok(()));
                    let mut back = p.clone();
                    assert_eq!(reflect(&mut back), Ok(()));
                    assert_eq!(back, orig, "reflecting twice gives the packet back");
                    assert_ne!(p, orig, "the addresses were swapped");
                } else {
                    let want = if len == 0 || len < min {
                        Truncated
                    } else {
                        LengthMismatch
                    };
                    assert_eq!(r, Err(want), "len {len} of {}", orig.len());
                    assert_eq!(p, before, "a dropped packet is left as it was");
                }
            }
        }
    }

    #[test]
    fn reason_indices_are_dense() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
