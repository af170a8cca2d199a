use super::admission::{
    HANDSHAKE_BURST, PENDING_GUARD, SOURCE_BURST, SOURCE_REFILL, VERIFY_BURST, VERIFY_REFILL,
};
use super::*;
use crate::clock::wall_nanos;
use crate::tunnel::noise::{HandshakeKey, Responder};
use crate::tunnel::noise::{DATA_HEADER_LEN, DATA_OVERHEAD, INIT_LEN, RESP_LEN};
use crate::tunnel_run::crypto_pool::CryptoPool;

const S: Duration = Duration::from_secs(1);

fn key() -> Key {
    Key::from_bytes([0x5a; 32])
}

fn cfg(role: Role) -> TunnelConfig {
    let mut c = TunnelConfig::new(role, false);
    c.keepalive = Some(Duration::from_secs(2));
    c.timeout = Some(Duration::from_secs(6));
    c
}

struct Pair {
    cli: Tunnel,
    srv: Tunnel,
    t: Instant,
    buf: Vec<u8>,
    buf2: Vec<u8>,
}

impl Pair {
    fn new() -> Self {
        let t = Instant::now();
        Self {
            cli: Tunnel::new(cfg(Role::Client), key(), t),
            srv: Tunnel::new(cfg(Role::Server), key(), t),
            t,
            buf: vec![0; 2048],
            buf2: vec![0; 2048],
        }
    }

    /// A pair that rekeys after 30 s (keepalive 60 s, timeout 150 s), so a test can
    /// reach a rekey by moving the clock.
    fn rekeying() -> Self {
        let mut p = Self::new();
        for t in [&mut p.cli, &mut p.srv] {
            t.cfg.rekey_after = Duration::from_secs(30);
            t.cfg.keepalive = Some(Duration::from_secs(60));
            t.cfg.timeout = Some(Duration::from_secs(150));
        }
        p
    }

    /// Client tick -> INIT -> server -> RESP -> client -> confirmation -> server.
    fn connect(&mut self) {
        let Output::ToNetwork(n) = self.cli.tick(&mut self.buf, self.t, wall_nanos()) else {
            panic!("no INIT")
        };
        assert_eq!(n, INIT_LEN);
        let Output::ToNetwork(m) = self.srv.decapsulate(&self.buf[..n], &mut self.buf2, self.t)
        else {
            panic!("no RESP")
        };
        assert_eq!(m, RESP_LEN);
        assert!(
            !self.srv.authenticated_current(),
            "an INIT alone must not move the endpoint"
        );
        let Output::ToNetwork(k) = self.cli.decapsulate(&self.buf2[..m], &mut self.buf, self.t)
        else {
            panic!("no confirmation")
        };
        assert!(self.cli.is_up());
        assert!(!self.srv.is_up() || self.srv.counters().sessions > 0);
        assert_eq!(
            self.srv.decapsulate(&self.buf[..k], &mut self.buf2, self.t),
            Output::Keepalive
        );
        assert!(self.srv.is_up());
        assert!(self.srv.authenticated_current());
    }

    /// Send `pkt` from a to b; returns what b got.
    fn send(&mut self, from_client: bool, pkt: &[u8]) -> Output {
        let (a, b) = if from_client {
            (&mut self.cli, &mut self.srv)
        } else {
            (&mut self.srv, &mut self.cli)
        };
        let Output::ToNetwork(n) = a.encapsulate(pkt, &mut self.buf, self.t) else {
            panic!("not sent")
        };
        assert_eq!(n, pkt.len() + DATA_OVERHEAD);
        let o = b.decapsulate(&self.buf[..n], &mut self.buf2, self.t);
        if let Output::ToDevice(m) = o {
            assert_eq!(&self.buf2[..m], pkt);
        }
        o
    }
}

fn drain(t: &mut Tunnel) -> Vec<Event> {
    std::iter::from_fn(|| t.take_event()).collect()
}

#[test]
fn handshake_and_round_trip() {
    let mut p = Pair::new();
    p.connect();
    assert_eq!(
        drain(&mut p.cli),
        vec![
            Event::HandshakeSent {
                attempt: 1,
                retry_in: S
            },
            Event::SessionUp { replaced: false }
        ]
    );
    assert_eq!(
        drain(&mut p.srv),
        vec![Event::SessionUp { replaced: false }]
    );
    for i in 0..100u8 {
        let pkt = vec![0x45; 1 + i as usize * 13];
        assert_eq!(p.send(true, &pkt), Output::ToDevice(pkt.len()));
        assert_eq!(p.send(false, &pkt), Output::ToDevice(pkt.len()));
    }
    let c = p.srv.counters();
    assert_eq!(c.rx_packets, 100);
    assert_eq!(c.tx_packets, 100);
    assert_eq!(c.total_drops(), 0);
    assert_eq!(c.handshakes_answered, 1);
    assert_eq!(p.cli.counters().handshakes_sent, 1);
}

#[test]
fn tampered_truncated_replayed_are_dropped_and_counted() {
    let mut p = Pair::new();
    p.connect();
    let pkt = [0x45u8; 200];
    let Output::ToNetwork(n) = p.cli.encapsulate(&pkt, &mut p.buf, p.t) else {
        panic!()
    };
    let good = p.buf[..n].to_vec();
    // Every single-bit flip is rejected, and none reaches the device.
    for bit in 0..n * 8 {
        let mut m = good.clone();
        m[bit / 8] ^= 1 << (bit % 8);
        let o = p.srv.decapsulate(&m, &mut p.buf2, p.t);
        assert!(matches!(o, Output::Drop(_)), "bit {bit}: {o:?}");
    }
    // Truncations.
    for len in 0..n {
        assert!(
            matches!(
                p.srv.decapsulate(&good[..len], &mut p.buf2, p.t),
                Output::Drop(_)
            ),
            "len {len}"
        );
    }
    let c = p.srv.counters().clone();
    // (a flip of the counter's low bit gives counter 0, the confirmation's: replay)
    let replays = c.dropped(DropReason::Replay);
    assert!(c.dropped(DropReason::Auth) > 0);
    assert!(c.dropped(DropReason::UnknownSession) > 0);
    assert!(c.dropped(DropReason::BadHeader) > 0);
    assert!(c.dropped(DropReason::Short) > 0);
    assert_eq!(c.rx_packets, 0);
    // The genuine one still goes through (forgeries did not move the window) ...
    assert_eq!(
        p.srv.decapsulate(&good, &mut p.buf2, p.t),
        Output::ToDevice(200)
    );
    // ... once.
    assert_eq!(
        p.srv.decapsulate(&good, &mut p.buf2, p.t),
        Output::Drop(DropReason::Replay)
    );
    assert_eq!(p.srv.counters().dropped(DropReason::Replay), replays + 1);
    // And the tunnel keeps working.
    assert_eq!(p.send(true, &pkt), Output::ToDevice(200));
}

#[test]
fn reordered_packets_within_window_are_accepted() {
    let mut p = Pair::new();
    p.connect();
    let mut msgs = Vec::new();
    for i in 0..50u8 {
        let Output::ToNetwork(n) = p.cli.encapsulate(&[i; 60], &mut p.buf, p.t) else {
            panic!()
        };
        msgs.push(p.buf[..n].to_vec());
    }
    for m in msgs.iter().rev() {
        assert_eq!(p.srv.decapsulate(m, &mut p.buf2, p.t), Output::ToDevice(60));
    }
    for m in &msgs {
        assert_eq!(
            p.srv.decapsulate(m, &mut p.buf2, p.t),
            Output::Drop(DropReason::Replay)
        );
    }
}

