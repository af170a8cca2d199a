//! TUN offloads on any bytes. The input is a list of records `kind, len (u16 LE), bytes`:
//! an even `kind` is a TUN read (virtio header + packet) that is segmented, every segment
//! then pushed into a Coalescer; an odd one is pushed as a packet as is; `kind & 2`
//! flushes after the record. Checked: segments fit `max_len`, have consistent IP lengths
//! and valid checksums and carry the whole payload; the coalescer loses and invents no
//! packet and no byte (its super-packets segmented again give as many packets and bytes
//! as went in), every super-packet is well formed, and plain outputs are inputs unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use tunbox::wire::gso::{Coalescer, Segments, MAX_SUPER};
use tunbox::wire::virtio::{VirtioNetHdr, F_NEEDS_CSUM, HDR_LEN};

fn sum(d: &[u8]) -> u32 {
    d.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// IP header length, transport protocol, version 6? of a packet Segments produced.
fn layout(p: &[u8]) -> (usize, u8, bool) {
    if p[0] >> 4 == 6 {
        (40, p[6], true)
    } else {
        (usize::from(p[0] & 15) * 4, p[9], false)
    }
}

/// The transport checksum of a segment verifies.
fn l4_ok(p: &[u8]) -> bool {
    let (iphl, proto, v6) = layout(p);
    let addrs = if v6 { &p[8..40] } else { &p[12..20] };
    let len = p.len() - iphl;
    fold(
        sum(addrs)
            + u32::from(proto)
            + (len as u32 >> 16)
            + (len as u32 & 0xffff)
            + sum(&p[iphl..]),
    ) == 0xffff
}

/// Segments one read; checks every segment; returns them.
fn segment(read: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut s = Segments::new(read).ok()?;
    let (max, count, gso) = (s.max_len(), s.count(), s.is_gso());
    let mut out = vec![0u8; max];
    let mut segs = Vec::new();
    while let Some(r) = s.next_into(&mut out) {
        let n = r.expect("out has max_len bytes: no error");
        assert!(n <= max);
        segs.push(out[..n].to_vec());
        assert!(segs.len() <= count);
    }
    assert_eq!(segs.len(), count);
    let pkt = &read[HDR_LEN..];
    if gso {
        let (iphl, _, v6) = layout(pkt);
        let h = VirtioNetHdr::new_checked(read).unwrap();
        let mut payload = 0;
        for p in &segs {
            if v6 {
                assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])) + 40, p.len());
            } else {
                assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
                assert_eq!(fold(sum(&p[..iphl])), 0xffff, "IPv4 header checksum");
            }
            assert!(l4_ok(p), "transport checksum");
            let (_, proto, _) = layout(p);
            let hl = if proto == 6 {
                iphl + usize::from(p[iphl + 12] >> 4) * 4
            } else {
                iphl + 8
            };
            assert!(p.len() - hl <= usize::from(h.gso_size()));
            payload += p.len() - hl;
        }
        let (_, proto, _) = layout(pkt);
        let hl = if proto == 6 {
            iphl + usize::from(pkt[iphl + 12] >> 4) * 4
        } else {
            iphl + 8
        };
        assert_eq!(payload, pkt.len() - hl, "the whole payload");
    } else {
        assert_eq!(segs[0].len(), pkt.len());
    }
    Some(segs)
}

fuzz_target!(|data: &[u8]| {
    let mut c = Coalescer::new();
    let mut pushed: Vec<Vec<u8>> = Vec::new();
    let mut emitted: Vec<([u8; HDR_LEN], Vec<u8>)> = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let rec = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let pkts = if kind & 1 == 0 {
            segment(rec).unwrap_or_default()
        } else {
            vec![rec.to_vec()]
        };
        for p in pkts {
            c.push(&p, &mut |h, q| emitted.push((*h, q.to_vec())));
            pushed.push(p);
        }
        if kind & 2 != 0 {
            c.flush(&mut |h, q| emitted.push((*h, q.to_vec())));
        }
    }
    c.flush(&mut |h, q| emitted.push((*h, q.to_vec())));
    assert_eq!(c.held(), 0);
    let inputs: HashSet<&[u8]> = pushed.iter().map(|p| &p[..]).collect();
    let (mut n, mut bytes, mut merged) = (0usize, 0usize, 0u64);
    for (h, p) in &emitted {
        assert!(p.len() <= MAX_SUPER);
        if *h == [0; HDR_LEN] {
            assert!(
                inputs.contains(&p[..]),
                "a plain output is an input unchanged"
            );
            n += 1;
            bytes += p.len();
            continue;
        }
        let v = VirtioNetHdr::new_checked(h).unwrap();
        assert_eq!(v.flags(), F_NEEDS_CSUM);
        let mut read = h.to_vec();
        read.extend_from_slice(p);
        let segs = segment(&read).expect("a super-packet segments");
        assert!(segs.len() >= 2);
        assert_eq!(
            usize::from(v.hdr_len()) + usize::from(v.gso_size()),
            segs[0].len()
        );
        merged += segs.len() as u64;
        n += segs.len();
        bytes += segs.iter().map(Vec::len).sum::<usize>();
    }
    assert_eq!(n, pushed.len(), "no packet lost or invented");
    assert_eq!(
        bytes,
        pushed.iter().map(Vec::len).sum::<usize>(),
        "no byte lost"
    );
    assert_eq!(merged, c.coalesced());
});
