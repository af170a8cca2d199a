//! Timers: dead-peer detection, session lifetimes, rekey, handshake retries with
//! backoff and keepalive; [`Tunnel::next_deadline`] says when they fire next.
use std::time::{Duration, Instant};

use super::{Event, Output, Role, Tunnel};
use crate::tunnel::noise;
use crate::tunnel::replay::REJECT_AFTER_MESSAGES;

/// Client: a live server sends something at least every `keepalive` (its keepalive);
/// nothing for `keepalive` + this long means it probably lost the session (restarted),
/// so the client starts a new handshake, keeping the old session until the new one is
/// up. The server then answers a fresh initiation as usual; nothing unauthenticated is
/// ever answered. With the default 10 s keepalive, a restarted server is found again
/// within 12 s instead of the 30 s dead-peer timeout.
pub const QUIET_SLACK: Duration = Duration::from_secs(2);

/// Exponential backoff between `min` and `max` (handshake retries, TCP reconnects).
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            cur: min,
        }
    }

    /// The delay to wait now; the next one is twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.cur;
        self.cur = (self.cur * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

impl Tunnel {
    /// Run the timers. Call when [`Tunnel::next_deadline`] has passed (calling it more
    /// often is harmless) and repeat while it returns something other than
    /// [`Output::Nothing`]. `wall_nanos` is the wall clock (nanoseconds since the Unix
    /// epoch), the timestamp of a client's initiation.
    pub fn tick(&mut self, out: &mut [u8], now: Instant, wall_nanos: u64) -> Output {
        let cfg = &self.cfg;
        let Some(c) = self.crypto.as_mut() else {
            return Output::Nothing;
        };
        let client = cfg.role == Role::Client;
        let mut events: [Option<Event>; 2] = [None, None];
        let ss = &mut c.sessions;

        // Dead peer.
        if let Some(to) = cfg.timeout {
            if ss.current.is_some() && now >= c.last_rx + to {
                ss.clear_established();
                self.counters.peer_dead += 1;
                events[0] = Some(Event::PeerDead);
                if client {
                    c.handshake = None;
                    c.backoff.reset();
                    c.attempts = 0;
                    c.next_attempt = Some(now);
                }
            }
        }
        // Lifetimes.
        let expired = |s: &Option<super::Session>| {
            s.as_ref()
                .is_some_and(|s| now >= s.created + cfg.reject_after)
        };
        if expired(&ss.current) {
            ss.current = None;
            events[1] = Some(Event::SessionExpired);
            if client && c.next_attempt.is_none() {
                c.next_attempt = Some(now);
            }
        }
        if expired(&ss.previous) {
            ss.previous = None;
        }
        // A pending session waits for the client's confirmation (its first message
        // under the new keys) as long as a session may live, or until another answered
        // INIT replaces it. A shorter wait black-holed the client at a rekey whose
        // confirmation keepalive was lost, when it sent nothing else for longer than
        // the wait (a long --keepalive): it had switched to the new keys, the server
        // had dropped them, until the dead-peer timeout.
        if expired(&ss.pending) {
            ss.pending = None;
        }
        // Client: rekey.
        if client
            && c.next_attempt.is_none()
            && c.handshake.is_none()
            && ss
                .current
                .as_ref()
                .is_some_and(|s| now >= s.created + cfg.rekey_after)
        {
            c.next_attempt = Some(now);
        }
        // Client: the server went quiet (see QUIET_SLACK).
        if let Some(ka) = cfg.keepalive {
            if client
                && c.next_attempt.is_none()
                && c.handshake.is_none()
                && ss.current.is_some()
                && now >= c.last_rx + ka + QUIET_SLACK
            {
                c.next_attempt = Some(now);
            }
        }
        let attempt_due = client && c.next_attempt.is_some_and(|t| now >= t);
        for e in events.into_iter().flatten() {
            if e == Event::PeerDead {
                self.peer_dead = true;
            }
            self.event(e);
        }

        // Client: (re)send the initiation.
        if attempt_due {
            return self.send_init(out, now, wall_nanos);
        }

        // Keepalive.
        let Some(c) = self.crypto.as_mut() else {
            return Output::Nothing;
        };
        if let (Some(ka), Some(s)) = (self.cfg.keepalive, c.sessions.current.as_mut()) {
            if now >= c.last_tx + ka && s.tx_counter < REJECT_AFTER_MESSAGES {
                if let Some(n) = noise::seal(&s.transport, s.remote, s.tx_counter, &[], out) {
                    s.tx_counter += 1;
                    c.last_tx = now;
                    self.counters.keepalives_tx += 1;
                    return Output::ToNetwork(n);
                }
            }
        }
        Output::Nothing
    }

    /// When `tick` has something to do next (`None`: nothing scheduled, e.g. plaintext).
    pub fn next_deadline(&self) -> Option<Instant> {
        let c = self.crypto.as_ref()?;
        let cfg = &self.cfg;
        let mut d: Option<Instant> = None;
        let mut at = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        if let Some(t) = c.next_attempt {
            at(t);
        }
        let ss = &c.sessions;
        if let Some(s) = &ss.current {
            at(s.created + cfg.reject_after);
            if let Some(to) = cfg.timeout {
                at(c.last_rx + to);
            }
            if let Some(ka) = cfg.keepalive {
                at(c.last_tx + ka);
            }
            if cfg.role == Role::Client && c.handshake.is_none() && c.next_attempt.is_none() {
                at(s.created + cfg.rekey_after);
                if let Some(ka) = cfg.keepalive {
                    at(c.last_rx + ka + QUIET_SLACK);
                }
            }
        }
        if let Some(s) = &ss.previous {
            at(s.created + cfg.reject_after);
        }
        if let Some(s) = &ss.pending {
            at(s.created + cfg.reject_after);
        }
        d
    }
}
