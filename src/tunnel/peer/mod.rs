//! The tunnel state machine for one peer: sessions, handshake retries with backoff,
//! keepalive, dead-peer detection, rekeying and session replacement. No I/O: the loop
//! feeds it datagrams/frames from the peer ([`Tunnel::decapsulate`]), packets from the
//! device ([`Tunnel::encapsulate`]) and the time ([`Tunnel::tick`]), and does what the
//! returned [`Output`] says. [`Tunnel::next_deadline`] says when to call `tick` again.
//!
//! Roles: the client initiates handshakes (at start, after the peer went silent for
//! `timeout`, and every `rekey_after`); the server only answers. A server keeps an
//! answered handshake as *pending* and switches to it when the first data message (the
//! client's confirmation keepalive) arrives under the new keys, so a replayed
//! initiation cannot replace a working session. A new client session replaces the old
//! one (client restarted, changed address, NAT rebinding).
//!
//! Plaintext mode: no handshake, no keepalive (neither simpletun nor socat would
//! understand one); packets pass through unchanged.//!
//! Split by concern (boringtun's `noise/` is the model): [`admission`] decides which
//! initiations are worth work, [`session`] holds the keys of finished handshakes,
//! [`handshake`] runs the handshake messages, [`timers`] keepalive, dead-peer detection,
//! rekey and retries. Messages are parsed once into the views of
//! [`crate::tunnel::message`]. Time comes in as parameters: `now` (monotonic) everywhere,
//! and the wall clock (`wall_nanos`, for the initiation's timestamp) in `tick`.
use std::net::IpAddr;
use std::time::{Duration, Instant};

use heapless::Deque;

use super::counters::{Counters, DropReason};
use super::key::Key;
use super::message::{self, Data, Init, Kind, Resp};
use super::noise::{self, HandshakeKey, Initiator};
use super::replay::REJECT_AFTER_MESSAGES;

mod admission;
mod handshake;
pub(crate) mod session;
#[cfg(test)]
mod tests;
mod timers;

use admission::Admission;
use session::{Session, Sessions, Slot};
pub use timers::Backoff;

/// Which end of the tunnel this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connects to the server (`--remote`) and initiates handshakes.
    Client,
    /// Listens (`--listen`) and answers handshakes.
    Server,
}

/// Timers and roles. `None` disables keepalive / dead-peer detection.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub role: Role,
    pub tap: bool,
    /// Send a keepalive when nothing was sent for this long.
    pub keepalive: Option<Duration>,
    /// Declare the peer dead when nothing authenticated arrived for this long.
    pub timeout: Option<Duration>,
    /// Client starts a new handshake when the session is this old.
    pub rekey_after: Duration,
    /// Sessions are not used at all past this age.
    pub reject_after: Duration,
    /// First handshake retry interval; doubles per attempt up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl TunnelConfig {
    pub fn new(role: Role, tap: bool) -> Self {
        Self {
            role,
            tap,
            keepalive: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_secs(30)),
            rekey_after: Duration::from_secs(120),
            reject_after: Duration::from_secs(180),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(16),
        }
    }
}

/// What the loop must do after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Nothing to do.
    Nothing,
    /// Send `out[..n]` to the peer. From `decapsulate` on a server this is a handshake
    /// answer: send it to where the initiation came from.
    ToNetwork(usize),
    /// Write `out[..n]` to the device.
    ToDevice(usize),
    /// An authenticated keepalive arrived; nothing to deliver.
    Keepalive,
    /// The input was dropped for this reason (already counted).
    Drop(DropReason),
}

/// Things worth a log line; drain with [`Tunnel::take_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Client sent a handshake initiation; `retry_in` until the next attempt.
    HandshakeSent { attempt: u32, retry_in: Duration },
    /// A session is up; `replaced` if it replaced a working one (peer restarted, rekey).
    SessionUp { replaced: bool },
    /// Nothing authenticated from the peer within the timeout; session dropped.
    PeerDead,
    /// Session reached its maximum age without a rekey; dropped.
    SessionExpired,
    /// The peer authenticated but runs the other device mode.
    ModeMismatch { peer_tap: bool },
}

/// The state of an encrypted peer.
struct Crypto {
    /// The key with the handshake state that depends on it alone, computed once.
    psk: HandshakeKey,
    sessions: Sessions,
    handshake: Option<Initiator>,
    /// Client: when to send the next initiation.
    next_attempt: Option<Instant>,
    backoff: Backoff,
    attempts: u32,
    last_rx: Instant,
    last_tx: Instant,
    /// Server: which initiations get work.
    admission: Admission,
    /// Client: timestamp of the last sent INIT (kept strictly increasing).
    sent_init_ts: u64,
    /// Several peers: session indices carry this peer's number.
    tag: Option<session::IndexTag>,
}

