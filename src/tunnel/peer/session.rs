//! Sessions: the transport keys of a finished handshake with their counters, and the
//! three slots a peer keeps (current, previous after a rekey, pending on a server until
//! the client confirms).
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
    /// handshake in flight).
    pub(super) fn fresh_index(&self, handshake: Option<u32>) -> Result<u32, DropReason> {
        for _ in 0..8 {
            let mut b = [0u8; 4];
            getrandom::fill(&mut b).map_err(|_| DropReason::Internal)?;
            let i = u32::from_le_bytes(b);
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
