//! The tunnel's UDP socket in batches: `recvmmsg` into slots made once (each with the
//! kernel's drop counter, SO_RXQ_OVFL, and UDP GRO's segment size from its control
//! messages), and `sendmmsg` of a burst of sealed packets in which each run of equal-size
//! packets to one destination is one UDP GSO message (UDP_SEGMENT). Socket buffer sizes.
//! Nothing here allocates after `new`.
//!
//! `recvmmsg`/`sendmmsg` are called through libc: nix 0.30's `recvmmsg` does not reset
//! `msg_controllen`/`msg_namelen` between calls (the kernel shrinks them, so later
//! batches lose their control messages), and its `sendmsg` allocates the control buffer
//! on every call.
use nix::sys::socket::{getsockopt, setsockopt, sockopt};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Datagrams per `recvmmsg`, messages per `sendmmsg`.
pub const SLOTS: usize = 32;
/// Most segments the kernel takes in one UDP GSO message (UDP_MAX_SEGMENTS).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one UDP GSO message (the IP length field, less headers).
pub const GSO_MAX_BYTES: usize = 65000;

/// Control message room per datagram: UDP_GRO's int and SO_RXQ_OVFL's u32, each with
/// its header (CMSG_SPACE(4) is 24 on 64-bit, 16 on 32-bit).
type Ctrl = [u64; 8];

/// The test build under qemu-user for a big-endian guest (`cfg(tunbox_qemu)`, set by
/// `targets/build.sh TARGET test`): qemu 7.2 hands the control messages of UDP GSO/GRO and
/// SO_RXQ_OVFL, and a TUN device's virtio header, to and from such a guest without
/// byte-swapping them (a 1000-byte UDP_SEGMENT reaches the kernel as 59395), so these
/// offloads are left off there and those runs test the plain paths. A real big-endian
/// kernel reads them in its own byte order, as tunbox writes them; release builds never
/// set this.
pub const QEMU_BIG_ENDIAN: bool = cfg!(all(tunbox_qemu, target_endian = "big"));

/// Asks for `bytes` of receive and send buffer: SO_RCVBUFFORCE/SO_SNDBUFFORCE (beyond
/// net.core.rmem_max, needs CAP_NET_ADMIN), else SO_RCVBUF/SO_SNDBUF (capped by the
/// sysctl). Returns what the kernel granted (it reports twice the bytes asked for: its
/// own bookkeeping is counted in).
pub fn set_buffers(s: &UdpSocket, bytes: usize) -> (usize, usize) {
    if setsockopt(s, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = setsockopt(s, sockopt::RcvBuf, &bytes);
    }
    if setsockopt(s, sockopt::SndBufForce, &bytes).is_err() {
        let _ = setsockopt(s, sockopt::SndBuf, &bytes);
    }
    (
        getsockopt(s, sockopt::RcvBuf).unwrap_or(0),
        getsockopt(s, sockopt::SndBuf).unwrap_or(0),
    )
}

/// Has the kernel attach its count of datagrams dropped on this socket to each one
/// received (SO_RXQ_OVFL); false on a kernel without it.
pub fn enable_overflow_count(s: &UdpSocket) -> bool {
    !QEMU_BIG_ENDIAN && setsockopt(s, sockopt::RxqOvfl, &1).is_ok()
}

/// Lets the kernel hand over several datagrams of one flow as one buffer, with their
/// segment size in a control message (UDP_GRO, Linux 5.0); false without it.
pub fn enable_gro(s: &UdpSocket) -> bool {
    !QEMU_BIG_ENDIAN && setsockopt(s, sockopt::UdpGroSegment, &true).is_ok()
}

/// Whether the kernel knows UDP_SEGMENT (UDP GSO, Linux 4.18). A send may still refuse
/// it (EIO without checksum offload on the way out): [`TxBatch`] then falls back.
pub fn gso_supported(s: &UdpSocket) -> bool {
    !QEMU_BIG_ENDIAN && getsockopt(s, sockopt::UdpGsoSegment).is_ok()
}

