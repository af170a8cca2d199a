//! Wire format of the encrypted tunnel and its Noise handshake, implemented here on
//! the BLAKE2s, ChaCha20-Poly1305 and X25519 primitives (wire-compatible with `snow`,
//! which the tests check; snow itself cost ~60 KB of code on the router).
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
use blake2::{Blake2s256, Digest};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use curve25519_dalek::constants::X25519_BASEPOINT;
use curve25519_dalek::montgomery::MontgomeryPoint;
use zeroize::Zeroize;

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
/// Largest Noise message (spec section 3); a DATA body (packet + tag) may not exceed it.
const MAX_NOISE_MSG: usize = 65535;

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

// ---------------------------------------------------------------------------------
// Noise primitives (spec rev 34): HASH = BLAKE2s (HASHLEN 32, BLOCKLEN 64), HMAC and
// HKDF over it (section 4.3), CipherState/SymmetricState (section 5) reduced to what
// NNpsk0 needs, X25519 (section 12.1) and ChaCha20-Poly1305 (section 12.3).

const HASH_LEN: usize = 32;
const BLOCK_LEN: usize = 64;

/// BLAKE2s-256 of the concatenation of `parts`.
fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut d = Blake2s256::new();
    for p in parts {
        d.update(p);
    }
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(&d.finalize());
    out
}

/// HMAC-BLAKE2s (RFC 2104) with a key of HASHLEN bytes (all Noise uses: chaining key or
/// HKDF temp key), over the concatenation of `parts`.
fn hmac(key: &[u8; HASH_LEN], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut block = [0u8; BLOCK_LEN];
    block[..HASH_LEN].copy_from_slice(key);
    for b in &mut block {
        *b ^= 0x36;
    }
    let mut d = Blake2s256::new();
    d.update(block);
    for p in parts {
        d.update(p);
    }
    let mut inner = [0u8; HASH_LEN];
    inner.copy_from_slice(&d.finalize());
    for b in &mut block {
        *b ^= 0x36 ^ 0x5c;
    }
    let out = hash(&[&block, &inner]);
    block.zeroize();
    inner.zeroize();
    out
}

/// Noise HKDF(chaining_key, ikm, n) for n = `out.len()` (2 or 3).
fn hkdf(ck: &[u8; HASH_LEN], ikm: &[u8], out: &mut [[u8; HASH_LEN]]) {
    let mut temp = hmac(ck, &[ikm]);
    let mut prev: [u8; HASH_LEN] = [0; HASH_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        let ctr = [i as u8 + 1];
        *o = if i == 0 {
            hmac(&temp, &[&ctr])
        } else {
            hmac(&temp, &[&prev, &ctr])
        };
        prev = *o;
    }
    temp.zeroize();
    prev.zeroize();
}

/// ChaCha20-Poly1305 nonce of Noise: 32 bits of zeros, then the 64-bit counter
/// little-endian.
fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_le_bytes());
    b.into()
}

fn cipher(k: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(k.into())
}

/// X25519 key pair of one handshake; the secret is wiped on drop.
struct Ephemeral {
    secret: [u8; 32],
    public: [u8; 32],
}

impl Ephemeral {
    fn generate() -> Result<Self, HandshakeError> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|_| HandshakeError::Internal)?;
        // The Montgomery ladder from u = 9 (no Edwards base-point tables linked in).
        let public = MontgomeryPoint(X25519_BASEPOINT.to_bytes())
            .mul_clamped(secret)
            .to_bytes();
        Ok(Self { secret, public })
    }

    /// X25519(secret, peer). An all-zero result (the peer sent a low-order point) would
    /// make the key independent of our secret: refused as not authentic.
    fn dh(&self, peer: &[u8; 32]) -> Result<[u8; 32], HandshakeError> {
        let shared = MontgomeryPoint(*peer).mul_clamped(self.secret).to_bytes();
        if shared.iter().fold(0u8, |a, b| a | b) == 0 {
            return Err(HandshakeError::Auth);
        }
        Ok(shared)
    }
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// SymmetricState with its CipherState. In NNpsk0 the PSK is mixed in before the
/// first payload, so every EncryptAndHash/DecryptAndHash has a key (no "empty key"
/// pass-through case).
#[derive(Clone)]
struct Symmetric {
    ck: [u8; HASH_LEN],
    h: [u8; HASH_LEN],
    k: [u8; 32],
    n: u64,
}

impl Drop for Symmetric {
    fn drop(&mut self) {
        self.ck.zeroize();
        self.h.zeroize();
        self.k.zeroize();
    }
}

