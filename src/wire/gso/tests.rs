use super::*;
use crate::wire::virtio::{F_NEEDS_CSUM, GSO_ECN, GSO_TCPV4, GSO_TCPV6, GSO_UDP, GSO_UDP_L4};

// ---- An independent, deliberately simple checksum (16-bit words, one at a time) ----

fn naive_sum(bytes: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        let hi = u32::from(bytes[i]) << 8;
        let lo = if i + 1 < bytes.len() {
            u32::from(bytes[i + 1])
        } else {
            0
        };
        s += hi | lo;
        i += 2;
    }
    s
}

fn naive_fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The pseudo-header bytes of the transport segment of `ip` (v4 or v6 by its version).
fn pseudo(ip: &[u8], proto: u8, l4_len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    if ip[0] >> 4 == 4 {
        v.extend_from_slice(&ip[12..20]);
        v.extend_from_slice(&[0, proto]);
        v.extend_from_slice(&(l4_len as u16).to_be_bytes());
    } else {
        v.extend_from_slice(&ip[8..40]);
        v.extend_from_slice(&(l4_len as u32).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, proto]);
    }
    v
}

/// The transport checksum of `ip` verifies (sum including the field folds to 0xffff).
fn l4_ok(ip: &[u8], l4: usize, proto: u8) -> bool {
    let mut all = pseudo(ip, proto, ip.len() - l4);
    all.extend_from_slice(&ip[l4..]);
    naive_fold(naive_sum(&all)) == 0xffff
}

fn v4_header_ok(ip: &[u8]) -> bool {
    let ihl = usize::from(ip[0] & 15) * 4;
    naive_fold(naive_sum(&ip[..ihl])) == 0xffff
}

// ---- Packet builders ----

const SRC4: [u8; 4] = [198, 18, 0, 1];
const DST4: [u8; 4] = [198, 18, 0, 2];

fn src6() -> [u8; 16] {
    "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
}
fn dst6() -> [u8; 16] {
    "2001:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets()
}

const ACK: u8 = 0x10;

/// NOP, NOP, timestamps (12 bytes), as Linux sends on an established connection.
fn ts_opts(tsval: u32) -> Vec<u8> {
    let mut o = vec![1, 1, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    o
}

#[derive(Clone)]
struct Seg {
    v6: bool,
    sport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    opts: Vec<u8>,
    id: u16,
    ttl: u8,
    df: bool,
    win: u16,
}

fn seg4() -> Seg {
    Seg {
        v6: false,
        sport: 40000,
        seq: 0xfff0_0000,
        ack: 777,
        flags: ACK,
        opts: ts_opts(1000),
        id: 0xfffe,
        ttl: 64,
        df: true,
        win: 0xfaf0,
    }
}

fn seg6() -> Seg {
    Seg { v6: true, ..seg4() }
}

fn payload(n: usize, start: usize) -> Vec<u8> {
    (start..start + n)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect()
}

/// IP header (+ TCP header with options), lengths for `plen` bytes of payload, TCP
/// checksum field zero; IPv4 header checksum set.
fn headers(s: &Seg, plen: usize) -> Vec<u8> {
    let thl = 20 + s.opts.len();
    let mut p = if s.v6 {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((thl + plen) as u16).to_be_bytes());
        p.extend_from_slice(&[PROTO_TCP, s.ttl]);
        p.extend_from_slice(&src6());
        p.extend_from_slice(&dst6());
        p
    } else {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&((20 + thl + plen) as u16).to_be_bytes());
        p.extend_from_slice(&s.id.to_be_bytes());
        p.extend_from_slice(&[if s.df { 0x40 } else { 0 }, 0, s.ttl, PROTO_TCP, 0, 0]);
        p.extend_from_slice(&SRC4);
        p.extend_from_slice(&DST4);
        let c = !naive_fold(naive_sum(&p));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    };
    p.extend_from_slice(&s.sport.to_be_bytes());
    p.extend_from_slice(&5201u16.to_be_bytes());
    p.extend_from_slice(&s.seq.to_be_bytes());
    p.extend_from_slice(&s.ack.to_be_bytes());
    p.extend_from_slice(&[(thl as u8 / 4) << 4, s.flags]);
    p.extend_from_slice(&s.win.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&s.opts);
    p
}

