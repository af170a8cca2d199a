//! ARP for IPv4 over Ethernet (RFC 826), as a view over a buffer.
use super::ethernet::{mac_at, MacAddr, Truncated};

pub const HTYPE_ETHERNET: u16 = 1;
pub const PTYPE_IPV4: u16 = 0x0800;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// An ARP packet. Only the Ethernet/IPv4 layout (28 bytes) is supported: `new_checked`
/// requires 28 bytes; `is_ethernet_ipv4` tells whether the header says that layout.
#[derive(Debug)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        if buffer.as_ref().len() < Self::LEN {
            return Err(Truncated);
        }
        Ok(ArpPacket { buffer })
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn ip_at(&self, at: usize) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[at], b[at + 1], b[at + 2], b[at + 3]]
    }

    pub fn htype(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }

    pub fn ptype(&self) -> u16 {
        self.u16_at(field::PTYPE)
    }

    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Hardware Ethernet (1), protocol IPv4, address lengths 6 and 4.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.htype() == HTYPE_ETHERNET
            && self.ptype() == PTYPE_IPV4
            && self.hlen() == 6
            && self.plen() == 4
    }

    pub fn operation(&self) -> u16 {
        self.u16_at(field::OPER)
    }

    /// Sender hardware address.
    pub fn sha(&self) -> MacAddr {
        MacAddr(mac_at(self.buffer.as_ref(), field::SHA))
    }

    /// Sender protocol (IPv4) address.
    pub fn spa(&self) -> [u8; 4] {
        self.ip_at(field::SPA)
    }

    /// Target hardware address.
    pub fn tha(&self) -> MacAddr {
        MacAddr(mac_at(self.buffer.as_ref(), field::THA))
    }

    /// Target protocol (IPv4) address.
    pub fn tpa(&self) -> [u8; 4] {
        self.ip_at(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_operation(&mut self, op: u16) {
        self.buffer.as_mut()[field::OPER..field::OPER + 2].copy_from_slice(&op.to_be_bytes());
    }

    pub fn set_sha(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&mac.0);
    }

    pub fn set_spa(&mut self, ip: [u8; 4]) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&ip);
    }

    pub fn set_tha(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&mac.0);
    }

    pub fn set_tpa(&mut self, ip: [u8; 4]) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&ip);
    }

    /// Turns this request into the reply that `mac` owns the requested address: the
    /// requester becomes the target, (`mac`, requested address) the sender.
    pub fn make_reply(&mut self, mac: MacAddr) {
        let (sha, spa, tpa) = (self.sha(), self.spa(), self.tpa());
        self.set_operation(OP_REPLY);
        self.set_sha(mac);
        self.set_spa(tpa);
        self.set_tha(sha);
        self.set_tpa(spa);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Linux (veth, `ping 198.18.0.2` from 198.18.0.1 at 02:00:00:00:00:aa),
    // Ethernet header removed.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xc6,
        0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x12, 0x00, 0x02,
    ];
    // The kernel's reply from 02:00:00:00:00:bb owning 198.18.0.2.
    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xbb, 0xc6,
        0x12, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0xaa, 0xc6, 0x12, 0x00, 0x01,
    ];

    #[test]
    fn accessors() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert!(p.is_ethernet_ipv4());
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sha(), MacAddr([2, 0, 0, 0, 0, 0xaa]));
        assert_eq!(p.spa(), [198, 18, 0, 1]);
        assert_eq!(p.tha(), MacAddr([0; 6]));
        assert_eq!(p.tpa(), [198, 18, 0, 2]);
    }

    #[test]
    fn reply_matches_kernel() {
        let mut b = REQUEST;
        let mut p = ArpPacket::new_checked(&mut b[..]).unwrap();
        p.make_reply(MacAddr([2, 0, 0, 0, 0, 0xbb]));
        assert_eq!(b, REPLY);
    }

    #[test]
    fn truncated_and_other_layouts() {
        for n in 0..28 {
            assert!(ArpPacket::new_checked(&REQUEST[..n]).is_err(), "len {n}");
        }
        let mut b = REQUEST;
        b[5] = 16; // plen 16
        assert!(!ArpPacket::new_checked(&b[..]).unwrap().is_ethernet_ipv4());
        let mut b = REQUEST;
        b[1] = 6; // htype IEEE 802
        assert!(!ArpPacket::new_checked(&b[..]).unwrap().is_ethernet_ipv4());
    }
}
