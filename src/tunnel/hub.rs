//! Several peers behind one socket and one device, each with its own key (a hub with
//! spokes). No I/O, like the rest of the core.
//!
//! - **Which peer an initiation is for**: each peer's key gives its own mac1 key, so the
//!   hub tries the peers' mac1 (3 BLAKE2s compressions each, no state) until one
//!   matches, and only that peer verifies the initiation fully (under its own
//!   verification and answer budgets). Junk costs one mac1 per configured peer, so the
//!   trials are budgeted: [`TRIALS_PER_SEC`] peer trials a second over all sources
//!   (with 250 peers, 40 initiations a second), and an initiation without a matching
//!   peer gets no answer.
//! - **Which peer a data message is for**: the receiver index. A multi-peer hub makes
//!   each session's index carry the peer's number in its low 16 bits, masked with a
//!   keyed hash of the random high 16 bits ([`session::IndexTag`]): the lookup is one
//!   hash, and an observer sees a different random index per session, no peer number.
//! - **Which peer a packet from the device goes to**: the longest prefix among the
//!   peers' routes that holds its destination. A packet from a peer whose inner source
//!   is outside that peer's routes is dropped and counted (`inner_source`).
//!
//! With one peer and no routes the hub is the single-peer tunnel exactly: no trial, no
//! route lookup, no index tag.
use std::hash::RandomState;
use std::net::{IpAddr, SocketAddr};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use super::counters::{Counters, DropReason};
use super::message::{self, Kind};
use super::noise;
use super::peer::{session, Event, Output, Role, Tunnel, TunnelConfig};

/// Peer trials (one mac1 each) a second over all initiations, and the burst. A trial
/// measured 0.4-0.8 us on the (loaded) x86_64 build machine, so junk can take at most
/// ~1% of such a core, and a few tens of percent of a slow router core; with 250 peers
/// that is 40 initiations a second, 20 times what 250 clients rekeying every two
/// minutes need.
pub const TRIALS_PER_SEC: u64 = 10_000;

/// One prefix of a peer's routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    v6: bool,
    net: u128,
    len: u8,
}

impl Prefix {
    /// `addr/len`, host bits cleared; `None` if `len` is too long for the family.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let (v6, a, max) = match addr {
            IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (true, u128::from(a), 128),
        };
        if len > max {
            return None;
        }
        Some(Self {
            v6,
            net: a & Self::mask(v6, len),
            len,
        })
    }

    fn mask(v6: bool, len: u8) -> u128 {
        let bits = if v6 { 128 } else { 32 };
        let all = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        all.checked_shl(bits - u32::from(len)).unwrap_or(0) & all
    }

    fn contains(&self, v6: bool, a: u128) -> bool {
        self.v6 == v6 && a & Self::mask(v6, self.len) == self.net
    }

    pub fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(self.net.into())
        } else {
            IpAddr::V4((self.net as u32).into())
        }
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The source or destination of an IP packet as (v6, address).
fn ip_addr(p: &[u8], dst: bool) -> Option<(bool, u128)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let at = if dst { 16 } else { 12 };
            let b: [u8; 4] = p[at..at + 4].try_into().ok()?;
            Some((false, u128::from(u32::from_be_bytes(b))))
        }
        6 if p.len() >= 40 => {
            let at = if dst { 24 } else { 8 };
            let b: [u8; 16] = p[at..at + 16].try_into().ok()?;
            Some((true, u128::from_be_bytes(b)))
        }
        _ => None,
    }
}

/// A configured peer: its state machine, where it was last seen, its name for logs.
pub struct Peer {
    pub name: String,
    pub tunnel: Tunnel,
    /// Server: the address it last authenticated from (UDP).
    pub endpoint: Option<SocketAddr>,
    /// Its routes (also in the hub's table).
    pub routes: Vec<Prefix>,
    /// Server: the endpoint it last moved away from, and when (two clients with one
    /// key move it back and forth).
    pub left: Option<(SocketAddr, Instant)>,
}

impl Peer {
    pub fn new(name: String, tunnel: Tunnel, routes: Vec<Prefix>) -> Self {
        Self {
            name,
            tunnel,
            endpoint: None,
            routes,
            left: None,
        }
    }
}

/// The peers of one tunnel. See the module documentation.
pub struct Hub {
    peers: Vec<Peer>,
    /// (prefix, peer), longest prefix first.
    table: Vec<(Prefix, usize)>,
    tag: Option<RandomState>,
    /// Drops not attributed to a peer (no route, no peer's mac1, unknown index).
    counters: Counters,
    trials: u64,
    trials_at: Instant,
    last: usize,
    /// The last `decapsulate` reached a peer (else nothing it did authenticated).
    reached: bool,
}