/// One tunnel peer. See the module documentation.
pub struct Tunnel {
    cfg: TunnelConfig,
    crypto: Option<Box<Crypto>>,
    counters: Counters,
    events: Deque<Event, 8>,
    rx_current: bool,
    peer_dead: bool,
}

impl Tunnel {
    /// An encrypted tunnel with the shared key.
    pub fn new(cfg: TunnelConfig, psk: Key, now: Instant) -> Self {
        let next_attempt = (cfg.role == Role::Client).then_some(now);
        let backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
        let crypto = Crypto {
            psk: HandshakeKey::new(psk),
            sessions: Sessions::default(),
            handshake: None,
            next_attempt,
            backoff,
            attempts: 0,
            last_rx: now,
            last_tx: now,
            admission: Admission::new(now),
            sent_init_ts: 0,
            tag: None,
        };
        Self {
            cfg,
            crypto: Some(Box::new(crypto)),
            counters: Counters::default(),
            events: Deque::new(),
            rx_current: false,
            peer_dead: false,
        }
    }

    /// A plaintext pass-through (lab use; simpletun/socat compatible framing is the
    /// loop's business).
    pub fn plaintext(cfg: TunnelConfig) -> Self {
        Self {
            cfg,
            crypto: None,
            counters: Counters::default(),
            events: Deque::new(),
            rx_current: false,
            peer_dead: false,
        }
    }

    pub fn is_plaintext(&self) -> bool {
        self.crypto.is_none()
    }

    pub fn role(&self) -> Role {
        self.cfg.role
    }

    pub fn config(&self) -> &TunnelConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// For drops the loop decides (framing, device write errors).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    pub fn take_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True if packets from the device can be sent now.
    pub fn is_up(&self) -> bool {
        match &self.crypto {
            None => true,
            Some(c) => c.sessions.current.is_some(),
        }
    }

    /// When the active session was made (the last completed handshake).
    pub fn session_created(&self) -> Option<Instant> {
        self.crypto
            .as_ref()
            .and_then(|c| c.sessions.current.as_ref())
            .map(|s| s.created)
    }

    /// The public name of the key (see `HandshakeKey::fingerprint`); `None` in plaintext.
    pub fn key_fingerprint(&self) -> Option<[u8; 8]> {
        self.crypto.as_ref().map(|c| c.psk.fingerprint())
    }

    /// Server: timestamp of the last answered initiation (the high-water mark of client
    /// timestamps), for keeping it across restarts; `None` before the first.
    pub fn init_high_water(&self) -> Option<u64> {
        let c = self.crypto.as_ref()?;
        let ts = c.admission.last_init_ts;
        (self.cfg.role == Role::Server && ts > 0).then_some(ts)
    }

    /// Server: a high-water mark kept from a previous run. Initiations not newer are
    /// then not answered while the peer is alive, as if this process had answered it;
    /// once `timeout` passed since the start without the peer, the usual clock-reset
    /// rule lets a client whose clock went back in (see `on_init`).
    pub fn restore_init_high_water(&mut self, ts: u64) {
        if self.cfg.role != Role::Server {
            return;
        }
        if let Some(c) = self.crypto.as_mut() {
            c.admission.last_init_ts = c.admission.last_init_ts.max(ts);
        }
    }

    /// Several peers share a socket: make session indices carry this peer's number.
    pub fn set_index_tag(&mut self, tag: session::IndexTag) {
        if let Some(c) = self.crypto.as_mut() {
            c.tag = Some(tag);
        }
    }

    /// True if `init` is an initiation whose mac1 is right for this peer's key (the
    /// hub's cheap trial; no state changes).
    pub fn mac1_matches(&self, init: &[u8]) -> bool {
        self.crypto.as_ref().is_some_and(|c| c.psk.mac1_ok(init))
    }

    /// True if the last `decapsulate` authenticated a message under the active session
    /// (plaintext: any message). A server uses this to follow the client to a new
    /// address or TCP connection.
    pub fn authenticated_current(&self) -> bool {
        self.rx_current
    }

    /// True once after the peer was declared dead (a TCP client then makes a new
    /// connection, the old one may be stuck).
    pub fn take_peer_dead_flag(&mut self) -> bool {
        std::mem::take(&mut self.peer_dead)
    }

    fn event(&mut self, e: Event) {
        if self.events.is_full() {
            self.events.pop_front();
        }
        let _ = self.events.push_back(e);
    }

    fn mode(&self) -> u8 {
        if self.cfg.tap {
            noise::MODE_TAP
        } else {
            noise::MODE_TUN
        }
    }

