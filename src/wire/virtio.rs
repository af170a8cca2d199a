//! The `virtio_net_hdr` a TUN/TAP device puts before every packet once it is opened with
//! IFF_VNET_HDR (Linux include/uapi/linux/virtio_net.h). With offloads on (TUNSETOFFLOAD)
//! one read can return a TCP (or UDP) *super-packet* of up to 64 KiB whose segmentation
//! is left to whoever sends it on (`gso_type`, `gso_size`) and whose transport checksum
//! holds only the pseudo-header sum (`flags` NEEDS_CSUM, `csum_start`, `csum_offset`).
//!
//! The fields are in the device's byte order, which is the host's unless TUNSETVNETLE/BE
//! was used (tunbox never does): read here with native endianness. A reflector writes a
//! header back exactly as read, so it never needs to convert them.

/// Size of the header (the legacy `virtio_net_hdr`, set with TUNSETVNETHDRSZ).
pub const HDR_LEN: usize = 10;

/// `flags`: the transport checksum is partial; the sender completes it.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum was already verified.
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values (without the ECN bit).
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: the TCP super-packet carries ECN CWR.
pub const GSO_ECN: u8 = 0x80;

/// A read-only view of the header at the start of a buffer.
#[derive(Clone, Copy, Debug)]
pub struct VirtioNetHdr<'a>(&'a [u8; HDR_LEN]);

impl<'a> VirtioNetHdr<'a> {
    /// The header at the start of `buf`, or `None` when `buf` is shorter than one.
    pub fn new_checked(buf: &'a [u8]) -> Option<Self> {
        buf.first_chunk::<HDR_LEN>().map(VirtioNetHdr)
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_ne_bytes([self.0[at], self.0[at + 1]])
    }

    pub fn flags(&self) -> u8 {
        self.0[0]
    }

    /// The segmentation type without the ECN bit ([`GSO_NONE`] for an ordinary packet).
    pub fn gso_type(&self) -> u8 {
        self.0[1] & !GSO_ECN
    }

    /// A super-packet the kernel left unsegmented (TSO/USO).
    pub fn is_gso(&self) -> bool {
        self.gso_type() != GSO_NONE
    }

    /// Length of the headers (IP + transport) in front of each segment's payload.
    pub fn hdr_len(&self) -> u16 {
        self.u16_at(2)
    }

    /// Payload bytes per segment.
    pub fn gso_size(&self) -> u16 {
        self.u16_at(4)
    }

    /// Where checksumming starts, from the start of the packet (after this header).
    pub fn csum_start(&self) -> u16 {
        self.u16_at(6)
    }

    /// Where the checksum goes, from `csum_start`.
    pub fn csum_offset(&self) -> u16 {
        self.u16_at(8)
    }
}

/// Writes a header meaning "an ordinary packet, checksums complete" (all zero).
pub fn write_plain(buf: &mut [u8]) {
    if let Some(h) = buf.first_chunk_mut::<HDR_LEN>() {
        *h = [0; HDR_LEN];
    }
}

/// A header with the given fields (in native order, as [`VirtioNetHdr`] reads them).
pub fn header(
    flags: u8,
    gso_type: u8,
    hdr_len: u16,
    gso_size: u16,
    csum_start: u16,
    csum_offset: u16,
) -> [u8; HDR_LEN] {
    let mut h = [0u8; HDR_LEN];
    h[0] = flags;
    h[1] = gso_type;
    h[2..4].copy_from_slice(&hdr_len.to_ne_bytes());
    h[4..6].copy_from_slice(&gso_size.to_ne_bytes());
    h[6..8].copy_from_slice(&csum_start.to_ne_bytes());
    h[8..10].copy_from_slice(&csum_offset.to_ne_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_native_order() {
        let mut b = [0u8; 12];
        b[0] = F_NEEDS_CSUM;
        b[1] = GSO_TCPV4 | GSO_ECN;
        b[2..4].copy_from_slice(&52u16.to_ne_bytes());
        b[4..6].copy_from_slice(&1448u16.to_ne_bytes());
        b[6..8].copy_from_slice(&20u16.to_ne_bytes());
        b[8..10].copy_from_slice(&16u16.to_ne_bytes());
        let h = VirtioNetHdr::new_checked(&b).unwrap();
        assert_eq!(h.flags(), F_NEEDS_CSUM);
        assert_eq!(h.gso_type(), GSO_TCPV4);
        assert!(h.is_gso());
        assert_eq!(
            (h.hdr_len(), h.gso_size(), h.csum_start(), h.csum_offset()),
            (52, 1448, 20, 16)
        );
        assert_eq!(
            header(F_NEEDS_CSUM, GSO_TCPV4 | GSO_ECN, 52, 1448, 20, 16),
            b[..HDR_LEN]
        );
        write_plain(&mut b);
        let h = VirtioNetHdr::new_checked(&b).unwrap();
        assert!(!h.is_gso());
        assert_eq!(h.flags(), 0);
    }

    #[test]
    fn short_buffer_has_no_header() {
        assert!(VirtioNetHdr::new_checked(&[0u8; 9]).is_none());
        assert!(VirtioNetHdr::new_checked(&[]).is_none());
        let mut short = [7u8; 3];
        write_plain(&mut short);
        assert_eq!(short, [7; 3], "too short to hold a header: left alone");
    }
}