#[test]
fn wrong_key_client_gets_no_answer() {
    let t = Instant::now();
    let mut bad = Tunnel::new(cfg(Role::Client), Key::from_bytes([1; 32]), t);
    let mut srv = Tunnel::new(cfg(Role::Server), key(), t);
    let mut a = [0u8; 2048];
    let mut b = [0u8; 2048];
    let Output::ToNetwork(n) = bad.tick(&mut a, t, wall_nanos()) else {
        panic!()
    };
    // The cheap check (mac1, keyed with the server's key) stops it.
    assert_eq!(
        srv.decapsulate(&a[..n], &mut b, t),
        Output::Drop(DropReason::HandshakeMac)
    );
    assert_eq!(srv.counters().handshakes_answered, 0);
    assert!(!srv.is_up());
    // Data under made-up session indexes is dropped too.
    let mut forged = [0u8; 100];
    forged[0] = noise::TYPE_DATA;
    assert_eq!(
        srv.decapsulate(&forged, &mut b, t),
        Output::Drop(DropReason::UnknownSession)
    );
}

#[test]
fn handshake_messages_at_the_wrong_end_are_dropped() {
    let mut p = Pair::new();
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!()
    };
    let init = p.buf[..n].to_vec();
    // An INIT at a client.
    let mut other = Tunnel::new(cfg(Role::Client), key(), p.t);
    assert_eq!(
        other.decapsulate(&init, &mut p.buf2, p.t),
        Output::Drop(DropReason::HandshakeUnexpected)
    );
    let Output::ToNetwork(m) = p.srv.decapsulate(&init, &mut p.buf2, p.t) else {
        panic!()
    };
    let resp = p.buf2[..m].to_vec();
    // A RESP at a server, a RESP for someone else's handshake.
    assert_eq!(
        p.srv.decapsulate(&resp, &mut p.buf, p.t),
        Output::Drop(DropReason::HandshakeUnexpected)
    );
    let _ = other.tick(&mut p.buf, p.t, wall_nanos());
    assert_eq!(
        other.decapsulate(&resp, &mut p.buf, p.t),
        Output::Drop(DropReason::UnknownSession)
    );
    // Oversized INIT.
    let mut big = init.clone();
    big.push(0);
    assert_eq!(
        p.srv.decapsulate(&big, &mut p.buf, p.t),
        Output::Drop(DropReason::BadHeader)
    );
    assert_eq!(
        p.srv.decapsulate(&init[..INIT_LEN - 1], &mut p.buf, p.t),
        Output::Drop(DropReason::Short)
    );
}

#[test]
fn mode_mismatch_is_refused_with_an_event() {
    let t = Instant::now();
    let mut cli = Tunnel::new(TunnelConfig::new(Role::Client, true), key(), t);
    let mut srv = Tunnel::new(TunnelConfig::new(Role::Server, false), key(), t);
    let mut a = [0u8; 256];
    let mut b = [0u8; 256];
    let Output::ToNetwork(n) = cli.tick(&mut a, t, wall_nanos()) else {
        panic!()
    };
    assert_eq!(
        srv.decapsulate(&a[..n], &mut b, t),
        Output::Drop(DropReason::HandshakeMismatch)
    );
    assert_eq!(
        srv.take_event(),
        Some(Event::ModeMismatch { peer_tap: true })
    );
}

#[test]
fn replayed_init_does_not_replace_the_session() {
    let mut p = Pair::new();
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!()
    };
    let init = p.buf[..n].to_vec();
    let Output::ToNetwork(m) = p.srv.decapsulate(&init, &mut p.buf2, p.t) else {
        panic!()
    };
    let Output::ToNetwork(k) = p.cli.decapsulate(&p.buf2[..m], &mut p.buf, p.t) else {
        panic!()
    };
    assert_eq!(
        p.srv.decapsulate(&p.buf[..k], &mut p.buf2, p.t),
        Output::Keepalive
    );
    // Attacker replays the INIT: its timestamp is not newer than the last answered
    // one, so no answer, and the working session stays.
    assert_eq!(
        p.srv.decapsulate(&init, &mut p.buf2, p.t),
        Output::Drop(DropReason::HandshakeReplay)
    );
    assert_eq!(p.send(true, b"still here"), Output::ToDevice(10));
    assert_eq!(p.send(false, b"both ways"), Output::ToDevice(9));
}

#[test]
fn restarted_client_replaces_the_session() {
    let mut p = Pair::new();
    p.connect();
    assert_eq!(p.send(true, b"old"), Output::ToDevice(3));
    let _ = drain(&mut p.srv);
    // The client restarts: a new instance with no memory of the old session.
    p.t += 3 * S;
    p.cli = Tunnel::new(cfg(Role::Client), key(), p.t);
    p.connect();
    assert_eq!(drain(&mut p.srv), vec![Event::SessionUp { replaced: true }]);
    assert_eq!(p.send(true, b"new"), Output::ToDevice(3));
    assert_eq!(p.send(false, b"back"), Output::ToDevice(4));
    assert_eq!(p.srv.counters().sessions, 2);
}

#[test]
fn forged_resp_does_not_break_the_client() {
    let mut p = Pair::new();
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!()
    };
    let Output::ToNetwork(m) = p.srv.decapsulate(&p.buf[..n], &mut p.buf2, p.t) else {
        panic!()
    };
    let mut forged = p.buf2[..m].to_vec();
    forged[30] ^= 0x80;
    assert_eq!(
        p.cli.decapsulate(&forged, &mut p.buf, p.t),
        Output::Drop(DropReason::HandshakeAuth)
    );
    assert!(matches!(
        p.cli.decapsulate(&p.buf2[..m], &mut p.buf, p.t),
        Output::ToNetwork(_)
    ));
    assert!(p.cli.is_up());
}

