//! Sessions: the transport keys of a finished handshake with their counters, and the
//! three slots a peer keeps (current, previous after a rekey, pending on a server until
//! the client confirms).
use std::hash::{BuildHasher, RandomState};
use std::time::Instant;

use crate::tunnel::counters::DropReason;
use crate::tunnel::noise::Transport;
use crate::tunnel::replay::ReplayWindow;

pub(super) struct Session {
    pub(super) local: u32,
    pub(super) remote: u32,
    pub(super) transport: Transport,
    pub(super) tx_counter: u64,
    pub(super) replay: ReplayWindow,
    pub(super) created: Instant,
}

impl Session {
    pub(super) fn new(local: u32, remote: u32, transport: Transport, now: Instant) -> Self {
        Self {
            local,
            remote,
            transport,
            tx_counter: 0,
            replay: ReplayWindow::new(),
            created: now,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Current,
    Previous,
    Pending,
}

#[derive(Default)]
pub(super) struct Sessions {
    pub(super) current: Option<Session>,
    pub(super) previous: Option<Session>,
    pub(super) pending: Option<Session>,
}

impl Sessions {
    /// The slot whose session has local index `receiver`.
    pub(super) fn find(&self, receiver: u32) -> Option<Slot> {
        let is = |s: &Option<Session>| s.as_ref().is_some_and(|s| s.local == receiver);
        if is(&self.current) {
            Some(Slot::Current)
        } else if is(&self.previous) {
            Some(Slot::Previous)
        } else if is(&self.pending) {
            Some(Slot::Pending)
        } else {
            None
        }
    }

    pub(super) fn get_mut(&mut self, slot: Slot) -> Option<&mut Session> {
        match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Previous => self.previous.as_mut(),
            Slot::Pending => self.pending.as_mut(),
        }
    }

    /// A random local index used by no session and not `handshake` (the index of a
    /// handshake in flight); with a tag, one that carries the peer's number.
    pub(super) fn fresh_index(
        &self,
        handshake: Option<u32>,
        tag: Option<&IndexTag>,
    ) -> Result<u32, DropReason> {
        for _ in 0..8 {
            let mut b = [0u8; 4];
            getrandom::fill(&mut b).map_err(|_| DropReason::Internal)?;
            let mut i = u32::from_le_bytes(b);
            if let Some(t) = tag {
                i = tagged_index(&t.key, (i >> 16) as u16, t.peer);
            }
            if self.find(i).is_none() && handshake != Some(i) {
                return Ok(i);
            }
        }
        Err(DropReason::Internal)
    }

    /// Drop current and previous (peer dead, client restart).
    pub(super) fn clear_established(&mut self) {
        self.current = None;
        self.previous = None;
    }
}

/// Several peers behind one socket: a session's local index carries the peer's number
/// (see `crate::tunnel::hub`).
#[derive(Clone)]
pub struct IndexTag {
    pub peer: u16,
    /// The hub's secret (per process) for the mask.
    pub key: RandomState,
}

fn mask(key: &RandomState, hi: u16) -> u16 {
    key.hash_one(hi) as u16
}

/// The index with random high half `hi` for peer `peer`: low half `peer ^ mask(hi)`.
pub fn tagged_index(key: &RandomState, hi: u16, peer: u16) -> u32 {
    (u32::from(hi) << 16) | u32::from(peer ^ mask(key, hi))
}

/// The peer number an index made by [`tagged_index`] carries.
pub fn peer_of_index(key: &RandomState, index: u32) -> u16 {
    (index as u16) ^ mask(key, (index >> 16) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_indices_carry_the_peer_and_hide_it() {
        let k = RandomState::new();
        let mut lows = std::collections::HashSet::new();
        for hi in 0..1000u16 {
            let i = tagged_index(&k, hi, 7);
            assert_eq!(peer_of_index(&k, i), 7);
            lows.insert(i as u16);
        }
        // The same peer shows a different low half in most sessions.
        assert!(lows.len() > 900, "{}", lows.len());
    }
}
