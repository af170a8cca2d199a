//! Wire format of the encrypted tunnel and the Noise handshake around `snow`.
//!
//! Protocol: `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, the 32-byte key file as the PSK.
//! NN with psk0 means: both sides use fresh ephemeral X25519 keys (forward secrecy), and
//! the first message is already encrypted and authenticated under a key derived from the
//! PSK, so a responder can verify an initiation before it answers and stays silent to
//! anyone without the key. One key file on both ends is all the configuration needed
//! (XXpsk with static keys would need a key pair per box and the peer's public key on
//! each side, for no gain in a two-box tunnel that trusts one shared secret anyway).
//!
//! Messages (little-endian integers, as WireGuard):
//! ```text
//! INIT  (client -> server)  [1][0 0 0] | noise msg 1: e(32) | AEAD(sender_index u32, mode u8, timestamp u64) (13+16)
//! RESP  (server -> client)  [2][0 0 0][receiver_index u32] | noise msg 2: e(32) | AEAD(sender_index u32) (4+16)
//! DATA  (both ways)         [4][0 0 0][receiver_index u32][counter u64] | AEAD(packet) (len+16)
//! ```
//! An empty DATA payload is a keepalive. The session indexes inside the handshake
//! payloads are authenticated; the clear receiver index only selects keys (a forged one
//! selects the wrong keys and fails the AEAD). The counter is the AEAD nonce and is
//! checked against a replay window (stateless transport: UDP may reorder and lose).
//!
//! INIT timestamp (as WireGuard's TAI64N): nanoseconds since the Unix epoch of the
//! client's wall clock, strictly increasing per client process. The server answers an
//! INIT only if its timestamp is newer than the last one it answered, so a recorded
//! INIT replayed later (or many times) gets no answer, costs no X25519 operation and
//! cannot replace the pending session of the real client. Reading message 1 costs no
//! Diffie-Hellman in NNpsk0 (its payload key comes from the PSK and `e` alone); the DH
//! and the ephemeral key generation happen only in [`Responder::answer`].
//! A client whose clock went back (router without RTC restarted before NTP) is let in
//! once the server considers the peer gone for `timeout`; the rule is at
//! `Tunnel::on_init` in `peer.rs`.
use snow::params::NoiseParams;
use snow::{HandshakeState, StatelessTransportState};

use super::key::Key;

pub const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Mixed into the handshake hash: a peer speaking another protocol/version fails.
pub const PROLOGUE: &[u8] = b"tunbox tunnel v1";

pub const TYPE_INIT: u8 = 1;
pub const TYPE_RESP: u8 = 2;
pub const TYPE_DATA: u8 = 4;

pub const TAG_LEN: usize = 16;
const DH_LEN: usize = 32;
pub const INIT_PAYLOAD_LEN: usize = 13;
pub const RESP_PAYLOAD_LEN: usize = 4;
pub const INIT_LEN: usize = 4 + DH_LEN + INIT_PAYLOAD_LEN + TAG_LEN;
pub const RESP_LEN: usize = 8 + DH_LEN + RESP_PAYLOAD_LEN + TAG_LEN;
// No amplification: a handshake answer is smaller than the initiation.
const _: () = assert!(RESP_LEN < INIT_LEN);
pub const DATA_HEADER_LEN: usize = 16;
/// Bytes a DATA message adds to the packet it carries.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;

/// Device mode carried in the initiation, so a tun end and a tap end refuse each other
/// with a clear reason instead of passing garbage.
pub const MODE_TUN: u8 = 0;
pub const MODE_TAP: u8 = 1;

/// Why a handshake step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Wrong size or header.
    Malformed,
    /// Did not authenticate (wrong key or tampered).
    Auth,
    /// Authenticated, but the peer runs the other device mode.
    ModeMismatch { peer: u8 },
    /// Local failure (random number generator, buffer too small).
    Internal,
}

fn params() -> NoiseParams {
    // The constant parses; `expect` cannot fire on input.
    PATTERN.parse().expect("valid noise pattern")
}

fn builder(psk: &Key) -> Result<snow::Builder<'_>, HandshakeError> {
    snow::Builder::new(params())
        .psk(0, psk.as_bytes())
        .and_then(|b| b.prologue(PROLOGUE))
        .map_err(|_| HandshakeError::Internal)
}