impl Hub {
    /// The single-peer tunnel (no routes).
    pub fn single(t: Tunnel) -> Self {
        Self::with_peers(
            vec![Peer::new(String::new(), t, Vec::new())],
            Instant::now(),
        )
    }

    /// Several peers (or one with routes), each made with its own key (encrypted).
    /// Sessions get tagged indices when there is more than one.
    pub fn with_peers(mut peers: Vec<Peer>, now: Instant) -> Self {
        let tag = (peers.len() > 1).then(RandomState::new);
        if let Some(k) = &tag {
            for (i, p) in peers.iter_mut().enumerate() {
                p.tunnel.set_index_tag(session::IndexTag {
                    peer: i as u16,
                    key: k.clone(),
                });
            }
        }
        let mut table: Vec<(Prefix, usize)> = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            for r in &p.routes {
                table.push((*r, i));
            }
        }
        table.sort_by_key(|e| std::cmp::Reverse(e.0.len));
        Self {
            peers,
            table,
            tag,
            counters: Counters::default(),
            trials: TRIALS_PER_SEC,
            trials_at: now,
            last: 0,
            reached: false,
        }
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    pub fn peer(&self, i: usize) -> &Tunnel {
        &self.peers[i].tunnel
    }

    pub fn peer_mut(&mut self, i: usize) -> &mut Tunnel {
        &mut self.peers[i].tunnel
    }

    pub fn endpoint(&self, i: usize) -> Option<SocketAddr> {
        self.peers.get(i).and_then(|p| p.endpoint)
    }

    /// Peer `i` authenticated from `a` (a new endpoint). Returns the endpoint it had
    /// before if it had moved from `a` to there within `window`: two clients with the
    /// same key taking the session from each other.
    pub fn set_endpoint(
        &mut self,
        i: usize,
        a: SocketAddr,
        now: Instant,
        window: std::time::Duration,
    ) -> Option<SocketAddr> {
        let p = self.peers.get_mut(i)?;
        let mut twin = None;
        if let Some(old) = p.endpoint {
            if let Some((back, at)) = p.left {
                if back == a && now.saturating_duration_since(at) < window {
                    twin = Some(old);
                }
            }
            p.left = Some((old, now));
        }
        p.endpoint = Some(a);
        twin
    }

    /// The peer of the last `decapsulate`, `encapsulate` or `tick` output.
    pub fn last_peer(&self) -> usize {
        self.last
    }

    /// The name of peer `i` for logs ("" for the one peer of the command line).
    pub fn name(&self, i: usize) -> &str {
        self.peers.get(i).map_or("", |p| &p.name)
    }

    pub fn is_plaintext(&self) -> bool {
        self.peers[0].tunnel.is_plaintext()
    }

    pub fn role(&self) -> Role {
        self.peers[0].tunnel.role()
    }

    pub fn config(&self) -> &TunnelConfig {
        self.peers[0].tunnel.config()
    }

