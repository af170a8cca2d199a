//! The tunnel's poll loop: one `poll(2)` over the device and the socket(s), the pure
//! [`Tunnel`] state machine doing the protocol. The device side (reads, with offloads
//! segmented; writes, with offloads coalesced) is here; the transports' own paths are in
//! `udp.rs` (recvmmsg, sendmmsg and UDP GSO) and `tcp.rs` (frames, accept, dial). Buffers
//! are made in [`Engine::new`] and [`Engine::with_offloads`]; nothing is allocated per
//! packet.
use super::crypto_pool::CryptoPool;
use super::net::{
    finish_connect, start_connect, Conn, Dial, Fill, Net, MAX_FRAME, TCP_AUTH_TIME,
    TCP_CONNECT_TIME, TCP_PENDING,
};
use crate::ratelimit::{RateLimit, VerboseLog};
use crate::sys::poll::{PollSet, Want};
use crate::sys::signals;
use crate::sys::tun::Tun;
use crate::sys::udp::TxBatch;
use crate::tunnel::noise::DATA_OVERHEAD;
use crate::tunnel::{DropReason, Event, Hub, Output, Role, Tunnel};
use crate::wire::gso::{Coalescer, GsoError, Segments};
use crate::wire::virtio;

#[path = "tcp.rs"]
mod tcp;
#[path = "udp.rs"]
mod udp;
use log::{info, warn};
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Largest packet read from the device or the socket.
pub const BUF_SIZE: usize = 65536;
/// Packets handled per readiness before looking at the other side again.
const BATCH: usize = 64;
/// UDP: `recvmmsg` calls per readiness (each up to `udp::SLOTS` datagrams).
const UDP_BATCHES: usize = 4;

/// The packet device: the tun/tap [`Tun`], or a datagram socket in tests.
pub trait Device: AsFd {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn send(&self, buf: &[u8]) -> io::Result<usize>;
    /// One packet written from two pieces: a virtio header and the packet (a device
    /// with offloads, see [`Engine::with_offloads`]).
    fn send2(&self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        let _ = (head, body);
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Device for Tun {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read(buf)
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.write(buf)
    }
    fn send2(&self, head: &[u8], body: &[u8]) -> io::Result<usize> {
        self.write2(head, body)
    }
}

impl Device for std::os::unix::net::UnixDatagram {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::os::unix::net::UnixDatagram::recv(self, buf)
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        std::os::unix::net::UnixDatagram::send(self, buf)
    }
}

/// Where a message from the network came from (for replies and logs).
#[derive(Clone, Copy)]
enum From {
    Udp(SocketAddr),
    Tcp(Option<SocketAddr>),
}

impl std::fmt::Display for From {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            From::Udp(a) | From::Tcp(Some(a)) => Addr(*a).fmt(f),
            From::Tcp(None) => write!(f, "tcp peer"),
        }
    }
}

/// A socket address for log lines, IPv4-mapped IPv6 shown as IPv4 (a dual-stack
/// server sees IPv4 clients as ::ffff:a.b.c.d).
struct Addr(SocketAddr);

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.ip().to_canonical() {
            std::net::IpAddr::V4(v4) => write!(f, "{v4}:{}", self.0.port()),
            std::net::IpAddr::V6(v6) => write!(f, "[{v6}]:{}", self.0.port()),
        }
    }
}

/// A peer address for log lines, without allocating.
/// With several peers: the configured name, then the address if known.
struct PeerName<'a>(&'a str, Option<SocketAddr>);

impl std::fmt::Display for PeerName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0, self.1) {
            ("", Some(a)) => Addr(a).fmt(f),
            ("", None) => f.write_str("the peer"),
            (n, Some(a)) => write!(f, "peer {n} ({})", Addr(a)),
            (n, None) => write!(f, "peer {n}"),
        }
    }
}

/// The client's handshake attempt at which it says what is likely wrong.
const UNANSWERED_HINT: u32 = 4;

/// What a drop reason likely means, for the log line.
fn drop_hint(r: DropReason) -> &'static str {
    match r {
        DropReason::HandshakeMac | DropReason::HandshakeAuth => {
            " (failed authentication: wrong key, or not a tunbox client)"
        }
        DropReason::InnerSource => {
            " (inner source outside the peer's routes: spoofed, or a route missing)"
        }
        _ => "",
    }
}