/// Read the message type of a datagram/frame (`None` if empty or reserved bytes set).
pub fn message_type(msg: &[u8]) -> Option<u8> {
    if msg.len() < 4 || msg[1] != 0 || msg[2] != 0 || msg[3] != 0 {
        return None;
    }
    Some(msg[0])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An initiation in flight (client side).
pub struct Initiator {
    hs: HandshakeState,
    pub local_index: u32,
}

impl Initiator {
    /// Start a handshake and write the INIT message into `out`; returns its length.
    pub fn start(
        psk: &Key,
        local_index: u32,
        mode: u8,
        timestamp: u64,
        out: &mut [u8],
    ) -> Result<(Self, usize), HandshakeError> {
        if out.len() < INIT_LEN {
            return Err(HandshakeError::Internal);
        }
        let mut hs = builder(psk)?
            .build_initiator()
            .map_err(|_| HandshakeError::Internal)?;
        out[..4].copy_from_slice(&[TYPE_INIT, 0, 0, 0]);
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        payload[..4].copy_from_slice(&local_index.to_le_bytes());
        payload[4] = mode;
        payload[5..13].copy_from_slice(&timestamp.to_le_bytes());
        let n = hs
            .write_message(&payload, &mut out[4..INIT_LEN])
            .map_err(|_| HandshakeError::Internal)?;
        debug_assert_eq!(4 + n, INIT_LEN);
        Ok((Self { hs, local_index }, INIT_LEN))
    }

    /// Receiver index a RESP message is addressed to, if it is one.
    pub fn resp_receiver(msg: &[u8]) -> Option<u32> {
        if msg.len() != RESP_LEN || message_type(msg) != Some(TYPE_RESP) {
            return None;
        }
        Some(u32_at(msg, 4))
    }

    /// Process the RESP. On success: the peer's index and the transport keys. On
    /// failure the handshake state is unchanged (snow restores it), so a forged RESP
    /// does not spoil the real one still on its way.
    pub fn finish(&mut self, msg: &[u8]) -> Result<u32, HandshakeError> {
        if Self::resp_receiver(msg) != Some(self.local_index) {
            return Err(HandshakeError::Malformed);
        }
        let mut payload = [0u8; RESP_PAYLOAD_LEN + TAG_LEN];
        let n = self
            .hs
            .read_message(&msg[8..], &mut payload)
            .map_err(|_| HandshakeError::Auth)?;
        if n != RESP_PAYLOAD_LEN || !self.hs.is_handshake_finished() {
            return Err(HandshakeError::Malformed);
        }
        Ok(u32_at(&payload, 0))
    }

    pub fn into_transport(self) -> Result<StatelessTransportState, HandshakeError> {
        self.hs
            .into_stateless_transport_mode()
            .map_err(|_| HandshakeError::Internal)
    }
}

/// A verified INIT (server side), not yet answered. Verifying costs no DH; answering
/// generates the ephemeral key and does the DH.
pub struct Responder {
    hs: HandshakeState,
    pub peer_index: u32,
    pub timestamp: u64,
}

impl Responder {
    /// Verify an INIT: authenticated under the PSK, right mode.
    pub fn read(psk: &Key, mode: u8, init: &[u8]) -> Result<Self, HandshakeError> {
        if init.len() != INIT_LEN || message_type(init) != Some(TYPE_INIT) {
            return Err(HandshakeError::Malformed);
        }
        let mut hs = builder(psk)?
            .build_responder()
            .map_err(|_| HandshakeError::Internal)?;
        let mut payload = [0u8; INIT_PAYLOAD_LEN + TAG_LEN];
        let n = hs
            .read_message(&init[4..], &mut payload)
            .map_err(|_| HandshakeError::Auth)?;
        if n != INIT_PAYLOAD_LEN {
            return Err(HandshakeError::Malformed);
        }
        if payload[4] != mode {
            return Err(HandshakeError::ModeMismatch { peer: payload[4] });
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&payload[5..13]);
        Ok(Self {
            hs,
            peer_index: u32_at(&payload, 0),
            timestamp: u64::from_le_bytes(ts),
        })
    }

    /// Write the RESP into `out`; returns its length and the transport keys.
    pub fn answer(
        mut self,
        local_index: u32,
        out: &mut [u8],
    ) -> Result<(usize, StatelessTransportState), HandshakeError> {
        if out.len() < RESP_LEN {
            return Err(HandshakeError::Internal);
        }
        out[..4].copy_from_slice(&[TYPE_RESP, 0, 0, 0]);
        out[4..8].copy_from_slice(&self.peer_index.to_le_bytes());
        let m = self
            .hs
            .write_message(&local_index.to_le_bytes(), &mut out[8..RESP_LEN])
            .map_err(|_| HandshakeError::Internal)?;
        debug_assert_eq!(8 + m, RESP_LEN);
        let t = self
            .hs
            .into_stateless_transport_mode()
            .map_err(|_| HandshakeError::Internal)?;
        Ok((RESP_LEN, t))
    }
}

/// Verify and answer an INIT in one step: writes the RESP into `out` and returns
/// (peer index, RESP length, transport keys). (No replay check; see [`Responder`].)
pub fn respond(
    psk: &Key,
    mode: u8,
    init: &[u8],
    local_index: u32,
    out: &mut [u8],
) -> Result<(u32, usize, StatelessTransportState), HandshakeError> {
    let r = Responder::read(psk, mode, init)?;
    let peer = r.peer_index;
    let (n, t) = r.answer(local_index, out)?;
    Ok((peer, n, t))
}

/// Header fields of a DATA message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub receiver: u32,
    pub counter: u64,
}