impl Symmetric {
    /// InitializeSymmetric(PATTERN) (the name is longer than HASHLEN: h = HASH(name)),
    /// MixHash(PROLOGUE), then the psk token of message 1: MixKeyAndHash(psk).
    fn new(psk: &Key) -> Self {
        let h = hash(&[PATTERN.as_bytes()]);
        let mut s = Self {
            ck: h,
            h,
            k: [0; 32],
            n: 0,
        };
        s.mix_hash(PROLOGUE);
        s.mix_key_and_hash(psk.as_bytes());
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    fn mix_key(&mut self, ikm: &[u8]) {
        let mut o = [[0u8; HASH_LEN]; 2];
        hkdf(&self.ck, ikm, &mut o);
        self.ck = o[0];
        self.k = o[1];
        self.n = 0;
        o.zeroize();
    }

    fn mix_key_and_hash(&mut self, ikm: &[u8]) {
        let mut o = [[0u8; HASH_LEN]; 3];
        hkdf(&self.ck, ikm, &mut o);
        self.ck = o[0];
        self.mix_hash(&o[1]);
        self.k = o[2];
        self.n = 0;
        o.zeroize();
    }

    /// The `e` token: send or receive an ephemeral public key (MixHash, and MixKey
    /// because a PSK is in use).
    fn mix_ephemeral(&mut self, public: &[u8]) {
        self.mix_hash(public);
        self.mix_key(public);
    }

    /// EncryptAndHash: `out` = ciphertext of `plain` followed by the tag
    /// (`out.len()` must be `plain.len() + TAG_LEN`).
    fn encrypt_and_hash(&mut self, plain: &[u8], out: &mut [u8]) -> Result<(), HandshakeError> {
        let len = plain.len();
        if out.len() != len + TAG_LEN {
            return Err(HandshakeError::Internal);
        }
        out[..len].copy_from_slice(plain);
        let tag = cipher(&self.k)
            .encrypt_in_place_detached(&nonce(self.n), &self.h, &mut out[..len])
            .map_err(|_| HandshakeError::Internal)?;
        out[len..].copy_from_slice(&tag);
        self.n += 1;
        self.mix_hash(out);
        Ok(())
    }

    /// DecryptAndHash of `ct` (ciphertext and tag) into `out[..ct.len() - TAG_LEN]`.
    fn decrypt_and_hash(&mut self, ct: &[u8], out: &mut [u8]) -> Result<(), HandshakeError> {
        let len = ct
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(HandshakeError::Malformed)?;
        if out.len() < len {
            return Err(HandshakeError::Internal);
        }
        out[..len].copy_from_slice(&ct[..len]);
        cipher(&self.k)
            .decrypt_in_place_detached(
                &nonce(self.n),
                &self.h,
                &mut out[..len],
                Tag::from_slice(&ct[len..]),
            )
            .map_err(|_| HandshakeError::Auth)?;
        self.n += 1;
        self.mix_hash(ct);
        Ok(())
    }

    /// Split: the initiator's sending key first.
    fn split(&self, initiator: bool) -> Transport {
        let mut o = [[0u8; HASH_LEN]; 2];
        hkdf(&self.ck, &[], &mut o);
        let (i2r, r2i) = (cipher(&o[0]), cipher(&o[1]));
        o.zeroize();
        if initiator {
            Transport {
                send: i2r,
                recv: r2i,
            }
        } else {
            Transport {
                send: r2i,
                recv: i2r,
            }
        }
    }
}

/// Transport keys of a finished handshake: one ChaCha20-Poly1305 key per direction.
/// Stateless like WireGuard's: the explicit message counter is the nonce, the AD is
/// empty. The keys are wiped on drop (`ChaCha20Poly1305` zeroizes its key in `Drop`).
pub struct Transport {
    send: ChaCha20Poly1305,
    recv: ChaCha20Poly1305,
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
    sym: Symmetric,
    e: Ephemeral,
    /// Set once a RESP authenticated; `sym` then holds the final chaining key.
    done: bool,
    pub local_index: u32,
}

impl Initiator {
    /// Start a handshake and write the INIT message into `out`; returns its length.
    /// Noise message 1, tokens `psk, e`, then the encrypted payload.
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
        let mut sym = Symmetric::new(psk);
        let e = Ephemeral::generate()?;
        out[..4].copy_from_slice(&[TYPE_INIT, 0, 0, 0]);
        out[4..4 + DH_LEN].copy_from_slice(&e.public);
        sym.mix_ephemeral(&e.public);
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        payload[..4].copy_from_slice(&local_index.to_le_bytes());
        payload[4] = mode;
        payload[5..13].copy_from_slice(&timestamp.to_le_bytes());
        sym.encrypt_and_hash(&payload, &mut out[4 + DH_LEN..INIT_LEN])?;
        Ok((
            Self {
                sym,
                e,
                done: false,
                local_index,
            },
            INIT_LEN,
        ))
    }

    /// Receiver index a RESP message is addressed to, if it is one.
    pub fn resp_receiver(msg: &[u8]) -> Option<u32> {
        if msg.len() != RESP_LEN || message_type(msg) != Some(TYPE_RESP) {
            return None;
        }
        Some(u32_at(msg, 4))
    }