#[test]
fn keepalive_then_dead_peer_then_rehandshake() {
    let mut p = Pair::new();
    p.connect();
    let _ = drain(&mut p.cli);
    // Keepalive due after 2 s of silence on each side.
    assert_eq!(p.cli.next_deadline(), Some(p.t + 2 * S));
    assert_eq!(
        p.cli.tick(&mut p.buf, p.t + S, wall_nanos()),
        Output::Nothing
    );
    p.t += 2 * S;
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!("no keepalive")
    };
    assert_eq!(n, DATA_OVERHEAD);
    assert_eq!(p.cli.tick(&mut p.buf, p.t, wall_nanos()), Output::Nothing);
    assert_eq!(
        p.srv.decapsulate(&p.buf[..n], &mut p.buf2, p.t),
        Output::Keepalive
    );
    assert_eq!(
        p.srv.counters().keepalives_rx,
        2,
        "confirmation + keepalive"
    );
    // The server goes silent: the client keeps sending keepalives; at keepalive +
    // QUIET_SLACK (4 s) after the last thing it received (the RESP at t0) it starts a
    // new handshake, keeping the session; 6 s after it, it declares the peer dead and
    // re-handshakes at once.
    let (mut kas, mut inits) = (0, 0);
    for _ in 0..3 {
        p.t += S;
        while let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) {
            if n == INIT_LEN {
                inits += 1;
            } else {
                kas += 1;
            }
        }
    }
    assert_eq!(
        (kas, inits),
        (1, 2),
        "keepalive and handshake at t0+4, its retry at t0+5"
    );
    assert!(
        p.cli.is_up(),
        "the session is kept while the new handshake runs"
    );
    p.t += S;
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!("no re-handshake")
    };
    assert_eq!(n, INIT_LEN);
    assert!(!p.cli.is_up());
    let hs1 = Event::HandshakeSent {
        attempt: 1,
        retry_in: S,
    };
    let hs2 = Event::HandshakeSent {
        attempt: 2,
        retry_in: 2 * S,
    };
    assert_eq!(drain(&mut p.cli), vec![hs1, hs2, Event::PeerDead, hs1]);
    assert_eq!(
        p.cli.encapsulate(b"x", &mut p.buf2, p.t),
        Output::Drop(DropReason::NoSession)
    );
    // Server side: it heard the client until t0+2 s and must also time out.
    assert!(p.srv.is_up());
    let t_dead = p.t + 6 * S;
    while p.srv.tick(&mut p.buf2, t_dead, wall_nanos()) != Output::Nothing {}
    assert!(!p.srv.is_up());
    assert_eq!(p.srv.counters().peer_dead, 1);
    assert_eq!(
        p.srv.encapsulate(b"x", &mut p.buf2, t_dead),
        Output::Drop(DropReason::NoSession)
    );
}

/// Default timers (keepalive 10 s, timeout 30 s): a server that restarted (lost the
/// session) is found again within 15 s, and nothing the client sends in between is
/// answered by the new server before a fresh handshake.
#[test]
fn server_restart_with_default_timers_is_recovered_within_15_s() {
    let t0 = Instant::now();
    let mut cli = Tunnel::new(TunnelConfig::new(Role::Client, false), key(), t0);
    let mut srv = Tunnel::new(TunnelConfig::new(Role::Server, false), key(), t0);
    let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
    let exchange = |cli: &mut Tunnel, srv: &mut Tunnel, t: Instant| {
        let (mut a, mut b) = ([0u8; 256], [0u8; 256]);
        while let Output::ToNetwork(n) = cli.tick(&mut a, t, wall_nanos()) {
            if let Output::ToNetwork(m) = srv.decapsulate(&a[..n], &mut b, t) {
                if let Output::ToNetwork(k) = cli.decapsulate(&b[..m], &mut a, t) {
                    let _ = srv.decapsulate(&a[..k], &mut b, t);
                }
            }
        }
        while let Output::ToNetwork(n) = srv.tick(&mut b, t, wall_nanos()) {
            let _ = cli.decapsulate(&b[..n], &mut a, t);
        }
    };
    exchange(&mut cli, &mut srv, t0);
    assert!(cli.is_up() && srv.is_up());
    // Traffic both ways for a while, then the server restarts at `down` (worst case:
    // right after the client last heard from it).
    let mut t = t0;
    for _ in 0..25 {
        t += S;
        exchange(&mut cli, &mut srv, t);
    }
    let down = t;
    let mut srv = Tunnel::new(TunnelConfig::new(Role::Server, false), key(), down);
    let mut back = None;
    for s in 1..=30 {
        t = down + S * s;
        // The client's data meets a server without the session: dropped, unanswered.
        let Output::ToNetwork(n) = cli.encapsulate(&[0x45; 40], &mut a, t) else {
            panic!("client stopped sending")
        };
        let o = srv.decapsulate(&a[..n], &mut b, t);
        if !srv.is_up() {
            assert_eq!(o, Output::Drop(DropReason::UnknownSession));
        }
        exchange(&mut cli, &mut srv, t);
        if srv.is_up() && back.is_none() {
            back = Some(s);
        }
    }
    let back = back.expect("never recovered");
    assert!(back <= 15, "service back after {back} s");
}

#[test]
fn backoff_doubles_and_caps_while_server_is_away() {
    let t0 = Instant::now();
    let mut cli = Tunnel::new(cfg(Role::Client), key(), t0);
    let mut b = [0u8; 256];
    let mut sent_at = Vec::new();
    let mut t = t0;
    let end = t0 + Duration::from_secs(100);
    while t <= end {
        if let Output::ToNetwork(_) = cli.tick(&mut b, t, wall_nanos()) {
            sent_at.push((t - t0).as_secs());
        }
        assert!(cli.next_deadline().is_some_and(|d| d > t));
        t += Duration::from_millis(250);
    }
    assert_eq!(sent_at, vec![0, 1, 3, 7, 15, 31, 47, 63, 79, 95]);
    // When the server finally answers, the backoff starts over.
    let mut srv = Tunnel::new(cfg(Role::Server), key(), t);
    let Output::ToNetwork(n) = cli.tick(&mut b, t + Duration::from_secs(16), wall_nanos()) else {
        panic!()
    };
    let mut r = [0u8; 256];
    let Output::ToNetwork(m) = srv.decapsulate(&b[..n], &mut r, t) else {
        panic!()
    };
    assert!(matches!(
        cli.decapsulate(&r[..m], &mut b, t),
        Output::ToNetwork(_)
    ));
    assert_eq!(cli.counters().handshakes_sent, 11);
}

#[test]
fn server_restart_is_recovered_after_the_timeout() {
    let mut p = Pair::new();
    p.connect();
    // Server restarts: fresh instance, nothing known.
    p.srv = Tunnel::new(cfg(Role::Server), key(), p.t);
    let Output::ToNetwork(n) = p.cli.encapsulate(b"lost", &mut p.buf, p.t) else {
        panic!()
    };
    assert_eq!(
        p.srv.decapsulate(&p.buf[..n], &mut p.buf2, p.t),
        Output::Drop(DropReason::UnknownSession)
    );
    // The client notices within `timeout` (6 s) and reconnects on the next tick.
    let t0 = p.t;
    let mut t = p.t;
    loop {
        t += Duration::from_millis(100);
        assert!(t - t0 <= Duration::from_secs(6), "client did not notice");
        match p.cli.tick(&mut p.buf, t, wall_nanos()) {
            Output::ToNetwork(n) if n == INIT_LEN => break,
            _ => {}
        }
    }
    p.t = t;
    let n = INIT_LEN;
    let Output::ToNetwork(m) = p.srv.decapsulate(&p.buf[..n], &mut p.buf2, p.t) else {
        panic!()
    };
    let Output::ToNetwork(k) = p.cli.decapsulate(&p.buf2[..m], &mut p.buf, p.t) else {
        panic!()
    };
    assert_eq!(
        p.srv.decapsulate(&p.buf[..k], &mut p.buf2, p.t),
        Output::Keepalive
    );
    assert_eq!(p.send(true, b"again"), Output::ToDevice(5));
}

