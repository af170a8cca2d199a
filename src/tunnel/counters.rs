//! Counters of the tunnel: packets, bytes, handshakes, and drops by reason.
use core::fmt;

/// Why a packet (from the peer or from the device) was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its message type requires (truncated).
    Short,
    /// Unknown message type, nonzero reserved bytes, or a handshake message of the wrong size.
    BadHeader,
    /// Data for a session index we do not have (old session, or forged).
    UnknownSession,
    /// AEAD tag did not verify (tampered, or wrong key).
    Auth,
    /// Counter already seen or older than the replay window.
    Replay,
    /// Session past its lifetime.
    Expired,
    /// Handshake message failed authentication (wrong key, tampered).
    HandshakeAuth,
    /// Handshake message this side never accepts (a server's reply at a server, ...).
    HandshakeUnexpected,
    /// Peer uses the other device mode (tun vs tap) or protocol version.
    HandshakeMismatch,
    /// Handshake initiations above the rate limit.
    HandshakeRate,
    /// Handshake initiation that is a replay (timestamp not newer than the last
    /// accepted one).
    HandshakeReplay,
    /// Local failure (random number generator, session index collision).
    Internal,
    /// Device packet while no session is up (client connecting, server without client).
    NoSession,
    /// Packet larger than the buffers allow.
    TooBig,
    /// TCP: a frame length of zero or larger than the buffer; the connection is closed.
    FrameLength,
    /// TCP: the send queue is full (peer or network too slow).
    TxFull,
    /// Packet from the peer is not an IPv4/IPv6 packet (tun mode) or not a frame (tap).
    BadInner,
    /// The device or socket refused the packet (write error).
    WriteError,
    /// Plaintext client: a datagram from an address other than the server's.
    WrongSource,
    /// Handshake initiation whose mac1 is wrong (junk, or another key): dropped by the
    /// cheap check before anything else.
    HandshakeMac,
    /// Several peers: a packet from the device whose destination is in no peer's routes.
    NoRoute,
    /// Several peers (or routes): a packet from a peer whose inner source address is
    /// outside that peer's routes (spoofed, or a route missing in the configuration).
    InnerSource,
    /// The kernel dropped datagrams for this socket because its receive buffer was full
    /// (SO_RXQ_OVFL): the loop did not keep up, or the buffer is too small.
    SocketOverflow,
}

impl DropReason {
    pub const COUNT: usize = 23;
    pub const ALL: [DropReason; Self::COUNT] = [
        Self::Short,
        Self::BadHeader,
        Self::UnknownSession,
        Self::Auth,
        Self::Replay,
        Self::Expired,
        Self::HandshakeAuth,
        Self::HandshakeUnexpected,
        Self::HandshakeMismatch,
        Self::HandshakeRate,
        Self::HandshakeReplay,
        Self::Internal,
        Self::NoSession,
        Self::TooBig,
        Self::FrameLength,
        Self::TxFull,
        Self::BadInner,
        Self::WriteError,
        Self::WrongSource,
        Self::HandshakeMac,
        Self::NoRoute,
        Self::InnerSource,
        Self::SocketOverflow,
    ];

    /// Short name used in logs and the counter dump.
    pub fn name(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::BadHeader => "bad_header",
            Self::UnknownSession => "unknown_session",
            Self::Auth => "auth",
            Self::Replay => "replay",
            Self::Expired => "expired",
            Self::HandshakeAuth => "handshake_auth",
            Self::HandshakeUnexpected => "handshake_unexpected",
            Self::HandshakeMismatch => "handshake_mismatch",
            Self::HandshakeRate => "handshake_rate",
            Self::HandshakeReplay => "handshake_replay",
            Self::Internal => "internal",
            Self::NoSession => "no_session",
            Self::TooBig => "too_big",
            Self::FrameLength => "frame_length",
            Self::TxFull => "tx_full",
            Self::BadInner => "bad_inner",
            Self::WriteError => "write_error",
            Self::WrongSource => "wrong_source",
            Self::HandshakeMac => "handshake_mac",
            Self::NoRoute => "no_route",
            Self::InnerSource => "inner_source",
            Self::SocketOverflow => "socket_overflow",
        }
    }

    /// True for reasons that mean "someone sent us something that is not from our peer"
    /// (what an operator wants to see when looking for probing or a wrong key).
    pub fn is_unauthenticated(self) -> bool {
        matches!(
            self,
            Self::Short
                | Self::BadHeader
                | Self::UnknownSession
                | Self::Auth
                | Self::Replay
                | Self::HandshakeAuth
                | Self::HandshakeUnexpected
                | Self::HandshakeReplay
                | Self::WrongSource
                | Self::HandshakeMac
        )
    }
}

/// All counters of one tunnel. Plain integers, no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets/bytes delivered to the device (inner sizes).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Packets/bytes taken from the device and sent to the peer (inner sizes).
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub keepalives_tx: u64,
    pub keepalives_rx: u64,
    /// Handshake initiations sent (client).
    pub handshakes_sent: u64,
    /// Handshake responses sent (server).
    pub handshakes_answered: u64,
    /// Sessions that became active (both sides).
    pub sessions: u64,
    /// Times the peer was declared dead (nothing received within the timeout).
    pub peer_dead: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Counters {
    pub fn drop(&mut self, reason: DropReason) {
        let slot = &mut self.drops[reason as usize];
        *slot = slot.saturating_add(1);
    }

    /// `n` drops at once (the kernel's overflow count moves by many).
    pub fn drop_n(&mut self, reason: DropReason, n: u64) {
        let slot = &mut self.drops[reason as usize];
        *slot = slot.saturating_add(n);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Adds `o`'s counts (a hub's sum over its peers).
    pub fn add(&mut self, o: &Counters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.keepalives_tx += o.keepalives_tx;
        self.keepalives_rx += o.keepalives_rx;
        self.handshakes_sent += o.handshakes_sent;
        self.handshakes_answered += o.handshakes_answered;
        self.sessions += o.sessions;
        self.peer_dead += o.peer_dead;
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

impl fmt::Display for Counters {
    /// One line: `rx 10/1200B tx 9/1100B ka 1/2 hs sent 1 answered 0 sessions 1 dead 0
    /// drops 3 (auth=2 replay=1)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx {} pkts {} B, tx {} pkts {} B, keepalives rx {} tx {}, handshakes sent {} answered {}, sessions {}, peer dead {}, drops {}",
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.keepalives_rx,
            self.keepalives_tx,
            self.handshakes_sent,
            self.handshakes_answered,
            self.sessions,
            self.peer_dead,
            self.total_drops()
        )?;
        let mut first = true;
        for r in DropReason::ALL {
            let n = self.dropped(r);
            if n > 0 {
                write!(f, "{}{}={}", if first { " (" } else { " " }, r.name(), n)?;
                first = false;
            }
        }
        if !first {
            write!(f, ")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_once_in_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.name());
        }
    }

    #[test]
    fn display_lists_nonzero_drops() {
        let mut c = Counters {
            rx_packets: 2,
            ..Default::default()
        };
        c.drop(DropReason::Auth);
        c.drop(DropReason::Auth);
        c.drop(DropReason::Replay);
        let s = c.to_string();
        assert!(s.starts_with("rx 2 pkts"), "{s}");
        assert!(s.ends_with("drops 3 (auth=2 replay=1)"), "{s}");
        assert!(!Counters::default().to_string().contains('('));
    }
}