    /// Process the RESP (Noise message 2, tokens `e, ee`). On success: the peer's
    /// index; the transport keys follow from [`Self::into_transport`]. The work is
    /// done on a copy of the state that replaces it only on success, so a forged RESP
    /// does not spoil the real one still on its way.
    pub fn finish(&mut self, msg: &[u8]) -> Result<u32, HandshakeError> {
        if Self::resp_receiver(msg) != Some(self.local_index) {
            return Err(HandshakeError::Malformed);
        }
        if self.done {
            return Err(HandshakeError::Auth);
        }
        let mut re = [0u8; DH_LEN];
        re.copy_from_slice(&msg[8..8 + DH_LEN]);
        let mut sym = self.sym.clone();
        sym.mix_ephemeral(&re);
        let mut ee = self.e.dh(&re)?;
        sym.mix_key(&ee);
        ee.zeroize();
        let mut payload = [0u8; RESP_PAYLOAD_LEN];
        sym.decrypt_and_hash(&msg[8 + DH_LEN..], &mut payload)?;
        self.sym = sym;
        self.done = true;
        Ok(u32_at(&payload, 0))
    }

    /// The transport keys, once [`Self::finish`] succeeded.
    pub fn into_transport(self) -> Result<Transport, HandshakeError> {
        if !self.done {
            return Err(HandshakeError::Internal);
        }
        Ok(self.sym.split(true))
    }
}

/// A verified INIT (server side), not yet answered. Verifying costs no DH; answering
/// generates the ephemeral key and does the DH.
pub struct Responder {
    sym: Symmetric,
    re: [u8; DH_LEN],
    pub peer_index: u32,
    pub timestamp: u64,
}

impl Responder {
    /// Verify an INIT: authenticated under the PSK, right mode.
    pub fn read(psk: &Key, mode: u8, init: &[u8]) -> Result<Self, HandshakeError> {
        if init.len() != INIT_LEN || message_type(init) != Some(TYPE_INIT) {
            return Err(HandshakeError::Malformed);
        }
        let mut sym = Symmetric::new(psk);
        let mut re = [0u8; DH_LEN];
        re.copy_from_slice(&init[4..4 + DH_LEN]);
        sym.mix_ephemeral(&re);
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        sym.decrypt_and_hash(&init[4 + DH_LEN..], &mut payload)?;
        if payload[4] != mode {
            return Err(HandshakeError::ModeMismatch { peer: payload[4] });
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&payload[5..13]);
        Ok(Self {
            sym,
            re,
            peer_index: u32_at(&payload, 0),
            timestamp: u64::from_le_bytes(ts),
        })
    }

    /// Write the RESP into `out` (Noise message 2, tokens `e, ee`); returns its length
    /// and the transport keys.
    pub fn answer(
        mut self,
        local_index: u32,
        out: &mut [u8],
    ) -> Result<(usize, Transport), HandshakeError> {
        if out.len() < RESP_LEN {
            return Err(HandshakeError::Internal);
        }
        let e = Ephemeral::generate()?;
        out[..4].copy_from_slice(&[TYPE_RESP, 0, 0, 0]);
        out[4..8].copy_from_slice(&self.peer_index.to_le_bytes());
        out[8..8 + DH_LEN].copy_from_slice(&e.public);
        self.sym.mix_ephemeral(&e.public);
        let mut ee = e.dh(&self.re)?;
        self.sym.mix_key(&ee);
        ee.zeroize();
        self.sym
            .encrypt_and_hash(&local_index.to_le_bytes(), &mut out[8 + DH_LEN..RESP_LEN])?;
        Ok((RESP_LEN, self.sym.split(false)))
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
) -> Result<(u32, usize, Transport), HandshakeError> {
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

/// Encrypt `packet` into a DATA message in `out`; returns its length. `None` if `out`
/// is too small, the packet exceeds a Noise message or the counter is the reserved
/// 2^64-1.
pub fn seal(
    t: &Transport,
    receiver: u32,
    counter: u64,
    packet: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let len = DATA_OVERHEAD + packet.len();
    if out.len() < len || packet.len() + TAG_LEN > MAX_NOISE_MSG || counter == u64::MAX {
        return None;
    }
    out[..4].copy_from_slice(&[TYPE_DATA, 0, 0, 0]);
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..16].copy_from_slice(&counter.to_le_bytes());
    let body = &mut out[DATA_HEADER_LEN..len];
    let (text, tag_out) = body.split_at_mut(packet.len());
    text.copy_from_slice(packet);
    let tag = t
        .send
        .encrypt_in_place_detached(&nonce(counter), &[], text)
        .ok()?;
    tag_out.copy_from_slice(&tag);
    Some(len)
}

/// Decrypt the body of a DATA message into `out`; returns the packet length.
pub fn open(t: &Transport, counter: u64, msg: &[u8], out: &mut [u8]) -> Option<usize> {
    if msg.len() < DATA_OVERHEAD {
        return None;
    }
    let body = &msg[DATA_HEADER_LEN..];
    let n = body.len() - TAG_LEN;
    if out.len() < n || body.len() > MAX_NOISE_MSG || counter == u64::MAX {
        return None;
    }
    let text = &mut out[..n];
    text.copy_from_slice(&body[..n]);
    t.recv
        .decrypt_in_place_detached(&nonce(counter), &[], text, Tag::from_slice(&body[n..]))
        .ok()?;
    Some(n)
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
