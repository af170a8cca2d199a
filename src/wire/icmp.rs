//! The Internet checksum (RFC 1071) with incremental update (RFC 1624), the IPv6
//! pseudo-header, and ICMP/ICMPv6 echo request → echo reply in place.

pub const ICMPV4_ECHO_REPLY: u8 = 0;
pub const ICMPV4_ECHO_REQUEST: u8 = 8;
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;
pub const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
pub const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;

/// IP protocol / IPv6 next-header numbers.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_ICMPV6: u8 = 58;

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded
/// with zero), not yet folded. Add several with `+` (u32 does not overflow below
/// 128 KiB of input), then `finish`.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds a sum to 16 bits and complements it: the value that goes into a checksum field.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum of `data` (the same function as `wire::ip::checksum`).
pub use super::ip::checksum;

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1) for an upper-layer packet of `len` bytes.
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
    sum(src) + sum(dst) + (len >> 16) + (len & 0xffff) + u32::from(next_header)
}

/// New checksum after one 16-bit word covered by `old_check` changed from `old` to `new`
/// (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')). Correct also where eqn. 2 gives -0.
pub fn update16(old_check: u16, old: u16, new: u16) -> u16 {
    finish(u32::from(!old_check) + u32::from(!old) + u32::from(new))
}