fn to_socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn from_socket_addr(a: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    // SAFETY: all-zero is a valid sockaddr_storage.
    *out = unsafe { zeroed() };
    match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let s =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = v4.port().to_be();
            s.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let s =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = v6.port().to_be();
            s.sin6_addr.s6_addr = v6.ip().octets();
            s.sin6_flowinfo = v6.flowinfo();
            s.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// One received datagram (or, with GRO, several of `segment` bytes each, the last
/// possibly shorter).
pub struct Datagram<'a> {
    pub data: &'a [u8],
    pub from: Option<SocketAddr>,
    /// GRO: the size of each datagram in `data`; 0 when it is one datagram.
    pub segment: usize,
    /// Longer than the slot: cut (MSG_TRUNC), to be dropped.
    pub truncated: bool,
}

/// Slots for one `recvmmsg`, made once.
pub struct RecvBatch {
    gro: bool,
    buf: Box<[u8]>,
    slot: usize,
    slots: usize,
    names: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[Ctrl]>,
    lens: [u32; SLOTS],
    flags: [libc::c_int; SLOTS],
    segs: [u32; SLOTS],
    count: usize,
    overflow: Option<u32>,
}

/// `n` all-zero socket addresses (the batches' name slots).
fn zeroed_names(n: usize) -> Box<[libc::sockaddr_storage]> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    vec![unsafe { zeroed::<libc::sockaddr_storage>() }; n].into_boxed_slice()
}

impl RecvBatch {
    /// `slots` (at most [`SLOTS`]) datagrams of up to `slot` bytes each; `gro`: the
    /// socket has UDP_GRO on (only noted).
    pub fn new(slots: usize, slot: usize, gro: bool) -> RecvBatch {
        let slots = slots.clamp(1, SLOTS);
        RecvBatch {
            gro,
            buf: vec![0u8; slots * slot].into_boxed_slice(),
            slot,
            slots,
            names: zeroed_names(slots),
            ctrl: vec![[0u64; 8]; slots].into_boxed_slice(),
            lens: [0; SLOTS],
            flags: [0; SLOTS],
            segs: [0; SLOTS],
            count: 0,
            overflow: None,
        }
    }

    /// Receives what is queued, up to the number of slots, without blocking; returns
    /// how many datagrams came (WouldBlock when none).
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.count = 0;
        let n = self.slots;
        // SAFETY (both): all-zero iovecs and mmsghdrs are valid (null pointers, 0 lengths).
        let mut iov: [libc::iovec; SLOTS] = unsafe { zeroed() };
        let mut hdr: [libc::mmsghdr; SLOTS] = unsafe { zeroed() };
        let base = self.buf.as_mut_ptr();
        for i in 0..n {
            // SAFETY: slot i lies inside buf (slots * slot bytes).
            iov[i].iov_base = unsafe { base.add(i * self.slot) }.cast();
            iov[i].iov_len = self.slot;
            let h = &mut hdr[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<Ctrl>() as _;
        }
        // SAFETY: every header points into buffers owned by self or on this stack
        // frame, with their lengths; the kernel writes at most that much.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdr.as_mut_ptr(),
                n as _,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let r = r as usize;
        for (i, m) in hdr[..r].iter().enumerate() {
            let h = &m.msg_hdr;
            self.lens[i] = m.msg_len;
            self.flags[i] = h.msg_flags;
            self.segs[i] = 0;
            // SAFETY: the kernel filled msg_control up to msg_controllen with complete
            // control messages; CMSG_* walk only inside it.
            let mut c = unsafe { libc::CMSG_FIRSTHDR(h) };
            while !c.is_null() {
                // SAFETY: c points to a control message header inside ctrl[i].
                let (level, kind) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
                // SAFETY: as above; the data of both messages is a 4-byte integer.
                let data = unsafe { libc::CMSG_DATA(c) };
                if level == libc::SOL_SOCKET && kind == libc::SO_RXQ_OVFL {
                    // SAFETY: see above.
                    self.overflow = Some(unsafe { data.cast::<u32>().read_unaligned() });
                } else if level == libc::SOL_UDP && kind == libc::UDP_GRO {
                    // SAFETY: see above.
                    let v = unsafe { data.cast::<libc::c_int>().read_unaligned() };
                    self.segs[i] = v.max(0) as u32;
                }
                // SAFETY: h and c are valid, as above.
                c = unsafe { libc::CMSG_NXTHDR(h, c) };
            }
        }
        self.count = r;
        Ok(r)
    }

