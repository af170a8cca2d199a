//! The tunnel's sockets: UDP (client or server), TCP server (one active connection plus
//! up to [`TCP_PENDING`] being authenticated), TCP client (non-blocking connect with backoff). Buffers
//! are made here once, when the socket side is set up.
use super::TunnelOptions;
use crate::sys::poll::Want;
use crate::sys::udp::{self, RecvBatch, TxBatch};
use crate::sys::{net, signals, SysError};
use crate::tunnel::peer::Backoff;
use crate::tunnel::{FrameDecoder, Role, StreamTx, Transport};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Largest TCP frame accepted (encrypted or plain): room for a 16 KB jumbo MTU.
/// Longer length prefixes are hostile or a misconfigured peer and close the connection.
pub const MAX_FRAME: usize = 16384;
/// Bytes queued per TCP connection before packets from the device are held back.
pub const TCP_TX_QUEUE: usize = 256 * 1024;
/// TCP server: connections kept while they authenticate; when all are taken, a new one
/// replaces the oldest (so reconnecting in a loop cannot keep a real client out).
pub const TCP_PENDING: usize = 4;
/// Receive and send buffer asked for on the UDP socket. The kernel's default (about
/// 208 KiB, `net.core.rmem_default`) holds some 150 full-size datagrams: a burst
/// of a few milliseconds at a few hundred Mb/s while the loop is busy overflows it.
/// 2 MiB holds about 16 ms at 1 Gb/s, more than a router's WAN does, and is only
/// memory while datagrams wait in it. Root gets it past `net.core.rmem_max`
/// (SO_RCVBUFFORCE); others get at most that sysctl.
pub const UDP_SOCKET_BUFFER: usize = 2 << 20;
/// Largest datagram received: a TCP frame's limit (the largest MTU) plus room.
const UDP_SLOT: usize = MAX_FRAME + 64;
/// With UDP GRO: receive slots of 64 KiB each.
const UDP_GRO_SLOTS: usize = 16;
/// Sealed packets gathered from one burst of the device before they are sent.
pub const UDP_TX_PACKETS: usize = 64;
const UDP_TX_BYTES: usize = 128 * 1024;
/// Send queue of a connection that is not yet authenticated (it only sends a RESP).
const TCP_PENDING_TX: usize = 4096;
/// How long a new TCP connection may take to authenticate before it is closed.
pub const TCP_AUTH_TIME: Duration = Duration::from_secs(10);
/// TCP connect attempt limit.
pub const TCP_CONNECT_TIME: Duration = Duration::from_secs(5);

/// One TCP connection slot; its buffers live as long as the slot.
pub struct Conn {
    pub stream: Option<TcpStream>,
    pub peer: Option<SocketAddr>,
    pub dec: FrameDecoder,
    pub tx: StreamTx,
    pub since: Instant,
    /// Server: this connection sent a handshake initiation that was answered (it has
    /// the key); evicted from the pending pool only after the ones that did not.
    pub vouched: bool,
}

impl Conn {
    pub fn new(now: Instant) -> Conn {
        Self::with_tx(now, TCP_TX_QUEUE)
    }

    fn with_tx(now: Instant, tx: usize) -> Conn {
        Conn {
            stream: None,
            peer: None,
            dec: FrameDecoder::new(MAX_FRAME),
            tx: StreamTx::new(tx),
            since: now,
            vouched: false,
        }
    }

    /// An unauthenticated connection slot (small send queue).
    pub fn pending(now: Instant) -> Conn {
        Self::with_tx(now, TCP_PENDING_TX)
    }

    /// Take over `from`'s connection (stream, received and queued bytes); `from` is
    /// left closed and this slot's old connection is closed.
    pub fn take_over(&mut self, from: &mut Conn) {
        self.close();
        std::mem::swap(&mut self.stream, &mut from.stream);
        std::mem::swap(&mut self.peer, &mut from.peer);
        std::mem::swap(&mut self.dec, &mut from.dec);
        self.since = from.since;
        self.vouched = from.vouched;
        self.tx.replace_with(&from.tx);
        from.close();
    }

    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    pub fn open(&mut self, s: TcpStream, peer: SocketAddr, now: Instant) -> io::Result<()> {
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        self.stream = Some(s);
        self.peer = Some(peer);
        self.dec.reset();
        self.tx.reset();
        self.since = now;
        self.vouched = false;
        Ok(())
    }

