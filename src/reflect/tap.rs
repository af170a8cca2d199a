//! The TAP reflector: [`wire::tap::transform`] in the reflector loop, with counters per
//! reply kind and per drop reason, and the default MAC address.
use super::{ReflectOptions, Reflector};
use crate::sys::netlink::Rtnl;
use crate::sys::SysError;
use crate::wire::cidr::Ranges;
use crate::wire::ethernet::MacAddr;
use crate::wire::ip;
use crate::wire::tap::{self, Action, DropReason, Reply, TapConfig};
use log::{info, warn};
use std::fmt::Write as _;
use std::net::IpAddr;

/// A TAP reflector's counters: frames answered per reply kind, frames not answered per
/// precise reason. Plain integers, summed across threads like [`super::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapCounts {
    pub replies: [u64; Reply::ALL.len()],
    pub drops: [u64; DropReason::COUNT],
}

impl TapCounts {
    pub fn add(&mut self, o: &TapCounts) {
        for (a, b) in self.replies.iter_mut().zip(o.replies) {
            *a += b;
        }
        for (a, b) in self.drops.iter_mut().zip(o.drops) {
            *a += b;
        }
    }

    /// `replies arp_reply N, ... ; ignored not_our_mac N, ...` (only non-zero counters).
    pub fn summary(&self) -> heapless::String<480> {
        let mut s = heapless::String::new();
        let _ = s.push_str("replies");
        for r in Reply::ALL {
            let _ = write!(s, " {} {}", r, self.replies[r.index()]);
        }
        let mut first = true;
        for r in DropReason::ALL {
            let n = self.drops[r.index()];
            if n > 0 {
                let _ = write!(s, "{}{} {}", if first { "; ignored " } else { ", " }, r, n);
                first = false;
            }
        }
        s
    }
}

/// Answers ARP/ND and reflects frames for the configured ranges.
pub struct TapReflector {
    cfg: TapConfig,
    counts: TapCounts,
}

impl TapReflector {
    pub fn new(cfg: TapConfig) -> TapReflector {
        TapReflector {
            cfg,
            counts: TapCounts::default(),
        }
    }

    pub fn config(&self) -> &TapConfig {
        &self.cfg
    }

    pub fn reply_count(&self, r: Reply) -> u64 {
        self.counts.replies[r.index()]
    }

    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.counts.drops[r.index()]
    }

    pub fn summary(&self) -> heapless::String<480> {
        self.counts.summary()
    }
}

/// Maps a TAP drop to the shared counter. Frames that are ordinary traffic on a LAN
/// (broadcasts, other stations' unicast, addresses outside the ranges, other protocols)
/// become `NotForUs`, which the loop counts without a warning; malformed ones keep a
/// reason that is warned about (rate-limited).
pub fn shared_reason(r: DropReason) -> ip::DropReason {
    match r {
        DropReason::Truncated => ip::DropReason::Truncated,
        DropReason::BadHeader
        | DropReason::NdpInvalid
        | DropReason::BadChecksum
        | DropReason::NoRoom => ip::DropReason::BadHeader,
        DropReason::BadSource => ip::DropReason::Unspecified,
        DropReason::Vlan
        | DropReason::UnknownEthertype
        | DropReason::SourceMac
        | DropReason::NotOurMac
        | DropReason::GroupMac
        | DropReason::ArpUnsupported
        | DropReason::ArpNotRequest
        | DropReason::ArpAnnouncement
        | DropReason::NotInRange
        | DropReason::Multicast
        | DropReason::NdpOther => ip::DropReason::NotForUs,
    }
}

impl Reflector for TapReflector {
    fn process(&mut self, buf: &mut [u8], len: usize) -> Result<usize, ip::DropReason> {
        match tap::transform(buf, len, &self.cfg) {
            Action::Send { len, kind } => {
                self.counts.replies[kind.index()] += 1;
                Ok(len)
            }
            Action::Drop(r) => {
                self.counts.drops[r.index()] += 1;
                Err(shared_reason(r))
            }
        }
    }

    fn addrs(&self, buf: &mut [u8]) -> Option<(IpAddr, IpAddr)> {
        tap::frame_addrs(buf)
    }

    fn tap_counts(&self) -> Option<&TapCounts> {
        Some(&self.counts)
    }
}

/// What [`forward_multicast`] found.
#[derive(Debug)]
pub enum BridgePort {
    /// The tap is not a bridge port (yet): only this host reaches the ranges.
    NotBridged,
    /// The port already was, or now is, a permanent multicast router port.
    Forwarding,
    /// The setting could not be written.
    Failed(std::io::Error),
}

/// Makes the tap's bridge port a permanent multicast router port (`multicast_router` 2),
/// so the bridge hands it every multicast frame. Without this, once an MLD querier is
/// on the LAN the bridge's snooping forwards a neighbour solicitation (sent to the
/// target's solicited-node group) only to ports that joined that group, and the
/// reflector, which joins none, never sees it: IPv6 addresses in the ranges stop
/// resolving. Needs CAP_NET_ADMIN (call before dropping privileges).
pub fn forward_multicast(dev: &str) -> BridgePort {
    let path = format!("/sys/class/net/{dev}/brport/multicast_router");
    match std::fs::read_to_string(&path) {
        Err(_) => BridgePort::NotBridged,
        Ok(v) if v.trim() == "2" => BridgePort::Forwarding,
        Ok(_) => match std::fs::write(&path, "2") {
            Ok(()) => BridgePort::Forwarding,
            Err(e) => BridgePort::Failed(e),
        },
    }
}