    /// Datagrams in the last batch.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Made for a socket with UDP GRO on.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Datagrams one `recv` takes at most.
    pub fn capacity(&self) -> usize {
        self.slots
    }

    /// Datagram `i` of the last batch.
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let len = (self.lens[i] as usize).min(self.slot);
        let seg = self.segs[i] as usize;
        Datagram {
            data: &self.buf[i * self.slot..][..len],
            from: to_socket_addr(&self.names[i]),
            segment: if seg > 0 && seg < len { seg } else { 0 },
            truncated: self.flags[i] & libc::MSG_TRUNC != 0,
        }
    }

    /// The bytes of datagram `i` of the last batch, to be changed in place (opened).
    pub fn data_mut(&mut self, i: usize) -> &mut [u8] {
        let len = (self.lens[i] as usize).min(self.slot);
        &mut self.buf[i * self.slot..][..len]
    }

    /// The kernel's count of datagrams dropped on this socket, as of the last one
    /// received that carried it (only sent once it is not 0).
    pub fn overflow_count(&self) -> Option<u32> {
        self.overflow
    }
}

/// What [`TxBatch::flush`] did.
#[derive(Debug, Default)]
pub struct Flushed {
    /// Packets the kernel took.
    pub sent: usize,
    /// Packets lost to send errors, and the last error.
    pub failed: usize,
    pub error: Option<io::Error>,
    /// UDP GSO was refused before it ever worked: it is off from now on.
    pub gso_refused: Option<io::Error>,
}

/// Sealed packets of one burst, back to back in one buffer, waiting for one `sendmmsg`.
pub struct TxBatch {
    buf: Box<[u8]>,
    used: usize,
    /// (offset, length, destination) per packet.
    pkts: Box<[(u32, u32, SocketAddr)]>,
    count: usize,
    names: Box<[libc::sockaddr_storage]>,
    ctrl: Box<[[u64; 4]]>,
    gso: bool,
    gso_worked: bool,
}

impl TxBatch {
    /// Room for `bytes` of sealed packets and at most `max_pkts` of them; `gso`: send
    /// runs of equal-size packets to one destination as one message.
    pub fn new(bytes: usize, max_pkts: usize, gso: bool) -> TxBatch {
        let unspec = SocketAddr::from(([0, 0, 0, 0], 0));
        TxBatch {
            buf: vec![0u8; bytes].into_boxed_slice(),
            used: 0,
            pkts: vec![(0, 0, unspec); max_pkts.max(1)].into_boxed_slice(),
            count: 0,
            names: zeroed_names(SLOTS),
            ctrl: vec![[0u64; 4]; SLOTS].into_boxed_slice(),
            gso,
            gso_worked: false,
        }
    }