/// Parse a DATA message header; `None` if it is too short to hold header and tag.
pub fn data_header(msg: &[u8]) -> Option<DataHeader> {
    if msg.len() < DATA_OVERHEAD {
        return None;
    }
    let receiver = u32_at(msg, 4);
    let mut c = [0u8; 8];
    c.copy_from_slice(&msg[8..16]);
    Some(DataHeader {
        receiver,
        counter: u64::from_le_bytes(c),
    })
}

/// Encrypt `packet` into a DATA message in `out`; returns its length.
pub fn seal(
    t: &StatelessTransportState,
    receiver: u32,
    counter: u64,
    packet: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let len = DATA_OVERHEAD + packet.len();
    if out.len() < len {
        return None;
    }
    out[..4].copy_from_slice(&[TYPE_DATA, 0, 0, 0]);
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..16].copy_from_slice(&counter.to_le_bytes());
    let n = t
        .write_message(counter, packet, &mut out[DATA_HEADER_LEN..len])
        .ok()?;
    Some(DATA_HEADER_LEN + n)
}

/// Decrypt the body of a DATA message into `out`; returns the packet length.
pub fn open(
    t: &StatelessTransportState,
    counter: u64,
    msg: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    if msg.len() < DATA_OVERHEAD {
        return None;
    }
    let body = &msg[DATA_HEADER_LEN..];
    if out.len() < body.len() - TAG_LEN {
        return None;
    }
    t.read_message(counter, body, out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::from_bytes([b; 32])
    }

    #[test]
    fn handshake_and_data_both_ways() {
        let k = key(7);
        let mut init = [0u8; 256];
        let (mut ini, n) = Initiator::start(&k, 0x11, MODE_TUN, 1, &mut init).unwrap();
        assert_eq!(n, INIT_LEN);
        let mut resp = [0u8; 256];
        let (peer, m, srv) = respond(&k, MODE_TUN, &init[..n], 0x22, &mut resp).unwrap();
        assert_eq!(peer, 0x11);
        assert_eq!(m, RESP_LEN);
        assert_eq!(Initiator::resp_receiver(&resp[..m]), Some(0x11));
        assert_eq!(ini.finish(&resp[..m]).unwrap(), 0x22);
        let cli = ini.into_transport().unwrap();

        let mut wire = [0u8; 2048];
        let mut plain = [0u8; 2048];
        let pkt = [0x45u8; 100];
        let w = seal(&cli, 0x22, 0, &pkt, &mut wire).unwrap();
        assert_eq!(w, 100 + DATA_OVERHEAD);
        let h = data_header(&wire[..w]).unwrap();
        assert_eq!(
            h,
            DataHeader {
                receiver: 0x22,
                counter: 0
            }
        );
        let p = open(&srv, h.counter, &wire[..w], &mut plain).unwrap();
        assert_eq!(&plain[..p], &pkt[..]);
        // Other direction.
        let w = seal(&srv, 0x11, 5, &pkt[..3], &mut wire).unwrap();
        let p = open(&cli, 5, &wire[..w], &mut plain).unwrap();
        assert_eq!(&plain[..p], &pkt[..3]);
        // Own messages do not decrypt with own receive key (directions are separate).
        let w = seal(&cli, 0x22, 9, &pkt, &mut wire).unwrap();
        assert!(open(&cli, 9, &wire[..w], &mut plain).is_none());
    }

    #[test]
    fn wrong_psk_is_rejected_at_the_first_message() {
        let mut init = [0u8; 256];
        let (_ini, n) = Initiator::start(&key(1), 1, MODE_TUN, 7, &mut init).unwrap();
        let mut resp = [0u8; 256];
        assert_eq!(
            respond(&key(2), MODE_TUN, &init[..n], 2, &mut resp).err(),
            Some(HandshakeError::Auth)
        );
    }

    #[test]
    fn mode_mismatch_is_reported() {
        let mut init = [0u8; 256];
        let (_ini, n) = Initiator::start(&key(1), 1, MODE_TAP, 7, &mut init).unwrap();
        let mut resp = [0u8; 256];
        assert_eq!(
            respond(&key(1), MODE_TUN, &init[..n], 2, &mut resp).err(),
            Some(HandshakeError::ModeMismatch { peer: MODE_TAP })
        );
    }

    #[test]
    fn forged_resp_does_not_spoil_the_handshake() {
        let k = key(3);
        let mut init = [0u8; 256];
        let (mut ini, n) = Initiator::start(&k, 9, MODE_TUN, 7, &mut init).unwrap();
        let mut resp = [0u8; 256];
        let (_, m, _) = respond(&k, MODE_TUN, &init[..n], 10, &mut resp).unwrap();
        let mut forged = resp;
        forged[20] ^= 1;
        assert_eq!(ini.finish(&forged[..m]), Err(HandshakeError::Auth));
        assert_eq!(ini.finish(&resp[..m - 1]), Err(HandshakeError::Malformed));
        assert_eq!(ini.finish(&resp[..m]), Ok(10));
    }

    #[test]
    fn every_single_bit_flip_of_init_fails() {
        let k = key(4);
        let mut init = [0u8; 256];
        let (_ini, n) = Initiator::start(&k, 9, MODE_TUN, 7, &mut init).unwrap();
        for bit in 0..n * 8 {
            let mut m = init;
            m[bit / 8] ^= 1 << (bit % 8);
            let mut resp = [0u8; 256];
            assert!(
                respond(&k, MODE_TUN, &m[..n], 1, &mut resp).is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn init_carries_the_timestamp_and_reading_it_needs_no_answer() {
        let k = key(5);
        let mut init = [0u8; 256];
        let (mut ini, n) =
            Initiator::start(&k, 0x33, MODE_TUN, 0x0102_0304_0506_0708, &mut init).unwrap();
        assert_eq!(n, INIT_LEN);
        let r = Responder::read(&k, MODE_TUN, &init[..n]).unwrap();
        assert_eq!(r.peer_index, 0x33);
        assert_eq!(r.timestamp, 0x0102_0304_0506_0708);
        let mut resp = [0u8; 256];
        let (m, _t) = r.answer(0x44, &mut resp).unwrap();
        assert_eq!(ini.finish(&resp[..m]), Ok(0x44));
    }

    #[test]
    fn header_parsing_rejects_short_and_reserved() {
        assert_eq!(message_type(&[]), None);
        assert_eq!(message_type(&[4, 0, 0]), None);
        assert_eq!(message_type(&[4, 0, 1, 0]), None);
        assert_eq!(message_type(&[4, 0, 0, 0]), Some(TYPE_DATA));
        assert_eq!(data_header(&[4; DATA_OVERHEAD - 1]), None);
        assert!(data_header(&[4; DATA_OVERHEAD]).is_some());
    }
}