#[test]
fn rekey_keeps_traffic_flowing() {
    let mut p = Pair::new();
    p.connect();
    // Keep both sides talking so nobody times out, until the rekey time.
    for _ in 0..120 {
        p.t += S;
        assert_eq!(p.send(true, b"c"), Output::ToDevice(1));
        assert_eq!(p.send(false, b"s"), Output::ToDevice(1));
    }
    // The client starts a new handshake; the old session still carries data.
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!("no rekey")
    };
    assert_eq!(n, INIT_LEN);
    let init = p.buf[..n].to_vec();
    assert_eq!(p.send(true, b"during"), Output::ToDevice(6));
    let Output::ToNetwork(m) = p.srv.decapsulate(&init, &mut p.buf2, p.t) else {
        panic!()
    };
    // Server still sends with the old session until the client confirms.
    let Output::ToNetwork(old) = p.srv.encapsulate(b"old keys", &mut p.buf, p.t) else {
        panic!()
    };
    let old_msg = p.buf[..old].to_vec();
    let resp = p.buf2[..m].to_vec();
    let Output::ToNetwork(k) = p.cli.decapsulate(&resp, &mut p.buf, p.t) else {
        panic!()
    };
    // A late packet under the old keys still decrypts at the client (previous session).
    assert_eq!(
        p.cli.decapsulate(&old_msg, &mut p.buf2, p.t),
        Output::ToDevice(8)
    );
    assert_eq!(
        p.srv.decapsulate(&p.buf[..k], &mut p.buf2, p.t),
        Output::Keepalive
    );
    assert_eq!(p.send(true, b"after"), Output::ToDevice(5));
    assert_eq!(p.send(false, b"after"), Output::ToDevice(5));
    assert_eq!(p.srv.counters().sessions, 2);
    assert_eq!(p.cli.counters().total_drops(), 0);
    assert_eq!(p.srv.counters().total_drops(), 0);
}

#[test]
fn lost_confirmation_at_rekey_does_not_black_hole_the_client() {
    let mut p = Pair::rekeying();
    p.connect();
    p.t += Duration::from_secs(31);
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!("no rekey")
    };
    let init = p.buf[..n].to_vec();
    let Output::ToNetwork(m) = p.srv.decapsulate(&init, &mut p.buf2, p.t) else {
        panic!("no answer")
    };
    let resp = p.buf2[..m].to_vec();
    // The client switches to the new keys; its confirmation is lost.
    assert!(matches!(
        p.cli.decapsulate(&resp, &mut p.buf, p.t),
        Output::ToNetwork(_)
    ));
    // Nothing from the client for longer than the server used to keep the pending
    // session (20 s), less than its keepalive and the next rekey; timers run.
    for _ in 0..25 {
        p.t += S;
        // The server's keepalives (old keys) still reach the client.
        if let Output::ToNetwork(k) = p.srv.tick(&mut p.buf, p.t, wall_nanos()) {
            assert_eq!(
                p.cli.decapsulate(&p.buf[..k], &mut p.buf2, p.t),
                Output::Keepalive
            );
        }
        assert_eq!(p.cli.tick(&mut p.buf, p.t, wall_nanos()), Output::Nothing);
    }
    // The client's next packet (new keys) confirms the session and is delivered.
    assert_eq!(p.send(true, b"late"), Output::ToDevice(4));
    assert_eq!(p.send(false, b"back"), Output::ToDevice(4));
    assert_eq!(p.srv.counters().total_drops(), 0);
    assert_eq!(p.srv.counters().sessions, 2);
}

#[test]
fn restored_high_water_mark_refuses_recordings_of_the_previous_run() {
    let mut p = Pair::new();
    let mut a = [0u8; 256];
    // A recorded INIT of the client, then its real handshake.
    let n = fresh_init(&mut p.cli, &mut a, p.t);
    let recorded = a[..n].to_vec();
    clock_ahead(&mut p.cli, Duration::from_secs(1));
    p.cli.restart(p.t);
    p.connect();
    let hwm = p.srv.init_high_water().unwrap();
    assert!(p.cli.init_high_water().is_none(), "clients keep none");
    // The server restarts and keeps its mark: the recording gets no answer.
    let mut srv = Tunnel::new(cfg(Role::Server), key(), p.t);
    srv.restore_init_high_water(hwm);
    assert_eq!(srv.init_high_water(), Some(hwm));
    assert_eq!(
        srv.decapsulate_from(&recorded, &mut p.buf2, p.t, ip(9)),
        Output::Drop(DropReason::HandshakeReplay)
    );
    // Without it (the old behaviour) the recording would be answered.
    let mut forgetful = Tunnel::new(cfg(Role::Server), key(), p.t);
    assert!(matches!(
        forgetful.decapsulate_from(&recorded, &mut p.buf2, p.t, ip(9)),
        Output::ToNetwork(_)
    ));
    // The real client, newer, is answered by the restarted server.
    let (o, conf, _) = handshake_at(&mut srv, &mut p.cli, p.t + S, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
}

#[test]
fn sessions_expire_without_rekey() {
    let mut p = Pair::new();
    p.connect();
    let mut c = cfg(Role::Server);
    c.keepalive = None;
    c.timeout = None;
    // A server with timers off still refuses a session past reject_after.
    p.srv.cfg = c;
    p.t += Duration::from_secs(180);
    let Output::ToNetwork(n) = p.cli.encapsulate(b"x", &mut p.buf, p.t - S) else {
        panic!()
    };
    assert_eq!(
        p.srv.decapsulate(&p.buf[..n], &mut p.buf2, p.t),
        Output::Drop(DropReason::Expired)
    );
    assert_eq!(p.srv.tick(&mut p.buf2, p.t, wall_nanos()), Output::Nothing);
    assert_eq!(
        p.srv.take_event(),
        Some(Event::SessionUp { replaced: false })
    );
    assert_eq!(p.srv.take_event(), Some(Event::SessionExpired));
    assert!(!p.srv.is_up());
}

/// A fresh INIT from `cli` (restart makes it initiate again at once).
fn fresh_init(cli: &mut Tunnel, buf: &mut [u8], t: Instant) -> usize {
    cli.restart(t);
    let Output::ToNetwork(n) = cli.tick(buf, t, wall_nanos()) else {
        panic!("no INIT")
    };
    n
}

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([198, 18, 0, last]))
}

#[test]
fn handshake_rate_limit_per_source_and_global() {
    let t = Instant::now();
    let mut srv = Tunnel::new(cfg(Role::Server), key(), t);
    let mut cli = Tunnel::new(cfg(Role::Client), key(), t);
    let mut a = [0u8; 256];
    let mut b = [0u8; 256];
    // One source: SOURCE_BURST fresh INITs answered, the rest rate limited.
    let mut answered = 0;
    for _ in 0..20 {
        let n = fresh_init(&mut cli, &mut a, t);
        if let Output::ToNetwork(_) = srv.decapsulate_from(&a[..n], &mut b, t, ip(1)) {
            answered += 1;
        }
    }
    assert_eq!(answered, SOURCE_BURST);
    assert_eq!(
        srv.counters().dropped(DropReason::HandshakeRate),
        20 - SOURCE_BURST as u64
    );
    // Another source is not affected.
    let n = fresh_init(&mut cli, &mut a, t);
    assert!(matches!(
        srv.decapsulate_from(&a[..n], &mut b, t, ip(2)),
        Output::ToNetwork(_)
    ));
    // Refills with time.
    let n = fresh_init(&mut cli, &mut a, t);
    assert!(matches!(
        srv.decapsulate_from(&a[..n], &mut b, t + SOURCE_REFILL, ip(1)),
        Output::ToNetwork(_)
    ));
    // Global cap over many sources (fixed table, least recently used reused).
    let mut answered = 0;
    for i in 0..100u8 {
        let n = fresh_init(&mut cli, &mut a, t);
        if let Output::ToNetwork(_) =
            srv.decapsulate_from(&a[..n], &mut b, t + SOURCE_REFILL, ip(10 + i))
        {
            answered += 1;
        }
    }
    assert!(answered < HANDSHAKE_BURST, "{answered}");
}

