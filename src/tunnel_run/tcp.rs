//! The tunnel's TCP path: frames in by bulk reads into the frame decoder, packets from
//! the device sealed as frames into the connection's send queue, which is written in one
//! `write` per loop turn; the server's accept and authentication pool, the client's dial.
//! The engine calls these for `Net::TcpServer` and `Net::TcpClient`.
use super::*;
use crate::tunnel::peer::Backoff;
use std::net::TcpListener;

/// Server: the active connection, then those authenticating, then new ones.
#[allow(clippy::too_many_arguments)]
pub(super) fn server_receive<D: Device>(
    core: &mut Core<D>,
    listener: &TcpListener,
    active: &mut Conn,
    incoming: &mut [Conn; TCP_PENDING],
    a: bool,
    l: bool,
    inc: [bool; TCP_PENDING],
    now: Instant,
) {
    // Read first: a connection's handshake is handled before new
    // connections may displace it.
    if a && read_conn(core, active, now) == Verdict::Close {
        info!(
            "{}: tcp client {} disconnected",
            core.name,
            From::Tcp(active.peer)
        );
        active.close();
    }
    for (conn, _) in incoming.iter_mut().zip(inc).filter(|(_, r)| *r) {
        match read_conn(core, conn, now) {
            Verdict::Close => conn.close(),
            Verdict::Promote => {
                if active.is_open() {
                    info!(
                        "{}: tcp client now at {} (replaces {})",
                        core.name,
                        From::Tcp(conn.peer),
                        From::Tcp(active.peer)
                    );
                }
                active.take_over(conn);
            }
            Verdict::Keep => {}
        }
    }
    if l {
        for _ in 0..4 {
            match listener.accept() {
                Ok((s, peer)) => {
                    let plain = core.tunnel.is_plaintext();
                    let target = if plain {
                        &mut *active
                    } else {
                        let i = pending_slot(&incoming[..], peer);
                        if incoming[i].is_open() && core.drop_log.allow(now) {
                            warn!(
                                "{}: {TCP_PENDING} tcp connections authenticating: closing one from {}",
                                core.name,
                                From::Tcp(incoming[i].peer)
                            );
                        }
                        &mut incoming[i]
                    };
                    if plain && target.is_open() {
                        info!(
                            "{}: new tcp client {peer} replaces {}",
                            core.name,
                            From::Tcp(target.peer)
                        );
                    }
                    target.close();
                    if let Err(e) = target.open(s, peer, now) {
                        warn!("{}: tcp connection from {peer}: {e}", core.name);
                        target.close();
                    } else if plain {
                        info!("{}: tcp client {peer} connected", core.name);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    if core.drop_log.allow(now) {
                        warn!("{}: accept failed: {e}", core.name);
                    }
                    break;
                }
            }
        }
    }
}

/// Client: a connect that finished, then the connection's frames.
/// A connection attempt to `remote` failed with `e`: logged (rate-limited, with the
/// likely cause), and the next attempt after the back-off.
pub(super) fn connect_failed<D: Device>(
    core: &mut Core<D>,
    remote: SocketAddr,
    e: &io::Error,
    backoff: &mut Backoff,
    now: Instant,
) -> Dial {
    let d = backoff.next_delay();
    if core.event_log.allow(now) {
        warn!(
            "{}: cannot connect to {remote}: {e}{} (next try in {} s)",
            core.name,
            connect_hint(e),
            d.as_secs()
        );
    }
    Dial::Idle { next_try: now + d }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn client_receive<D: Device>(
    core: &mut Core<D>,
    remote: SocketAddr,
    conn: &mut Conn,
    dial: &mut Dial,
    backoff: &mut Backoff,
    a: bool,
    b: bool,
    now: Instant,
) {
    if b {
        if let Dial::Connecting { .. } = dial {
            let Dial::Connecting { sock, .. } =
                std::mem::replace(dial, Dial::Idle { next_try: now })
            else {
                return;
            };
            match finish_connect(sock).and_then(|s| conn.open(s, remote, now)) {
                Ok(()) => {
                    *dial = Dial::Up;
                    if core.tunnel.is_plaintext() {
                        backoff.reset();
                    }
                    info!("{}: tcp connected to {remote}", core.name);
                    core.tunnel.restart(now);
                }
                Err(e) => {
                    conn.close();
                    *dial = connect_failed(core, remote, &e, backoff, now);
                }
            }
        }
    }
    if a && matches!(dial, Dial::Up) {
        let up_before = core.tunnel.is_up();
        if read_conn(core, conn, now) == Verdict::Close {
            conn.close();
            let d = backoff.next_delay();
            // Closed before any session: the server refused the handshake.
            let hint = if core.tunnel.is_up() {
                ""
            } else {
                " before a session: the server drops handshakes it cannot \
                 authenticate; the key or --mode likely differs at the other end"
            };
            warn!(
                "{}: tcp connection to {remote} lost{hint} (reconnecting in {} s)",
                core.name,
                d.as_secs()
            );
            *dial = Dial::Idle { next_try: now + d };
        } else if !up_before && core.tunnel.is_up() {
            backoff.reset();
        }
    }
}

/// Reads a TCP connection and handles its frames.
fn read_conn<D: Device>(core: &mut Core<D>, conn: &mut Conn, now: Instant) -> Verdict {
    let mut verdict = Verdict::Keep;
    for _ in 0..BATCH {
        match conn.fill() {
            Fill::Data => match frames(core, conn, now) {
                Verdict::Close => return Verdict::Close,
                Verdict::Promote => verdict = Verdict::Promote,
                Verdict::Keep => {}
            },
            Fill::Empty => break,
            Fill::Closed(e) => {
                if let Some(e) = e {
                    if core.drop_log.allow(now) {
                        warn!(
                            "{}: tcp connection from {}: {e}",
                            core.name,
                            From::Tcp(conn.peer)
                        );
                    }
                }
                return Verdict::Close;
            }
        }
    }
    verdict
}

/// Takes frames out of a TCP connection and acts on them.
fn frames<D: Device>(core: &mut Core<D>, conn: &mut Conn, now: Instant) -> Verdict {
    let from = From::Tcp(conn.peer);
    let mut verdict = Verdict::Keep;
    loop {
        let frame = match conn.dec.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                core.count(DropReason::FrameLength);
                if core.drop_log.allow(now) {
                    let skipped = core.drop_log.take_suppressed();
                    warn!(
                        "{}: closing tcp connection from {from}: {e} ({skipped} messages suppressed)",
                        core.name
                    );
                }
                return Verdict::Close;
            }
        };
        let len = frame.len();
        let src = conn.peer.map(|p| p.ip().to_canonical());
        match core
            .tunnel
            .decapsulate_from(frame, &mut core.out_buf, now, src)
        {
            Output::ToDevice(n) => core.deliver(n, from),
            Output::ToNetwork(n) => {
                conn.vouched = true;
                if !conn.tx.push(&core.out_buf[..n]) {
                    core.count(DropReason::TxFull);
                }
            }
            Output::Drop(r) => {
                let logged = core.log_drop("frame", len, Some(from), r);
                if matches!(
                    r,
                    DropReason::Auth
                        | DropReason::HandshakeAuth
                        | DropReason::HandshakeMac
                        | DropReason::BadHeader
                        | DropReason::Short
                        | DropReason::HandshakeUnexpected
                        | DropReason::HandshakeMismatch
                ) {
                    // Only with its drop line: under the same rate limit (3000 bad
                    // connections once gave 3000 of these lines).
                    if logged {
                        warn!(
                            "{}: closing tcp connection from {from}: {}",
                            core.name,
                            r.name()
                        );
                    }
                    return Verdict::Close;
                }
            }
            Output::Keepalive | Output::Nothing => {}
        }
        if core.tunnel.authenticated_current() {
            verdict = Verdict::Promote;
        }
    }
    verdict
}