/// What a failed TCP connect likely means.
fn connect_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        " (refused: is the server running, and using --transport tcp?)"
    } else {
        ""
    }
}

/// One write of a virtio header and a packet; a failure is counted in `failed`.
fn write2<D: Device>(dev: &D, h: &[u8], p: &[u8], failed: &mut (u64, Option<io::Error>)) {
    if let Err(e) = dev.send2(h, p) {
        failed.0 += 1;
        failed.1 = Some(e);
    }
}

/// Everything but the sockets, so both can be borrowed at once.
struct Core<D: Device> {
    dev: D,
    tunnel: Hub,
    name: String,
    tap: bool,
    verbose: bool,
    out_buf: Box<[u8]>,
    /// TUN offloads: opened packets are coalesced into super-packets for the device.
    coalescer: Option<Box<Coalescer>>,
    /// UDP: data messages are sealed and opened in batches by the pool, on one thread
    /// or (`--threads`) on several (`udp.rs`).
    pool: CryptoPool,
    /// Where the pool's opening jobs came from in the receive batch, in their order.
    rx_jobs: Vec<udp::RxJob>,
    drop_log: RateLimit,
    event_log: RateLimit,
    verbose_log: VerboseLog,
}

/// What a TCP connection's frames asked for.
#[derive(PartialEq, Eq)]
enum Verdict {
    Keep,
    /// It authenticated under the active session: make it the active connection.
    Promote,
    Close,
}

impl<D: Device> Core<D> {
    fn count(&mut self, r: DropReason) {
        self.tunnel.counters_mut().drop(r);
    }

    /// A datagram that could not be sent to `dst`: counted, logged within the limit.
    #[inline(never)]
    fn send_failed(&mut self, dst: SocketAddr, e: &io::Error, now: Instant) {
        self.count(DropReason::WriteError);
        if self.drop_log.allow(now) {
            warn!("{}: send to {dst} failed: {e}", self.name);
        }
    }

    /// Logs a drop within the rate limit; true if it was logged.
    fn log_drop(&mut self, what: &str, len: usize, from: Option<From>, r: DropReason) -> bool {
        let allowed = self.drop_log.allow(Instant::now());
        if allowed {
            let skipped = self.drop_log.take_suppressed();
            let total = self.tunnel.counters().total_drops();
            let hint = drop_hint(r);
            match from {
                Some(f) => warn!(
                    "{}: dropped {len}-byte {what} from {f}: {}{hint} ({total} dropped so far, {skipped} messages suppressed)",
                    self.name,
                    r.name()
                ),
                None => warn!(
                    "{}: dropped {len}-byte {what}: {}{hint} ({total} dropped so far, {skipped} messages suppressed)",
                    self.name,
                    r.name()
                ),
            }
        }
        allowed
    }

    /// Sanity of a decrypted packet before it goes to the device.
    fn inner_ok(&self, p: &[u8]) -> bool {
        if self.tap {
            p.len() >= 14
        } else {
            (p.len() >= 20 && p[0] >> 4 == 4) || (p.len() >= 40 && p[0] >> 4 == 6)
        }
    }

    /// Delivers `out_buf[..n]` to the device.
    fn deliver(&mut self, n: usize, from: From) {
        // (taking an empty boxed slice in its place allocates nothing)
        let buf = std::mem::take(&mut self.out_buf);
        self.deliver_packet(&buf[..n], from);
        self.out_buf = buf;
    }

    /// Delivers a packet opened from `from` to the device.
    fn deliver_packet(&mut self, p: &[u8], from: From) {
        let n = p.len();
        if !self.inner_ok(p) {
            self.count(DropReason::BadInner);
            self.log_drop("packet", n, Some(from), DropReason::BadInner);
            return;
        }
        if self.verbose && self.verbose_log.allow(Instant::now(), &self.name) {
            info!("{}: {n} bytes from {from} to the device", self.name);
        }
        if let Some(c) = self.coalescer.as_mut() {
            // Offloads: held, maybe merged with the next ones of its flow; written by
            // the coalescer, at the latest in `flush_device` at the end of the batch.
            let (dev, mut failed) = (&self.dev, (0u64, None));
            c.push(p, &mut |h, p| write2(dev, h, p, &mut failed));
            self.device_failed(failed);
        } else if let Err(e) = self.dev.send(p) {
            self.device_failed((1, Some(e)));
        }
    }