#[test]
fn replayed_init_gets_no_answer_and_does_not_replace_pending() {
    let t = Instant::now();
    let mut srv = Tunnel::new(cfg(Role::Server), key(), t);
    let mut cli = Tunnel::new(cfg(Role::Client), key(), t);
    let mut init = [0u8; 256];
    let mut resp = [0u8; 256];
    let mut conf = [0u8; 256];
    let mut b = [0u8; 256];
    // The attacker recorded an earlier INIT of the real client.
    let old = fresh_init(&mut cli, &mut init, t);
    let recorded = init;
    assert!(matches!(
        srv.decapsulate_from(&recorded[..old], &mut b, t, ip(1)),
        Output::ToNetwork(_)
    ));
    // Real client's new handshake is answered...
    let n = fresh_init(&mut cli, &mut init, t);
    let Output::ToNetwork(m) = srv.decapsulate_from(&init[..n], &mut resp, t, ip(1)) else {
        panic!("real INIT not answered")
    };
    // ... then the attacker floods replays of both INITs from many addresses.
    for i in 0..200u8 {
        for msg in [&recorded[..old], &init[..n]] {
            assert_eq!(
                srv.decapsulate_from(msg, &mut b, t, ip(i)),
                Output::Drop(DropReason::HandshakeReplay)
            );
        }
    }
    assert_eq!(srv.counters().dropped(DropReason::HandshakeRate), 0);
    assert_eq!(srv.counters().handshakes_answered, 2);
    // The real client's confirmation still reaches the pending session.
    let Output::ToNetwork(k) = cli.decapsulate(&resp[..m], &mut conf, t) else {
        panic!("no confirmation")
    };
    assert_eq!(srv.decapsulate(&conf[..k], &mut b, t), Output::Keepalive);
    assert!(srv.is_up());
    // And the client can still rekey (fresh INITs are answered).
    let n = fresh_init(&mut cli, &mut init, t + S);
    assert!(matches!(
        srv.decapsulate_from(&init[..n], &mut resp, t + S, ip(1)),
        Output::ToNetwork(_)
    ));
}

/// Make `cli`'s next INITs carry a wall clock `ahead` in the future (its previous
/// run, before a reboot set the clock back).
fn clock_ahead(cli: &mut Tunnel, ahead: Duration) {
    let c = cli.crypto.as_mut().expect("encrypted");
    c.sent_init_ts = wall_nanos() + u64::try_from(ahead.as_nanos()).expect("fits");
}

fn hwm(srv: &Tunnel) -> u64 {
    srv.crypto
        .as_ref()
        .expect("encrypted")
        .admission
        .last_init_ts
}

/// The INIT's timestamp as the server reads it.
fn init_ts(msg: &[u8]) -> u64 {
    Responder::read(&HandshakeKey::new(key()), noise::MODE_TUN, msg)
        .map(|r| r.timestamp)
        .unwrap_or_else(|_| panic!("not an INIT"))
}

/// INIT (fresh from `cli`) -> server -> RESP -> client -> confirmation -> server.
/// Returns what the server said to the INIT and, if answered, to the confirmation.
fn handshake_at(
    srv: &mut Tunnel,
    cli: &mut Tunnel,
    t: Instant,
    src: Option<IpAddr>,
) -> (Output, Option<Output>, Vec<u8>) {
    let mut a = [0u8; 256];
    let mut b = [0u8; 256];
    let n = fresh_init(cli, &mut a, t);
    let init = a[..n].to_vec();
    let o = srv.decapsulate_from(&init, &mut b, t, src);
    let Output::ToNetwork(m) = o else {
        return (o, None, init);
    };
    let Output::ToNetwork(k) = cli.decapsulate(&b[..m], &mut a, t) else {
        panic!("client refused the RESP")
    };
    let conf = srv.decapsulate_from(&a[..k], &mut b, t, src);
    (o, Some(conf), init)
}

/// A client whose previous run had its clock an hour ahead is connected at `p.t`;
/// returns a new client instance (rebooted, clock back to now).
fn connected_then_rebooted(p: &mut Pair) -> Tunnel {
    clock_ahead(&mut p.cli, Duration::from_secs(3600));
    p.cli.restart(p.t);
    p.connect();
    let _ = drain(&mut p.srv);
    Tunnel::new(cfg(Role::Client), key(), p.t)
}

#[test]
fn clock_back_refused_while_the_session_is_alive() {
    let mut p = Pair::new();
    let mut rebooted = connected_then_rebooted(&mut p);
    let before = hwm(&p.srv);
    // The old session keeps talking (keepalives every 2 s, timeout 6 s): an INIT
    // with an older timestamp is a replay for as long as it lives.
    for _ in 0..10 {
        p.t += 2 * S;
        assert_eq!(p.send(true, b"alive"), Output::ToDevice(5));
        let (o, _, init) = handshake_at(&mut p.srv, &mut rebooted, p.t + S, ip(9));
        assert!(init_ts(&init) < before);
        assert_eq!(o, Output::Drop(DropReason::HandshakeReplay));
    }
    assert_eq!(hwm(&p.srv), before);
    assert_eq!(p.srv.counters().handshakes_answered, 1);
    assert_eq!(p.srv.counters().dropped(DropReason::HandshakeRate), 0);
    assert_eq!(p.send(true, b"still"), Output::ToDevice(5));
    assert_eq!(p.send(false, b"both ways"), Output::ToDevice(9));
    assert!(drain(&mut p.srv).is_empty());
}

