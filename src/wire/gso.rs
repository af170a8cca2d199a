//! TUN offloads in userspace: segmentation of the super-packets a TUN opened with
//! IFF_VNET_HDR and TUNSETOFFLOAD hands out (the send side: [`Segments`]), and the
//! receive-side coalescing of consecutive TCP segments of one flow back into a
//! super-packet with a GSO `virtio_net_hdr` ([`Coalescer`], what the kernel's GRO does).
//!
//! What may be merged follows the kernel's rules (net/ipv4/tcp_offload.c
//! `tcp_gro_receive`, net/ipv4/af_inet.c `inet_gro_receive`, net/ipv6/ip6_offload.c):
//! same addresses and ports; the next sequence number; the same ACK number, window, TCP
//! options and flags (CWR, FIN and PSH aside); the same TTL/hop limit, TOS/traffic class, DF bit
//! (and with DF clear, IP ids counting up) or flow label; every segment of the run's
//! size except a shorter last one, which ends the run, as do PSH and FIN; IPv4 without
//! options or fragments, IPv6 without extension headers; a verified TCP checksum.
//!
//! Pure: no I/O, and no allocation except the flow buffers made in [`Coalescer::new`].
use super::virtio::{self, VirtioNetHdr, HDR_LEN};

/// Largest IP packet in a super-packet (and in a coalesced one).
pub const MAX_SUPER: usize = 65535;

/// How many TCP flows a [`Coalescer`] holds at once (one `MAX_SUPER` buffer each).
pub const FLOWS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// The read is shorter than its headers say, or `out` is too small for the segment.
    Short,
    /// Inconsistent headers (a GSO type that does not match the IP version or protocol,
    /// gso_size 0, a checksum position outside the packet, a fragmented super-packet).
    BadHeader,
    /// A GSO type or header layout this code does not segment (UFO, IPv6 extension headers).
    Unsupported,
}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;
const TCP_URG: u8 = 0x20;
const TCP_CWR: u8 = 0x80;
/// Offset of the flags byte and of the checksum in a TCP header.
const TCP_FLAGS: usize = 13;
const TCP_CSUM: usize = 16;
const UDP_CSUM: usize = 6;

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

