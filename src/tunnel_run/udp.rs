//! The tunnel's UDP path: datagrams in by `recvmmsg` batches (each opened and
//! delivered, or answered), packets from the device sealed into one batch and sent by
//! `sendmmsg` with UDP GSO (src/sys/udp.rs). The engine calls these for `Net::Udp`.
//!
//! The ChaCha20-Poly1305 of a batch goes through the crypto pool (on every thread with
//! `--threads`, else in this one): a device burst is sealed in order (headers, counters,
//! plaintext in the send batch) with the encryption left to jobs run just before the
//! batch is sent; a receive batch's data messages are checked in order, opened in place
//! in the receive buffer all at once, then taken in order (replay window, session,
//! delivery).
use super::*;
use crate::sys::udp::RecvBatch;
use crate::tunnel::noise::DATA_HEADER_LEN;

/// Where an opening job's message is in the receive batch, where it came from, and
/// its peer.
#[derive(Clone, Copy)]
pub(super) struct RxJob {
    slot: usize,
    off: usize,
    len: usize,
    src: SocketAddr,
    peer: usize,
}

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
        receive_batch(core, sock, remote, rx, now);
        if rx.len() < rx.capacity() {
            break; // the queue is empty
        }
    }
}

/// The datagrams of a batch: data messages checked in order and their opening jobs
/// gathered for the crypto pool; anything else (a handshake message, plaintext, junk)
/// first finishes the data messages before it, then goes through [`datagram`].
fn receive_batch<D: Device>(
    core: &mut Core<D>,
    sock: &UdpSocket,
    remote: Option<SocketAddr>,
    rx: &mut RecvBatch,
    now: Instant,
) {
    // The pool holds no sealing jobs here: every device burst ends with `send`.
    debug_assert!(core.pool.is_empty() && core.rx_jobs.is_empty());
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
            continue;
        }
        let len = d.data.len();
        let seg = if d.segment == 0 { len } else { d.segment };
        let mut off = 0;
        loop {
            let n = seg.min(len - off);
            if !core.tunnel.is_data(&rx.data_mut(i)[off..off + n]) {
                finish_batch(core, remote, rx, now);
                datagram(core, sock, remote, &rx.data_mut(i)[off..off + n], src, now);
            } else {
                if core.pool.is_full() {
                    finish_batch(core, remote, rx, now);
                }
                let msg = &mut rx.data_mut(i)[off..off + n];
                match core.tunnel.prepare_data(msg, now) {
                    Ok((peer, job)) => {
                        // (room was made above)
                        if core.pool.push(job) {
                            let j = RxJob {
                                slot: i,
                                off,
                                len: n,
                                src,
                                peer,
                            };
                            core.rx_jobs.push(j);
                        }
                    }
                    Err(r) => {
                        core.log_drop("datagram", n, Some(From::Udp(src)), r);
                    }
                }
            }
            off += n;
            if off >= len {
                break;
            }
        }
    }
    finish_batch(core, remote, rx, now);
}

/// Opens the gathered data messages at once (every thread), then takes them in order:
/// replay window, session, delivery, following the peer (as [`datagram`]).
fn finish_batch<D: Device>(
    core: &mut Core<D>,
    remote: Option<SocketAddr>,
    rx: &mut RecvBatch,
    now: Instant,
) {
    if core.pool.is_empty() {
        return;
    }
    core.pool.run();
    for k in 0..core.rx_jobs.len() {
        let j = core.rx_jobs[k];
        let opened = core.pool.opened(k);
        let (src, msg) = (j.src, &rx.data_mut(j.slot)[j.off..j.off + j.len]);
        match core.tunnel.finish_data(j.peer, msg, opened, now) {
            Output::ToDevice(n) => {
                core.deliver_packet(&msg[DATA_HEADER_LEN..][..n], From::Udp(src));
            }
            Output::Drop(r) => {
                core.log_drop("datagram", j.len, Some(From::Udp(src)), r);
            }
            _ => {}
        }
        follow(core, remote, src, now);
    }
    core.rx_jobs.clear();
    core.pool.clear();
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
    follow(core, remote, src, now);
}

/// A server follows its peer to the address it last authenticated from under the
/// current session.
fn follow<D: Device>(
    core: &mut Core<D>,
    remote: Option<SocketAddr>,
    src: SocketAddr,
    now: Instant,
) {
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
    if core.pool.is_full() {
        // the packets so far are sealed where they are, sent later
        core.pool.run();
        core.pool.clear();
    }
    let mut job = None;
    let sealed = core.tunnel.encapsulate_later(to, pkt, slot, now, &mut job);
    if let Some(j) = job {
        core.pool.push(j); // (room was made above)
    }
    match sealed {
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
    // the encryption of the packets in the batch (on every thread)
    core.pool.run();
    core.pool.clear();
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