    /// Client: forget the session and handshake now (the TCP connection was re-made,
    /// so the server may be a new process). No-op on a server or in plaintext.
    pub fn restart(&mut self, now: Instant) {
        if self.cfg.role != Role::Client {
            return;
        }
        if let Some(c) = self.crypto.as_mut() {
            c.sessions.clear_established();
            c.handshake = None;
            c.backoff.reset();
            c.attempts = 0;
            c.next_attempt = Some(now);
            c.last_rx = now;
        }
    }

    /// A packet from the device: encrypt it into `out`.
    pub fn encapsulate(&mut self, packet: &[u8], out: &mut [u8], now: Instant) -> Output {
        self.encap(packet, out, now, None)
    }

    /// [`Tunnel::encapsulate`] with the encryption left to a job (put in `job`): the
    /// header, the packet and the counter are as `encapsulate` makes them, the message
    /// is ready once the job ran. Plaintext: no job, the packet as it is.
    pub fn encapsulate_later(
        &mut self,
        packet: &[u8],
        out: &mut [u8],
        now: Instant,
        job: &mut Option<noise::DataJob>,
    ) -> Output {
        self.encap(packet, out, now, Some(job))
    }

    fn encap(
        &mut self,
        packet: &[u8],
        out: &mut [u8],
        now: Instant,
        later: Option<&mut Option<noise::DataJob>>,
    ) -> Output {
        let Some(c) = self.crypto.as_mut() else {
            if packet.len() > out.len() {
                self.counters.drop(DropReason::TooBig);
                return Output::Drop(DropReason::TooBig);
            }
            out[..packet.len()].copy_from_slice(packet);
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += packet.len() as u64;
            return Output::ToNetwork(packet.len());
        };
        let Some(s) = c.sessions.current.as_mut() else {
            self.counters.drop(DropReason::NoSession);
            return Output::Drop(DropReason::NoSession);
        };
        if s.tx_counter >= REJECT_AFTER_MESSAGES || now >= s.created + self.cfg.reject_after {
            self.counters.drop(DropReason::Expired);
            return Output::Drop(DropReason::Expired);
        }
        let sealed = match later {
            None => noise::seal(&s.transport, s.remote, s.tx_counter, packet, out),
            Some(job) => noise::seal_later(&s.transport, s.remote, s.tx_counter, packet, out).map(
                |(n, j)| {
                    *job = Some(j);
                    n
                },
            ),
        };
        match sealed {
            Some(n) => {
                s.tx_counter += 1;
                c.last_tx = now;
                self.counters.tx_packets += 1;
                self.counters.tx_bytes += packet.len() as u64;
                Output::ToNetwork(n)
            }
            None => {
                self.counters.drop(DropReason::TooBig);
                Output::Drop(DropReason::TooBig)
            }
        }
    }

    /// A datagram (UDP) or frame (TCP) from the network: authenticate and decrypt it.
    /// Same as [`Tunnel::decapsulate_from`] with an unknown source.
    pub fn decapsulate(&mut self, msg: &[u8], out: &mut [u8], now: Instant) -> Output {
        self.decapsulate_from(msg, out, now, None)
    }

    /// [`Tunnel::decapsulate`] with the source address of the message (handshake
    /// initiations are rate limited per source).
    pub fn decapsulate_from(
        &mut self,
        msg: &[u8],
        out: &mut [u8],
        now: Instant,
        src: Option<IpAddr>,
    ) -> Output {
        self.rx_current = false;
        let r = if self.crypto.is_none() {
            self.decap_plain(msg, out)
        } else {
            self.decap(msg, out, now, src)
        };
        r.unwrap_or_else(|reason| {
            self.counters.drop(reason);
            Output::Drop(reason)
        })
    }

    /// Parse once, check the message goes to this end, hand the view on.
    fn decap(
        &mut self,
        msg: &[u8],
        out: &mut [u8],
        now: Instant,
        src: Option<IpAddr>,
    ) -> Result<Output, DropReason> {
        match (message::kind(msg)?, self.cfg.role) {
            (Kind::Init, Role::Server) => self.on_init(Init::parse(msg)?, out, now, src),
            (Kind::Resp, Role::Client) => self.on_resp(Resp::parse(msg)?, out, now),
            (Kind::Data, _) => self.on_data(Data::parse(msg)?, out, now),
            (Kind::Init | Kind::Resp, _) => Err(DropReason::HandshakeUnexpected),
        }
    }

    fn decap_plain(&mut self, msg: &[u8], out: &mut [u8]) -> Result<Output, DropReason> {
        if msg.is_empty() {
            return Err(DropReason::Short);
        }
        if msg.len() > out.len() {
            return Err(DropReason::TooBig);
        }
        out[..msg.len()].copy_from_slice(msg);
        self.rx_current = true;
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += msg.len() as u64;
        Ok(Output::ToDevice(msg.len()))
    }

