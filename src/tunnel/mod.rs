//! The tunnel protocol core: no sockets, no devices, no clocks of its own.
//!
//! Feed it bytes and the current time, get back bytes to send to the peer, packets for
//! the tun/tap device and the next timer deadline (boringtun's `noise/` vs `device/`
//! split is the model; the loop around it lives in `crate::tunnel_run`).
//!
//! - [`key`]: the shared key file format (parse/format only; the file I/O is elsewhere).
//! - [`noise`]: wire format of the handshake and data messages, Noise NNpsk0 (hand-written on
//!   BLAKE2s, ChaCha20-Poly1305 and X25519; wire-compatible with `snow`).
//! - [`replay`]: sliding replay window for the explicit per-packet counter (RFC 6479).
//! - [`message`]: typed views of the messages, each parsed once.
//! - [`framing`]: 2-byte big-endian length framing for the TCP transport.
//! - [`peer`]: the per-peer state machine [`peer::Tunnel`] (sessions, keepalive,
//!   dead-peer detection, reconnect backoff, session replacement).
//! - [`hub`]: several peers (each with its own key) behind one socket and device.
//! - [`counters`]: packet/byte/handshake counters and drop reasons.
pub mod counters;
pub mod framing;
pub mod hub;
pub mod key;
pub mod message;
pub mod noise;
pub mod peer;
pub mod replay;

pub use counters::{Counters, DropReason};
pub use framing::{FrameDecoder, FrameError, StreamTx};
pub use hub::Hub;
pub use key::{Key, KeyError};
pub use peer::{Event, Output, Role, Tunnel, TunnelConfig};

/// Transport that carries the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Bytes the tunnel adds to every inner packet on the wire, on top of the underlay's
/// IP header: transport header (UDP 8 / TCP 20 without options), the TCP length prefix,
/// and the data-message header and AEAD tag unless `plaintext`.
pub fn overhead(transport: Transport, plaintext: bool) -> usize {
    let transport_hdr = match transport {
        Transport::Udp => 8,
        Transport::Tcp => 20 + framing::LEN_PREFIX,
    };
    let crypto = if plaintext { 0 } else { noise::DATA_OVERHEAD };
    transport_hdr + crypto
}

/// Default MTU of the tunnel device: the underlay MTU minus the underlay IP header
/// (20 for IPv4, 40 for IPv6), the [`overhead`] and, in TAP mode, the 14-byte Ethernet
/// header the frame carries on top of its payload. Never below the IPv4 minimum (576),
/// or the IPv6 minimum (1280) when the underlay is IPv6 and that still fits.
pub fn default_mtu(
    underlay_mtu: u32,
    ipv6_underlay: bool,
    transport: Transport,
    plaintext: bool,
    tap: bool,
) -> u32 {
    let ip_hdr = if ipv6_underlay { 40 } else { 20 };
    let eth = if tap { 14 } else { 0 };
    let sub = (ip_hdr + overhead(transport, plaintext) + eth) as u32;
    underlay_mtu.saturating_sub(sub).max(576)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_fits_the_overhead() {
        // UDP over IPv4, encrypted: 1500 - 20 - 8 - 32 = 1440 (WireGuard's 1420 assumes IPv6).
        assert_eq!(default_mtu(1500, false, Transport::Udp, false, false), 1440);
        assert_eq!(default_mtu(1500, true, Transport::Udp, false, false), 1420);
        // Plaintext UDP: only the headers.
        assert_eq!(default_mtu(1500, false, Transport::Udp, true, false), 1472);
        // TAP carries the 14-byte Ethernet header inside.
        assert_eq!(default_mtu(1500, false, Transport::Udp, false, true), 1426);
        // TCP: 20-byte TCP header and 2-byte length prefix.
        assert_eq!(default_mtu(1500, false, Transport::Tcp, false, false), 1426);
        // A tiny underlay does not produce a useless MTU.
        assert_eq!(default_mtu(300, false, Transport::Udp, false, false), 576);
    }
}
