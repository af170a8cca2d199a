//! The tunnel's UDP path: datagrams in by `recvmmsg` batches (each opened and
//! delivered, or answered), packets from the device sealed into one batch and sent by
//! `sendmmsg` with UDP GSO (src/sys/udp.rs). The engine calls these for `Net::Udp`.
use super::*;
use crate::sys::udp::RecvBatch;

/// Datagrams from the network, a `recvmmsg` batch at a time: the kernel's drop count,
/// then each datagram (each segment of a GRO one).
pub(super) fn receive<D: Device>(
    core: &mut Core<D>,
    sock: &UdpSocket,
    remote: Option<SocketAddr>,
    rx: &mut RecvBatch,
    overflow_seen: &mut u32,
    now: Instant,
) {
    for _ in 0..UDP_BATCHES {
        match rx.recv(sock.as_fd()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
            // ICMP errors reported on the socket; keep going
            Err(_) => continue,
        }
        if let Some(c) = rx.overflow_count() {
            if c != *overflow_seen {
                let lost = c.wrapping_sub(*overflow_seen);
                *overflow_seen = c;
                core.tunnel
                    .counters_mut()
                    .drop_n(DropReason::SocketOverflow, u64::from(lost));
                // Not under the per-packet drop limit: junk must not hide this one.
                if core.event_log.allow(now) {
                    warn!(
                        "{}: the kernel dropped {lost} datagrams: the socket's receive \
                         buffer was full ({c} so far)",
                        core.name
                    );
                }
            }
        }
        for i in 0..rx.len() {
            let d = rx.get(i);
            let Some(src) = d.from else { continue };
            if d.truncated {
                core.count(DropReason::TooBig);
                core.log_drop(
                    "datagram",
                    d.data.len(),
                    Some(From::Udp(src)),
                    DropReason::TooBig,
                );
            } else if d.segment == 0 {
                datagram(core, sock, remote, d.data, src, now);
            } else {
                for one in d.data.chunks(d.segment) {
                    datagram(core, sock, remote, one, src, now);
                }
            }
        }
        if rx.len() < rx.capacity() {
            break; // the queue is empty
        }
    }
}

/// One datagram from the network: open it, deliver or answer it, follow the peer.
fn datagram<D: Device>(
    core: &mut Core<D>,
    sock: &UdpSocket,
    remote: Option<SocketAddr>,
    data: &[u8],
    src: SocketAddr,
    now: Instant,
) {
    let from = From::Udp(src);
    // Plaintext: only the configured server may talk to a client.
    // Encrypted: authentication decides (a multihomed server may
    // answer from another of its addresses).
    if core.tunnel.is_plaintext() && remote.is_some_and(|r| r != src) {
        core.count(DropReason::WrongSource);
        core.log_drop("datagram", data.len(), Some(from), DropReason::WrongSource);
        return;
    }
    match core
        .tunnel
        .decapsulate_from(data, &mut core.out_buf, now, Some(src.ip().to_canonical()))
    {
        Output::ToDevice(m) => core.deliver(m, from),
        Output::ToNetwork(m) => {
            if let Err(e) = sock.send_to(&core.out_buf[..m], src) {
                core.send_failed(src, &e, now);
            }
        }
        Output::Drop(r) => {
            core.log_drop("datagram", data.len(), Some(from), r);
        }
        Output::Keepalive | Output::Nothing => {}
    }
    let who = core.tunnel.last_peer();
    let endpoint = core.tunnel.endpoint(who);
    if remote.is_none() && core.tunnel.authenticated_current() && endpoint != Some(src) {
        if endpoint.is_some() || core.verbose {
            let n = core.tunnel.name(who);
            let what = if n.is_empty() { "client" } else { "peer " };
            info!("{}: {what}{n} now at {}", core.name, Addr(src));
        }
        let window = 4 * core.tunnel.config().timeout.unwrap_or(Duration::ZERO);
        if let Some(other) = core.tunnel.set_endpoint(who, src, now, window) {
            if core.event_log.allow(now) {
                let peer = PeerName(core.tunnel.name(who), None);
                warn!(
                    "{}: two clients use the same key ({peer}): {} and {} take the \
                     session from each other in turns; give each client its own key \
                     (a `config peer` section each)",
                    core.name,
                    Addr(src),
                    Addr(other)
                );
            }
        }
    }
}

/// One packet from the device: routed to its peer, sealed into the send batch (sent
/// when full, and at the end of the device burst).
pub(super) fn seal<D: Device>(
    core: &mut Core<D>,
    sock: &UdpSocket,
    remote: Option<SocketAddr>,
    tx: &mut TxBatch,
    pkt: &[u8],
    now: Instant,
) {
    let n = pkt.len();
    let Ok(to) = core.tunnel.route(pkt) else {
        return; // counted
    };
    let Some(dst) = remote.or(core.tunnel.endpoint(to)) else {
        core.tunnel
            .peer_mut(to)
            .counters_mut()
            .drop(DropReason::NoSession);
        return;
    };
    if tx.slot(n + DATA_OVERHEAD).is_none() {
        send(core, sock, tx, now);
    }
    let Some(slot) = tx.slot(n + DATA_OVERHEAD) else {
        core.tunnel.counters_mut().drop(DropReason::TooBig);
        core.log_drop("packet from the device", n, None, DropReason::TooBig);
        return;
    };
    match core.tunnel.encapsulate_to(to, pkt, slot, now) {
        Output::ToNetwork(m) => tx.commit(m, dst),
        Output::Drop(r) if r != DropReason::NoSession => {
            core.log_drop("packet from the device", n, None, r);
        }
        _ => {}
    }
}

/// Sends the sealed packets gathered so far (one `sendmmsg`, GSO runs).
pub(super) fn send<D: Device>(
    core: &mut Core<D>,
    sock: &UdpSocket,
    tx: &mut TxBatch,
    now: Instant,
) {
    let (hub, name, drop_log) = (&mut core.tunnel, &core.name, &mut core.drop_log);
    if tx.is_empty() {
        return;
    }
    let f = tx.flush(sock.as_fd());
    if let Some(e) = f.gso_refused {
        info!("{name}: the kernel refused udp gso ({e}): one datagram per packet from now on");
    }
    if f.failed > 0 {
        hub.counters_mut()
            .drop_n(DropReason::WriteError, f.failed as u64);
        if drop_log.allow(now) {
            if let Some(e) = f.error {
                warn!("{name}: udp send of {} packets failed: {e}", f.failed);
            }
        }
    }
}
