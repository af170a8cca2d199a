//! The handshake messages: the server reading an initiation (through [`super::admission`])
//! and answering it, the client starting one and finishing it with the response.
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::admission::{InitTs, PENDING_GUARD};
use super::{Crypto, Event, Output, Session, Tunnel};
use crate::tunnel::counters::DropReason;
use crate::tunnel::message::{Init, Resp};
use crate::tunnel::noise::{self, HandshakeError, Initiator, Responder};

impl Tunnel {
    /// True if the peer is gone: nothing authenticated arrived (under any session,
    /// including a pending one's confirmation) and no INIT was answered for `timeout`,
    /// and there is no pending handshake younger than [`PENDING_GUARD`]. Never with
    /// dead-peer detection off (`timeout` `None`): the server cannot tell then.
    fn peer_gone(c: &Crypto, timeout: Option<Duration>, now: Instant) -> bool {
        let Some(to) = timeout else {
            return false;
        };
        let last = c.last_rx.max(c.admission.last_init_at);
        now >= last + to
            && c.sessions
                .pending
                .as_ref()
                .is_none_or(|p| now >= p.created + PENDING_GUARD)
    }

    /// Order matters, cheapest first, and every limit before the expensive step it
    /// protects: size (the view) -> mac1 (3 BLAKE2s compressions; junk without the key
    /// stops here) -> exact copy of a recently verified INIT -> per-source and global
    /// verification budgets -> verify (~30 compressions and an AEAD open, no DH) ->
    /// replay check -> global answer budget -> answer (X25519 keygen + DH). Replays get
    /// no answer, use no answer tokens and never replace `pending`.
    ///
    /// The timestamp rule (server), with `hwm` the timestamp of the last answered INIT:
    /// - `ts > hwm`: fresh, answered (rate limits permitting) in every state. During a
    ///   clock reset window a `ts` from the client's previous run (implausibly far
    ///   ahead of the restarted clock) is treated like an older one instead.
    /// - `ts == hwm`: always a replay (the INIT last answered), never answered.
    /// - `ts < hwm` (client clock went back, or a recorded INIT): answered only when
    ///   the peer is gone ([`Tunnel::peer_gone`]), per state:
    ///   - established: no authenticated packet for `timeout` (the session is dead
    ///     even if `tick` has not dropped it yet). While it is alive: replay.
    ///   - pending (an INIT answered, not confirmed): `timeout` since that INIT and the
    ///     pending is older than [`PENDING_GUARD`]; a younger one is never replaced.
    ///   - none: `timeout` since the last answered INIT (or server start) and since
    ///     the last authenticated packet.
    ///
    ///   Then `hwm` is reset to `ts` (a clock reset starts). A replayed INIT may
    ///   be answered this way while the peer is dead: the attacker gets no keys, it
    ///   costs rate-limit tokens like any answer, an older one is answered at most
    ///   once per `timeout` (its own answer restarts the clock) and its pending session can
    ///   only become current through a confirmation it cannot produce. A live
    ///   session is never touched: a pending one replaces it only when confirmed.
    ///
    /// So a client whose clock went back gets in at most `timeout` after its peer
    /// state went quiet. Known limit: an attacker who replays a recorded INIT once per
    /// `timeout` can keep such a client out (not one with a correct clock).
    pub(super) fn on_init(
        &mut self,
        init: Init,
        out: &mut [u8],
        now: Instant,
        src: Option<IpAddr>,
    ) -> Result<Output, DropReason> {
        let mode = self.mode();
        let timeout = self.cfg.timeout;
        let c = self.crypto.as_mut().ok_or(DropReason::BadHeader)?;
        if !c.psk.mac1_ok(init.bytes()) {
            return Err(DropReason::HandshakeMac);
        }
        let mac1 = init.mac1();
        if c.admission.seen_recently(&mac1) {
            return Err(DropReason::HandshakeReplay);
        }
        if !c.admission.source_allows(src, now) {
            return Err(DropReason::HandshakeRate);
        }
        if !c.admission.verify_allows(now) {
            return Err(DropReason::HandshakeRate);
        }
        let r = match Responder::read(&c.psk, mode, init.bytes()) {
            Ok(r) => r,
            Err(HandshakeError::Auth) => return Err(DropReason::HandshakeAuth),
            Err(HandshakeError::ModeMismatch { peer }) => {
                self.event(Event::ModeMismatch {
                    peer_tap: peer == noise::MODE_TAP,
                });
                return Err(DropReason::HandshakeMismatch);
            }
            Err(HandshakeError::Malformed) => return Err(DropReason::BadHeader),
            Err(HandshakeError::Internal) => return Err(DropReason::Internal),
        };
        c.admission.remember(mac1);
        let ts = r.timestamp;
        let gone = Self::peer_gone(c, timeout, now);
        let kind = c.admission.check_init_ts(ts, gone, now);
        if kind == InitTs::Replay {
            return Err(DropReason::HandshakeReplay);
        }
        if !c.admission.answer_allows(now) {
            return Err(DropReason::HandshakeRate);
        }
        let local = c.sessions.fresh_index(None, c.tag.as_ref())?;
        let remote = r.peer_index;
        let (n, transport) = r.answer(local, out).map_err(|_| DropReason::Internal)?;
        c.admission.answered(ts, kind, now);
        c.sessions.pending = Some(Session::new(local, remote, transport, now));
        self.counters.handshakes_answered += 1;
        Ok(Output::ToNetwork(n))
    }