    pub fn close(&mut self) {
        self.stream = None;
        self.peer = None;
        self.dec.reset();
        self.tx.reset();
        self.vouched = false;
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.stream.as_ref().map(|s| s.as_fd())
    }

    /// What to poll for: always input, output too while something is queued.
    pub fn poll_events(&self) -> Want {
        if self.tx.is_empty() {
            Want::In
        } else {
            Want::InOut
        }
    }

    /// Writes what is queued, as far as the socket takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        while !self.tx.is_empty() {
            match s.write(self.tx.pending()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.tx.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One read into the frame decoder.
    pub fn fill(&mut self) -> Fill {
        let Some(s) = self.stream.as_mut() else {
            return Fill::Closed(None);
        };
        loop {
            match s.read(self.dec.space()) {
                Ok(0) => return Fill::Closed(None),
                Ok(n) => {
                    self.dec.filled(n);
                    return Fill::Data;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Fill::Empty,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Fill::Closed(Some(e)),
            }
        }
    }
}

/// Result of [`Conn::fill`].
pub enum Fill {
    Data,
    Empty,
    /// Peer closed (`None`) or the connection failed.
    Closed(Option<io::Error>),
}

/// Client TCP connection state.
pub enum Dial {
    /// Not connected; next attempt at this time.
    Idle { next_try: Instant },
    /// Non-blocking connect in progress.
    Connecting { sock: OwnedFd, deadline: Instant },
    /// Connected (the stream is in `conn`).
    Up,
}

pub enum Net {
    Udp {
        sock: UdpSocket,
        /// Client: the server. Server: `None`.
        remote: Option<SocketAddr>,
        /// Server: where the authenticated client was last seen.
        endpoint: Option<SocketAddr>,
        underlay_mtu: u32,
        /// Datagrams in (recvmmsg), sealed packets out (sendmmsg, UDP GSO).
        rx: Box<RecvBatch>,
        tx: TxBatch,
        /// The kernel's drop count (SO_RXQ_OVFL) as last seen.
        overflow_seen: u32,
    },
    TcpServer {
        listener: TcpListener,
        active: Conn,
        /// Connections not yet authenticated (see [`TCP_PENDING`]).
        incoming: Box<[Conn; TCP_PENDING]>,
    },
    TcpClient {
        remote: SocketAddr,
        conn: Conn,
        dial: Dial,
        backoff: Backoff,
    },
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// Binds `addr`; a `[::]` that the box cannot do (no IPv6) falls back to `0.0.0.0`.
fn bind_fallback<T>(addr: SocketAddr, bind: impl Fn(SocketAddr) -> io::Result<T>) -> io::Result<T> {
    match bind(addr) {
        Err(e) if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && net::is_no_ipv6(&e) => bind(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port()),
        ),
        r => r,
    }
}

impl Net {
    /// Opens the socket side as the options say (server: binds; client: UDP socket,
    /// or a TCP dialer that connects from the loop).
    pub fn open(o: &TunnelOptions, remote: Option<SocketAddr>) -> Result<Net, SysError> {
        let now = Instant::now();
        let udp = o.transport == Transport::Udp;
        if o.role == Role::Server {
            let l = o
                .listen
                .ok_or_else(|| SysError::new("server without listen address"))?;
            let cannot = |e| {
                let proto = if udp { "udp" } else { "tcp" };
                SysError::os(format!("cannot listen on {proto} {l}"), e)
            };
            return if udp {
                Self::udp(bind_fallback(l, UdpSocket::bind).map_err(cannot)?, None)
            } else {
                Self::tcp_server(bind_fallback(l, TcpListener::bind).map_err(cannot)?)
            };
        }
        let r = remote.ok_or_else(|| SysError::new("client without remote address"))?;
        if !udp {
            return Ok(Self::tcp_client(r, now));
        }
        let sock = UdpSocket::bind(SocketAddr::new(unspecified(r.is_ipv6()), 0))
            .map_err(|e| SysError::os("cannot open a udp socket", e))?;
        Self::udp(sock, Some(r))
    }

    /// A UDP end on an existing socket (`remote`: client): socket buffers of
    /// [`UDP_SOCKET_BUFFER`], the kernel's drop count, UDP GRO and GSO where the kernel
    /// has them (logged in one line).
    pub fn udp(sock: UdpSocket, remote: Option<SocketAddr>) -> Result<Net, SysError> {
        sock.set_nonblocking(true)
            .map_err(|e| SysError::os("udp socket non-blocking", e))?;
        let underlay_mtu = remote.and_then(net::path_mtu).unwrap_or(1500);
        let (rcv, snd) = udp::set_buffers(&sock, UDP_SOCKET_BUFFER);
        let ovfl = udp::enable_overflow_count(&sock);
        let gro = udp::enable_gro(&sock);
        let gso = udp::gso_supported(&sock);
        log::info!(
            "udp socket buffers: rx {} KiB, tx {} KiB (kernel figures, twice what is asked)",
            rcv / 1024,
            snd / 1024
        );
        if !ovfl {
            log::info!("the kernel does not count udp socket drops here (no SO_RXQ_OVFL)");
        }
        // With GRO one slot may hold up to 64 KiB of datagrams of one flow.
        let rx = Box::new(if gro {
            RecvBatch::new(UDP_GRO_SLOTS, 65536, true)
        } else {
            RecvBatch::new(udp::SLOTS, UDP_SLOT, false)
        });
        Ok(Net::Udp {
            sock,
            remote,
            endpoint: None,
            underlay_mtu,
            rx,
            tx: TxBatch::new(UDP_TX_BYTES, UDP_TX_PACKETS, gso),
            overflow_seen: 0,
        })
    }

    pub fn tcp_server(listener: TcpListener) -> Result<Net, SysError> {
        listener
            .set_nonblocking(true)
            .map_err(|e| SysError::os("tcp listener non-blocking", e))?;
        let now = Instant::now();
        Ok(Net::TcpServer {
            listener,
            active: Conn::new(now),
            incoming: Box::new(std::array::from_fn(|_| Conn::pending(now))),
        })
    }

    pub fn tcp_client(remote: SocketAddr, now: Instant) -> Net {
        Net::TcpClient {
            remote,
            conn: Conn::new(now),
            dial: Dial::Idle { next_try: now },
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(16)),
        }
    }

    /// UDP: whether GSO and GRO are on (None for TCP).
    pub fn udp_offloads(&self) -> Option<(bool, bool)> {
        match self {
            Net::Udp { rx, tx, .. } => Some((tx.gso(), rx.gro())),
            _ => None,
        }
    }

    /// Underlay MTU and whether the underlay is IPv6, for the default device MTU.
    pub fn underlay(&self) -> (u32, bool) {
        match self {
            Net::Udp {
                remote,
                underlay_mtu,
                sock,
                ..
            } => {
                let v6 = match remote {
                    Some(r) => r.is_ipv6(),
                    None => sock
                        .local_addr()
                        .map(|a| a.is_ipv6() && !a.ip().is_unspecified())
                        .unwrap_or(false),
                };
                (*underlay_mtu, v6)
            }
            Net::TcpServer { listener, .. } => {
                let v6 = listener
                    .local_addr()
                    .map(|a| a.is_ipv6() && !a.ip().is_unspecified())
                    .unwrap_or(false);
                (1500, v6)
            }
            Net::TcpClient { remote, .. } => {
                (net::path_mtu(*remote).unwrap_or(1500), remote.is_ipv6())
            }
        }
    }
}

/// Starts a non-blocking TCP connect.
pub fn start_connect(remote: SocketAddr) -> io::Result<OwnedFd> {
    net::tcp_connect_start(remote)
}

/// After the connecting socket became writable: the connect's result.
pub fn finish_connect(fd: OwnedFd) -> io::Result<TcpStream> {
    net::tcp_connect_finish(fd)
}

/// Waiting for the name at start: first retry after this, doubling...
pub const RESOLVE_RETRY_MIN: Duration = Duration::from_secs(1);
/// ...up to this, forever.
pub const RESOLVE_RETRY_MAX: Duration = Duration::from_secs(60);
/// While waiting, the same failure is logged again at most this often (a new kind of
/// failure, and the first one, right away).
pub const RESOLVE_LOG_EVERY: Duration = Duration::from_secs(600);

/// Looks `host` up ([`crate::sys::dns`]: /etc/hosts, DNS) and returns its preferred
/// address; an IP address is not looked up. Blocks (no helper thread: they would cost
/// the router binary ~10 KiB and keep the capabilities of the thread that made them).
pub fn lookup(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    Ok(SocketAddr::new(crate::sys::dns::lookup(host)?, port))
}

/// Resolves the client's server at start, waiting for it as long as it takes: at boot
/// the WAN and DNS may come up after tunbox, and an exit would only spend procd's
/// respawn retries. Retries with backoff ([`RESOLVE_RETRY_MIN`] doubling to
/// [`RESOLVE_RETRY_MAX`]), logs the wait rate-limited, and returns `None` as soon as
/// `stop` says so. A SIGTERM that lands in a look-up ends the process at once (there
/// is nothing to clean up yet; see `signals::exit_at_once`).
pub fn wait_for_remote(host: &str, port: u16, stop: &dyn Fn() -> bool) -> Option<SocketAddr> {
    let t0 = Instant::now();
    let mut backoff = Backoff::new(RESOLVE_RETRY_MIN, RESOLVE_RETRY_MAX);
    let mut logged: Option<(String, Instant)> = None;
    let mut tries = 0u32;
    loop {
        if stop() {
            return None;
        }
        tries += 1;
        signals::exit_at_once(true);
        let res = lookup(host, port);
        signals::exit_at_once(false);
        let err = match res {
            Ok(a) => {
                if logged.is_some() {
                    log::info!(
                        "{host} resolves to {a} after {} s ({tries} tries)",
                        t0.elapsed().as_secs()
                    );
                }
                return Some(a);
            }
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        let now = Instant::now();
        let again = match &logged {
            None => true,
            Some((last, at)) => *last != err || now.duration_since(*at) >= RESOLVE_LOG_EVERY,
        };
        if again {
            log::warn!(
                "waiting for {host} to resolve: {err} (try {tries}, next in {} s; \
                 retrying with backoff up to {} s, forever)",
                delay.as_secs(),
                RESOLVE_RETRY_MAX.as_secs()
            );
            logged = Some((err, now));
        }
        let until = now + delay;
        while Instant::now() < until {
            if stop() {
                return None;
            }
            std::thread::sleep(
                Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())),
            );
        }
    }
}