    pub fn gso(&self) -> bool {
        self.gso
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Room for one more packet of up to `max` bytes; None when the batch is full
    /// (flush it first).
    pub fn slot(&mut self, max: usize) -> Option<&mut [u8]> {
        if self.count == self.pkts.len() || self.used + max > self.buf.len() {
            return None;
        }
        Some(&mut self.buf[self.used..self.used + max])
    }

    /// The packet written into the last [`TxBatch::slot`] is `len` bytes, for `dst`.
    pub fn commit(&mut self, len: usize, dst: SocketAddr) {
        self.pkts[self.count] = (self.used as u32, len as u32, dst);
        self.count += 1;
        self.used += len;
    }

    /// The end of the run of packets from `p` that can go as one GSO message: same
    /// destination, same size (the last may be shorter), within the kernel's limits.
    fn run_end(&self, p: usize) -> usize {
        let (_, size, dst) = self.pkts[p];
        let mut q = p + 1;
        let mut bytes = size as usize;
        while q < self.count && q - p < GSO_MAX_SEGMENTS {
            let (_, l, d) = self.pkts[q];
            if d != dst || l > size || bytes + l as usize > GSO_MAX_BYTES {
                break;
            }
            bytes += l as usize;
            q += 1;
            if l < size {
                break;
            }
        }
        q
    }

    /// Sends the batch (as few `sendmmsg` calls as the slots allow) and empties it.
    pub fn flush(&mut self, fd: BorrowedFd<'_>) -> Flushed {
        let mut out = Flushed::default();
        let mut p = 0;
        // Packets before this index go one per message (a refused GSO run, resent).
        let mut plain_until = 0;
        while p < self.count {
            // SAFETY (both): all-zero iovecs and mmsghdrs are valid.
            let mut iov: [libc::iovec; SLOTS] = unsafe { zeroed() };
            let mut hdr: [libc::mmsghdr; SLOTS] = unsafe { zeroed() };
            let mut runs = [(0usize, 0usize); SLOTS];
            let mut m = 0;
            let mut q = p;
            while m < SLOTS && q < self.count {
                let end = if self.gso && q >= plain_until {
                    self.run_end(q)
                } else {
                    q + 1
                };
                let (off, size, dst) = self.pkts[q];
                let last = self.pkts[end - 1];
                let len = (last.0 + last.1 - off) as usize;
                // SAFETY: the run lies inside buf (offsets and lengths of committed packets).
                iov[m].iov_base = unsafe { self.buf.as_mut_ptr().add(off as usize) }.cast();
                iov[m].iov_len = len;
                let namelen = from_socket_addr(&dst, &mut self.names[m]);
                let h = &mut hdr[m].msg_hdr;
                h.msg_name = (&mut self.names[m] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = namelen;
                h.msg_iov = &mut iov[m];
                h.msg_iovlen = 1;
                if end - q > 1 {
                    let ctrl = &mut self.ctrl[m];
                    *ctrl = [0; 4];
                    h.msg_control = ctrl.as_mut_ptr().cast();
                    // SAFETY: CMSG_SPACE is a pure size computation.
                    h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
                    // SAFETY: the control buffer (32 bytes) holds CMSG_SPACE(2) bytes;
                    // the header and its 2-byte datum are written inside it.
                    unsafe {
                        let c = libc::CMSG_FIRSTHDR(h);
                        (*c).cmsg_level = libc::SOL_UDP;
                        (*c).cmsg_type = libc::UDP_SEGMENT;
                        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                        libc::CMSG_DATA(c)
                            .cast::<u16>()
                            .write_unaligned(size as u16);
                    }
                }
                runs[m] = (q, end);
                m += 1;
                q = end;
            }
            // SAFETY: m headers, each pointing into buffers that live until the call returns.
            let r = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    hdr.as_mut_ptr(),
                    m as _,
                    libc::MSG_DONTWAIT as _,
                )
            };
            if r > 0 {
                let r = r as usize;
                for &(a, b) in &runs[..r] {
                    out.sent += b - a;
                    if b - a > 1 {
                        self.gso_worked = true;
                    }
                }
                p = runs[r - 1].1;
                continue;
            }
            let e = io::Error::last_os_error();
            let (a, b) = runs[0];
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if b - a > 1
                && matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL) | Some(libc::EIO) | Some(libc::EMSGSIZE)
                )
            {
                // GSO refused for this run (no checksum offload on the way; segments
                // above the path MTU, as a TAP tunnel's 1500-byte frames that the
                // kernel may only fragment one by one): send its packets one by one.
                if !self.gso_worked {
                    self.gso = false;
                    out.gso_refused = Some(e);
                }
                plain_until = b;
                continue;
            }
            if e.kind() == io::ErrorKind::WouldBlock {
                // The send buffer is full: the rest of the burst is lost either way.
                out.failed += self.count - p;
                out.error = Some(e);
                break;
            }
            out.failed += b - a;
            out.error = Some(e);
            p = b;
        }
        self.count = 0;
        self.used = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (a, b)
    }

    #[test]
    fn a_burst_arrives_whole_and_in_order() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let gso = gso_supported(&a);
        for gso in [false, gso] {
            let mut tx = TxBatch::new(64 * 1024, 64, gso);
            // 40 packets of 1000 bytes, then a 300-byte one, then 5 of 700
            let sizes: Vec<usize> = (0..40)
                .map(|_| 1000)
                .chain([300])
                .chain((0..5).map(|_| 700))
                .collect();
            for (i, &n) in sizes.iter().enumerate() {
                let s = tx.slot(n).unwrap();
                s.fill(i as u8);
                tx.commit(n, to);
            }
            let f = tx.flush(a.as_fd());
            assert!(f.error.is_none(), "{f:?}");
            assert!(f.gso_refused.is_none(), "loopback takes UDP GSO: {f:?}");
            assert_eq!(tx.gso(), gso);
            assert_eq!(f.sent, sizes.len());
            assert!(tx.is_empty());
            let mut rx = RecvBatch::new(SLOTS, 2048, false);
            let mut got = Vec::new();
            let t0 = std::time::Instant::now();
            while got.len() < sizes.len() && t0.elapsed().as_secs() < 5 {
                match rx.recv(b.as_fd()) {
                    Ok(n) => {
                        for i in 0..n {
                            let d = rx.get(i);
                            assert!(!d.truncated);
                            assert_eq!(d.from, Some(a.local_addr().unwrap()));
                            assert_eq!(d.segment, 0, "no GRO asked for");
                            got.push((d.data.len(), d.data[0]));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            let want: Vec<(usize, u8)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (n, i as u8))
                .collect();
            assert_eq!(got, want, "gso {gso}");
        }
    }

    #[test]
    fn a_long_datagram_is_marked_truncated() {
        let (a, b) = pair();
        a.send_to(&[7u8; 3000], b.local_addr().unwrap()).unwrap();
        let mut rx = RecvBatch::new(4, 1024, false);
        let t0 = std::time::Instant::now();
        loop {
            match rx.recv(b.as_fd()) {
                Ok(n) => {
                    assert_eq!(n, 1);
                    assert!(rx.get(0).truncated);
                    assert_eq!(rx.get(0).data.len(), 1024);
                    break;
                }
                Err(_) if t0.elapsed().as_secs() < 5 => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    #[cfg_attr(
        tunbox_qemu,
        ignore = "qemu-user refuses SO_RXQ_OVFL (and would pass its count unswapped)"
    )]
    fn the_kernels_drop_count_comes_with_the_datagrams() {
        let (a, b) = pair();
        assert!(enable_overflow_count(&b));
        // The smallest receive buffer, then more than it holds.
        let _ = setsockopt(&b, sockopt::RcvBuf, &1);
        let to = b.local_addr().unwrap();
        for _ in 0..200 {
            let _ = a.send_to(&[1u8; 1000], to);
        }
        let mut rx = RecvBatch::new(SLOTS, 2048, false);
        let mut n = 0;
        while let Ok(k) = rx.recv(b.as_fd()) {
            n += k;
        }
        assert!(n > 0 && n < 200, "{n} of 200 received");
        // A datagram carries the count as of its own arrival: one more, with room now.
        a.send_to(&[2u8; 100], to).unwrap();
        let t0 = std::time::Instant::now();
        while rx.recv(b.as_fd()).is_err() && t0.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let lost = rx.overflow_count().expect("SO_RXQ_OVFL count");
        assert_eq!(lost as usize, 200 - n);
    }

    #[test]
    fn buffers_can_be_raised() {
        let (a, _) = pair();
        let (r, w) = set_buffers(&a, 1 << 20);
        // Root gets it all (FORCE); others get net.core.[rw]mem_max at most.
        assert!(r > 0 && w > 0);
        if nix::unistd::geteuid().is_root() {
            assert!(r >= 1 << 20 && w >= 1 << 20, "{r} {w}");
        }
    }
}