/// Turns the ICMP (v4, `v6 == false`) or ICMPv6 message at the start of `msg` into an echo
/// reply if it is an echo request with code 0, fixing its checksum incrementally; returns
/// whether it did. The checksum is not verified: a corrupt request stays corrupt, and the
/// sender sees the same error it would have seen from a real host dropping it. Swapping
/// the IP source and destination does not change the ICMPv6 pseudo-header sum.
pub fn echo_request_to_reply(msg: &mut [u8], v6: bool) -> bool {
    let (req, rep) = if v6 {
        (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY)
    } else {
        (ICMPV4_ECHO_REQUEST, ICMPV4_ECHO_REPLY)
    };
    // Type, code, checksum, identifier, sequence.
    if msg.len() < 8 || msg[0] != req || msg[1] != 0 {
        return false;
    }
    let old_word = u16::from_be_bytes([msg[0], msg[1]]);
    let new_word = u16::from(rep) << 8;
    let check = u16::from_be_bytes([msg[2], msg[3]]);
    msg[0] = rep;
    let mut new_check = update16(check, old_word, new_word);
    // RFC 1624's update gives +0 (0x0000) where the message it covers is all zeros (an
    // ICMPv4 reply with identifier, sequence and payload 0): that sum is +0, so its
    // checksum is 0xffff. (The ICMPv6 sum includes the pseudo-header: never all zeros.)
    if new_check == 0 && !v6 && msg[4..].iter().all(|&b| b == 0) {
        new_check = 0xffff;
    }
    msg[2..4].copy_from_slice(&new_check.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to 0x2ddf0, folded 0xddf2,
        // checksum = ~0xddf2 = 0x220d.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&d), 0x2ddf0);
        assert_eq!(checksum(&d), 0x220d);
        // Odd length: the last byte is the high half of a word.
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn ipv4_header_checksum_known() {
        // The kernel's echo request header (captured): checksum field 0x62ac.
        let hdr = [
            0x45, 0x00, 0x00, 0x28, 0x4c, 0x01, 0x40, 0x00, 0x40, 0x01, 0x62, 0xac, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x12, 0x00, 0x02,
        ];
        assert_eq!(checksum(&hdr), 0);
        let mut z = hdr;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(checksum(&z), 0x62ac);
    }

    #[test]
    fn an_all_zero_reply_gets_the_checksum_ffff() {
        // found by fuzz/icmp: request 08 00 f7 ff with identifier, sequence and
        // payload 0 is valid; its reply is all zeros but the checksum, which must be
        // 0xffff (RFC 1624's update alone gives 0x0000, which receivers reject).
        let mut m = [8, 0, 0xf7, 0xff, 0, 0, 0, 0, 0, 0];
        assert_eq!(checksum(&m), 0);
        assert!(echo_request_to_reply(&mut m, false));
        assert_eq!(&m[..4], &[0, 0, 0xff, 0xff]);
        assert_eq!(checksum(&m), 0);
    }

    #[test]
    fn update16_matches_full_recompute() {
        // Exhaustive-ish: many random-like messages, every change of the first word.
        let mut seed: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut msg = [0u8; 12];
            for b in msg.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (seed >> 16) as u8;
            }
            msg[2] = 0;
            msg[3] = 0;
            let c = checksum(&msg);
            let old = u16::from_be_bytes([msg[0], msg[1]]);
            let new = (seed >> 8) as u16;
            msg[0..2].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&msg);
            let inc = update16(c, old, new);
            // Both must verify; one's complement has two zeros, so compare by verifying.
            msg[2..4].copy_from_slice(&inc.to_be_bytes());
            assert_eq!(checksum(&msg), 0, "inc {inc:04x} full {full:04x}");
            if full != 0xffff && inc != 0xffff {
                assert_eq!(inc, full);
            }
        }
    }

    #[test]
    fn echo_v4_matches_kernel() {
        // ICMP part of a captured echo request (id 0x208e, seq 1, 12 bytes "ABCD" pattern)
        // and of the kernel's reply.
        let mut req = [
            0x08, 0x00, 0x49, 0xdd, 0x20, 0x8e, 0x00, 0x01, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42,
            0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
        ];
        let rep = [
            0x00, 0x00, 0x51, 0xdd, 0x20, 0x8e, 0x00, 0x01, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42,
            0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
        ];
        assert!(echo_request_to_reply(&mut req, false));
        assert_eq!(req, rep);
        // Already a reply: untouched.
        assert!(!echo_request_to_reply(&mut req, false));
        assert_eq!(req, rep);
    }

    #[test]
    fn echo_v6_matches_kernel() {
        let mut req = [
            0x80, 0x00, 0x91, 0x83, 0x20, 0x90, 0x00, 0x01, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42,
            0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
        ];
        let rep = [
            0x81, 0x00, 0x90, 0x83, 0x20, 0x90, 0x00, 0x01, 0x41, 0x42, 0x43, 0x44, 0x41, 0x42,
            0x43, 0x44, 0x41, 0x42, 0x43, 0x44,
        ];
        // Verify the captured request's checksum with the pseudo-header first.
        let src: [u8; 16] = "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let dst: [u8; 16] = "2001:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(finish(pseudo_v6(&src, &dst, 58, 20) + sum(&req)), 0);
        assert!(echo_request_to_reply(&mut req, true));
        assert_eq!(req, rep);
        // And the reply verifies with the addresses swapped.
        assert_eq!(finish(pseudo_v6(&dst, &src, 58, 20) + sum(&req)), 0);
    }

    #[test]
    fn echo_rejects_short_and_nonzero_code() {
        for n in 0..8 {
            let mut m = [0x08u8, 0, 0, 0, 0, 0, 0, 0];
            assert!(!echo_request_to_reply(&mut m[..n], false), "len {n}");
        }
        let mut m = [0x08u8, 1, 0, 0, 0, 0, 0, 0];
        assert!(!echo_request_to_reply(&mut m, false));
        let mut m = [0x80u8, 0, 0, 0, 0, 0, 0, 0];
        assert!(!echo_request_to_reply(&mut m, false));
        assert!(echo_request_to_reply(&mut m, true));
    }

    #[test]
    fn update16_edge_values() {
        // Checksum 0xffff (a -0 in the field) and changes to/from 0.
        for &(c, o, n) in &[
            (0xffffu16, 0x0800u16, 0x0000u16),
            (0x0000, 0x0000, 0xffff),
            (0x1234, 0xffff, 0x0000),
        ] {
            let r = update16(c, o, n);
            // c verifies data with word o: sum(rest) + o + c == 0xffff (mod one's compl.)
            // Check r verifies data with word n for the same rest.
            let rest = 3 * 0xffffu32 - u32::from(o) - u32::from(c);
            let total = rest + u32::from(n) + u32::from(r);
            assert_eq!(finish(total), 0, "c={c:04x} o={o:04x} n={n:04x} r={r:04x}");
        }
    }
}