    fn on_data(&mut self, msg: Data, out: &mut [u8], now: Instant) -> Result<Output, DropReason> {
        let slot = self.check_data(&msg, now)?;
        if out.len() < msg.payload_len() {
            return Err(DropReason::TooBig);
        }
        let c = self.crypto.as_mut().ok_or(DropReason::BadHeader)?;
        let s = c.sessions.get_mut(slot).ok_or(DropReason::UnknownSession)?;
        let n = noise::open(&s.transport, msg.counter, msg.bytes(), out).ok_or(DropReason::Auth)?;
        self.accept_data(msg.receiver, msg.counter, n, now)
    }

    /// A data message to open in place later (a batch opened on several threads): the
    /// checks before decryption ([`Tunnel::on_data`]'s, the replay window only looked
    /// at), and the job that opens it. Then [`Tunnel::finish_data`], in the order of
    /// the messages. A drop is counted.
    pub fn prepare_data(
        &mut self,
        msg: &mut [u8],
        now: Instant,
    ) -> Result<noise::DataJob, DropReason> {
        let r = self.prepare(msg, now);
        if let Err(reason) = r {
            self.counters.drop(reason);
        }
        r
    }

    fn prepare(&mut self, msg: &mut [u8], now: Instant) -> Result<noise::DataJob, DropReason> {
        let d = Data::parse(msg)?;
        let counter = d.counter;
        let slot = self.check_data(&d, now)?;
        let c = self.crypto.as_ref().ok_or(DropReason::BadHeader)?;
        let s = match slot {
            Slot::Current => c.sessions.current.as_ref(),
            Slot::Previous => c.sessions.previous.as_ref(),
            Slot::Pending => c.sessions.pending.as_ref(),
        };
        let s = s.ok_or(DropReason::UnknownSession)?;
        noise::open_later(&s.transport, counter, msg).ok_or(DropReason::Auth)
    }

    /// A message of [`Tunnel::prepare_data`] after its job ran (`opened`: the tag
    /// verified; the packet is then in place, see [`noise::open_later`]): the replay
    /// window (a duplicate in the same batch is caught here), session promotion and
    /// counters, as [`Tunnel::decapsulate`]. `ToDevice(n)`: the packet is
    /// `msg[DATA_HEADER_LEN..][..n]`.
    pub fn finish_data(&mut self, msg: &[u8], opened: bool, now: Instant) -> Output {
        self.rx_current = false;
        let r = match Data::parse(msg) {
            Ok(d) if opened => self.accept_data(d.receiver, d.counter, d.payload_len(), now),
            Ok(_) => Err(DropReason::Auth),
            Err(e) => Err(e),
        };
        r.unwrap_or_else(|reason| {
            self.counters.drop(reason);
            Output::Drop(reason)
        })
    }

    /// Before decryption: the session of a data message, still valid, and the counter
    /// not seen yet (the window is not changed).
    fn check_data(&mut self, msg: &Data, now: Instant) -> Result<Slot, DropReason> {
        let reject_after = self.cfg.reject_after;
        let c = self.crypto.as_mut().ok_or(DropReason::BadHeader)?;
        let slot = c
            .sessions
            .find(msg.receiver)
            .ok_or(DropReason::UnknownSession)?;
        let s = c.sessions.get_mut(slot).ok_or(DropReason::UnknownSession)?;
        if now >= s.created + reject_after {
            return Err(DropReason::Expired);
        }
        if !s.replay.check(msg.counter) {
            return Err(DropReason::Replay);
        }
        Ok(slot)
    }

    /// After an authentic data message of `n` bytes: the replay window moves (a
    /// counter seen meanwhile is a replay after all), a pending session becomes the
    /// current one, the counters.
    fn accept_data(
        &mut self,
        receiver: u32,
        counter: u64,
        n: usize,
        now: Instant,
    ) -> Result<Output, DropReason> {
        let c = self.crypto.as_mut().ok_or(DropReason::BadHeader)?;
        let slot = c
            .sessions
            .find(receiver)
            .ok_or(DropReason::UnknownSession)?;
        let s = c.sessions.get_mut(slot).ok_or(DropReason::UnknownSession)?;
        if !s.replay.update(counter) {
            return Err(DropReason::Replay);
        }
        c.last_rx = now;
        let mut current = slot == Slot::Current;
        if slot == Slot::Pending {
            let replaced = c.sessions.current.is_some();
            c.sessions.previous = c.sessions.current.take();
            c.sessions.current = c.sessions.pending.take();
            c.last_tx = now;
            current = true;
            self.counters.sessions += 1;
            self.event(Event::SessionUp { replaced });
        }
        self.rx_current = current;
        if n == 0 {
            self.counters.keepalives_rx += 1;
            return Ok(Output::Keepalive);
        }
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += n as u64;
        Ok(Output::ToDevice(n))
    }
}