fn be32(p: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

fn put16(p: &mut [u8], at: usize, v: u16) {
    p[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(p: &mut [u8], at: usize, v: u32) {
    p[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Ones' complement sum of `data` in 32-bit big-endian words (a shorter tail padded with
/// zeros), not folded; the same value modulo 0xffff as [`super::icmp::sum`], at half the
/// additions. `data` must start at an even offset of what it is summed with.
fn sum_wide(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

/// Folds a sum to 16 bits (not complemented).
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Sum of the pseudo-header of the transport segment of `ip` (which starts at `l4` and is
/// `l4_len` bytes long), for IPv4 (`v6 == false`) or IPv6.
fn pseudo_sum(ip: &[u8], v6: bool, proto: u8, l4_len: usize) -> u64 {
    let addrs = if v6 { &ip[8..40] } else { &ip[12..20] };
    sum_wide(addrs) + u64::from(proto) + l4_len as u64
}

/// Writes the IPv4 header checksum of the header `ip[..ihl]`.
fn fix_v4_header_checksum(ip: &mut [u8], ihl: usize) {
    put16(ip, 10, 0);
    let c = !fold(sum_wide(&ip[..ihl]));
    put16(ip, 10, c);
}

/// Completes the transport checksum at `l4 + csum_at` over `ip[l4..]`, whose checksum
/// field is first zeroed. A computed 0 goes out as 0xffff (as the kernel's
/// `skb_checksum_help`: for UDP 0 would mean "no checksum").
fn fill_l4_checksum(ip: &mut [u8], v6: bool, proto: u8, l4: usize, csum_at: usize) {
    let len = ip.len() - l4;
    put16(ip, l4 + csum_at, 0);
    let c = !fold(pseudo_sum(ip, v6, proto, len) + sum_wide(&ip[l4..]));
    put16(ip, l4 + csum_at, if c == 0 { 0xffff } else { c });
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Passed as is.
    Plain,
    /// One packet whose checksum at `start + offset` is completed over `start..`.
    Csum { start: usize, offset: usize },
    /// TCP or UDP segmentation.
    Split { proto: u8 },
}

/// Iterates over the ordinary IP packets of one TUN read (`buf` = virtio_net_hdr
/// ([`HDR_LEN`]) + IP packet). GSO_TCPV4/GSO_TCPV6 super-packets become MSS-sized
/// segments (IP total length/id/checksum, TCP seq, flags: CWR only on the first, FIN/PSH
/// only on the last, TCP checksum complete); GSO_UDP_L4 likewise for UDP (length and
/// checksum); a non-GSO packet with F_NEEDS_CSUM gets its checksum completed; anything
/// else is passed as is. After an error the iteration ends.
#[derive(Debug)]
pub struct Segments<'a> {
    pkt: &'a [u8],
    mode: Mode,
    v6: bool,
    /// IP header length, and IP + transport header length.
    iphl: usize,
    hl: usize,
    /// Payload bytes per segment.
    mss: usize,
    /// Payload bytes already handed out.
    done_payload: usize,
    index: u32,
    finished: bool,
}

impl<'a> Segments<'a> {
    pub fn new(buf: &'a [u8]) -> Result<Segments<'a>, GsoError> {
        let hdr = VirtioNetHdr::new_checked(buf).ok_or(GsoError::Short)?;
        let pkt = &buf[HDR_LEN..];
        if pkt.is_empty() {
            return Err(GsoError::Short);
        }
        let mut s = Segments {
            pkt,
            mode: Mode::Plain,
            v6: false,
            iphl: 0,
            hl: 0,
            mss: 0,
            done_payload: 0,
            index: 0,
            finished: false,
        };
        let gso = hdr.gso_type();
        if gso == virtio::GSO_NONE {
            if hdr.flags() & virtio::F_NEEDS_CSUM != 0 {
                let start = usize::from(hdr.csum_start());
                let offset = usize::from(hdr.csum_offset());
                if start + offset + 2 > pkt.len() || offset % 2 != 0 || start % 2 != 0 {
                    return Err(GsoError::BadHeader);
                }
                s.mode = Mode::Csum { start, offset };
            }
            return Ok(s);
        }
        let proto = match gso {
            virtio::GSO_TCPV4 | virtio::GSO_TCPV6 => PROTO_TCP,
            virtio::GSO_UDP_L4 => PROTO_UDP,
            _ => return Err(GsoError::Unsupported),
        };
        match pkt[0] >> 4 {
            4 => {
                if gso == virtio::GSO_TCPV6 {
                    return Err(GsoError::BadHeader);
                }
                if pkt.len() < 20 {
                    return Err(GsoError::Short);
                }
                s.iphl = usize::from(pkt[0] & 0x0f) * 4;
                if s.iphl < 20 {
                    return Err(GsoError::BadHeader);
                }
                if pkt[9] != proto || be16(pkt, 6) & 0x3fff != 0 {
                    // another protocol than the GSO type says, or MF / a fragment offset
                    return Err(GsoError::BadHeader);
                }
            }
            6 => {
                if gso == virtio::GSO_TCPV4 {
                    return Err(GsoError::BadHeader);
                }
                if pkt.len() < 40 {
                    return Err(GsoError::Short);
                }
                s.v6 = true;
                s.iphl = 40;
                if pkt[6] != proto {
                    // extension headers between IPv6 and the transport header
                    return Err(GsoError::Unsupported);
                }
            }
            _ => return Err(GsoError::BadHeader),
        }
        let l4_min = if proto == PROTO_TCP { 20 } else { 8 };
        if pkt.len() < s.iphl + l4_min {
            return Err(GsoError::Short);
        }
        s.hl = if proto == PROTO_TCP {
            let doff = usize::from(pkt[s.iphl + 12] >> 4) * 4;
            if doff < 20 {
                return Err(GsoError::BadHeader);
            }
            s.iphl + doff
        } else {
            s.iphl + 8
        };
        if pkt.len() < s.hl {
            return Err(GsoError::Short);
        }
        s.mss = usize::from(hdr.gso_size());
        if s.mss == 0 || s.hl + s.mss > MAX_SUPER {
            return Err(GsoError::BadHeader);
        }
        s.mode = Mode::Split { proto };
        Ok(s)
    }

    /// A super-packet to be segmented (GSO TCP or UDP).
    pub fn is_gso(&self) -> bool {
        matches!(self.mode, Mode::Split { .. })
    }

    /// The room `next_into` needs in `out`: the longest packet this read gives.
    pub fn max_len(&self) -> usize {
        match self.mode {
            Mode::Split { .. } => self.hl + self.mss.min(self.pkt.len() - self.hl),
            _ => self.pkt.len(),
        }
    }

    /// How many packets the read gives in all (1 unless GSO).
    pub fn count(&self) -> usize {
        match self.mode {
            Mode::Split { .. } => (self.pkt.len() - self.hl).div_ceil(self.mss).max(1),
            _ => 1,
        }
    }

    /// Writes the next complete IP packet into `out` and returns its length; `None` when
    /// done. `out` needs room for [`max_len`](Self::max_len); a shorter one gives
    /// `Err(Short)` and ends the iteration.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, GsoError>> {
        if self.finished {
            return None;
        }
        let r = self.next_inner(out);
        if r.is_err() || self.done_payload >= self.pkt.len() - self.hl.min(self.pkt.len()) {
            self.finished = true;
        }
        Some(r)
    }

    fn next_inner(&mut self, out: &mut [u8]) -> Result<usize, GsoError> {
        let pkt = self.pkt;
        let proto = match self.mode {
            Mode::Plain | Mode::Csum { .. } => {
                let o = out.get_mut(..pkt.len()).ok_or(GsoError::Short)?;
                o.copy_from_slice(pkt);
                if let Mode::Csum { start, offset } = self.mode {
                    // the field holds the pseudo-header sum: it is part of the sum
                    let c = !fold(sum_wide(&o[start..]));
                    put16(o, start + offset, if c == 0 { 0xffff } else { c });
                }
                self.done_payload = pkt.len();
                return Ok(pkt.len());
            }
            Mode::Split { proto } => proto,
        };
        let (iphl, hl) = (self.iphl, self.hl);
        let payload = pkt.len() - hl;
        let off = self.done_payload;
        let plen = self.mss.min(payload - off);
        let len = hl + plen;
        let o = out.get_mut(..len).ok_or(GsoError::Short)?;
        o[..hl].copy_from_slice(&pkt[..hl]);
        o[hl..].copy_from_slice(&pkt[hl + off..hl + off + plen]);
        let last = off + plen >= payload;
        if self.v6 {
            put16(o, 4, (len - 40) as u16);
        } else {
            put16(o, 2, len as u16);
            put16(o, 4, be16(pkt, 4).wrapping_add(self.index as u16));
            fix_v4_header_checksum(o, iphl);
        }
        if proto == PROTO_TCP {
            put32(o, iphl + 4, be32(pkt, iphl + 4).wrapping_add(off as u32));
            let mut flags = pkt[iphl + TCP_FLAGS];
            if self.index > 0 {
                flags &= !TCP_CWR;
            }
            if !last {
                flags &= !(TCP_FIN | TCP_PSH);
            }
            o[iphl + TCP_FLAGS] = flags;
            fill_l4_checksum(o, self.v6, PROTO_TCP, iphl, TCP_CSUM);
        } else {
            put16(o, iphl + 4, (len - iphl) as u16);
            fill_l4_checksum(o, self.v6, PROTO_UDP, iphl, UDP_CSUM);
        }
        self.done_payload = off + plen;
        self.index += 1;
        Ok(len)
    }
}

/// A TCP segment's facts, read once.
#[derive(Debug, Clone, Copy)]
struct Tcp {
    v6: bool,
    iphl: usize,
    /// IP + TCP header length.
    hl: usize,
    seq: u32,
    flags: u8,
}

/// What `push` sees in a packet.
enum Class {
    /// A TCP segment with payload that may join or start a run.
    Candidate(Tcp),
    /// Not mergeable, but of a flow (addresses, and ports when `ports`) that may be held:
    /// those runs go out first to keep the order.
    Other { v6: bool, ports: Option<usize> },
    /// Not an IP packet that any run could belong to.
    Foreign,
}

fn classify(p: &[u8]) -> Class {
    let Some(&first) = p.first() else {
        return Class::Foreign;
    };
    let (v6, iphl, proto) = match first >> 4 {
        4 if p.len() >= 20 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 || usize::from(be16(p, 2)) != p.len() || ihl > p.len() {
                return Class::Other {
                    v6: false,
                    ports: None,
                };
            }
            if be16(p, 6) & 0x3fff != 0 || ihl != 20 || fold(sum_wide(&p[..20])) != 0xffff {
                // a fragment, options or a bad header checksum: never merged (a
                // fragment's ports are not there)
                let ports = (be16(p, 6) & 0x1fff == 0 && p[9] == PROTO_TCP && p.len() >= ihl + 4)
                    .then_some(ihl);
                return Class::Other { v6: false, ports };
            }
            (false, ihl, p[9])
        }
        6 if p.len() >= 40 => {
            if usize::from(be16(p, 4)) + 40 != p.len() {
                return Class::Other {
                    v6: true,
                    ports: None,
                };
            }
            (true, 40, p[6])
        }
        _ => return Class::Foreign,
    };
    if proto != PROTO_TCP {
        // UDP, ICMP, or IPv6 extension headers (which may hide TCP)
        return Class::Other { v6, ports: None };
    }
    let other = Class::Other {
        v6,
        ports: (p.len() >= iphl + 4).then_some(iphl),
    };
    if p.len() < iphl + 20 {
        return other;
    }
    let hl = iphl + usize::from(p[iphl + 12] >> 4) * 4;
    let flags = p[iphl + TCP_FLAGS];
    if hl < iphl + 20
        || hl >= p.len()
        || p.len() > MAX_SUPER
        || flags & (TCP_SYN | TCP_RST | TCP_URG) != 0
        || fold(pseudo_sum(p, v6, PROTO_TCP, p.len() - iphl) + sum_wide(&p[iphl..])) != 0xffff
    {
        // no payload, a bad header, too big (IPv6 up to 65575 bytes), SYN/RST/URG, or a
        // wrong checksum: passed on as is
        return other;
    }
    Class::Candidate(Tcp {
        v6,
        iphl,
        hl,
        seq: be32(p, iphl + 4),
        flags,
    })
}

/// One run of segments being coalesced.
struct Flow {
    /// The super-packet so far (the first segment's headers, every payload); `len == 0`
    /// when the slot is free.
    buf: Vec<u8>,
    len: usize,
    tcp: Tcp,
    /// Payload bytes of the first segment: every segment but a last, shorter one has it.
    mss: usize,
    count: u32,
    next_seq: u32,
    /// When the run started (the oldest is evicted when a new flow needs a slot).
    started: u64,
}

impl Flow {
    fn held(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Same addresses (and ports when `ports` gives where the TCP header starts in `p`).
    fn same_flow(&self, p: &[u8], v6: bool, ports: Option<usize>) -> bool {
        if self.len == 0 || self.tcp.v6 != v6 {
            return false;
        }
        let h = self.held();
        let addrs = if v6 { 8..40 } else { 12..20 };
        if h[addrs.clone()] != p[addrs] {
            return false;
        }
        match ports {
            Some(at) => h[self.tcp.iphl..self.tcp.iphl + 4] == p[at..at + 4],
            None => true,
        }
    }

    /// Whether segment `p` (of the same addresses and ports) continues this run.
    fn continues(&self, p: &[u8], t: &Tcp) -> bool {
        let h = self.held();
        let iphl = t.iphl;
        let plen = p.len() - t.hl;
        let ip_same = if t.v6 {
            // traffic class and flow label, hop limit
            h[..4] == p[..4] && h[7] == p[7]
        } else {
            let df = 0x40;
            h[1] == p[1]
                && h[8] == p[8]
                && h[6] & df == p[6] & df
                && (p[6] & df != 0 || be16(p, 4) == be16(h, 4).wrapping_add(self.count as u16))
        };
        let ignore = TCP_CWR | TCP_FIN | TCP_PSH;
        ip_same
            && t.hl == self.tcp.hl
            && t.seq == self.next_seq
            && (t.flags ^ self.tcp.flags) & !ignore == 0
            && t.flags & TCP_CWR == 0
            // the ACK number and the window (the kernel compares the word of data offset,
            // flags and window), and the options
            && h[iphl + 8..iphl + 12] == p[iphl + 8..iphl + 12]
            && h[iphl + 14..iphl + 16] == p[iphl + 14..iphl + 16]
            && h[iphl + 20..t.hl] == p[iphl + 20..t.hl]
            && plen <= self.mss
            && self.len + plen <= MAX_SUPER
    }
}

/// Receive side (GRO). Holds up to [`FLOWS`] runs, each in its own `MAX_SUPER` buffer
/// made in `new()`. See the module documentation for what is merged.
pub struct Coalescer {
    flows: Vec<Flow>,
    clock: u64,
    coalesced: u64,
    supers: u64,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    pub fn new() -> Coalescer {
        let flows = (0..FLOWS)
            .map(|_| Flow {
                buf: vec![0; MAX_SUPER],
                len: 0,
                tcp: Tcp {
                    v6: false,
                    iphl: 0,
                    hl: 0,
                    seq: 0,
                    flags: 0,
                },
                mss: 0,
                count: 0,
                next_seq: 0,
                started: 0,
            })
            .collect();
        Coalescer {
            flows,
            clock: 0,
            coalesced: 0,
            supers: 0,
        }
    }

    /// Offer one complete, already checksummed IP packet. Whatever can no longer grow,
    /// and packets that cannot be coalesced, are handed to `out(header, packet)` in
    /// arrival order per flow, ready to write to a TUN opened with IFF_VNET_HDR: a GSO
    /// header for a coalesced run of 2+ (gso_type TCPV4/6, with the ECN bit when the
    /// first segment has CWR; gso_size, hdr_len, F_NEEDS_CSUM, csum_start/offset, the
    /// pseudo-header sum in the TCP checksum field, IP length/checksum fixed), a plain
    /// (all zero) header otherwise. A TCP segment whose checksum is wrong is passed on
    /// unmerged, for the kernel to drop.
    pub fn push(&mut self, pkt: &[u8], out: &mut dyn FnMut(&[u8; HDR_LEN], &[u8])) {
        let t = match classify(pkt) {
            Class::Candidate(t) => t,
            Class::Other { v6, ports } => {
                for i in 0..FLOWS {
                    if self.flows[i].same_flow(pkt, v6, ports) {
                        self.emit(i, out);
                    }
                }
                out(&[0; HDR_LEN], pkt);
                return;
            }
            Class::Foreign => {
                out(&[0; HDR_LEN], pkt);
                return;
            }
        };
        let plen = pkt.len() - t.hl;
        let ends = t.flags & (TCP_PSH | TCP_FIN) != 0;
        if let Some(i) = (0..FLOWS).find(|&i| self.flows[i].same_flow(pkt, t.v6, Some(t.iphl))) {
            let f = &mut self.flows[i];
            if f.continues(pkt, &t) {
                f.buf[f.len..f.len + plen].copy_from_slice(&pkt[t.hl..]);
                f.len += plen;
                f.count += 1;
                f.next_seq = f.next_seq.wrapping_add(plen as u32);
                f.buf[t.iphl + TCP_FLAGS] |= t.flags & (TCP_PSH | TCP_FIN);
                if ends || plen < f.mss {
                    self.emit(i, out);
                }
                return;
            }
            self.emit(i, out);
        }
        if ends {
            // a run of one that could not grow: as is
            out(&[0; HDR_LEN], pkt);
            return;
        }
        let i = match (0..FLOWS).find(|&i| self.flows[i].len == 0) {
            Some(i) => i,
            None => {
                let oldest = (0..FLOWS)
                    .min_by_key(|&i| self.flows[i].started)
                    .unwrap_or(0);
                self.emit(oldest, out);
                oldest
            }
        };
        self.clock += 1;
        let f = &mut self.flows[i];
        f.buf[..pkt.len()].copy_from_slice(pkt);
        f.len = pkt.len();
        f.tcp = t;
        f.mss = plen;
        f.count = 1;
        f.next_seq = t.seq.wrapping_add(plen as u32);
        f.started = self.clock;
    }

    /// Hands on everything held, oldest run first (the loop calls this at the end of
    /// each receive batch).
    pub fn flush(&mut self, out: &mut dyn FnMut(&[u8; HDR_LEN], &[u8])) {
        while let Some(i) = (0..FLOWS)
            .filter(|&i| self.flows[i].len != 0)
            .min_by_key(|&i| self.flows[i].started)
        {
            self.emit(i, out);
        }
    }

    /// Segments that went out as part of a super-packet (of 2 or more) so far.
    pub fn coalesced(&self) -> u64 {
        self.coalesced
    }

    /// Super-packets (runs of 2 or more) written so far.
    pub fn super_packets(&self) -> u64 {
        self.supers
    }

    /// Runs held now.
    pub fn held(&self) -> usize {
        self.flows.iter().filter(|f| f.len != 0).count()
    }

    fn emit(&mut self, i: usize, out: &mut dyn FnMut(&[u8; HDR_LEN], &[u8])) {
        let f = &mut self.flows[i];
        if f.len == 0 {
            return;
        }
        let len = f.len;
        f.len = 0;
        if f.count < 2 {
            out(&[0; HDR_LEN], &f.buf[..len]);
            return;
        }
        self.coalesced += u64::from(f.count);
        self.supers += 1;
        let t = f.tcp;
        let p = &mut f.buf[..len];
        let gso_type = if t.v6 {
            put16(p, 4, (len - 40) as u16);
            virtio::GSO_TCPV6
        } else {
            put16(p, 2, len as u16);
            fix_v4_header_checksum(p, t.iphl);
            virtio::GSO_TCPV4
        };
        let ecn = if p[t.iphl + TCP_FLAGS] & TCP_CWR != 0 {
            virtio::GSO_ECN
        } else {
            0
        };
        let partial = fold(pseudo_sum(p, t.v6, PROTO_TCP, len - t.iphl));
        put16(p, t.iphl + TCP_CSUM, partial);
        let hdr = virtio::header(
            virtio::F_NEEDS_CSUM,
            gso_type | ecn,
            t.hl as u16,
            f.mss as u16,
            t.iphl as u16,
            TCP_CSUM as u16,
        );
        out(&hdr, p);
    }
}

#[cfg(test)]
mod tests;