/// A complete TCP segment with correct checksums.
fn tcp(s: &Seg, data: &[u8]) -> Vec<u8> {
    let mut p = headers(s, data.len());
    p.extend_from_slice(data);
    let l4 = if s.v6 { 40 } else { 20 };
    let mut all = pseudo(&p, PROTO_TCP, p.len() - l4);
    all.extend_from_slice(&p[l4..]);
    let c = !naive_fold(naive_sum(&all));
    p[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    p
}

/// A TUN read of a TSO super-packet: virtio header (NEEDS_CSUM, pseudo-header sum in the
/// TCP checksum field, as the kernel hands it out) + the IP packet.
fn tso_read(s: &Seg, data: &[u8], mss: u16) -> Vec<u8> {
    let mut p = headers(s, data.len());
    p.extend_from_slice(data);
    let l4 = if s.v6 { 40 } else { 20 };
    let partial = naive_fold(naive_sum(&pseudo(&p, PROTO_TCP, p.len() - l4)));
    p[l4 + 16..l4 + 18].copy_from_slice(&partial.to_be_bytes());
    let thl = 20 + s.opts.len();
    let mut t = if s.v6 { GSO_TCPV6 } else { GSO_TCPV4 };
    if s.flags & TCP_CWR != 0 {
        t |= GSO_ECN;
    }
    let mut r = virtio::header(F_NEEDS_CSUM, t, (l4 + thl) as u16, mss, l4 as u16, 16).to_vec();
    r.extend_from_slice(&p);
    r
}

fn segment_all(read: &[u8]) -> Result<Vec<Vec<u8>>, GsoError> {
    let mut s = Segments::new(read)?;
    let mut out = vec![0u8; 70000];
    let mut v = Vec::new();
    while let Some(r) = s.next_into(&mut out) {
        let n = r?;
        v.push(out[..n].to_vec());
    }
    Ok(v)
}

type Emitted = Vec<([u8; HDR_LEN], Vec<u8>)>;

fn run(c: &mut Coalescer, pkts: &[Vec<u8>]) -> Emitted {
    let mut v: Emitted = Vec::new();
    for p in pkts {
        c.push(p, &mut |h, p| v.push((*h, p.to_vec())));
    }
    v
}

fn flush(c: &mut Coalescer) -> Emitted {
    let mut v: Emitted = Vec::new();
    c.flush(&mut |h, p| v.push((*h, p.to_vec())));
    v
}

// ---- Segmentation ----

fn check_tcp_segments(s: &Seg, mss: usize, total: usize) {
    let data = payload(total, 0);
    let read = tso_read(s, &data, mss as u16);
    let segs = segment_all(&read).unwrap();
    let thl = 20 + s.opts.len();
    let iphl = if s.v6 { 40 } else { 20 };
    assert_eq!(segs.len(), total.div_ceil(mss));
    assert_eq!(Segments::new(&read).unwrap().count(), segs.len(), "count()");
    let mut got = Vec::new();
    for (i, p) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let plen = if last { total - mss * i } else { mss };
        assert_eq!(p.len(), iphl + thl + plen, "segment {i} length");
        if s.v6 {
            assert_eq!(usize::from(be16(p, 4)), thl + plen);
            assert_eq!(p[..4], read[HDR_LEN..HDR_LEN + 4]);
            assert_eq!(p[6..40], read[HDR_LEN + 6..HDR_LEN + 40]);
        } else {
            assert_eq!(usize::from(be16(p, 2)), p.len());
            assert_eq!(be16(p, 4), s.id.wrapping_add(i as u16), "IP id counts up");
            assert!(v4_header_ok(p), "segment {i}: IPv4 header checksum");
            assert_eq!(p[8], s.ttl);
            assert_eq!(p[6], if s.df { 0x40 } else { 0 });
        }
        let t = &p[iphl..];
        assert_eq!(
            be32(t, 4),
            s.seq.wrapping_add((mss * i) as u32),
            "segment {i}: seq"
        );
        assert_eq!(be32(t, 8), s.ack);
        let mut want = s.flags;
        if i > 0 {
            want &= !TCP_CWR;
        }
        if !last {
            want &= !(TCP_FIN | TCP_PSH);
        }
        assert_eq!(t[13], want, "segment {i}: flags");
        assert_eq!(t[20..thl], s.opts[..], "options copied");
        assert!(l4_ok(p, iphl, PROTO_TCP), "segment {i}: TCP checksum");
        got.extend_from_slice(&t[thl..]);
    }
    assert_eq!(got, data, "the payload, in order");
}