/// The host's own addresses (every interface in this namespace) that the ranges cover:
/// the reflector must not answer for them, or it would take them over on the LAN.
/// Read with an RTM_GETADDR dump (the same code the bridge uses), not getifaddrs(3),
/// which would link a second netlink client from libc.
pub fn own_addresses_in(ranges: &Ranges) -> Result<Vec<(String, IpAddr)>, SysError> {
    let addrs = Rtnl::new()?.addresses()?;
    Ok(addrs
        .into_iter()
        .filter(|a| ranges.covers(a.addr))
        .map(|a| (link_name(a.index), a.addr))
        .collect())
}

/// The name of link `index`, or `#index` if it is gone.
fn link_name(index: u32) -> String {
    crate::sys::net::link_name(index).unwrap_or_else(|| format!("#{index}"))
}

/// Everything a TAP reflector does before the loop, while it still has CAP_NET_ADMIN:
/// picks the MAC, logs what it answers for, makes its bridge port forward multicast and
/// excludes the host's own addresses from the ranges (returned too, for `tunbox status`).
pub fn setup(o: &ReflectOptions, dev: &str) -> (TapReflector, Vec<IpAddr>) {
    let mac = o.mac.unwrap_or_else(|| default_mac(dev));
    let mut desc = String::new();
    for r in &o.ranges {
        let _ = write!(desc, " {r}");
    }
    info!(
        "answering for{desc} as {mac}{}{}",
        if o.mac.is_none() {
            " (derived from host and device; --mac to choose)"
        } else {
            ""
        },
        if o.icmp_echo {
            ", echo requests answered directly"
        } else {
            ""
        }
    );
    match forward_multicast(dev) {
        BridgePort::Forwarding => {}
        BridgePort::NotBridged => info!(
            "{dev} is in no bridge: the ranges are reachable from this host only \
             (`tunbox bridge up` joins it to eth0)"
        ),
        BridgePort::Failed(e) => warn!(
            "{dev}: could not make the bridge port forward all multicast ({e}): \
             IPv6 neighbour solicitations may not reach the reflector where MLD snooping is active"
        ),
    }
    let mut ranges: Ranges = o.ranges.iter().copied().collect();
    let mut excluded = Vec::new();
    match own_addresses_in(&ranges) {
        Ok(own) => {
            for (ifname, ip) in own {
                warn!("{ip} on {ifname} is inside a range: not answered for (this host owns it)");
                ranges.exclude(ip);
                excluded.push(ip);
            }
        }
        Err(e) => warn!(
            "cannot list this host's addresses ({e}): if one is inside a range, \
             the reflector answers for it too"
        ),
    }
    let refl = TapReflector::new(TapConfig {
        mac,
        ranges,
        icmp_echo: o.icmp_echo,
    });
    (refl, excluded)
}

/// The reflector's MAC when none is configured: derived from /etc/machine-id (where
/// there is one), the host name and the device name, so it is the same after every
/// restart and differs between boxes and between reflectors on one box.
pub fn default_mac(dev: &str) -> MacAddr {
    let mut seed = Vec::new();
    for f in ["/etc/machine-id", "/proc/sys/kernel/hostname"] {
        if let Ok(s) = std::fs::read_to_string(f) {
            seed.extend_from_slice(s.trim().as_bytes());
        }
        seed.push(0);
    }
    seed.extend_from_slice(dev.as_bytes());
    MacAddr::derived(&seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::cidr::Cidr;

    #[test]
    fn counts_and_maps() {
        let cfg = TapConfig {
            mac: MacAddr([2, 0, 0, 0, 0, 0xbb]),
            ranges: ["198.18.0.0/24".parse::<Cidr>().unwrap()]
                .into_iter()
                .collect(),
            icmp_echo: false,
        };
        let mut t = TapReflector::new(cfg);
        // An ARP request for 198.18.0.2 from 02:..:aa, then the same for 10.0.0.2.
        let mut req = vec![0xffu8; 6];
        req.extend_from_slice(&[2, 0, 0, 0, 0, 0xaa, 8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        req.extend_from_slice(&[2, 0, 0, 0, 0, 0xaa, 198, 18, 0, 1, 0, 0, 0, 0, 0, 0]);
        req.extend_from_slice(&[198, 18, 0, 2]);
        let mut buf = [0u8; 2048];
        buf[..42].copy_from_slice(&req);
        assert_eq!(t.process(&mut buf, 42), Ok(42));
        req[41] = 9;
        req[38] = 10;
        buf[..42].copy_from_slice(&req);
        assert_eq!(t.process(&mut buf, 42), Err(ip::DropReason::NotForUs));
        assert_eq!(t.process(&mut buf, 10), Err(ip::DropReason::Truncated));
        assert_eq!(t.reply_count(Reply::Arp), 1);
        assert_eq!(t.drop_count(DropReason::NotInRange), 1);
        assert_eq!(t.drop_count(DropReason::Truncated), 1);
        assert_eq!(
            t.summary().as_str(),
            "replies arp_reply 1 neighbor_advert 0 reflected 0 echo_reply 0; \
             ignored truncated 1, not_in_range 1"
        );
    }

    #[test]
    fn every_reason_maps() {
        // Malformed input is warned about; LAN chatter is not.
        for r in DropReason::ALL {
            let quiet = shared_reason(r) == ip::DropReason::NotForUs;
            let malformed = matches!(
                r,
                DropReason::Truncated
                    | DropReason::BadHeader
                    | DropReason::NdpInvalid
                    | DropReason::BadChecksum
                    | DropReason::NoRoom
                    | DropReason::BadSource
            );
            assert_eq!(quiet, !malformed, "{r}");
        }
    }

    #[test]
    fn default_mac_is_stable_local_unicast() {
        let a = default_mac("tap0");
        assert_eq!(a, default_mac("tap0"));
        assert_ne!(a, default_mac("tap1"));
        assert!(a.is_local() && !a.is_group());
    }
}