    pub(super) fn on_resp(
        &mut self,
        resp: Resp,
        out: &mut [u8],
        now: Instant,
    ) -> Result<Output, DropReason> {
        let c = self.crypto.as_mut().ok_or(DropReason::BadHeader)?;
        let Some(hs) = c.handshake.as_mut() else {
            return Err(DropReason::HandshakeUnexpected);
        };
        if resp.receiver != Some(hs.local_index) {
            return Err(if resp.exact() {
                DropReason::UnknownSession
            } else {
                DropReason::BadHeader
            });
        }
        let remote = match hs.finish(resp.bytes()) {
            Ok(r) => r,
            Err(HandshakeError::Auth) => return Err(DropReason::HandshakeAuth),
            Err(_) => return Err(DropReason::BadHeader),
        };
        let Some(hs) = c.handshake.take() else {
            return Err(DropReason::HandshakeUnexpected);
        };
        let local = hs.local_index;
        let transport = hs.into_transport().map_err(|_| DropReason::BadHeader)?;
        let mut s = Session::new(local, remote, transport, now);
        // Confirm at once with a keepalive: the server switches to the new session when
        // it sees it.
        let n = noise::seal(&s.transport, s.remote, 0, &[], out).ok_or(DropReason::TooBig)?;
        s.tx_counter = 1;
        let replaced = c.sessions.current.is_some();
        c.sessions.previous = c.sessions.current.take();
        c.sessions.current = Some(s);
        c.next_attempt = None;
        c.backoff.reset();
        c.attempts = 0;
        c.last_rx = now;
        c.last_tx = now;
        self.counters.sessions += 1;
        self.counters.keepalives_tx += 1;
        self.rx_current = true;
        self.event(Event::SessionUp { replaced });
        Ok(Output::ToNetwork(n))
    }

    /// Client: write a new initiation into `out` (its timestamp the wall clock
    /// `wall_nanos`, kept strictly increasing) and schedule the retry.
    pub(super) fn send_init(&mut self, out: &mut [u8], now: Instant, wall_nanos: u64) -> Output {
        let mode = self.mode();
        let Some(c) = self.crypto.as_mut() else {
            return Output::Nothing;
        };
        let hs_index = c.handshake.as_ref().map(|h| h.local_index);
        let Ok(local) = c.sessions.fresh_index(hs_index, c.tag.as_ref()) else {
            c.next_attempt = Some(now + c.backoff.next_delay());
            return Output::Nothing;
        };
        let ts = wall_nanos.max(c.sent_init_ts.saturating_add(1));
        match Initiator::start(&c.psk, local, mode, ts, out) {
            Ok((hs, n)) => {
                c.sent_init_ts = ts;
                let retry_in = c.backoff.next_delay();
                c.handshake = Some(hs);
                c.next_attempt = Some(now + retry_in);
                c.attempts = c.attempts.saturating_add(1);
                let attempt = c.attempts;
                self.counters.handshakes_sent += 1;
                self.event(Event::HandshakeSent { attempt, retry_in });
                Output::ToNetwork(n)
            }
            Err(_) => {
                c.next_attempt = Some(now + c.backoff.next_delay());
                Output::Nothing
            }
        }
    }
}