#[test]
fn tcp_v4_super_packet_with_timestamps() {
    let s = Seg {
        flags: ACK | TCP_PSH | TCP_FIN | TCP_CWR,
        ..seg4()
    };
    // 1500-byte MTU with timestamps: MSS 1448; IP id and seq wrap along the way
    check_tcp_segments(&s, 1448, 20000);
    check_tcp_segments(&seg4(), 1448, 1448 * 3);
    check_tcp_segments(&seg4(), 1348, 65535 - 52);
    check_tcp_segments(
        &Seg {
            df: false,
            opts: vec![],
            ..seg4()
        },
        536,
        5000,
    );
}

#[test]
fn tcp_v6_super_packet_with_timestamps() {
    let s = Seg {
        flags: ACK | TCP_PSH | TCP_CWR,
        ..seg6()
    };
    check_tcp_segments(&s, 1428, 30001);
    check_tcp_segments(&seg6(), 1328, 65535 - 72);
    check_tcp_segments(&seg6(), 1000, 999);
}

fn udp_read(v6: bool, data: &[u8], mss: u16) -> Vec<u8> {
    let ulen = 8 + data.len();
    let mut p = if v6 {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(ulen as u16).to_be_bytes());
        p.extend_from_slice(&[PROTO_UDP, 64]);
        p.extend_from_slice(&src6());
        p.extend_from_slice(&dst6());
        p
    } else {
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&((20 + ulen) as u16).to_be_bytes());
        p.extend_from_slice(&[0x12, 0x34, 0, 0, 64, PROTO_UDP, 0, 0]);
        p.extend_from_slice(&SRC4);
        p.extend_from_slice(&DST4);
        p
    };
    let l4 = p.len();
    p.extend_from_slice(&5000u16.to_be_bytes());
    p.extend_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(&(ulen as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(data);
    let partial = naive_fold(naive_sum(&pseudo(&p, PROTO_UDP, ulen)));
    p[l4 + 6..l4 + 8].copy_from_slice(&partial.to_be_bytes());
    let mut r = virtio::header(F_NEEDS_CSUM, GSO_UDP_L4, l4 as u16 + 8, mss, l4 as u16, 6).to_vec();
    r.extend_from_slice(&p);
    r
}

#[test]
fn udp_l4_super_packets() {
    for v6 in [false, true] {
        let data = payload(5000, 3);
        let read = udp_read(v6, &data, 1200);
        let segs = segment_all(&read).unwrap();
        assert_eq!(segs.len(), 5);
        let l4 = if v6 { 40 } else { 20 };
        let mut got = Vec::new();
        for (i, p) in segs.iter().enumerate() {
            let plen = if i == 4 { 200 } else { 1200 };
            assert_eq!(p.len(), l4 + 8 + plen);
            assert_eq!(usize::from(be16(p, l4 + 4)), 8 + plen, "UDP length");
            if v6 {
                assert_eq!(usize::from(be16(p, 4)), 8 + plen);
            } else {
                assert_eq!(usize::from(be16(p, 2)), p.len());
                assert_eq!(be16(p, 4), 0x1234 + i as u16);
                assert!(v4_header_ok(p));
            }
            assert!(l4_ok(p, l4, PROTO_UDP), "v6 {v6} segment {i}: UDP checksum");
            assert_ne!(be16(p, l4 + 6), 0);
            got.extend_from_slice(&p[l4 + 8..]);
        }
        assert_eq!(got, data);
    }
}

#[test]
fn plain_packets_pass_and_partial_checksums_are_completed() {
    // not GSO, no flags: as is (even garbage)
    let mut read = vec![0u8; HDR_LEN];
    read.extend_from_slice(b"\x99 not an IP packet");
    let s = Segments::new(&read).unwrap();
    assert!(!s.is_gso());
    assert_eq!(segment_all(&read).unwrap(), vec![read[HDR_LEN..].to_vec()]);
    // not GSO, NEEDS_CSUM: a small TCP segment the kernel left partial
    for s in [seg4(), seg6()] {
        let data = payload(301, 0);
        let mut read = tso_read(&s, &data, 1448);
        read[1] = 0; // gso_type none
        let segs = segment_all(&read).unwrap();
        assert_eq!(segs.len(), 1);
        let l4 = if s.v6 { 40 } else { 20 };
        assert!(l4_ok(&segs[0], l4, PROTO_TCP));
        assert_eq!(segs[0], tcp(&s, &data), "the same as built whole");
    }
    // a GSO super-packet no bigger than one segment gives one
    let data = payload(100, 0);
    let segs = segment_all(&tso_read(&seg4(), &data, 1448)).unwrap();
    assert_eq!(segs, vec![tcp(&seg4(), &data)]);
}

#[test]
fn bad_reads_are_errors() {
    let good = tso_read(&seg4(), &payload(4000, 0), 1448);
    assert_eq!(Segments::new(&good[..5]).unwrap_err(), GsoError::Short);
    assert_eq!(
        Segments::new(&good[..HDR_LEN]).unwrap_err(),
        GsoError::Short
    );
    for cut in HDR_LEN + 1..HDR_LEN + 52 {
        assert_eq!(
            Segments::new(&good[..cut]).unwrap_err(),
            GsoError::Short,
            "cut at {cut}"
        );
    }
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut r = good.clone();
        f(&mut r);
        Segments::new(&r).map(|_| ())
    };
    assert_eq!(with(&|r| r[1] = GSO_UDP), Err(GsoError::Unsupported));
    assert_eq!(with(&|r| r[1] = 9), Err(GsoError::Unsupported));
    assert_eq!(with(&|r| r[1] = GSO_TCPV6), Err(GsoError::BadHeader));
    assert_eq!(
        with(&|r| r[4..6].fill(0)),
        Err(GsoError::BadHeader),
        "gso_size 0"
    );
    assert_eq!(
        with(&|r| r[HDR_LEN] = 0x44),
        Err(GsoError::BadHeader),
        "ihl 4"
    );
    assert_eq!(
        with(&|r| r[HDR_LEN] = 0x55),
        Err(GsoError::BadHeader),
        "version 5"
    );
    assert_eq!(
        with(&|r| r[HDR_LEN + 6] |= 0x20),
        Err(GsoError::BadHeader),
        "MF"
    );
    assert_eq!(
        with(&|r| r[HDR_LEN + 9] = 17),
        Err(GsoError::BadHeader),
        "UDP in TSO"
    );
    assert_eq!(
        with(&|r| r[HDR_LEN + 32] = 0x40),
        Err(GsoError::BadHeader),
        "TCP data offset 4"
    );
    assert_eq!(
        with(&|r| r[HDR_LEN + 32] = 0xf0),
        Ok(()),
        "60-byte TCP header still inside the read"
    );
    let v6 = tso_read(&seg6(), &payload(4000, 0), 1428);
    let mut ext = v6.clone();
    ext[HDR_LEN + 6] = 0; // hop-by-hop options first
    assert_eq!(Segments::new(&ext).unwrap_err(), GsoError::Unsupported);
    let mut r = v6.clone();
    r[1] = GSO_TCPV4;
    assert_eq!(Segments::new(&r).unwrap_err(), GsoError::BadHeader);
    // NEEDS_CSUM pointing past the packet
    let mut r = vec![F_NEEDS_CSUM, 0, 0, 0, 0, 0, 30, 0, 16, 0];
    r.extend_from_slice(&[0x45; 40]);
    r[6..8].copy_from_slice(&30u16.to_ne_bytes());
    r[8..10].copy_from_slice(&16u16.to_ne_bytes());
    assert_eq!(Segments::new(&r).unwrap_err(), GsoError::BadHeader);
    // a short `out`: an error, then the end
    let mut s = Segments::new(&good).unwrap();
    assert_eq!(s.max_len(), 52 + 1448);
    let mut small = [0u8; 1499];
    assert_eq!(s.next_into(&mut small), Some(Err(GsoError::Short)));
    assert_eq!(s.next_into(&mut small), None);
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn garbage_never_panics() {
    let mut out = vec![0u8; 70000];
    let mut c = Coalescer::new();
    let good = tso_read(&seg4(), &payload(3000, 0), 1448);
    for seed in 0..3000u64 {
        let n = (seed as usize * 37) % 200;
        let mut buf = noise(seed, n);
        // mostly plausible headers, with noise in them
        if seed % 3 == 0 && n > HDR_LEN + 20 {
            buf[..HDR_LEN + 1].copy_from_slice(&good[..HDR_LEN + 1]);
        }
        if let Ok(mut s) = Segments::new(&buf) {
            let mut k = 0;
            while let Some(r) = s.next_into(&mut out) {
                if let Ok(n) = r {
                    assert!(n <= s.max_len());
                }
                k += 1;
                assert!(k <= 70000);
            }
        }
        c.push(&buf[buf.len().min(HDR_LEN)..], &mut |_, p| {
            assert!(p.len() <= MAX_SUPER);
        });
    }
    for cut in 0..good.len() {
        let _ = segment_all(&good[..cut]);
        c.push(&good[HDR_LEN.min(cut)..cut], &mut |_, _| {});
    }
    c.flush(&mut |_, _| {});
    assert_eq!(c.held(), 0);
}

// ---- Coalescing ----

/// Checks one emitted super-packet: header fields, lengths, the partial checksum, and that
/// segmenting it again gives `segs` back byte for byte.
fn check_super(h: &[u8; HDR_LEN], p: &[u8], segs: &[Vec<u8>]) {
    let v = VirtioNetHdr::new_checked(h).unwrap();
    let v6 = p[0] >> 4 == 6;
    let iphl = if v6 { 40 } else { 20 };
    let thl = usize::from(p[iphl + 12] >> 4) * 4;
    assert_eq!(v.flags(), F_NEEDS_CSUM);
    assert_eq!(v.gso_type(), if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
    assert_eq!(h[1] & GSO_ECN != 0, segs[0][iphl + 13] & TCP_CWR != 0);
    assert_eq!(usize::from(v.hdr_len()), iphl + thl);
    assert_eq!(usize::from(v.gso_size()), segs[0].len() - iphl - thl);
    assert_eq!((usize::from(v.csum_start()), v.csum_offset()), (iphl, 16));
    if v6 {
        assert_eq!(usize::from(be16(p, 4)), p.len() - 40);
    } else {
        assert_eq!(usize::from(be16(p, 2)), p.len());
        assert!(v4_header_ok(p));
    }
    let partial = naive_fold(naive_sum(&pseudo(p, PROTO_TCP, p.len() - iphl)));
    assert_eq!(
        be16(p, iphl + 16),
        partial,
        "pseudo-header sum in the field"
    );
    let mut read = h.to_vec();
    read.extend_from_slice(p);
    assert_eq!(segment_all(&read).unwrap(), segs, "segments again");
}

#[test]
fn segment_then_coalesce_round_trip() {
    for (s, mss, n) in [
        (seg4(), 1448, 20000),
        (seg4(), 1448, 65535 - 52),
        (seg6(), 1428, 30000),
        (seg6(), 1328, 65535 - 72),
        (
            Seg {
                flags: ACK | TCP_CWR | TCP_PSH,
                ..seg4()
            },
            1448,
            9000,
        ),
        (
            Seg {
                df: false,
                ..seg4()
            },
            1000,
            10_000,
        ),
    ] {
        let data = payload(n, 0);
        let read = tso_read(&s, &data, mss as u16);
        let segs = segment_all(&read).unwrap();
        let mut c = Coalescer::new();
        let mut got = run(&mut c, &segs);
        got.extend(flush(&mut c));
        assert_eq!(got.len(), 1, "one super-packet");
        let (h, p) = &got[0];
        check_super(h, p, &segs);
        assert_eq!(c.coalesced(), segs.len() as u64);
        assert_eq!(c.super_packets(), 1);
        // the whole original: the same bytes as the read, apart from the header
        assert_eq!(p[..], read[HDR_LEN..]);
        assert_eq!(h[..2], read[..2]);
    }
}

#[test]
fn round_trip_over_many_reads_keeps_the_byte_stream() {
    // A stream in 5 TSO reads, each segmented; the coalescer sees them in one batch and
    // must give the stream back in order whatever the run boundaries.
    let mut s = seg4();
    let mut stream = Vec::new();
    let mut pkts = Vec::new();
    for k in 0..5 {
        let data = payload(30000 + k * 1111, stream.len());
        pkts.extend(segment_all(&tso_read(&s, &data, 1448)).unwrap());
        s.seq = s.seq.wrapping_add(data.len() as u32);
        s.id = s.id.wrapping_add(data.len().div_ceil(1448) as u16);
        stream.extend_from_slice(&data);
    }
    let mut c = Coalescer::new();
    let mut got = run(&mut c, &pkts);
    got.extend(flush(&mut c));
    let mut back = Vec::new();
    let mut segs_out = 0;
    for (h, p) in &got {
        let mut read = h.to_vec();
        read.extend_from_slice(p);
        for seg in segment_all(&read).unwrap() {
            assert!(l4_ok(&seg, 20, PROTO_TCP));
            back.extend_from_slice(&seg[52..]);
            segs_out += 1;
        }
    }
    assert_eq!(back, stream);
    assert_eq!(segs_out, pkts.len());
    assert!(got.len() < 10, "{} super-packets for 5 reads", got.len());
}

/// Two full segments A and B of one flow, B changed by `f`; what comes out of pushing A,
/// B, and flushing: (emitted before the flush, emitted by the flush).
fn pair(v6: bool, f: &dyn Fn(&mut Seg, &mut Vec<u8>), fix: bool) -> (Emitted, Emitted) {
    let s = if v6 { seg6() } else { seg4() };
    let a = tcp(&s, &payload(1000, 0));
    let mut sb = Seg {
        seq: s.seq.wrapping_add(1000),
        id: s.id.wrapping_add(1),
        ..s.clone()
    };
    let mut data = payload(1000, 1000);
    f(&mut sb, &mut data);
    let mut b = tcp(&sb, &data);
    if !fix {
        b[100] ^= 1;
    }
    let mut c = Coalescer::new();
    let before = run(&mut c, &[a, b]);
    (before, flush(&mut c))
}

fn plain(e: &Emitted) -> bool {
    e.iter().all(|(h, _)| *h == [0; HDR_LEN])
}

#[test]
fn consecutive_segments_merge() {
    for v6 in [false, true] {
        let (before, after) = pair(v6, &|_, _| {}, true);
        assert!(before.is_empty());
        assert_eq!(after.len(), 1);
        assert!(after[0].0[1] != 0, "a GSO header");
    }
}

/// B does not join A: A goes out alone (plain), then B (alone or still held).
fn assert_split(name: &str, v6: bool, f: &dyn Fn(&mut Seg, &mut Vec<u8>)) {
    let (before, after) = pair(v6, f, true);
    let all: Emitted = before.iter().chain(after.iter()).cloned().collect();
    assert_eq!(all.len(), 2, "{name} (v6 {v6}): two packets");
    assert!(plain(&all), "{name} (v6 {v6}): plain headers");
    assert_eq!(
        be32(&all[0].1, if v6 { 44 } else { 24 }),
        seg4().seq,
        "{name}: A first"
    );
}

#[test]
fn every_flush_rule() {
    for v6 in [false, true] {
        assert_split("gap in seq", v6, &|s, _| s.seq = s.seq.wrapping_add(1));
        assert_split("old seq", v6, &|s, _| s.seq = s.seq.wrapping_sub(1000));
        assert_split("different ACK", v6, &|s, _| s.ack += 1);
        assert_split("different window", v6, &|s, _| s.win += 1);
        assert_split("different options", v6, &|s, _| s.opts = ts_opts(1001));
        assert_split("no options", v6, &|s, _| s.opts.clear());
        assert_split("longer than the first", v6, &|_, d| d.push(0));
        assert_split("SYN", v6, &|s, _| s.flags |= TCP_SYN);
        assert_split("RST", v6, &|s, _| s.flags |= TCP_RST);
        assert_split("URG", v6, &|s, _| s.flags |= TCP_URG);
        assert_split("CWR", v6, &|s, _| s.flags |= TCP_CWR);
        assert_split("ECE", v6, &|s, _| s.flags |= 0x40);
        assert_split("other port", v6, &|s, _| s.sport += 1);
        assert_split("TTL", v6, &|s, _| s.ttl -= 1);
        assert_split("pure ACK", v6, &|_, d| d.clear());
    }
    assert_split("DF", false, &|s, _| s.df = false);
    // A bad IPv4 header checksum: never merged.
    let s = seg4();
    let a = tcp(&s, &payload(1000, 0));
    let mut b = tcp(
        &Seg {
            seq: s.seq.wrapping_add(1000),
            id: s.id.wrapping_add(1),
            ..s.clone()
        },
        &payload(1000, 1000),
    );
    b[10] ^= 0x80;
    let mut c = Coalescer::new();
    let out = run(&mut c, &[a.clone(), b.clone()]);
    assert_eq!(out, vec![([0; HDR_LEN], a), ([0; HDR_LEN], b)]);
    // A bad TCP checksum: B is passed on as it came, for the kernel to drop.
    let (before, after) = pair(false, &|_, _| {}, false);
    assert_eq!(before.len(), 2);
    assert!(after.is_empty() && plain(&before));
}

#[test]
fn ip_id_must_count_up_without_df() {
    let (b, a) = pair(
        false,
        &|s, _| {
            s.df = false;
        },
        true,
    );
    assert_eq!(b.len() + a.len(), 2, "DF differs");
    // both without DF: id +1 merges, id +2 does not
    let s = Seg {
        df: false,
        ..seg4()
    };
    let a = tcp(&s, &payload(1000, 0));
    let next = |id: u16| {
        tcp(
            &Seg {
                seq: s.seq.wrapping_add(1000),
                id,
                ..s.clone()
            },
            &payload(1000, 1000),
        )
    };
    let mut c = Coalescer::new();
    run(&mut c, &[a.clone(), next(s.id.wrapping_add(1))]);
    assert_eq!(flush(&mut c).len(), 1);
    let early = run(&mut c, &[a, next(s.id.wrapping_add(2))]);
    assert_eq!(early.len(), 1, "A out when B does not follow it");
    assert_eq!(flush(&mut c).len(), 1);
    // with DF the id may stay (Linux sends DF segments with ids of its own choosing)
    let (b, a) = pair(false, &|s, _| s.id = 7, true);
    assert_eq!(b.len() + a.len(), 1);
}

#[test]
fn psh_fin_and_short_segments_end_the_run_with_them() {
    for (name, flags, short) in [
        ("PSH", TCP_PSH, false),
        ("FIN", TCP_FIN, false),
        ("short", 0, true),
    ] {
        let (before, after) = pair(
            false,
            &|s, d| {
                s.flags |= flags;
                if short {
                    d.truncate(10);
                }
            },
            true,
        );
        assert_eq!(before.len(), 1, "{name}: out at once");
        assert!(after.is_empty());
        let p = &before[0].1;
        assert_eq!(p.len(), 52 + 1000 + if short { 10 } else { 1000 });
        assert_eq!(p[33] & (TCP_PSH | TCP_FIN), flags, "{name}: flag kept");
        assert_eq!(
            VirtioNetHdr::new_checked(&before[0].0).unwrap().gso_size(),
            1000
        );
    }
    // a PSH segment with nothing held goes out at once, plain
    let mut c = Coalescer::new();
    let p = tcp(
        &Seg {
            flags: ACK | TCP_PSH,
            ..seg4()
        },
        b"hello",
    );
    let e = run(&mut c, std::slice::from_ref(&p));
    assert_eq!(e, vec![([0; HDR_LEN], p)]);
    assert_eq!(c.held(), 0);
}

#[test]
fn other_flows_are_held_apart_and_keep_their_order() {
    let s = seg4();
    let t = Seg {
        sport: 40001,
        seq: 5,
        ..seg4()
    };
    let u = seg6();
    let mut pkts = Vec::new();
    for k in 0..3u32 {
        for f in [&s, &t, &u] {
            pkts.push(tcp(
                &Seg {
                    seq: f.seq.wrapping_add(k * 1000),
                    id: f.id.wrapping_add(k as u16),
                    ..f.clone()
                },
                &payload(1000, k as usize * 1000),
            ));
        }
    }
    let mut c = Coalescer::new();
    assert!(run(&mut c, &pkts).is_empty());
    assert_eq!(c.held(), 3);
    let out = flush(&mut c);
    assert_eq!(out.len(), 3);
    for (k, (h, p)) in out.iter().enumerate() {
        assert_eq!(VirtioNetHdr::new_checked(h).unwrap().gso_size(), 1000);
        let segs: Vec<Vec<u8>> = pkts.iter().skip(k).step_by(3).cloned().collect();
        check_super(h, p, &segs);
    }
    assert_eq!(c.coalesced(), 9);
}

#[test]
fn a_fifth_flow_evicts_the_oldest() {
    let mut c = Coalescer::new();
    let flows: Vec<Vec<u8>> = (0..5u16)
        .map(|k| {
            tcp(
                &Seg {
                    sport: 1000 + k,
                    ..seg4()
                },
                &payload(100, 0),
            )
        })
        .collect();
    let out = run(&mut c, &flows[..4]);
    assert!(out.is_empty());
    let out = run(&mut c, &flows[4..]);
    assert_eq!(out, vec![([0; HDR_LEN], flows[0].clone())]);
    let rest = flush(&mut c);
    assert_eq!(
        rest.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
        flows[1..].to_vec()
    );
}

#[test]
fn unmergeable_packets_flush_their_flow_first() {
    let s = seg4();
    let a = tcp(&s, &payload(1000, 0));
    let b = tcp(
        &Seg {
            seq: s.seq.wrapping_add(1000),
            id: s.id.wrapping_add(1),
            ..s.clone()
        },
        &payload(1000, 1000),
    );
    // IPv4 options (a NOP word): never merged, A goes out before it
    let mut opt = b.clone();
    opt.splice(20..20, [1, 1, 1, 1]);
    opt[0] = 0x46;
    let l = opt.len() as u16;
    opt[2..4].copy_from_slice(&l.to_be_bytes());
    opt[10..12].fill(0);
    let c4 = !naive_fold(naive_sum(&opt[..24]));
    opt[10..12].copy_from_slice(&c4.to_be_bytes());
    // a fragment (MF) of the same addresses
    let mut frag = b.clone();
    frag[6] |= 0x20;
    frag[10..12].fill(0);
    let c4 = !naive_fold(naive_sum(&frag[..20]));
    frag[10..12].copy_from_slice(&c4.to_be_bytes());
    // a later fragment: no ports in it
    let mut frag2 = frag.clone();
    frag2[6] = 0;
    frag2[7] = 100;
    // a UDP packet between the same addresses
    let mut udp = b.clone();
    udp[9] = PROTO_UDP;
    for (name, x) in [
        ("options", opt),
        ("MF", frag),
        ("offset", frag2),
        ("UDP", udp),
    ] {
        let mut c = Coalescer::new();
        let out = run(&mut c, &[a.clone(), x.clone()]);
        assert_eq!(
            out,
            vec![([0; HDR_LEN], a.clone()), ([0; HDR_LEN], x)],
            "{name}"
        );
        assert_eq!(c.held(), 0, "{name}");
    }
    // a packet of another host pair passes without flushing
    let mut c = Coalescer::new();
    let mut other = crate::wire::ip::tests::v4_echo();
    other[15] = 77;
    let out = run(&mut c, &[a.clone(), other.clone()]);
    assert_eq!(out, vec![([0; HDR_LEN], other)]);
    assert_eq!(c.held(), 1);
    // an IPv6 segment longer than MAX_SUPER (payload length 65535) passes as is
    let big = tcp(&seg6(), &payload(65535 - 32, 0));
    assert_eq!(big.len(), 65575);
    let out = run(&mut c, std::slice::from_ref(&big));
    assert_eq!(out, vec![([0; HDR_LEN], big)]);
    // garbage passes as is
    let out = run(&mut c, &[vec![], vec![0x45; 3], vec![0x99; 60]]);
    assert_eq!(out.len(), 3);
    assert_eq!(c.held(), 1);
}

#[test]
fn runs_stop_at_max_super() {
    // 1000-byte segments: 65 fit (52 + 65000 <= 65535), the 66th starts a new run.
    let s = seg4();
    let pkts: Vec<Vec<u8>> = (0..70u32)
        .map(|k| {
            tcp(
                &Seg {
                    seq: s.seq.wrapping_add(k * 1000),
                    id: s.id.wrapping_add(k as u16),
                    ..s.clone()
                },
                &payload(1000, k as usize * 1000),
            )
        })
        .collect();
    let mut c = Coalescer::new();
    let mut out = run(&mut c, &pkts);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.len(), 52 + 65 * 1000);
    out.extend(flush(&mut c));
    assert_eq!(out.len(), 2);
    check_super(&out[0].0, &out[0].1, &pkts[..65]);
    check_super(&out[1].0, &out[1].1, &pkts[65..]);
}