    /// Offloads: writes what the coalescer holds (end of a receive batch).
    fn flush_device(&mut self) {
        if let Some(c) = self.coalescer.as_mut() {
            let (dev, mut failed) = (&self.dev, (0u64, None));
            c.flush(&mut |h, p| write2(dev, h, p, &mut failed));
            self.device_failed(failed);
        }
    }

    /// Counts and logs (rate-limited) failed device writes.
    fn device_failed(&mut self, (n, e): (u64, Option<io::Error>)) {
        if n == 0 {
            return;
        }
        self.tunnel.counters_mut().drop_n(DropReason::WriteError, n);
        if let Some(e) = e {
            if self.drop_log.allow(Instant::now()) {
                warn!("{}: device write failed: {e}", self.name);
            }
        }
    }

    fn log_events(&mut self, remote: Option<SocketAddr>) {
        while let Some((i, e)) = self.tunnel.take_event() {
            let peer = PeerName(self.tunnel.name(i), remote.or(self.tunnel.endpoint(i)));
            match e {
                Event::HandshakeSent { attempt, retry_in } => {
                    if (attempt <= 3 || attempt % 20 == 0 || self.verbose)
                        && self.event_log.allow(Instant::now())
                    {
                        info!(
                            "{}: handshake sent to {peer} (attempt {attempt}, next in {} s unless answered)",
                            self.name,
                            retry_in.as_secs()
                        );
                    }
                    // After three unanswered ones, then every 20th (minutes apart).
                    if attempt == UNANSWERED_HINT || attempt % 20 == 0 {
                        warn!(
                            "{}: no answer from {peer} to {} handshakes. Likely causes: the key or \
                             --mode differs at the other end (a server silently drops handshakes it \
                             cannot authenticate), the server is not running, or UDP to it is \
                             blocked on the way",
                            self.name,
                            attempt - 1
                        );
                    }
                }
                Event::SessionUp { replaced } => {
                    if !replaced || self.verbose {
                        let (what, why) = if replaced {
                            ("new session", " (rekey or peer restart)")
                        } else {
                            ("session up", "")
                        };
                        info!("{}: {what} with {peer}{why}", self.name);
                    }
                }
                Event::PeerDead => {
                    let t = self
                        .tunnel
                        .config()
                        .timeout
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    let then = if self.tunnel.role() == Role::Client {
                        "reconnecting"
                    } else {
                        "waiting for the client"
                    };
                    warn!(
                        "{}: nothing from {peer} for {t} s: session dropped, {then}",
                        self.name
                    );
                }
                Event::SessionExpired => {
                    warn!("{}: session with {peer} expired without rekey", self.name)
                }
                Event::ModeMismatch { peer_tap } => {
                    if self.event_log.allow(Instant::now()) {
                        let (p, me) = if peer_tap {
                            ("tap", "tun")
                        } else {
                            ("tun", "tap")
                        };
                        warn!(
                            "{}: a peer with the right key runs mode {p}, this end runs {me}: handshake refused; use the same --mode on both ends",
                            self.name
                        );
                    }
                }
            }
        }
    }
}

/// The loop: device, network, tunnel state machine.
pub struct Engine<D: Device> {
    core: Core<D>,
    net: Net,
    /// One read from the device (with offloads: a virtio header and a super-packet).
    dev_buf: Box<[u8]>,
    /// Offloads: one segment of a super-packet.
    seg_buf: Box<[u8]>,
    /// Client with a host name: resolved again before each TCP connect and after the
    /// peer went silent (UDP), so a server behind dynamic DNS is found again.
    resolve: Option<(String, u16)>,
    /// Server: where each peer's handshake high-water mark is kept (super::hwm).
    hwm: Vec<Option<super::hwm::HwmFile>>,
    /// `tunbox status`: the socket and the settings it reports.
    status: Option<(crate::status::StatusSocket, StatusInfo)>,
    /// UDP client with a host name: when to look it up again while no session comes up.
    recheck: super::net::Recheck,
}