    /// All counters: the hub's own drops plus every peer's.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        for p in &self.peers {
            c.add(p.tunnel.counters());
        }
        c
    }

    /// For drops the loop decides: counted on the hub.
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// The hub's own counters (drops not attributed to a peer).
    pub fn own_counters(&self) -> &Counters {
        &self.counters
    }

    pub fn take_event(&mut self) -> Option<(usize, Event)> {
        for (i, p) in self.peers.iter_mut().enumerate() {
            if let Some(e) = p.tunnel.take_event() {
                return Some((i, e));
            }
        }
        None
    }

    /// True if some peer has a session.
    pub fn is_up(&self) -> bool {
        self.peers.iter().any(|p| p.tunnel.is_up())
    }

    /// True if the last `decapsulate` authenticated a message under the active session
    /// of peer [`Hub::last_peer`] (see [`Tunnel::authenticated_current`]).
    pub fn authenticated_current(&self) -> bool {
        self.reached && self.peers[self.last].tunnel.authenticated_current()
    }

    pub fn take_peer_dead_flag(&mut self) -> bool {
        let mut any = false;
        for p in &mut self.peers {
            any |= p.tunnel.take_peer_dead_flag();
        }
        any
    }

    pub fn restart(&mut self, now: Instant) {
        for p in &mut self.peers {
            p.tunnel.restart(now);
        }
    }

    /// The peer a packet from the device goes to.
    pub fn route(&mut self, packet: &[u8]) -> Result<usize, DropReason> {
        if self.table.is_empty() && self.peers.len() == 1 {
            return Ok(0);
        }
        let Some((v6, dst)) = ip_addr(packet, true) else {
            self.counters.drop(DropReason::NoRoute);
            return Err(DropReason::NoRoute);
        };
        match self.table.iter().find(|(p, _)| p.contains(v6, dst)) {
            Some((_, i)) => Ok(*i),
            None => {
                self.counters.drop(DropReason::NoRoute);
                Err(DropReason::NoRoute)
            }
        }
    }

    /// A packet from the device to peer `i` (see [`Hub::route`]).
    pub fn encapsulate_to(
        &mut self,
        i: usize,
        packet: &[u8],
        out: &mut [u8],
        now: Instant,
    ) -> Output {
        self.last = i;
        self.peers[i].tunnel.encapsulate(packet, out, now)
    }

    /// [`Hub::encapsulate_to`] with the encryption left to a job (see
    /// [`Tunnel::encapsulate_later`]).
    pub fn encapsulate_later(
        &mut self,
        i: usize,
        packet: &[u8],
        out: &mut [u8],
        now: Instant,
        job: &mut Option<noise::DataJob>,
    ) -> Output {
        self.last = i;
        self.peers[i]
            .tunnel
            .encapsulate_later(packet, out, now, job)
    }

    /// A packet from the device: route and encrypt it.
    pub fn encapsulate(&mut self, packet: &[u8], out: &mut [u8], now: Instant) -> Output {
        match self.route(packet) {
            Ok(i) => self.encapsulate_to(i, packet, out, now),
            Err(r) => Output::Drop(r),
        }
    }

    /// Take `n` trial tokens.
    fn trial_allows(&mut self, n: u64, now: Instant) -> bool {
        let el = crate::clock::millis(now.saturating_duration_since(self.trials_at));
        if el > 0 {
            let add = el.saturating_mul(TRIALS_PER_SEC) / 1000;
            if add > 0 {
                self.trials = self.trials.saturating_add(add).min(TRIALS_PER_SEC);
                self.trials_at = now;
            }
        }
        if self.trials < n {
            return false;
        }
        self.trials -= n;
        true
    }

    /// The peer a message from the network is for, `Err` (counted) if none.
    fn peer_for(&mut self, msg: &[u8], now: Instant) -> Result<usize, DropReason> {
        if self.peers.len() == 1 {
            return Ok(0);
        }
        match message::kind(msg)? {
            Kind::Init if msg.len() == noise::INIT_LEN => {
                if !self.trial_allows(self.peers.len() as u64, now) {
                    return Err(DropReason::HandshakeRate);
                }
                self.peers
                    .iter()
                    .position(|p| p.tunnel.mac1_matches(msg))
                    .ok_or(DropReason::HandshakeMac)
            }
            // Size errors, wrong end: any peer says the same.
            Kind::Init | Kind::Resp => Ok(0),
            Kind::Data => {
                let d = message::Data::parse(msg)?;
                let tag = self.tag.as_ref().ok_or(DropReason::UnknownSession)?;
                let i = usize::from(session::peer_of_index(tag, d.receiver));
                if i < self.peers.len() {
                    Ok(i)
                } else {
                    Err(DropReason::UnknownSession)
                }
            }
        }
    }

    /// A message from the network: find its peer, authenticate and decrypt it, and
    /// check the inner source against the peer's routes.
    pub fn decapsulate_from(
        &mut self,
        msg: &[u8],
        out: &mut [u8],
        now: Instant,
        src: Option<IpAddr>,
    ) -> Output {
        let i = match self.peer_for(msg, now) {
            Ok(i) => i,
            Err(r) => {
                // Not from any peer: must not count as the last peer's message.
                self.reached = false;
                self.counters.drop(r);
                return Output::Drop(r);
            }
        };
        self.reached = true;
        self.last = i;
        let several = self.peers.len() > 1;
        let p = &mut self.peers[i];
        let o = p.tunnel.decapsulate_from(msg, out, now, src);
        if let Output::ToDevice(n) = o {
            if (several || !p.routes.is_empty()) && !Self::source_ok(&p.routes, &out[..n]) {
                p.tunnel.counters_mut().drop(DropReason::InnerSource);
                return Output::Drop(DropReason::InnerSource);
            }
        }
        o
    }

    /// Whether a message from the network is a data message (of an encrypted tunnel):
    /// those can go through [`Hub::prepare_data`] and [`Hub::finish_data`].
    pub fn is_data(&self, msg: &[u8]) -> bool {
        !self.is_plaintext() && message::kind(msg) == Ok(Kind::Data)
    }

    /// A data message to be opened in place by a job, maybe on another thread: its
    /// peer, the checks before decryption, the job (see [`Tunnel::prepare_data`]). A
    /// drop is counted.
    pub fn prepare_data(
        &mut self,
        msg: &mut [u8],
        now: Instant,
    ) -> Result<(usize, noise::DataJob), DropReason> {
        let i = self
            .peer_for(msg, now)
            .inspect_err(|&r| self.counters.drop(r))?;
        let job = self.peers[i].tunnel.prepare_data(msg, now)?;
        Ok((i, job))
    }

    /// A message of [`Hub::prepare_data`] for peer `i` after its job ran, in the order
    /// the messages came: as [`Hub::decapsulate_from`] from there on (the packet is in
    /// place: `msg[noise::DATA_HEADER_LEN..][..n]` for `ToDevice(n)`).
    pub fn finish_data(&mut self, i: usize, msg: &[u8], opened: bool, now: Instant) -> Output {
        self.reached = true;
        self.last = i;
        let several = self.peers.len() > 1;
        let p = &mut self.peers[i];
        let o = p.tunnel.finish_data(msg, opened, now);
        if let Output::ToDevice(n) = o {
            let inner = &msg[noise::DATA_HEADER_LEN..][..n];
            if (several || !p.routes.is_empty()) && !Self::source_ok(&p.routes, inner) {
                p.tunnel.counters_mut().drop(DropReason::InnerSource);
                return Output::Drop(DropReason::InnerSource);
            }
        }
        o
    }

    /// The inner source of a packet from a peer lies in its routes.
    fn source_ok(routes: &[Prefix], packet: &[u8]) -> bool {
        ip_addr(packet, false).is_some_and(|(v6, a)| routes.iter().any(|r| r.contains(v6, a)))
    }

    pub fn decapsulate(&mut self, msg: &[u8], out: &mut [u8], now: Instant) -> Output {
        self.decapsulate_from(msg, out, now, None)
    }

    /// Run every peer's timers; repeat while it returns something (see
    /// [`Tunnel::tick`]); [`Hub::last_peer`] says whose output it is.
    pub fn tick(&mut self, out: &mut [u8], now: Instant, wall_nanos: u64) -> Output {
        for (i, p) in self.peers.iter_mut().enumerate() {
            let o = p.tunnel.tick(out, now, wall_nanos);
            if o != Output::Nothing {
                self.last = i;
                return o;
            }
        }
        Output::Nothing
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .iter()
            .filter_map(|p| p.tunnel.next_deadline())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::wall_nanos;
    use crate::tunnel::Key;

    fn key(i: u8) -> Key {
        Key::from_bytes([i.wrapping_add(1); 32])
    }

    fn pfx(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').expect("cidr");
        Prefix::new(a.parse().expect("addr"), l.parse().expect("len")).expect("prefix")
    }

    /// A hub with `n` spokes; spoke i owns 198.18.i.0/24.
    fn hub(n: u8, t: Instant) -> Hub {
        let peers = (0..n)
            .map(|i| {
                Peer::new(
                    format!("spoke{i}"),
                    Tunnel::new(TunnelConfig::new(Role::Server, false), key(i), t),
                    vec![pfx(&format!("198.18.{i}.0/24"))],
                )
            })
            .collect();
        Hub::with_peers(peers, t)
    }

    fn spoke(i: u8, t: Instant) -> Tunnel {
        Tunnel::new(TunnelConfig::new(Role::Client, false), key(i), t)
    }

    fn connect(h: &mut Hub, c: &mut Tunnel, t: Instant) -> usize {
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        let Output::ToNetwork(n) = c.tick(&mut a, t, wall_nanos()) else {
            panic!("no INIT")
        };
        let Output::ToNetwork(m) = h.decapsulate(&a[..n], &mut b, t) else {
            panic!("no RESP")
        };
        let who = h.last_peer();
        let Output::ToNetwork(k) = c.decapsulate(&b[..m], &mut a, t) else {
            panic!("no confirmation")
        };
        assert_eq!(h.decapsulate(&a[..k], &mut b, t), Output::Keepalive);
        assert_eq!(h.last_peer(), who);
        who
    }

    fn ipv4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p
    }

    #[test]
    fn each_spoke_finds_its_peer_and_routes_are_longest_match() {
        let t = Instant::now();
        let mut h = hub(3, t);
        let mut spokes: Vec<Tunnel> = (0..3).map(|i| spoke(i, t)).collect();
        for (i, s) in spokes.iter_mut().enumerate().rev() {
            assert_eq!(connect(&mut h, s, t), i);
        }
        let mut buf = [0u8; 256];
        let mut out = [0u8; 256];
        // Hub -> spoke 1 by destination.
        let p = ipv4([198, 18, 0, 5], [198, 18, 1, 9]);
        let Output::ToNetwork(n) = h.encapsulate(&p, &mut buf, t) else {
            panic!("not routed")
        };
        assert_eq!(h.last_peer(), 1);
        assert_eq!(
            spokes[1].decapsulate(&buf[..n], &mut out, t),
            Output::ToDevice(p.len())
        );
        // No route.
        let p = ipv4([198, 18, 0, 5], [198, 19, 1, 9]);
        assert_eq!(
            h.encapsulate(&p, &mut buf, t),
            Output::Drop(DropReason::NoRoute)
        );
        // Spoke 2 -> hub: own source passes, spoke 0's source is dropped and counted.
        let p = ipv4([198, 18, 2, 7], [198, 18, 0, 1]);
        let Output::ToNetwork(n) = spokes[2].encapsulate(&p, &mut buf, t) else {
            panic!()
        };
        assert_eq!(
            h.decapsulate(&buf[..n], &mut out, t),
            Output::ToDevice(p.len())
        );
        assert_eq!(h.last_peer(), 2);
        let p = ipv4([198, 18, 0, 7], [198, 18, 1, 1]);
        let Output::ToNetwork(n) = spokes[2].encapsulate(&p, &mut buf, t) else {
            panic!()
        };
        assert_eq!(
            h.decapsulate(&buf[..n], &mut out, t),
            Output::Drop(DropReason::InnerSource)
        );
        assert_eq!(h.peer(2).counters().dropped(DropReason::InnerSource), 1);
        assert_eq!(h.counters().dropped(DropReason::InnerSource), 1);
        // Junk that reaches no peer right after an authentic message does not pass as
        // that peer's (the loop would move the peer's endpoint to the junk's source).
        let Output::ToNetwork(n) =
            spokes[2].encapsulate(&ipv4([198, 18, 2, 7], [198, 18, 0, 1]), &mut buf, t)
        else {
            panic!()
        };
        assert!(matches!(
            h.decapsulate(&buf[..n], &mut out, t),
            Output::ToDevice(_)
        ));
        assert!(h.authenticated_current());
        let mut junk = buf[..n].to_vec();
        junk[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let o = h.decapsulate(&junk, &mut out, t);
        assert!(matches!(o, Output::Drop(_)), "{o:?}");
        assert!(!h.authenticated_current());
    }

    #[test]
    fn two_clients_with_one_key_show_as_an_endpoint_going_back_and_forth() {
        let t = Instant::now();
        let mut h = hub(2, t);
        let a: SocketAddr = "198.18.9.1:1000".parse().unwrap();
        let b: SocketAddr = "198.18.9.2:1000".parse().unwrap();
        let w = Duration::from_secs(120);
        assert_eq!(h.set_endpoint(0, a, t, w), None);
        // One move (NAT rebinding, a client that changed address): nothing to say.
        assert_eq!(h.set_endpoint(0, b, t + w / 4, w), None);
        // Back to the first: two clients.
        assert_eq!(h.set_endpoint(0, a, t + w / 2, w), Some(b));
        // Back and forth slower than the window: a roaming client.
        assert_eq!(h.set_endpoint(1, a, t, w), None);
        assert_eq!(h.set_endpoint(1, b, t, w), None);
        assert_eq!(h.set_endpoint(1, a, t + 2 * w, w), None);
    }

    /// Random messages of every type and size: dropped and counted, never a panic, never
    /// an answer.
    #[test]
    fn random_messages_are_dropped() {
        let t = Instant::now();
        let mut h = hub(3, t);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = [0u8; 2048];
        let mut msg = [0u8; 200];
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            for b in msg[..len].iter_mut() {
                *b = next() as u8;
            }
            if len >= 4 {
                msg[0] = [1, 2, 4][(next() % 3) as usize];
                msg[1..4].fill(0);
            }
            let o = h.decapsulate_from(&msg[..len], &mut out, t, None);
            assert!(matches!(o, Output::Drop(_)), "{o:?}");
            assert!(!h.authenticated_current());
        }
        assert_eq!(h.counters().total_drops(), 20_000);
    }

    #[test]
    fn longest_prefix_wins() {
        let t = Instant::now();
        let mut h = hub(2, t);
        h.peers[0].routes.push(pfx("198.18.1.128/25"));
        let table = h
            .peers
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.routes.iter().map(move |r| (*r, i)));
        let mut v: Vec<_> = table.collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.0.len));
        h.table = v;
        assert_eq!(h.route(&ipv4([0; 4], [198, 18, 1, 200])), Ok(0));
        assert_eq!(h.route(&ipv4([0; 4], [198, 18, 1, 100])), Ok(1));
        assert!(pfx("2001:2::/48").contains(
            true,
            u128::from("2001:2::5".parse::<std::net::Ipv6Addr>().unwrap())
        ));
    }

    #[test]
    fn an_unknown_key_gets_nothing_and_trials_are_budgeted() {
        let t = Instant::now();
        let mut h = hub(3, t);
        let mut stranger = spoke(9, t);
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        let Output::ToNetwork(n) = stranger.tick(&mut a, t, wall_nanos()) else {
            panic!()
        };
        assert_eq!(
            h.decapsulate(&a[..n], &mut b, t),
            Output::Drop(DropReason::HandshakeMac)
        );
        // The budget: TRIALS_PER_SEC / 3 initiations at once, then rate limited.
        let mut limited = 0;
        for _ in 0..TRIALS_PER_SEC / 3 + 10 {
            if h.decapsulate(&a[..n], &mut b, t) == Output::Drop(DropReason::HandshakeRate) {
                limited += 1;
            }
        }
        assert!((10..=11).contains(&limited), "{limited}");
        // A removed spoke (hub rebuilt without its key) gets no answer.
        let mut h = hub(2, t);
        let mut gone = spoke(2, t);
        let Output::ToNetwork(n) = gone.tick(&mut a, t, wall_nanos()) else {
            panic!()
        };
        assert!(matches!(h.decapsulate(&a[..n], &mut b, t), Output::Drop(_)));
    }

    /// Handshake cost at the hub with 250 peers configured (the matching one last) and
    /// the cost of junk: `cargo test --release --lib hub::tests::handshake_cost_250 -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn handshake_cost_250_peers() {
        let t = Instant::now();
        let mut h = hub(250, t);
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        let rounds = 200u32;
        let mut inits = Vec::new();
        for _ in 0..rounds {
            let mut c = spoke(249, t);
            let Output::ToNetwork(n) = c.tick(&mut a, t, wall_nanos()) else {
                panic!()
            };
            inits.push(a[..n].to_vec());
        }
        // mac1 trial over all peers, for junk (no peer matches).
        let mut junk = inits[0].clone();
        junk[10] ^= 1;
        let s = Instant::now();
        for _ in 0..rounds {
            h.trials = TRIALS_PER_SEC;
            assert!(matches!(
                h.decapsulate(&junk, &mut b, t),
                Output::Drop(DropReason::HandshakeMac)
            ));
        }
        let junk_ns = s.elapsed().as_nanos() / u128::from(rounds);
        // A genuine INIT for the last peer: trials, verification, answer (keygen + DH).
        let s = Instant::now();
        let mut answered = 0;
        for (k, m) in inits.iter().enumerate() {
            h.trials = TRIALS_PER_SEC;
            let at = t + Duration::from_secs(k as u64);
            if let Output::ToNetwork(_) = h.decapsulate_from(m, &mut b, at, None) {
                answered += 1;
            }
        }
        let hs_ns = s.elapsed().as_nanos() / u128::from(rounds);
        println!(
            "250 peers: junk INIT {junk_ns} ns/op (250 mac1 trials, {} ns per trial); genuine INIT for the last peer {hs_ns} ns/op ({answered} answered)",
            junk_ns / 250
        );
        assert!(answered > 0);
        // The loop runs every peer's timers and asks for the next deadline at each turn.
        let turns = 10_000u32;
        let s = Instant::now();
        let mut due = 0;
        for _ in 0..turns {
            if h.tick(&mut b, t, 0) != Output::Nothing {
                due += 1;
            }
            std::hint::black_box(h.next_deadline());
        }
        let turn_ns = s.elapsed().as_nanos() / u128::from(turns);
        println!("250 peers: timers and next deadline {turn_ns} ns per loop turn ({due} outputs)");
    }
}