/// A client whose handshakes go unanswered looks its server's name up again: at the
/// start, a name may have resolved to an address the server no longer has (a DNS
/// change, a dynamic address). First after [`RECHECK_MIN`] without a session,
/// then doubling up to [`RECHECK_MAX`]; a session resets it.
pub struct Recheck {
    next: Option<Instant>,
    backoff: Backoff,
}

/// See [`Recheck`].
pub const RECHECK_MIN: Duration = Duration::from_secs(5);
/// See [`Recheck`].
pub const RECHECK_MAX: Duration = Duration::from_secs(60);

impl Default for Recheck {
    fn default() -> Self {
        Recheck {
            next: None,
            backoff: Backoff::new(RECHECK_MIN, RECHECK_MAX),
        }
    }
}

impl Recheck {
    /// Whether to look the name up again now, given whether the tunnel is up.
    pub fn due(&mut self, up: bool, now: Instant) -> bool {
        if up {
            self.next = None;
            self.backoff.reset();
            return false;
        }
        match self.next {
            None => {
                self.next = Some(now + self.backoff.next_delay());
                false
            }
            Some(t) if now >= t => {
                self.next = Some(now + self.backoff.next_delay());
                true
            }
            Some(_) => false,
        }
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    #[test]
    fn recheck_backs_off_and_resets() {
        let t = Instant::now();
        let mut r = Recheck::default();
        assert!(!r.due(false, t)); // starts the clock
        assert!(!r.due(false, t + Duration::from_secs(4)));
        assert!(r.due(false, t + Duration::from_secs(5)));
        // next one 10 s later
        assert!(!r.due(false, t + Duration::from_secs(14)));
        assert!(r.due(false, t + Duration::from_secs(15)));
        assert!(!r.due(true, t + Duration::from_secs(16)));
        assert!(!r.due(false, t + Duration::from_secs(17)));
        assert!(r.due(false, t + Duration::from_secs(22)));
    }

    #[test]
    fn lookup_literal_and_stop() {
        let a = lookup("198.18.0.1", 5);
        assert_eq!(a, Ok("198.18.0.1:5".parse().unwrap()));
        let a = lookup("2001:2::1", 5);
        assert_eq!(a, Ok("[2001:2::1]:5".parse().unwrap()));
        // `localhost` comes from /etc/hosts
        assert!(lookup("localhost", 5).is_ok());
        // asked to stop: the wait ends before any look-up
        assert_eq!(wait_for_remote("tbx.invalid", 5, &|| true), None);
    }
}