/// What `tunbox status` says about the settings (see `crate::status`).
#[derive(Debug, Clone, Default)]
pub struct StatusInfo {
    pub mode: &'static str,
    pub transport: &'static str,
    pub listen: Option<String>,
    pub remote: Option<String>,
}

/// Resolves `host` again; updates `cur` if it moved (and, for a bound UDP socket, kept
/// its address family).
fn re_resolve(name: &str, host: &Option<(String, u16)>, cur: &mut SocketAddr, any_family: bool) {
    let Some((h, p)) = host else { return };
    match super::resolve_remote(h, *p) {
        Ok(a) if a == *cur => {}
        Ok(a) if any_family || a.is_ipv6() == cur.is_ipv6() => {
            info!("{name}: {h} now resolves to {}", Addr(a));
            *cur = a;
        }
        Ok(a) => warn!(
            "{name}: {h} now resolves to {}, another address family than {}: restart tunbox to use it",
            Addr(a),
            Addr(*cur)
        ),
        Err(e) => warn!("{name}: {e}; still using {}", Addr(*cur)),
    }
}

impl<D: Device> Engine<D> {
    pub fn new(
        dev: D,
        net: Net,
        tunnel: Tunnel,
        name: &str,
        tap: bool,
        verbose: bool,
    ) -> Engine<D> {
        Self::with_hub(dev, net, Hub::single(tunnel), name, tap, verbose)
    }

    /// A tunnel with several peers (see [`Hub`]).
    pub fn with_hub(
        dev: D,
        net: Net,
        tunnel: Hub,
        name: &str,
        tap: bool,
        verbose: bool,
    ) -> Engine<D> {
        Engine {
            core: Core {
                dev,
                tunnel,
                name: name.to_string(),
                tap,
                verbose,
                out_buf: vec![0u8; BUF_SIZE + DATA_OVERHEAD].into_boxed_slice(),
                coalescer: None,
                pool: CryptoPool::new(1),
                rx_jobs: Vec::with_capacity(super::crypto_pool::CAPACITY),
                // a flood cannot fill a router's log: 5 lines at once, then 1 a second
                drop_log: RateLimit::new(5, 1),
                event_log: RateLimit::new(10, 1),
                verbose_log: VerboseLog::new(),
            },
            net,
            dev_buf: vec![0u8; BUF_SIZE + virtio::HDR_LEN].into_boxed_slice(),
            seg_buf: Box::default(),
            resolve: None,
            hwm: Vec::new(),
            status: None,
            recheck: Default::default(),
        }
    }

    /// The device was opened with a virtio header (IFF_VNET_HDR) and offloads: reads
    /// are segmented (super-packets into packets), writes coalesced (TCP segments of
    /// one flow into super-packets). TUN mode only.
    pub fn with_offloads(&mut self) {
        self.core.coalescer = Some(Box::new(Coalescer::new()));
        self.seg_buf = vec![0u8; BUF_SIZE].into_boxed_slice();
    }

    /// Seals and opens the data messages of the UDP path on `threads` threads (this
    /// one included; see [`CryptoPool`]); 1 (the default): on this thread. Only for an
    /// encrypted tunnel over UDP; returns the threads in use.
    pub fn with_crypto_threads(&mut self, threads: usize) -> usize {
        let c = &mut self.core;
        if threads > 1 && !c.tunnel.is_plaintext() && matches!(self.net, Net::Udp { .. }) {
            c.pool = CryptoPool::new(threads);
        }
        c.pool.threads()
    }

    /// The device (to switch its offloads off at exit).
    pub fn device(&self) -> &D {
        &self.core.dev
    }

    /// TCP segments merged into super-packets for the device so far (offloads).
    pub fn coalesced(&self) -> u64 {
        self.core.coalescer.as_ref().map_or(0, |c| c.coalesced())
    }

    /// Server: keep the handshake high-water mark in this file from now on.
    /// (one file per peer, in the order of the peers)
    pub fn keep_high_water_in(&mut self, f: Vec<Option<super::hwm::HwmFile>>) {
        self.hwm = f;
    }