#[test]
fn clock_back_accepted_after_the_peer_was_silent_for_timeout() {
    let mut p = Pair::new();
    let mut rebooted = connected_then_rebooted(&mut p);
    let before = hwm(&p.srv);
    let t0 = p.t;
    // Just before the timeout (6 s since the confirmation): still refused.
    let (o, _, _) = handshake_at(&mut p.srv, &mut rebooted, t0 + 6 * S - S / 10, ip(1));
    assert_eq!(o, Output::Drop(DropReason::HandshakeReplay));
    // At the timeout (the server's tick has not even swept the dead session yet).
    let t = t0 + 6 * S;
    let (o, conf, init) = handshake_at(&mut p.srv, &mut rebooted, t, ip(1));
    assert!(matches!(o, Output::ToNetwork(RESP_LEN)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
    let ts = init_ts(&init);
    assert!(ts < before);
    assert_eq!(hwm(&p.srv), ts, "high-water mark reset to the new clock");
    assert_eq!(drain(&mut p.srv), vec![Event::SessionUp { replaced: true }]);
    p.cli = rebooted;
    p.t = t;
    assert_eq!(p.send(true, b"back"), Output::ToDevice(4));
    assert_eq!(p.send(false, b"again"), Output::ToDevice(5));
    // The restarted clock goes on as usual: a rekey 1 s later is fresh and answered
    // while the session is alive.
    p.t += S;
    let (o, conf, init) = handshake_at(&mut p.srv, &mut p.cli, p.t, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
    assert!(init_ts(&init) > ts);
    assert_eq!(p.send(true, b"rekeyed"), Output::ToDevice(7));
    assert_eq!(p.srv.counters().sessions, 3);
}

#[test]
fn clock_back_pending_and_none_states() {
    // No session at all (the server never saw a confirmation): counted from the
    // last answered INIT.
    let t0 = Instant::now();
    let mut srv = Tunnel::new(cfg(Role::Server), key(), t0);
    let mut old = Tunnel::new(cfg(Role::Client), key(), t0);
    clock_ahead(&mut old, Duration::from_secs(3600));
    let mut a = [0u8; 256];
    let mut b = [0u8; 256];
    let n = fresh_init(&mut old, &mut a, t0);
    assert!(matches!(
        srv.decapsulate(&a[..n], &mut b, t0),
        Output::ToNetwork(_)
    ));
    // (its RESP is lost; the server holds a pending handshake)
    let mut rebooted = Tunnel::new(cfg(Role::Client), key(), t0);
    for dt in [S, 3 * S, 6 * S - S / 10] {
        let (o, _, _) = handshake_at(&mut srv, &mut rebooted, t0 + dt, ip(1));
        assert_eq!(o, Output::Drop(DropReason::HandshakeReplay), "{dt:?}");
    }
    let (o, conf, _) = handshake_at(&mut srv, &mut rebooted, t0 + 6 * S, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
    assert!(srv.is_up());

    // A short timeout (2 s, the configurable minimum) never lets an older
    // timestamp replace a pending handshake younger than PENDING_GUARD.
    let mut c = cfg(Role::Server);
    c.timeout = Some(2 * S);
    let mut srv = Tunnel::new(c, key(), t0);
    let mut old = Tunnel::new(cfg(Role::Client), key(), t0);
    clock_ahead(&mut old, Duration::from_secs(3600));
    let n = fresh_init(&mut old, &mut a, t0);
    assert!(matches!(
        srv.decapsulate(&a[..n], &mut b, t0),
        Output::ToNetwork(_)
    ));
    let mut rebooted = Tunnel::new(cfg(Role::Client), key(), t0);
    let (o, _, _) = handshake_at(&mut srv, &mut rebooted, t0 + 3 * S, ip(1));
    assert_eq!(o, Output::Drop(DropReason::HandshakeReplay));
    let (o, _, _) = handshake_at(&mut srv, &mut rebooted, t0 + PENDING_GUARD, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");

    // Dead-peer detection off: the server cannot tell, older stays refused.
    let mut c = cfg(Role::Server);
    c.timeout = None;
    let mut srv = Tunnel::new(c, key(), t0);
    let n = fresh_init(&mut old, &mut a, t0);
    assert!(matches!(
        srv.decapsulate(&a[..n], &mut b, t0),
        Output::ToNetwork(_)
    ));
    let (o, _, _) = handshake_at(&mut srv, &mut rebooted, t0 + 3600 * S, ip(1));
    assert_eq!(o, Output::Drop(DropReason::HandshakeReplay));
}

#[test]
fn identical_timestamp_is_a_replay_even_while_the_peer_is_dead() {
    let mut p = Pair::new();
    // Record an INIT of the client's previous run (before the one it connects with).
    let mut a = [0u8; 256];
    clock_ahead(&mut p.cli, Duration::from_secs(3600));
    let n = fresh_init(&mut p.cli, &mut a, p.t);
    let old_early = a[..n].to_vec();
    let mut rebooted = connected_then_rebooted(&mut p);
    let mut b = [0u8; 256];
    // The peer is dead; the rebooted client is accepted (as in the test above).
    let t = p.t + 10 * S;
    let (o, conf, init) = handshake_at(&mut p.srv, &mut rebooted, t, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
    // Right after the reset: the same INIT again, and the previous run's INITs
    // (newer than the reset mark, but not plausible for the restarted clock).
    for msg in [&init, &old_early] {
        assert_eq!(
            p.srv.decapsulate_from(msg, &mut b, t, ip(2)),
            Output::Drop(DropReason::HandshakeReplay)
        );
    }
    // The new session dies too; the identical INIT is still refused.
    let t = t + 60 * S;
    assert_eq!(
        p.srv.decapsulate_from(&init, &mut b, t, ip(2)),
        Output::Drop(DropReason::HandshakeReplay)
    );
    assert_eq!(p.srv.counters().handshakes_answered, 2);
    assert_eq!(hwm(&p.srv), init_ts(&init));
}

#[test]
fn replay_flood_while_dead_does_not_starve_a_fresh_client() {
    let mut p = Pair::new();
    // The attacker recorded several INITs of the client's previous run.
    let mut recorded = Vec::new();
    let mut a = [0u8; 256];
    for k in 0..4u64 {
        clock_ahead(&mut p.cli, Duration::from_secs(3600 + 120 * k));
        let n = fresh_init(&mut p.cli, &mut a, p.t);
        recorded.push(a[..n].to_vec());
    }
    clock_ahead(&mut p.cli, Duration::from_secs(3600 + 120 * 5));
    p.cli.restart(p.t);
    p.connect();
    let answered0 = p.srv.counters().handshakes_answered;
    // The peer is dead; a flood of the recorded INITs from many addresses.
    let t = p.t + 30 * S;
    let mut b = [0u8; 256];
    let mut answered = 0;
    for i in 0..250u8 {
        for msg in &recorded {
            if let Output::ToNetwork(_) = p.srv.decapsulate_from(msg, &mut b, t, ip(i)) {
                answered += 1;
            }
        }
    }
    // One was answered (no keys for the attacker), all others refused as replays
    // before they cost a rate-limit token.
    assert_eq!(answered, 1);
    assert_eq!(p.srv.counters().handshakes_answered, answered0 + 1);
    assert_eq!(p.srv.counters().dropped(DropReason::HandshakeRate), 0);
    assert_eq!(
        p.srv.counters().dropped(DropReason::HandshakeReplay),
        250 * recorded.len() as u64 - 1
    );
    // A client with a newer clock is answered at once and its session comes up.
    let mut fresh = Tunnel::new(cfg(Role::Client), key(), t);
    clock_ahead(&mut fresh, Duration::from_secs(7200));
    let (o, conf, _) = handshake_at(&mut p.srv, &mut fresh, t, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
    assert_eq!(p.srv.counters().sessions, 2);
    // The flood goes on: the live session is not disturbed.
    for i in 0..50u8 {
        for msg in &recorded {
            assert_eq!(
                p.srv.decapsulate_from(msg, &mut b, t + S, ip(i)),
                Output::Drop(DropReason::HandshakeReplay)
            );
        }
    }
    p.cli = fresh;
    p.t = t + S;
    assert_eq!(p.send(true, b"ok"), Output::ToDevice(2));
    assert_eq!(p.send(false, b"ok"), Output::ToDevice(2));
    // Once the peer went quiet again, the recorded INITs are still not answered:
    // exact copies of INITs verified before, dropped by their mac1 without being
    // verified again (before the mac1 ring, one of them was answered here and
    // reset the mark, and a rebooted client then had to wait another timeout).
    let t2 = p.t + 7 * S;
    let verified = p.srv.counters().dropped(DropReason::HandshakeReplay);
    let mut answered = 0;
    for msg in &recorded {
        if let Output::ToNetwork(_) = p.srv.decapsulate_from(msg, &mut b, t2, ip(7)) {
            answered += 1;
        }
    }
    assert_eq!(answered, 0);
    assert_eq!(
        p.srv.counters().dropped(DropReason::HandshakeReplay),
        verified + recorded.len() as u64
    );
    // A rebooted client (clock back) whose peer went quiet gets in at once.
    let mut rebooted = Tunnel::new(cfg(Role::Client), key(), t2);
    let (o, conf, _) = handshake_at(&mut p.srv, &mut rebooted, t2 + S, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
}

#[test]
fn junk_stops_at_mac1_before_any_limit_and_verifications_have_a_budget() {
    let t = Instant::now();
    let mut srv = Tunnel::new(cfg(Role::Server), key(), t);
    let mut b = [0u8; 256];
    // Junk of the initiation's type and size: dropped by the cheap check, without
    // a rate-limit token, so it cannot lock anyone out.
    for i in 0..10_000u32 {
        let mut m = [0u8; INIT_LEN];
        m[0] = noise::TYPE_INIT;
        m[4..8].copy_from_slice(&i.to_le_bytes());
        assert_eq!(
            srv.decapsulate_from(&m, &mut b, t, ip(1)),
            Output::Drop(DropReason::HandshakeMac)
        );
    }
    let mut cli = Tunnel::new(cfg(Role::Client), key(), t);
    let (o, conf, _) = handshake_at(&mut srv, &mut cli, t, ip(1));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    assert_eq!(conf, Some(Output::Keepalive));
    // A version 1 (65-byte, no mac1) initiation: the other protocol version.
    let mut v1 = [0u8; noise::INIT_LEN_V1];
    v1[0] = noise::TYPE_INIT;
    assert_eq!(
        srv.decapsulate(&v1, &mut b, t),
        Output::Drop(DropReason::HandshakeMismatch)
    );
    // Valid mac1, forged Noise part (only a key holder can make these): at most
    // VERIFY_BURST are verified at once, then VERIFY_REFILL apiece, over all sources.
    let hk = HandshakeKey::new(key());
    let forged = |i: u32| {
        let mut m = [0u8; INIT_LEN];
        m[0] = noise::TYPE_INIT;
        m[4..8].copy_from_slice(&i.to_le_bytes());
        let mac = hk.mac1(&m[..noise::INIT_NOISE_LEN]);
        m[noise::INIT_NOISE_LEN..].copy_from_slice(&mac);
        m
    };
    let t1 = t + 10 * S;
    let mut srv = Tunnel::new(cfg(Role::Server), key(), t1);
    let mut verified = 0;
    for i in 0..1000u32 {
        let src = Some(IpAddr::from(i.to_be_bytes()));
        match srv.decapsulate_from(&forged(i), &mut b, t1, src) {
            Output::Drop(DropReason::HandshakeAuth) => verified += 1,
            Output::Drop(DropReason::HandshakeRate) => {}
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(verified, VERIFY_BURST);
    // A steady flood for one second: 100 verified (one per 10 ms), not more.
    let mut verified = 0;
    for step in 1..=100u32 {
        let ts = t1 + VERIFY_REFILL * step;
        for j in 0..5 {
            let i = 1000 + step * 5 + j;
            let src = Some(IpAddr::from(i.to_be_bytes()));
            if srv.decapsulate_from(&forged(i), &mut b, ts, src)
                == Output::Drop(DropReason::HandshakeAuth)
            {
                verified += 1;
            }
        }
    }
    assert_eq!(verified, 100, "one verification per VERIFY_REFILL");
    let t2 = t1 + Duration::from_secs(1);
    // An exact copy of a verified INIT is dropped without a verification.
    let mut c2 = Tunnel::new(cfg(Role::Client), key(), t2);
    let t3 = t2 + Duration::from_secs(1);
    let (o, _, init) = handshake_at(&mut srv, &mut c2, t3, ip(3));
    assert!(matches!(o, Output::ToNetwork(_)), "{o:?}");
    let before = srv.counters().clone();
    assert_eq!(
        srv.decapsulate_from(&init, &mut b, t3, ip(4)),
        Output::Drop(DropReason::HandshakeReplay)
    );
    assert_eq!(
        srv.counters().dropped(DropReason::HandshakeReplay),
        before.dropped(DropReason::HandshakeReplay) + 1
    );
}

#[test]
fn internal_reason_is_separate_from_auth() {
    assert_eq!(DropReason::Internal.name(), "internal");
    assert!(!DropReason::Internal.is_unauthenticated());
    assert!(DropReason::ALL.contains(&DropReason::Internal));
    assert!(DropReason::ALL.contains(&DropReason::HandshakeReplay));
}

#[test]
fn plaintext_passes_through_without_timers() {
    let t = Instant::now();
    let mut p = Tunnel::plaintext(cfg(Role::Server));
    let mut out = [0u8; 64];
    assert_eq!(p.encapsulate(b"abc", &mut out, t), Output::ToNetwork(3));
    assert_eq!(&out[..3], b"abc");
    assert_eq!(p.decapsulate(b"xyz!", &mut out, t), Output::ToDevice(4));
    assert!(p.authenticated_current());
    assert_eq!(
        p.decapsulate(b"", &mut out, t),
        Output::Drop(DropReason::Short)
    );
    assert_eq!(
        p.decapsulate(&[0; 65], &mut out, t),
        Output::Drop(DropReason::TooBig)
    );
    assert_eq!(p.tick(&mut out, t, wall_nanos()), Output::Nothing);
    assert_eq!(p.next_deadline(), None);
    assert!(p.is_up());
}

#[test]
fn too_small_buffers_are_drops_not_panics() {
    let mut p = Pair::new();
    p.connect();
    let mut tiny = [0u8; 40];
    assert_eq!(
        p.cli.encapsulate(&[1; 100], &mut tiny, p.t),
        Output::Drop(DropReason::TooBig)
    );
    let Output::ToNetwork(n) = p.cli.encapsulate(&[1; 100], &mut p.buf, p.t) else {
        panic!()
    };
    assert_eq!(
        p.srv.decapsulate(&p.buf[..n], &mut tiny, p.t),
        Output::Drop(DropReason::TooBig)
    );
    let mut tiny_init = [0u8; 10];
    let mut cli = Tunnel::new(cfg(Role::Client), key(), p.t);
    assert_eq!(cli.tick(&mut tiny_init, p.t, wall_nanos()), Output::Nothing);
}

/// The data messages before the next other message, or the end: opened together by the
/// pool, then finished in order (as the UDP path's `finish_batch`).
fn finish_batch(
    t: &mut Tunnel,
    pool: &mut CryptoPool,
    pending: &mut Vec<usize>,
    msgs: &[Vec<u8>],
    out: &mut [(Output, Vec<u8>)],
    now: Instant,
) {
    pool.run();
    for (k, &i) in pending.iter().enumerate() {
        let o = t.finish_data(&msgs[i], pool.opened(k), now);
        let pkt = match o {
            Output::ToDevice(n) => msgs[i][DATA_HEADER_LEN..][..n].to_vec(),
            _ => Vec::new(),
        };
        out[i] = (o, pkt);
    }
    pending.clear();
    pool.clear();
}

/// A receive batch as the UDP path takes it with the crypto pool: data messages checked
/// in order and opened in place together; any other message first finishes the data
/// messages before it. Each message's output, with the packet or answer it gave.
fn batch(
    t: &mut Tunnel,
    pool: &mut CryptoPool,
    msgs: &mut [Vec<u8>],
    now: Instant,
) -> Vec<(Output, Vec<u8>)> {
    let mut out = vec![(Output::Nothing, Vec::new()); msgs.len()];
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 2048];
    for i in 0..msgs.len() {
        if message::kind(&msgs[i]) == Ok(Kind::Data) {
            match t.prepare_data(&mut msgs[i], now) {
                Ok(job) => {
                    assert!(pool.push(job));
                    pending.push(i);
                }
                Err(r) => out[i] = (Output::Drop(r), Vec::new()),
            }
        } else {
            finish_batch(t, pool, &mut pending, msgs, &mut out, now);
            let o = t.decapsulate(&msgs[i], &mut buf, now);
            let answer = match o {
                Output::ToNetwork(n) | Output::ToDevice(n) => buf[..n].to_vec(),
                _ => Vec::new(),
            };
            out[i] = (o, answer);
        }
    }
    finish_batch(t, pool, &mut pending, msgs, &mut out, now);
    out
}

fn numbered(i: usize) -> Vec<u8> {
    let mut p = vec![0x45; 60 + i * 31];
    p[4..8].copy_from_slice(&(i as u32).to_be_bytes());
    p
}

/// `n` packets sealed by `t` (packet i is `numbered(first + i)`).
fn sealed(t: &mut Tunnel, first: usize, n: usize, now: Instant) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    (first..first + n)
        .map(|i| {
            let Output::ToNetwork(m) = t.encapsulate(&numbered(i), &mut buf, now) else {
                panic!("not sealed")
            };
            buf[..m].to_vec()
        })
        .collect()
}

#[test]
fn a_batch_drops_a_duplicate_inside_it_and_a_forged_tag_but_delivers_the_rest() {
    let mut p = Pair::new();
    p.connect();
    let mut pool = CryptoPool::new(2);
    let mut msgs = sealed(&mut p.cli, 0, 12, p.t);
    msgs.push(msgs[3].clone());
    msgs[5][40] ^= 1;
    let out = batch(&mut p.srv, &mut pool, &mut msgs, p.t);
    for (i, (o, pkt)) in out.iter().enumerate().take(12) {
        if i == 5 {
            assert_eq!(*o, Output::Drop(DropReason::Auth));
        } else {
            assert_eq!(*o, Output::ToDevice(numbered(i).len()), "packet {i}");
            assert_eq!(pkt, &numbered(i));
        }
    }
    assert_eq!(out[12].0, Output::Drop(DropReason::Replay));
    let c = p.srv.counters();
    assert_eq!(
        (
            c.rx_packets,
            c.dropped(DropReason::Auth),
            c.dropped(DropReason::Replay)
        ),
        (11, 1, 1)
    );
    // The forged one did not take its counter: the real one is still welcome (a
    // failed open left the message as it was: flip the byte back).
    let mut again = sealed(&mut p.cli, 12, 9, p.t);
    let mut real5 = msgs[5].clone();
    real5[40] ^= 1;
    again.insert(0, real5);
    // A message of an earlier batch is refused before it is opened.
    again.push(msgs[0].clone());
    let out = batch(&mut p.srv, &mut pool, &mut again, p.t);
    assert_eq!(out[0].1, numbered(5));
    assert!(out[1..10]
        .iter()
        .all(|(o, _)| matches!(o, Output::ToDevice(_))));
    assert_eq!(out[10].0, Output::Drop(DropReason::Replay));
    assert_eq!(p.srv.counters().dropped(DropReason::Replay), 2);
}

#[test]
fn a_batch_promotes_the_pending_session_with_its_first_valid_packet() {
    let mut p = Pair::rekeying();
    p.connect();
    drain(&mut p.srv);
    p.t += Duration::from_secs(31);
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!("no rekey")
    };
    let Output::ToNetwork(m) = p.srv.decapsulate(&p.buf[..n], &mut p.buf2, p.t) else {
        panic!("no answer")
    };
    // The client takes the new keys; its confirmation is lost.
    assert!(matches!(
        p.cli.decapsulate(&p.buf2[..m], &mut p.buf, p.t),
        Output::ToNetwork(_)
    ));
    assert_eq!(p.srv.counters().sessions, 1);
    // A forged copy of the first (same counter) comes first: it promotes nothing.
    let mut msgs = sealed(&mut p.cli, 0, 10, p.t);
    let mut forged = msgs[0].clone();
    forged[20] ^= 0x80;
    msgs.insert(0, forged);
    let out = batch(&mut p.srv, &mut CryptoPool::new(2), &mut msgs, p.t);
    assert_eq!(out[0].0, Output::Drop(DropReason::Auth));
    for (i, (_, pkt)) in out[1..].iter().enumerate() {
        assert_eq!(pkt, &numbered(i));
    }
    assert_eq!(drain(&mut p.srv), vec![Event::SessionUp { replaced: true }]);
    assert_eq!(p.srv.counters().sessions, 2);
    assert!(p.srv.authenticated_current());
    // The server now sends with the new keys.
    assert_eq!(p.send(false, b"new keys"), Output::ToDevice(8));
}

#[test]
fn a_handshake_message_inside_a_batch_comes_after_the_data_before_it() {
    let mut p = Pair::rekeying();
    p.connect();
    p.t += Duration::from_secs(31);
    let Output::ToNetwork(n) = p.cli.tick(&mut p.buf, p.t, wall_nanos()) else {
        panic!("no rekey")
    };
    let Output::ToNetwork(m) = p.srv.decapsulate(&p.buf[..n], &mut p.buf2, p.t) else {
        panic!("no answer")
    };
    let resp = p.buf2[..m].to_vec();
    // The server still sends with the old keys. At the client: ten of them, the answer
    // (the client's current session moves to `previous`, a new one takes its place),
    // ten more under the old keys.
    let mut msgs = sealed(&mut p.srv, 0, 20, p.t);
    msgs.insert(10, resp);
    let out = batch(&mut p.cli, &mut CryptoPool::new(3), &mut msgs, p.t);
    for (i, (o, pkt)) in out.iter().enumerate() {
        if i == 10 {
            assert!(
                matches!(o, Output::ToNetwork(k) if *k == DATA_OVERHEAD),
                "{o:?}"
            );
        } else {
            let k = if i < 10 { i } else { i - 1 };
            assert_eq!(pkt, &numbered(k), "message {i}");
        }
    }
    assert_eq!(p.cli.counters().rx_packets, 20);
    assert_eq!(p.cli.counters().total_drops(), 0);
    // The confirmation reaches the server: both on the new keys.
    let confirm = out[10].1.clone();
    assert_eq!(
        p.srv.decapsulate(&confirm, &mut p.buf2, p.t),
        Output::Keepalive
    );
    assert_eq!(p.send(true, b"after"), Output::ToDevice(5));
    assert_eq!(p.send(false, b"after"), Output::ToDevice(5));
}
