//! Loop guard of the TUN reflector: a reflected packet goes to its original source.
//! On a box that forwards (`ip_forward`/`forwarding` on), a packet whose source lies
//! in the device's own prefix but is not one of the device's addresses is routed
//! straight back into the device after the swap, reflected again, and so on until its
//! TTL runs out (one spoofed packet came back 65 times). Such a packet is dropped with
//! its own counter ([`DropReason::WouldLoop`]); a packet from one of the device's own
//! addresses (the host pinging through it) or from outside the prefixes (routed in
//! from elsewhere, reflected back there) is reflected as before.
//!
//! The prefixes are the `--address` list of `tunbox reflect`. A device configured by
//! someone else (no `--address`) has no prefixes here and no guard: document in the
//! README's reflect section.
use crate::wire::ip::DropReason;
use std::net::IpAddr;

/// The device's own addresses with their prefix lengths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoopGuard {
    own: Vec<(IpAddr, u8)>,
}

fn in_prefix(addr: IpAddr, net: IpAddr, len: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl LoopGuard {
    pub fn new(own: &[(IpAddr, u8)]) -> Self {
        Self { own: own.to_vec() }
    }

    /// Judges a packet before the swap by its source, the destination of the reflection.
    pub fn check(&self, src: IpAddr) -> Result<(), DropReason> {
        let mut in_own_prefix = false;
        for &(addr, len) in &self.own {
            if addr == src {
                return Ok(());
            }
            in_own_prefix |= in_prefix(src, addr, len);
        }
        if in_own_prefix {
            Err(DropReason::WouldLoop)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> LoopGuard {
        LoopGuard::new(&[
            ("198.18.0.1".parse().unwrap(), 24),
            ("2001:2::1".parse().unwrap(), 64),
        ])
    }

    #[test]
    fn own_address_is_reflected() {
        assert_eq!(g().check("198.18.0.1".parse().unwrap()), Ok(()));
        assert_eq!(g().check("2001:2::1".parse().unwrap()), Ok(()));
    }

    #[test]
    fn other_address_of_own_prefix_would_loop() {
        for a in ["198.18.0.2", "198.18.0.255", "2001:2::2", "2001:2::ffff:1"] {
            assert_eq!(
                g().check(a.parse().unwrap()),
                Err(DropReason::WouldLoop),
                "{a}"
            );
        }
    }

    #[test]
    fn outside_the_prefixes_is_reflected() {
        for a in ["198.18.1.1", "198.19.0.2", "2001:2:0:1::2", "10.0.0.1"] {
            assert_eq!(g().check(a.parse().unwrap()), Ok(()), "{a}");
        }
        assert_eq!(
            LoopGuard::default().check("198.18.0.2".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn prefix_edges() {
        let g = LoopGuard::new(&[("198.18.0.1".parse().unwrap(), 32)]);
        assert_eq!(g.check("198.18.0.2".parse().unwrap()), Ok(()));
        let g = LoopGuard::new(&[("198.18.0.1".parse().unwrap(), 0)]);
        assert_eq!(
            g.check("203.0.113.9".parse().unwrap()),
            Err(DropReason::WouldLoop)
        );
        let g = LoopGuard::new(&[("2001:2::1".parse().unwrap(), 128)]);
        assert_eq!(g.check("2001:2::2".parse().unwrap()), Ok(()));
    }
}