    fn save_high_water(&mut self) {
        for (i, slot) in self.hwm.iter_mut().enumerate() {
            let Some(f) = slot.as_mut() else { continue };
            if let Err(e) = f.save(self.core.tunnel.peer(i).init_high_water()) {
                warn!(
                    "{}: cannot write {}: {e}; the handshake high-water mark is no longer kept",
                    self.core.name,
                    f.path().display()
                );
                *slot = None;
            }
        }
    }

    /// Serve `tunbox status` on this socket.
    pub fn serve_status(&mut self, s: crate::status::StatusSocket, info: StatusInfo) {
        self.status = Some((s, info));
    }

    /// The status document (see `crate::status`); made only when asked for.
    pub fn status_doc(&self, now: Instant) -> String {
        use crate::status::{json_counters, json_drops, json_opt_str, json_opt_u64, json_str};
        let info = self
            .status
            .as_ref()
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        let hub = &self.core.tunnel;
        let mut o = String::with_capacity(1024 + 600 * hub.len());
        o.push_str("{\"version\":1,\"tool\":\"tunnel\",\"device\":");
        json_str(&mut o, &self.core.name);
        let _ = write!(o, ",\"pid\":{},\"mode\":", std::process::id());
        json_str(&mut o, info.mode);
        o.push_str(",\"transport\":");
        json_str(&mut o, info.transport);
        o.push_str(",\"role\":");
        json_str(
            &mut o,
            if hub.role() == Role::Server {
                "server"
            } else {
                "client"
            },
        );
        o.push_str(",\"listen\":");
        json_opt_str(&mut o, info.listen.as_deref());
        o.push_str(",\"remote\":");
        json_opt_str(&mut o, info.remote.as_deref());
        o.push_str(",\"socket_drops\":");
        let drops = match &self.net {
            Net::Udp { sock, .. } => crate::sys::net::udp_drops(sock),
            _ => None,
        };
        json_opt_u64(&mut o, drops);
        o.push_str(",\"drops\":");
        json_drops(&mut o, hub.own_counters());
        o.push_str(",\"peers\":[");
        let remote = self.peer();
        for (i, p) in hub.peers().iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"name\":");
            json_str(&mut o, &p.name);
            o.push_str(",\"endpoint\":");
            let ep = p.endpoint.or(if hub.len() == 1 { remote } else { None });
            json_opt_str(&mut o, ep.map(|a| Addr(a).to_string()).as_deref());
            o.push_str(",\"last_handshake_secs\":");
            let age = p
                .tunnel
                .session_created()
                .map(|t| now.saturating_duration_since(t).as_secs());
            json_opt_u64(&mut o, age);
            o.push(',');
            json_counters(&mut o, p.tunnel.counters());
            o.push('}');
        }
        o.push_str("]}\n");
        o
    }

    /// The client's server was given as a host name: look it up again when reconnecting.
    pub fn resolve_again(&mut self, host: &str, port: u16) {
        if host.parse::<std::net::IpAddr>().is_err() {
            self.resolve = Some((host.to_string(), port));
        }
    }

    pub fn tunnel(&self) -> &Hub {
        &self.core.tunnel
    }

    /// The counters to the log (all peers together, then each of several peers).
    pub fn log_counters(&self) {
        let hub = &self.core.tunnel;
        Self::log_line(&self.core.name, &hub.counters());
        if hub.len() > 1 {
            for p in hub.peers() {
                let name = format!("{}: peer {}", self.core.name, p.name);
                Self::log_line(&name, p.tunnel.counters());
            }
        }
    }

    fn log_line(name: &str, c: &crate::tunnel::Counters) {
        let line = crate::counters::Line {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            extra: &[
                ("keepalives rx", c.keepalives_rx),
                ("keepalives tx", c.keepalives_tx),
                ("handshakes sent", c.handshakes_sent),
                ("handshakes answered", c.handshakes_answered),
                ("sessions", c.sessions),
                ("peer dead", c.peer_dead),
            ],
            drops: &crate::tunnel::counters::DropReason::ALL.map(|r| (r.name(), c.dropped(r))),
        };
        info!("{name}: {line}");
    }

    fn peer(&self) -> Option<SocketAddr> {
        match &self.net {
            Net::Udp { remote, .. } => *remote,
            Net::TcpServer {
                active, incoming, ..
            } => active.peer.or_else(|| incoming.iter().find_map(|c| c.peer)),
            Net::TcpClient { remote, .. } => Some(*remote),
        }
    }

    /// Runs until `stop()` says so.
    pub fn run(&mut self, stop: &dyn Fn() -> bool) -> io::Result<()> {
        let res = self.run_until(stop);
        self.core.verbose_log.report(&self.core.name);
        res
    }

    fn run_until(&mut self, stop: &dyn Fn() -> bool) -> io::Result<()> {
        while !stop() {
            if signals::take_usr1() {
                self.log_counters();
            }
            let now = Instant::now();
            self.timers(now);
            self.save_high_water();
            let peer = self.peer();
            self.core.log_events(peer);

            // What to wait for.
            let c = &self.core;
            let mut set = PollSet::<{ 4 + TCP_PENDING }>::new();
            let status_i = self
                .status
                .as_ref()
                .and_then(|(s, _)| set.add(s.listener().as_fd(), Want::In));
            let mut dev_i = None;
            let backlog_full = !self.device_room();
            if !backlog_full {
                dev_i = set.add(c.dev.as_fd(), Want::In);
            }
            let (mut a_i, mut b_i, mut l_i) = (None, None, None);
            let mut inc_i: [Option<usize>; TCP_PENDING] = [None; TCP_PENDING];
            match &self.net {
                Net::Udp { sock, .. } => {
                    a_i = set.add(sock.as_fd(), Want::In);
                }
                Net::TcpServer {
                    listener,
                    active,
                    incoming,
                } => {
                    l_i = set.add(listener.as_fd(), Want::In);
                    let slots = std::iter::once(&mut a_i).chain(inc_i.iter_mut());
                    for (conn, slot) in std::iter::once(active).chain(incoming.iter()).zip(slots) {
                        if let Some(fd) = conn.fd() {
                            *slot = set.add(fd, conn.poll_events());
                        }
                    }
                }
                Net::TcpClient { conn, dial, .. } => match dial {
                    Dial::Connecting { sock, .. } => {
                        b_i = set.add(sock.as_fd(), Want::Out);
                    }
                    Dial::Up => {
                        if let Some(fd) = conn.fd() {
                            a_i = set.add(fd, conn.poll_events());
                        }
                    }
                    Dial::Idle { .. } => {}
                },
            }
            let ready = set.wait(self.poll_timeout(now))?;
            drop(set); // ends the borrows of the descriptors
            if !ready.any() {
                continue; // timeout or a signal
            }
            let now = Instant::now();
            let ready = |i: Option<usize>| ready.is(i);
            let inc = inc_i.map(ready);
            if ready(a_i) || ready(b_i) || ready(l_i) || inc.contains(&true) {
                self.on_network(now, ready(a_i), ready(b_i), ready(l_i), inc);
                self.core.flush_device();
            }
            if ready(dev_i) {
                self.on_device(now)?;
            }
            if ready(status_i) {
                if let Some((s, _)) = &self.status {
                    s.serve(|| self.status_doc(now));
                }
            }
            self.flush(now);
        }
        Ok(())
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        // The tunnel's timers only run while it can send (a TCP client: connected).
        let mut deadline = match &self.net {
            Net::TcpClient { dial, .. } if !matches!(dial, Dial::Up) => None,
            _ => self.core.tunnel.next_deadline(),
        };
        let mut at = |t: Instant| deadline = Some(deadline.map_or(t, |d| d.min(t)));
        match &self.net {
            Net::TcpClient { dial, .. } => match dial {
                Dial::Idle { next_try } => at(*next_try),
                Dial::Connecting { deadline, .. } => at(*deadline),
                Dial::Up => {}
            },
            Net::TcpServer { incoming, .. } => {
                for c in incoming.iter().filter(|c| c.is_open()) {
                    at(c.since + TCP_AUTH_TIME)
                }
            }
            _ => {}
        }
        let max = Duration::from_millis(1000);
        // (PollSet::wait rounds up, so the deadline has passed when we wake)
        deadline.map_or(max, |d| d.saturating_duration_since(now).min(max))
    }

    /// Sends what the tunnel's timers produce; manages TCP dialing and stale connections.
    fn timers(&mut self, now: Instant) {
        let wall = crate::clock::wall_nanos();
        let core = &mut self.core;
        match &mut self.net {
            Net::TcpClient {
                remote,
                conn,
                dial,
                backoff,
            } => {
                if matches!(dial, Dial::Idle { next_try } if now >= *next_try) {
                    re_resolve(&core.name, &self.resolve, remote, true);
                }
                match dial {
                    Dial::Idle { next_try } if now >= *next_try => match start_connect(*remote) {
                        Ok(sock) => {
                            *dial = Dial::Connecting {
                                sock,
                                deadline: now + TCP_CONNECT_TIME,
                            }
                        }
                        Err(e) => *dial = tcp::connect_failed(core, *remote, &e, backoff, now),
                    },
                    Dial::Connecting { deadline, .. } if now >= *deadline => {
                        let d = backoff.next_delay();
                        if core.event_log.allow(now) {
                            warn!(
                                "{}: no tcp connection to {remote} within {} s (next try in {} s)",
                                core.name,
                                TCP_CONNECT_TIME.as_secs(),
                                d.as_secs()
                            );
                        }
                        *dial = Dial::Idle { next_try: now + d };
                    }
                    _ => {}
                }
                if !matches!(dial, Dial::Up) {
                    return;
                }
                while let Some(slot) = conn.tx.slot(BUF_SIZE) {
                    match core.tunnel.tick(slot, now, wall) {
                        Output::ToNetwork(n) => conn.tx.commit(n),
                        _ => break,
                    }
                }
                if core.tunnel.take_peer_dead_flag() {
                    // The connection may be stuck: make a new one.
                    conn.close();
                    *dial = Dial::Idle { next_try: now };
                }
            }
            Net::TcpServer {
                active, incoming, ..
            } => {
                for incoming in incoming.iter_mut() {
                    if incoming.is_open() && now >= incoming.since + TCP_AUTH_TIME {
                        if core.drop_log.allow(now) {
                            warn!(
                                "{}: closing tcp connection from {}: not authenticated within {} s",
                                core.name,
                                From::Tcp(incoming.peer),
                                TCP_AUTH_TIME.as_secs()
                            );
                        }
                        incoming.close();
                    }
                }
                while let Output::ToNetwork(n) = core.tunnel.tick(&mut core.out_buf, now, wall) {
                    if active.is_open() && !active.tx.push(&core.out_buf[..n]) {
                        core.count(DropReason::TxFull);
                    }
                }
                let _ = core.tunnel.take_peer_dead_flag();
            }
            Net::Udp { sock, remote, .. } => {
                while let Output::ToNetwork(n) = core.tunnel.tick(&mut core.out_buf, now, wall) {
                    let to = core.tunnel.last_peer();
                    if let Some(dst) = remote.or(core.tunnel.endpoint(to)) {
                        if let Err(e) = sock.send_to(&core.out_buf[..n], dst) {
                            core.send_failed(dst, &e, now);
                        }
                    }
                }
                let dead = core.tunnel.take_peer_dead_flag();
                let unanswered =
                    self.resolve.is_some() && self.recheck.due(core.tunnel.is_up(), now);
                if dead || unanswered {
                    if let Some(r) = remote.as_mut() {
                        re_resolve(&core.name, &self.resolve, r, false);
                    }
                }
            }
        }
    }

    fn on_device(&mut self, now: Instant) -> io::Result<()> {
        for _ in 0..BATCH {
            if !self.device_room() {
                break; // the TCP send queue is near full: read on once it drains
            }
            let core = &mut self.core;
            let n = match core.dev.recv(&mut self.dev_buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(e),
            };
            if core.verbose && core.verbose_log.allow(now, &core.name) {
                info!("{}: {n} bytes from the device", core.name);
            }
            if core.coalescer.is_none() {
                Self::from_device(core, &mut self.net, &self.dev_buf[..n], now);
                continue;
            }
            // Offloads: a virtio header, then a packet or a super-packet to segment.
            let mut segs = match Segments::new(&self.dev_buf[..n]) {
                Ok(s) => s,
                Err(e) => {
                    Self::bad_offload(core, n, e);
                    continue;
                }
            };
            while let Some(r) = segs.next_into(&mut self.seg_buf) {
                match r {
                    Ok(len) => Self::from_device(core, &mut self.net, &self.seg_buf[..len], now),
                    Err(e) => {
                        Self::bad_offload(core, n, e);
                        break;
                    }
                }
            }
        }
        if let Net::Udp { sock, tx, .. } = &mut self.net {
            udp::send(&mut self.core, sock, tx, now);
        }
        Ok(())
    }

    /// A read from the device that cannot be segmented: counted and logged.
    fn bad_offload(core: &mut Core<D>, n: usize, e: GsoError) {
        core.count(DropReason::BadInner);
        if core.drop_log.allow(Instant::now()) {
            warn!(
                "{}: dropped a {n}-byte read from the device: cannot segment it ({e:?})",
                core.name
            );
        }
    }

    /// Whether the TCP send queue has room for what one device read may become (a
    /// super-packet: up to 64 KiB of segments, each with its frame overhead).
    fn device_room(&self) -> bool {
        match &self.net {
            Net::TcpServer { active: conn, .. } | Net::TcpClient { conn, .. } => {
                let read = if self.core.coalescer.is_some() {
                    2 * BUF_SIZE
                } else {
                    BUF_SIZE / 4
                };
                !conn.is_open() || conn.tx.pending().len() + read <= super::net::TCP_TX_QUEUE
            }
            Net::Udp { .. } => true,
        }
    }

    /// One packet from the device: route, seal and queue it.
    fn from_device(core: &mut Core<D>, net: &mut Net, pkt: &[u8], now: Instant) {
        match net {
            Net::Udp {
                sock, remote, tx, ..
            } => udp::seal(core, sock, *remote, tx, pkt, now),
            Net::TcpServer { active: conn, .. } | Net::TcpClient { conn, .. } => {
                tcp::seal(core, conn, pkt, now)
            }
        }
    }

    fn on_network(&mut self, now: Instant, a: bool, b: bool, l: bool, inc: [bool; TCP_PENDING]) {
        let core = &mut self.core;
        match &mut self.net {
            Net::Udp {
                sock,
                remote,
                rx,
                overflow_seen,
                ..
            } => udp::receive(core, sock, *remote, rx, overflow_seen, now),
            Net::TcpServer {
                listener,
                active,
                incoming,
            } => tcp::server_receive(core, listener, active, incoming, a, l, inc, now),
            Net::TcpClient {
                remote,
                conn,
                dial,
                backoff,
            } => tcp::client_receive(core, *remote, conn, dial, backoff, a, b, now),
        }
    }

    /// Writes queued TCP data.
    fn flush(&mut self, now: Instant) {
        let core = &mut self.core;
        let (first, rest): (Option<&mut Conn>, &mut [Conn]) = match &mut self.net {
            Net::TcpServer {
                active, incoming, ..
            } => (Some(active), &mut incoming[..]),
            Net::TcpClient { conn, .. } => (Some(conn), &mut []),
            Net::Udp { .. } => (None, &mut []),
        };
        let mut lost = false;
        for c in first.into_iter().chain(rest.iter_mut()) {
            if let Err(e) = c.flush() {
                if core.drop_log.allow(now) {
                    warn!(
                        "{}: tcp write to {} failed: {e}",
                        core.name,
                        From::Tcp(c.peer)
                    );
                }
                c.close();
                lost = true;
            }
        }
        if lost {
            if let Net::TcpClient { dial, backoff, .. } = &mut self.net {
                *dial = Dial::Idle {
                    next_try: now + backoff.next_delay(),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_frames_above_the_peers_maximum_are_refused() {
        assert!(tcp::tcp_frame_fits(MAX_FRAME - DATA_OVERHEAD, false));
        assert!(!tcp::tcp_frame_fits(MAX_FRAME - DATA_OVERHEAD + 1, false));
        assert!(tcp::tcp_frame_fits(MAX_FRAME, true));
        assert!(!tcp::tcp_frame_fits(MAX_FRAME + 1, true));
    }
}
