//! Socket calls std has no API for: a non-blocking TCP connect, the kernel's path MTU,
//! interface names by index, raw ICMP sockets (the self-test's ping). Through nix where
//! it has a safe wrapper.
use nix::errno::Errno;
use nix::sys::socket::{self as sock, sockopt, AddressFamily, SockFlag, SockType};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

fn family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

/// Starts a non-blocking TCP connect; the socket becomes writable when it is done.
pub fn tcp_connect_start(remote: SocketAddr) -> io::Result<OwnedFd> {
    let fd = sock::socket(
        family(remote.is_ipv6()),
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    match sock::connect(fd.as_raw_fd(), &sock::SockaddrStorage::from(remote)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
        Err(e) => Err(e.into()),
    }
}

/// After the connecting socket became writable: the connect's result.
pub fn tcp_connect_finish(fd: OwnedFd) -> io::Result<TcpStream> {
    let err = sock::getsockopt(&fd, sockopt::SocketError)?;
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(TcpStream::from(fd))
}

/// Whether a bind failed because the box has no IPv6 (module not loaded, disabled).
pub fn is_no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EAFNOSUPPORT) | Some(Errno::EADDRNOTAVAIL)
    )
}

/// The path MTU the kernel knows towards `remote` (IP_MTU / IPV6_MTU on a connected UDP
/// socket); None when it cannot say or says less than any IP link may have.
pub fn path_mtu(remote: SocketAddr) -> Option<u32> {
    let any = if remote.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let s = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    s.connect(remote).ok()?;
    let v = if remote.is_ipv6() {
        ipv6_mtu(&s)?
    } else {
        sock::getsockopt(&s, sockopt::IpMtu).ok()?
    };
    u32::try_from(v).ok().filter(|&v| v >= 576)
}

/// IPV6_MTU, which nix has no option type for.
fn ipv6_mtu(s: &UdpSocket) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, an int.
    let r = unsafe {
        libc::getsockopt(
            s.as_fd().as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// Lets the kernel fragment the socket's datagrams (IP_PMTUDISC_DONT, and
/// IPV6_PMTUDISC_DONT on an IPv6 socket): a TAP tunnel carries 1500-byte frames over a
/// 1500-byte underlay, so its outer packets are larger than the path and must be
/// fragmented rather than dropped. An IPv6 socket sets both (dual-stack sockets carry
/// IPv4 too; that one may fail on an IPv6-only socket and is then not needed).
pub fn allow_fragmentation(s: &UdpSocket, v6: bool) -> io::Result<()> {
    let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
        // SAFETY: setsockopt reads an int from `value`, of the size given.
        let r = unsafe {
            libc::setsockopt(
                s.as_fd().as_raw_fd(),
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let v4 = set(
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DONT,
    );
    if v6 {
        set(
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )
    } else {
        v4
    }
}

/// Datagrams the kernel dropped on this UDP socket (receive queue full): the `drops`
/// column of /proc/net/udp or udp6 for the socket's inode.
pub fn udp_drops(s: &UdpSocket) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", s.as_fd().as_raw_fd()))
        .ok()?
        .ino()
        .to_string();
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if cols.get(9) == Some(&inode.as_str()) {
                return cols.get(12).and_then(|d| d.parse().ok());
            }
        }
    }
    None
}

/// The name of link `index`, or None if there is no such link (any more).
pub fn link_name(index: u32) -> Option<String> {
    // nix 0.30 checks the returned pointer against -1, not NULL, so a missing link
    // comes back as Ok(""): no link has an empty name.
    let name = nix::net::if_::if_indextoname(index).ok()?;
    Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
}

/// A raw ICMP (or ICMPv6) socket for echo requests, with a short receive timeout so a
/// lost reply costs little.
pub struct IcmpSocket {
    fd: OwnedFd,
}

impl IcmpSocket {
    pub fn new(v6: bool) -> io::Result<IcmpSocket> {
        let proto = if v6 {
            sock::SockProtocol::IcmpV6
        } else {
            sock::SockProtocol::Icmp
        };
        let fd = sock::socket(family(v6), SockType::Raw, SockFlag::SOCK_CLOEXEC, proto)?;
        let t = nix::sys::time::TimeVal::new(0, 200_000);
        sock::setsockopt(&fd, sockopt::ReceiveTimeout, &t)?;
        Ok(IcmpSocket { fd })
    }

    pub fn send_to(&self, pkt: &[u8], dst: IpAddr) -> io::Result<()> {
        let to = sock::SockaddrStorage::from(SocketAddr::new(dst, 0));
        sock::sendto(self.fd.as_raw_fd(), pkt, &to, sock::MsgFlags::empty())?;
        Ok(())
    }

    /// One datagram (IPv4: with its IP header); `Ok(None)` when the timeout passed or a
    /// signal came first.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match sock::recv(self.fd.as_raw_fd(), buf, sock::MsgFlags::empty()) {
            Ok(n) => Ok(Some(n)),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn nonblocking_connect_to_a_listener_completes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = tcp_connect_start(l.local_addr().unwrap()).unwrap();
        let mut set = crate::sys::poll::PollSet::<1>::new();
        let i = set.add(fd.as_fd(), crate::sys::poll::Want::Out);
        assert!(set.wait(Duration::from_secs(2)).unwrap().is(i));
        drop(set);
        let s = tcp_connect_finish(fd).unwrap();
        assert_eq!(s.peer_addr().unwrap(), l.local_addr().unwrap());
    }

    #[test]
    #[cfg_attr(
        all(tunbox_qemu, any(target_arch = "mips", target_arch = "mips64")),
        ignore = "qemu-user 7.2 hands SO_ERROR's errno to a mips guest untranslated (111, not mips' ECONNREFUSED 146)"
    )]
    fn refused_connect_says_so() {
        // a port nobody listens on: bind one, note it, close it
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let fd = tcp_connect_start(port).unwrap();
        assert!(crate::sys::poll::PollSet::<1>::new()
            .wait(Duration::ZERO)
            .is_ok());
        std::thread::sleep(Duration::from_millis(50));
        let e = tcp_connect_finish(fd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    #[cfg_attr(
        tunbox_qemu,
        ignore = "qemu-user does not emulate the IP_MTU socket option"
    )]
    fn loopback_has_a_name_and_a_path_mtu() {
        assert_eq!(link_name(1).as_deref(), Some("lo"));
        assert_eq!(link_name(u32::MAX), None);
        assert!(path_mtu("127.0.0.1:9".parse().unwrap()).is_some_and(|m| m >= 576));
        assert!(is_no_ipv6(&io::Error::from_raw_os_error(
            libc::EAFNOSUPPORT
        )));
        assert!(!is_no_ipv6(&io::Error::from_raw_os_error(libc::EACCES)));
    }
}