/// One packet from the device: sealed into the connection's send queue as one frame.
pub(super) fn seal<D: Device>(core: &mut Core<D>, conn: &mut Conn, pkt: &[u8], now: Instant) {
    let n = pkt.len();
    if !conn.is_open() {
        core.tunnel.counters_mut().drop(DropReason::NoSession);
        return;
    }
    // The peer closes the connection on a frame above MAX_FRAME (the
    // device MTU may have been raised after start): drop the packet.
    if !tcp_frame_fits(n, core.tunnel.is_plaintext()) {
        core.tunnel.counters_mut().drop(DropReason::TooBig);
        core.log_drop("packet from the device", n, None, DropReason::TooBig);
        return;
    }
    let Some(slot) = conn.tx.slot(n + DATA_OVERHEAD) else {
        core.tunnel.counters_mut().drop(DropReason::TxFull);
        return;
    };
    match core.tunnel.encapsulate(pkt, slot, now) {
        Output::ToNetwork(m) => conn.tx.commit(m),
        Output::Drop(r) if r != DropReason::NoSession => {
            core.log_drop("packet from the device", n, None, r);
        }
        _ => {}
    }
}

/// The slot for a new unauthenticated TCP connection from `peer`: a free one, else the
/// oldest one from the same address that has not sent an answered handshake (so one
/// source reconnecting in a loop only displaces itself), else the oldest without an
/// answered handshake, else the oldest.
fn pending_slot(incoming: &[Conn], peer: SocketAddr) -> usize {
    if let Some(i) = incoming.iter().position(|c| !c.is_open()) {
        return i;
    }
    let ip = peer.ip().to_canonical();
    let same = |c: &Conn| c.peer.is_some_and(|p| p.ip().to_canonical() == ip);
    let oldest = |vouched: Option<bool>, same_source: bool| {
        let mut best: Option<usize> = None;
        for (i, c) in incoming.iter().enumerate() {
            if vouched.is_some_and(|v| c.vouched != v) || (same_source && !same(c)) {
                continue;
            }
            if best.is_none_or(|b| c.since < incoming[b].since) {
                best = Some(i);
            }
        }
        best
    };
    oldest(Some(false), true)
        .or(oldest(Some(false), false))
        .or(oldest(None, false))
        .unwrap_or(0)
}

/// Whether a device packet of `n` bytes fits into one TCP frame the peer accepts.
pub(super) fn tcp_frame_fits(n: usize, plaintext: bool) -> bool {
    let overhead = if plaintext { 0 } else { DATA_OVERHEAD };
    n + overhead <= MAX_FRAME
}
