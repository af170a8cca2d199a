//! The sockets and clock of `tunbox probe`: a UDP socket bound to port P and connected
//! to TARGET:P (the reflector swaps addresses, not ports, so the reply comes back to
//! it), CLOCK_MONOTONIC, ppoll(2) for waiting (nanosecond timeout, no busy spinning),
//! SO_RXQ_OVFL for drops in our own receive buffer; and the TCP pair of `--tcp`.
//! Needs no capability.
use super::SysError;
use crate::probe::run::ProbeIo;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use nix::time::ClockId;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    match ClockId::CLOCK_MONOTONIC.now() {
        Ok(t) => (t.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec() as u64),
        Err(_) => 0,
    }
}

/// Whether stdout is a terminal (the live progress line is shown only then).
pub fn stdout_is_tty() -> bool {
    use std::io::IsTerminal as _;
    io::stdout().is_terminal()
}

/// Lets timed sleeps of this thread end within a microsecond of their deadline instead
/// of the default 50 us slack (pacing at tens of thousands of packets per second).
fn tight_timer_slack() {
    let _ = nix::sys::prctl::set_timerslack(1_000);
}

/// Waits until the monotonic time `until_ns` or until one of `fds` is ready for
/// `events`; a signal ends the wait early. Returns which fds are ready.
pub fn wait_until<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    events: [PollFlags; N],
    until_ns: u64,
) -> io::Result<[bool; N]> {
    let now = monotonic_ns();
    let left = until_ns.saturating_sub(now);
    let ts = TimeSpec::new((left / 1_000_000_000) as _, (left % 1_000_000_000) as _);
    let mut pfds: [PollFd<'_>; N] = std::array::from_fn(|i| PollFd::new(fds[i], events[i]));
    let mut ready = [false; N];
    match ppoll(&mut pfds, Some(ts), None) {
        Ok(_) => {
            for (r, p) in ready.iter_mut().zip(pfds.iter()) {
                *r = p.revents().is_some_and(|e| !e.is_empty());
            }
            Ok(ready)
        }
        Err(nix::errno::Errno::EINTR) => Ok(ready),
        Err(e) => Err(e.into()),
    }
}

fn unspecified(target: &SocketAddr, port: u16) -> SocketAddr {
    let ip = if target.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, port)
}

fn bind_error(what: &str, port: u16, e: io::Error) -> SysError {
    if e.kind() == io::ErrorKind::AddrInUse {
        SysError::new(format!(
            "{what} port {port} is already in use on this host (another probe or service \
             has it): choose a free one with --port"
        ))
    } else if e.kind() == io::ErrorKind::PermissionDenied {
        SysError::new(format!(
            "{what} port {port}: {e} (ports below 1024 need root): choose one above 1023 \
             with --port"
        ))
    } else {
        SysError::os(format!("binding {what} port {port}"), e)
    }
}

fn route_error(target: SocketAddr, e: io::Error) -> SysError {
    SysError::new(format!(
        "cannot reach {target}: {e} (no route from this host: check `ip route get {}`)",
        target.ip()
    ))
}

/// The UDP socket of a probe run.
pub struct UdpIo {
    sock: UdpSocket,
    cmsg: [u8; 64],
    dropped: u64,
}

impl UdpIo {
    /// Binds port `target.port()` on every local address and connects to `target`.
    pub fn open(target: SocketAddr) -> Result<UdpIo, SysError> {
        let port = target.port();
        let sock =
            UdpSocket::bind(unspecified(&target, port)).map_err(|e| bind_error("UDP", port, e))?;
        sock.connect(target).map_err(|e| route_error(target, e))?;
        // Best effort: a bigger receive buffer (capped by net.core.rmem_max without
        // privileges) and the drop counter; the probe works without either.
        let _ = setsockopt(&sock, sockopt::RcvBuf, &(4 << 20));
        let _ = setsockopt(&sock, sockopt::SndBuf, &(1 << 20));
        let _ = setsockopt(&sock, sockopt::RxqOvfl, &1);
        tight_timer_slack();
        Ok(UdpIo {
            sock,
            cmsg: [0; 64],
            dropped: 0,
        })
    }
}

impl ProbeIo for UdpIo {
    fn now(&mut self) -> u64 {
        monotonic_ns()
    }

    fn send(&mut self, payload: &[u8]) -> io::Result<()> {
        self.sock.send(payload).map(drop)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut self.cmsg[..]),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let n = msg.bytes;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::RxqOvfl(d) = c {
                    self.dropped = u64::from(d);
                }
            }
        }
        Ok(Some(n))
    }

    fn wait(&mut self, until: u64) -> io::Result<()> {
        wait_until([self.sock.as_fd()], [PollFlags::POLLIN], until).map(drop)
    }

    fn rx_dropped(&self) -> u64 {
        self.dropped
    }
}

/// The two ends of `--tcp`: a connection to TARGET:P that the reflector turns back to
/// our own listener on port P.
pub struct TcpPair {
    pub client: TcpStream,
    pub server: TcpStream,
}

impl TcpPair {
    /// Listens on port `target.port()`, connects to `target` and accepts the
    /// connection the reflector loops back, each within `timeout`.
    pub fn open(target: SocketAddr, timeout: Duration) -> Result<TcpPair, SysError> {
        let port = target.port();
        let listener = TcpListener::bind(unspecified(&target, port))
            .map_err(|e| bind_error("TCP", port, e))?;
        let client = TcpStream::connect_timeout(&target, timeout).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                SysError::new(format!(
                    "no TCP answer from {target} within {} s: is a tunbox reflector \
                     answering for {}?",
                    timeout.as_secs(),
                    target.ip()
                ))
            } else {
                route_error(target, e)
            }
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| SysError::os("TCP listener", e))?;
        let deadline = monotonic_ns() + crate::clock::nanos(timeout);
        let server = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(SysError::os("accepting the looped-back connection", e)),
            }
            if monotonic_ns() >= deadline {
                return Err(SysError::new(format!(
                    "the connection to {target} was answered but never came back to port \
                     {port}: is it a tunbox reflector (which loops it back) and not a host?"
                )));
            }
            let _ = wait_until([listener.as_fd()], [PollFlags::POLLIN], deadline);
        };
        for s in [&client, &server] {
            s.set_nonblocking(true)
                .map_err(|e| SysError::os("TCP socket", e))?;
            let _ = s.set_nodelay(true);
        }
        tight_timer_slack();
        Ok(TcpPair { client, server })
    }

    /// Waits until `until_ns` or until the client is writable (when `want_write`) or the
    /// server readable. Returns (client writable, server readable).
    pub fn wait(&self, want_write: bool, until_ns: u64) -> io::Result<(bool, bool)> {
        let w = if want_write {
            PollFlags::POLLOUT
        } else {
            PollFlags::empty()
        };
        let [a, b] = wait_until(
            [self.client.as_fd(), self.server.as_fd()],
            [w, PollFlags::POLLIN],
            until_ns,
        )?;
        Ok((a, b))
    }
}
