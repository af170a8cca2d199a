//! Wire format of the encrypted tunnel and its Noise handshake, implemented here on
//! the BLAKE2s, ChaCha20-Poly1305 and X25519 primitives (wire-compatible with `snow`,
//! which the tests check; dropping snow took ~70 KB off the x86_64 release binary:
//! its BLAKE2b, pattern parser, boxed resolver state and Edwards-curve code).
//!
//! Protocol: `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, the 32-byte key file as the PSK.
//! NN with psk0 means: both sides use fresh ephemeral X25519 keys (forward secrecy), and
//! the first message is already encrypted and authenticated under a key derived from the
//! PSK, so a responder can verify an initiation before it answers and stays silent to
//! anyone without the key. One key file on both ends is all the configuration needed
//! (XXpsk with static keys would need a key pair per box and the peer's public key on
//! each side, for no gain in a two-box tunnel that trusts one shared secret anyway).
//!
//! Messages (little-endian integers, as WireGuard), protocol version 2:
//! ```text
//! INIT  (client -> server)  [1][0 0 0] | noise msg 1: e(32) | AEAD(sender_index u32, mode u8, timestamp u64) (13+16) | mac1(16)
//! RESP  (server -> client)  [2][0 0 0][receiver_index u32] | noise msg 2: e(32) | AEAD(sender_index u32) (4+16)
//! DATA  (both ways)         [4][0 0 0][receiver_index u32][counter u64] | AEAD(packet) (len+16)
//! ```
//! `mac1` (version 2, after WireGuard's): keyed BLAKE2s with a 16-byte output
//! (RFC 7693, `Blake2sMac<U16>`) over the 65 bytes before it, keyed with
//! `BLAKE2s-256("tunbox mac1" || PROLOGUE || psk)`. It lies outside the Noise message,
//! which stays exactly what snow writes and reads (the tests check both). It lets a
//! server drop junk with 3 BLAKE2s compressions instead of the ~33 and the AEAD open
//! that verifying message 1 costs (`tunbox tunnel` measures the difference:
//! tests/handshake_cost.rs), before any rate limit or state is touched. It proves
//! nothing by itself (a recorded INIT carries a valid mac1): the Noise verification,
//! the timestamp rule and the rate limits after it are unchanged.
//!
//! Version 1 (tunbox 0.1, prologue `tunbox tunnel v1`) sent the 65-byte INIT without
//! mac1. The prologue now says `v2`, so the two never agree on a handshake; a v2 server
//! counts a 65-byte INIT as `handshake_mismatch` (a peer of the other version) and a
//! v1 server drops an 81-byte one as `bad_header`. Both ends must be upgraded together.
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
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit as MacKeyInit, Mac};
use blake2::{Blake2s256, Blake2sMac, Digest};
use curve25519_dalek::constants::X25519_BASEPOINT;
use curve25519_dalek::montgomery::MontgomeryPoint;
use tunbox_aead::Cipher;
use zeroize::Zeroize;

use super::key::Key;

pub const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Mixed into the handshake hash: a peer speaking another protocol/version fails.
pub const PROLOGUE: &[u8] = b"tunbox tunnel v2";
/// Mixed into the mac1 key (see the module notes).
const MAC1_LABEL: &[u8] = b"tunbox mac1";

pub const TYPE_INIT: u8 = 1;
pub const TYPE_RESP: u8 = 2;
pub const TYPE_DATA: u8 = 4;

pub const TAG_LEN: usize = 16;
const DH_LEN: usize = 32;
pub const INIT_PAYLOAD_LEN: usize = 13;
pub const RESP_PAYLOAD_LEN: usize = 4;
/// The Noise part of an INIT with its 4-byte header (what snow writes, plus the header):
/// also the whole INIT of protocol version 1.
pub const INIT_NOISE_LEN: usize = 4 + DH_LEN + INIT_PAYLOAD_LEN + TAG_LEN;
pub const MAC1_LEN: usize = 16;
pub const INIT_LEN: usize = INIT_NOISE_LEN + MAC1_LEN;
/// Length of a version 1 INIT (no mac1): a peer running the older protocol.
pub const INIT_LEN_V1: usize = INIT_NOISE_LEN;
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
fn nonce(n: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_le_bytes());
    b
}

fn cipher(k: &[u8; 32]) -> Cipher {
    Cipher::new(k)
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
        let e = Self::from_secret(&secret);
        secret.zeroize();
        Ok(e)
    }

    fn from_secret(secret: &[u8; 32]) -> Self {
        // The Montgomery ladder from u = 9 (no Edwards base-point tables linked in).
        let public = MontgomeryPoint(X25519_BASEPOINT.to_bytes())
            .mul_clamped(*secret)
            .to_bytes();
        Self {
            secret: *secret,
            public,
        }
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
    #[cfg(test)]
    fn new(psk: &Key) -> Self {
        let mut s = Self::zeroed();
        s.init(psk);
        s
    }

    fn zeroed() -> Self {
        Self {
            ck: [0; HASH_LEN],
            h: [0; HASH_LEN],
            k: [0; 32],
            n: 0,
        }
    }

    /// [`Self::new`] in place (into a state already on the heap).
    fn init(&mut self, psk: &Key) {
        self.h = hash(&[PATTERN.as_bytes()]);
        self.ck = self.h;
        self.k = [0; 32];
        self.n = 0;
        self.mix_hash(PROLOGUE);
        self.mix_key_and_hash(psk.as_bytes());
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
            .seal(&nonce(self.n), &self.h, &mut out[..len])
            .ok_or(HandshakeError::Internal)?;
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
        let tag: &[u8; TAG_LEN] = ct[len..]
            .try_into()
            .map_err(|_| HandshakeError::Malformed)?;
        if !cipher(&self.k).open(&nonce(self.n), &self.h, &mut out[..len], tag) {
            return Err(HandshakeError::Auth);
        }
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

/// The shared key with everything of the handshake that depends on it alone, computed
/// once per tunnel instead of once per message: the symmetric state after the `psk`
/// token (2 hashes and an HKDF, 12 of the ~33 BLAKE2s compressions of reading an
/// INIT) and the mac1 key. Wiped on drop.
/// The derived part lives on the heap and is computed there, so moving a
/// `HandshakeKey` (into the tunnel's state) copies no secret.
pub struct HandshakeKey {
    psk: Key,
    derived: Box<Derived>,
}

struct Derived {
    base: Symmetric,
    mac1_key: [u8; 32],
}

impl Drop for Derived {
    fn drop(&mut self) {
        self.mac1_key.zeroize();
    }
}

impl HandshakeKey {
    pub fn new(psk: Key) -> Self {
        let mut derived = Box::new(Derived {
            base: Symmetric::zeroed(),
            mac1_key: [0; 32],
        });
        derived.base.init(&psk);
        derived.mac1_key = hash(&[MAC1_LABEL, PROLOGUE, psk.as_bytes()]);
        Self { psk, derived }
    }

    pub fn key(&self) -> &Key {
        &self.psk
    }

    /// A public name of the key (BLAKE2s of a label and the PSK, 8 bytes): names files
    /// that belong to one key (the server's high-water mark) without revealing it.
    pub fn fingerprint(&self) -> [u8; 8] {
        let h = hash(&[b"tunbox key name", self.psk.as_bytes()]);
        let mut out = [0u8; 8];
        out.copy_from_slice(&h[..8]);
        out
    }

    /// mac1 of the Noise part of an INIT (`msg.len()` is [`INIT_NOISE_LEN`]).
    pub(crate) fn mac1(&self, noise_part: &[u8]) -> [u8; MAC1_LEN] {
        let mut m = <Blake2sMac<U16> as MacKeyInit>::new((&self.derived.mac1_key).into());
        Mac::update(&mut m, noise_part);
        let mut out = [0u8; MAC1_LEN];
        out.copy_from_slice(&m.finalize().into_bytes());
        out
    }

    /// The cheap check: an INIT of the right size whose mac1 is right (constant time).
    /// 3 BLAKE2s compressions; no state, no allocation.
    pub fn mac1_ok(&self, init: &[u8]) -> bool {
        if init.len() != INIT_LEN {
            return false;
        }
        let want = self.mac1(&init[..INIT_NOISE_LEN]);
        super::key::ct_eq(&want, &init[INIT_NOISE_LEN..])
    }

    /// The mac1 field of an INIT of the right size (the server remembers the ones it
    /// verified to drop exact replays without verifying them again).
    pub fn mac1_of(init: &[u8]) -> Option<[u8; MAC1_LEN]> {
        let m = init.get(INIT_NOISE_LEN..INIT_LEN)?;
        let mut out = [0u8; MAC1_LEN];
        out.copy_from_slice(m);
        Some(out)
    }
}

/// Transport keys of a finished handshake: one ChaCha20-Poly1305 key per direction.
/// Stateless like WireGuard's: the explicit message counter is the nonce, the AD is
/// empty. The keys are wiped on drop (`ChaCha20Poly1305` zeroizes its key in `Drop`).
pub struct Transport {
    send: Cipher,
    recv: Cipher,
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
        psk: &HandshakeKey,
        local_index: u32,
        mode: u8,
        timestamp: u64,
        out: &mut [u8],
    ) -> Result<(Self, usize), HandshakeError> {
        Self::start_with(
            psk,
            Ephemeral::generate()?,
            local_index,
            mode,
            timestamp,
            out,
        )
    }

    /// [`Self::start`] with a given ephemeral key (the tests fix it to compare bytes).
    fn start_with(
        psk: &HandshakeKey,
        e: Ephemeral,
        local_index: u32,
        mode: u8,
        timestamp: u64,
        out: &mut [u8],
    ) -> Result<(Self, usize), HandshakeError> {
        if out.len() < INIT_LEN {
            return Err(HandshakeError::Internal);
        }
        let mut sym = psk.derived.base.clone();
        out[..4].copy_from_slice(&[TYPE_INIT, 0, 0, 0]);
        out[4..4 + DH_LEN].copy_from_slice(&e.public);
        sym.mix_ephemeral(&e.public);
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        payload[..4].copy_from_slice(&local_index.to_le_bytes());
        payload[4] = mode;
        payload[5..13].copy_from_slice(&timestamp.to_le_bytes());
        sym.encrypt_and_hash(&payload, &mut out[4 + DH_LEN..INIT_NOISE_LEN])?;
        let mac1 = psk.mac1(&out[..INIT_NOISE_LEN]);
        out[INIT_NOISE_LEN..INIT_LEN].copy_from_slice(&mac1);
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
    /// Verify an INIT: right mac1 (the cheap check first), authenticated under the
    /// PSK, right mode.
    pub fn read(psk: &HandshakeKey, mode: u8, init: &[u8]) -> Result<Self, HandshakeError> {
        if init.len() != INIT_LEN || message_type(init) != Some(TYPE_INIT) {
            return Err(HandshakeError::Malformed);
        }
        if !psk.mac1_ok(init) {
            return Err(HandshakeError::Auth);
        }
        Self::read_noise(psk, mode, &init[..INIT_NOISE_LEN])
    }

    /// Noise message 1 alone (with its header, without mac1): what snow writes.
    fn read_noise(psk: &HandshakeKey, mode: u8, init: &[u8]) -> Result<Self, HandshakeError> {
        if init.len() != INIT_NOISE_LEN || message_type(init) != Some(TYPE_INIT) {
            return Err(HandshakeError::Malformed);
        }
        let mut sym = psk.derived.base.clone();
        let mut re = [0u8; DH_LEN];
        re.copy_from_slice(&init[4..4 + DH_LEN]);
        sym.mix_ephemeral(&re);
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        let r = sym.decrypt_and_hash(&init[4 + DH_LEN..], &mut payload);
        if let Err(e) = r {
            payload.zeroize();
            return Err(e);
        }
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
        self,
        local_index: u32,
        out: &mut [u8],
    ) -> Result<(usize, Transport), HandshakeError> {
        if out.len() < RESP_LEN {
            return Err(HandshakeError::Internal);
        }
        self.answer_with(Ephemeral::generate()?, local_index, out)
    }

    /// [`Self::answer`] with a given ephemeral key (the tests fix it to compare bytes).
    fn answer_with(
        mut self,
        e: Ephemeral,
        local_index: u32,
        out: &mut [u8],
    ) -> Result<(usize, Transport), HandshakeError> {
        if out.len() < RESP_LEN {
            return Err(HandshakeError::Internal);
        }
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

/// Both ends' transport keys from one handshake run in this process (client, server),
/// with a PSK of `psk_byte` repeated: for tests and measurements of the data path.
#[doc(hidden)]
pub fn loopback_pair(psk_byte: u8) -> (Transport, Transport) {
    let k = HandshakeKey::new(Key::from_bytes([psk_byte; 32]));
    let mut init = [0u8; 256];
    let (mut ini, n) = Initiator::start(&k, 1, MODE_TUN, 1, &mut init).unwrap();
    let mut resp = [0u8; 256];
    let (_, m, srv) = respond(&k, MODE_TUN, &init[..n], 2, &mut resp).unwrap();
    ini.finish(&resp[..m]).unwrap();
    (ini.into_transport().unwrap(), srv)
}

/// Verify and answer an INIT in one step: writes the RESP into `out` and returns
/// (peer index, RESP length, transport keys). (No replay check; see [`Responder`].)
pub fn respond(
    psk: &HandshakeKey,
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

/// Writes the header and a copy of `packet` of a DATA message into `out`; returns its
/// length, the body still to be sealed. `None` as for [`seal`].
fn data_plain(receiver: u32, counter: u64, packet: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = DATA_OVERHEAD + packet.len();
    if out.len() < len || packet.len() + TAG_LEN > MAX_NOISE_MSG || counter == u64::MAX {
        return None;
    }
    out[..4].copy_from_slice(&[TYPE_DATA, 0, 0, 0]);
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..16].copy_from_slice(&counter.to_le_bytes());
    out[DATA_HEADER_LEN..DATA_HEADER_LEN + packet.len()].copy_from_slice(packet);
    Some(len)
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
    let (len, job) = seal_later(t, receiver, counter, packet, out)?;
    // SAFETY: the transport and `out` are borrowed for this call, the job runs in it.
    unsafe { job.run() }.then_some(len)
}

/// [`seal`] with the encryption left to the returned job: header and plaintext are
/// written now, the message is ready once the job ran.
pub fn seal_later(
    t: &Transport,
    receiver: u32,
    counter: u64,
    packet: &[u8],
    out: &mut [u8],
) -> Option<(usize, DataJob)> {
    let len = data_plain(receiver, counter, packet, out)?;
    let job = DataJob {
        cipher: &t.send,
        counter,
        text: out[DATA_HEADER_LEN..].as_mut_ptr(),
        len: packet.len(),
        open: false,
    };
    Some((len, job))
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
    let tag: &[u8; TAG_LEN] = body[n..].try_into().ok()?;
    t.recv.open(&nonce(counter), &[], text, tag).then_some(n)
}

/// [`open`] in place, left to the returned job: once it ran (and said yes) the packet is
/// `msg[DATA_HEADER_LEN..msg.len() - TAG_LEN]`. `None` where `open` fails before the tag.
pub fn open_later(t: &Transport, counter: u64, msg: &mut [u8]) -> Option<DataJob> {
    if msg.len() < DATA_OVERHEAD || msg.len() - DATA_HEADER_LEN > MAX_NOISE_MSG {
        return None;
    }
    if counter == u64::MAX {
        return None;
    }
    Some(DataJob {
        cipher: &t.recv,
        counter,
        text: msg[DATA_HEADER_LEN..].as_mut_ptr(),
        len: msg.len() - DATA_OVERHEAD,
        open: true,
    })
}

/// The ChaCha20-Poly1305 work of one data message, cut out so that a batch of them can
/// run on several threads (`tunnel_run::crypto_pool`): seal or open the `len` bytes at
/// `text` in place, the tag in the 16 bytes after them. Made by [`seal_later`] and
/// [`open_later`]; plain pointers, so it is `Copy` and a batch of them needs no
/// allocation. Whoever runs it must keep the session and the buffer alive and
/// untouched until it has run (see [`DataJob::run`]).
#[derive(Clone, Copy)]
pub struct DataJob {
    cipher: *const Cipher,
    counter: u64,
    text: *mut u8,
    len: usize,
    open: bool,
}

// SAFETY: a job is only pointers to a cipher (read-only: `Cipher` is plain key bytes,
// `Sync`) and to bytes that [`DataJob::run`]'s contract gives to one thread at a time.
unsafe impl Send for DataJob {}

impl DataJob {
    /// A placeholder for job slots made in advance; never run.
    pub const EMPTY: DataJob = DataJob {
        cipher: std::ptr::null(),
        counter: 0,
        text: std::ptr::null_mut(),
        len: 0,
        open: false,
    };

    /// Seals (always true: [`seal_later`] checked the sizes) or opens (true if the tag
    /// verified; the text is left as it was otherwise).
    ///
    /// # Safety
    /// The `Transport` the job was made from must not have moved or been dropped, and
    /// the `len + TAG_LEN` bytes at `text` must still be the buffer it was made from,
    /// with no other access to them (nor to the rest of the message) until this returns.
    pub unsafe fn run(&self) -> bool {
        // SAFETY: the caller's contract: the cipher is alive and not moved; its methods
        // take `&self`.
        let c = unsafe { &*self.cipher };
        // SAFETY: the caller's contract: these bytes are alive and ours alone.
        let buf = unsafe { std::slice::from_raw_parts_mut(self.text, self.len + TAG_LEN) };
        let (text, tag) = buf.split_at_mut(self.len);
        let n = nonce(self.counter);
        if self.open {
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(tag);
            c.open(&n, &[], text, &t)
        } else {
            match c.seal(&n, &[], text) {
                Some(t) => {
                    tag.copy_from_slice(&t);
                    true
                }
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> HandshakeKey {
        HandshakeKey::new(Key::from_bytes([b; 32]))
    }

    /// Appends the mac1 of a Noise message 1 written by snow (or by hand): the
    /// version 2 INIT around it.
    fn with_mac1(k: &HandshakeKey, init: &mut [u8; INIT_LEN]) {
        let m = k.mac1(&init[..INIT_NOISE_LEN]);
        init[INIT_NOISE_LEN..].copy_from_slice(&m);
    }

    #[test]
    fn mac1_is_checked_first_and_cheaply() {
        let k = key(12);
        let mut init = [0u8; 256];
        let (_ini, n) = Initiator::start(&k, 1, MODE_TUN, 7, &mut init).unwrap();
        assert!(k.mac1_ok(&init[..n]));
        // Another key, a flipped bit in the Noise part or in mac1, a v1-sized INIT.
        assert!(!key(13).mac1_ok(&init[..n]));
        for at in [0, 4, INIT_NOISE_LEN - 1, INIT_NOISE_LEN, INIT_LEN - 1] {
            let mut m = init;
            m[at] ^= 0x80;
            assert!(!k.mac1_ok(&m[..n]), "byte {at}");
            let mut resp = [0u8; 256];
            assert!(respond(&k, MODE_TUN, &m[..n], 1, &mut resp).is_err());
        }
        assert!(!k.mac1_ok(&init[..INIT_LEN_V1]));
        // The Noise part alone still verifies: mac1 is an appended field only.
        assert!(Responder::read_noise(&k, MODE_TUN, &init[..INIT_NOISE_LEN]).is_ok());
        // The key is a keyed BLAKE2s of the label, prologue and PSK.
        assert_eq!(
            k.derived.mac1_key,
            hash(&[b"tunbox mac1", b"tunbox tunnel v2", &[12; 32]])
        );
    }

    #[test]
    fn the_precomputed_state_is_the_psk_state() {
        let k = key(14);
        let fresh = Symmetric::new(k.key());
        assert_eq!(
            (fresh.ck, fresh.h, fresh.k),
            (k.derived.base.ck, k.derived.base.h, k.derived.base.k)
        );
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

    // ---- Known answers of the primitives ----------------------------------------
    //
    // HMAC/HKDF/hash values computed independently with Python 3.11's standard library:
    //   H = lambda *p: hashlib.blake2s(b"".join(p)).digest()
    //   HMAC = lambda k, d: hmac.new(k, d, hashlib.blake2s).digest()   # block size 64
    //   hkdf(ck, ikm): t = HMAC(ck, ikm); o1 = HMAC(t, b"\x01");
    //                  o2 = HMAC(t, o1 + b"\x02"); o3 = HMAC(t, o2 + b"\x03")

    fn hex(s: &str) -> [u8; 32] {
        let mut o = [0u8; 32];
        for (i, b) in o.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        o
    }

    fn seq(start: u8) -> [u8; 32] {
        core::array::from_fn(|i| start + i as u8)
    }

    #[test]
    fn hmac_blake2s_known_answers() {
        // HMAC(bytes(range(32)), b"tunbox hmac-blake2s known answer")
        assert_eq!(
            hmac(&seq(0), &[b"tunbox hmac-blake2s ", b"known answer"]),
            hex("47c5563d00b63eb02155fa19ee0f32ba5d266a955e29c5545b1d6ed050178223")
        );
        // HMAC(bytes(range(32)), b"")
        assert_eq!(
            hmac(&seq(0), &[]),
            hex("e2641d24dfa8dd89e8cb77f1cdc77d8c006e5bebdfc4d6a3a3a6f8d5b7586fb0")
        );
    }

    #[test]
    fn hkdf_known_answers() {
        // ck = bytes(range(0x40, 0x60)), ikm = bytes(range(0x80, 0xa0))
        let mut o = [[0u8; 32]; 3];
        hkdf(&seq(0x40), &seq(0x80), &mut o);
        assert_eq!(
            o,
            [
                hex("c1d38aac9c58d06e6ef12403a56f106f559737a95a6ad0d07afbd2154b5daabe"),
                hex("cf6ed3e1efd252e50141d181905f077ba1d55371e8bd063360e963f7b519843b"),
                hex("133bd1e2d11f61f69c3906cf5078d26fb5a6d8f0be87e646d8c827ebbbef8f04"),
            ]
        );
        // Two outputs with empty ikm (as in Split).
        let mut o = [[0u8; 32]; 2];
        hkdf(&seq(0x40), &[], &mut o);
        assert_eq!(
            o,
            [
                hex("78eea5e4bfedc2e792dc08620303ca6266f1fd18fab37c848ab8e97d65665f68"),
                hex("b458121cc4faa0a6c9552680d783a1f7ccea37e483bf5a88b990f5ebe26057cc"),
            ]
        );
    }

    #[test]
    fn initial_hash_is_the_hashed_protocol_name_then_the_prologue() {
        let s = Symmetric::new(key(0).key());
        // h0 = H(PATTERN) (37 bytes > HASHLEN), h1 = H(h0 || PROLOGUE); ck = h0 before
        // the PSK is mixed in. (Python as above.)
        let h0 = hex("448d6dba5d14c978806065c7be9a40afaed69bbf608d2fdfff2d37588fadeace");
        let h1 = hex("f5c07576d04189d166f392e016f518be1c6890bcac6a512239439fdddf9dc93f");
        assert_eq!(hash(&[PATTERN.as_bytes()]), h0);
        assert_eq!(hash(&[&h0, PROLOGUE]), h1);
        // Then MixKeyAndHash(psk) from ck = h0, h = h1.
        let mut o = [[0u8; 32]; 3];
        hkdf(&h0, &[0; 32], &mut o);
        assert_eq!(s.ck, o[0]);
        assert_eq!(s.h, hash(&[&h1, &o[1]]));
        assert_eq!(s.k, o[2]);
        assert_eq!(s.n, 0);
    }

    #[test]
    fn x25519_rfc7748_section_6_1() {
        let a = Ephemeral::from_secret(&hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let b = Ephemeral::from_secret(&hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            a.public,
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            b.public,
            hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
        let shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        assert_eq!(a.dh(&b.public), Ok(shared));
        assert_eq!(b.dh(&a.public), Ok(shared));
    }

    #[test]
    fn low_order_points_give_auth_errors() {
        let a = Ephemeral::from_secret(&seq(1));
        // u = 0 and u = 1 are of low order: the product is 0 for every secret.
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(a.dh(&[0; 32]), Err(HandshakeError::Auth));
        assert_eq!(a.dh(&one), Err(HandshakeError::Auth));
    }

    #[test]
    fn psk_holder_sending_a_low_order_e_gets_no_answer() {
        // Build an authentic INIT whose `e` is the zero point: reading it costs no DH
        // and succeeds, the answer refuses the all-zero shared secret.
        let k = key(6);
        let mut sym = Symmetric::new(k.key());
        let mut init = [0u8; INIT_LEN];
        init[0] = TYPE_INIT;
        sym.mix_ephemeral(&[0; 32]);
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        payload[..4].copy_from_slice(&5u32.to_le_bytes());
        sym.encrypt_and_hash(&payload, &mut init[4 + DH_LEN..INIT_NOISE_LEN])
            .unwrap();
        with_mac1(&k, &mut init);
        let r = Responder::read(&k, MODE_TUN, &init).unwrap();
        assert_eq!(r.peer_index, 5);
        let mut resp = [0u8; 256];
        assert_eq!(r.answer(6, &mut resp).err(), Some(HandshakeError::Auth));
    }

    #[test]
    fn into_transport_before_finish_fails() {
        let mut init = [0u8; 256];
        let (ini, _) = Initiator::start(&key(1), 1, MODE_TUN, 7, &mut init).unwrap();
        assert!(ini.into_transport().is_err());
    }

    #[test]
    fn seal_refuses_reserved_counter_and_oversize() {
        let k = key(8);
        let mut init = [0u8; 256];
        let (mut ini, n) = Initiator::start(&k, 1, MODE_TUN, 7, &mut init).unwrap();
        let mut resp = [0u8; 256];
        let (_, m, srv) = respond(&k, MODE_TUN, &init[..n], 2, &mut resp).unwrap();
        ini.finish(&resp[..m]).unwrap();
        let cli = ini.into_transport().unwrap();
        let mut wire = vec![0u8; 70_000];
        let mut plain = vec![0u8; 70_000];
        assert!(seal(&cli, 2, u64::MAX, &[1, 2, 3], &mut wire).is_none());
        assert!(seal(&cli, 2, 0, &plain[..MAX_NOISE_MSG - TAG_LEN + 1], &mut wire).is_none());
        let w = seal(&cli, 2, 0, &plain[..MAX_NOISE_MSG - TAG_LEN], &mut wire).unwrap();
        let msg = wire[..w].to_vec();
        assert_eq!(
            open(&srv, 0, &msg, &mut plain),
            Some(MAX_NOISE_MSG - TAG_LEN)
        );
        assert!(open(&srv, u64::MAX, &msg, &mut plain).is_none());
        // Wrong counter (nonce) fails.
        assert!(open(&srv, 1, &msg, &mut plain).is_none());
    }

    // ---- Interoperability with snow (the implementation this one replaced) --------

    fn snow_builder(psk: &HandshakeKey) -> snow::Builder<'_> {
        snow::Builder::new(PATTERN.parse().unwrap())
            .psk(0, psk.key().as_bytes())
            .unwrap()
            .prologue(PROLOGUE)
            .unwrap()
    }

    /// A DATA message around a body written by snow.
    fn snow_data(
        t: &snow::StatelessTransportState,
        receiver: u32,
        counter: u64,
        pkt: &[u8],
    ) -> Vec<u8> {
        let mut m = vec![0u8; DATA_OVERHEAD + pkt.len()];
        m[0] = TYPE_DATA;
        m[4..8].copy_from_slice(&receiver.to_le_bytes());
        m[8..16].copy_from_slice(&counter.to_le_bytes());
        let n = t
            .write_message(counter, pkt, &mut m[DATA_HEADER_LEN..])
            .unwrap();
        assert_eq!(n, pkt.len() + TAG_LEN);
        m
    }

    /// Transport keys agree both ways between ours and snow's.
    fn check_transport(ours: &Transport, theirs: &snow::StatelessTransportState) {
        let pkt: Vec<u8> = (0..1400u32).map(|i| (i * 7) as u8).collect();
        let mut wire = [0u8; 2048];
        let mut plain = [0u8; 2048];
        for (counter, len) in [(0u64, 0usize), (1, 1), (77, 100), (1 << 40, 1400)] {
            let w = seal(ours, 3, counter, &pkt[..len], &mut wire).unwrap();
            let n = theirs
                .read_message(counter, &wire[DATA_HEADER_LEN..w], &mut plain)
                .unwrap();
            assert_eq!(&plain[..n], &pkt[..len]);
            let m = snow_data(theirs, 3, counter, &pkt[..len]);
            assert_eq!(open(ours, counter, &m, &mut plain), Some(len));
            assert_eq!(&plain[..len], &pkt[..len]);
        }
    }

    #[test]
    fn our_initiator_with_a_snow_responder() {
        let k = key(9);
        let mut init = [0u8; 256];
        let (mut ini, n) =
            Initiator::start(&k, 0x1234_5678, MODE_TAP, 0x0a0b_0c0d_0e0f_1011, &mut init).unwrap();
        assert_eq!(n, INIT_LEN);
        let mut hs = snow_builder(&k).build_responder().unwrap();
        let mut payload = [0u8; 64];
        // The Noise message is exactly what snow reads; mac1 follows it.
        let p = hs
            .read_message(&init[4..INIT_NOISE_LEN], &mut payload)
            .unwrap();
        assert_eq!(p, INIT_PAYLOAD_LEN);
        assert_eq!(&payload[..4], &0x1234_5678u32.to_le_bytes());
        assert_eq!(payload[4], MODE_TAP);
        assert_eq!(&payload[5..13], &0x0a0b_0c0d_0e0f_1011u64.to_le_bytes());

        let mut resp = [0u8; RESP_LEN];
        resp[0] = TYPE_RESP;
        resp[4..8].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        let m = hs
            .write_message(&0x9abc_def0u32.to_le_bytes(), &mut resp[8..])
            .unwrap();
        assert_eq!(8 + m, RESP_LEN);
        assert_eq!(ini.finish(&resp), Ok(0x9abc_def0));
        let ours = ini.into_transport().unwrap();
        let theirs = hs.into_stateless_transport_mode().unwrap();
        check_transport(&ours, &theirs);
    }

    #[test]
    fn snow_initiator_with_our_responder() {
        let k = key(10);
        let mut hs = snow_builder(&k).build_initiator().unwrap();
        let mut init = [0u8; INIT_LEN];
        init[0] = TYPE_INIT;
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        payload[..4].copy_from_slice(&0x55u32.to_le_bytes());
        payload[4] = MODE_TUN;
        payload[5..].copy_from_slice(&42u64.to_le_bytes());
        let n = hs
            .write_message(&payload, &mut init[4..INIT_NOISE_LEN])
            .unwrap();
        assert_eq!(4 + n, INIT_NOISE_LEN);
        // Without mac1 a server drops it; with it, it is read as snow wrote it.
        assert_eq!(
            Responder::read(&k, MODE_TUN, &init).err(),
            Some(HandshakeError::Auth)
        );
        with_mac1(&k, &mut init);

        let r = Responder::read(&k, MODE_TUN, &init).unwrap();
        assert_eq!((r.peer_index, r.timestamp), (0x55, 42));
        let mut resp = [0u8; 256];
        let (m, ours) = r.answer(0x66, &mut resp).unwrap();
        assert_eq!(Initiator::resp_receiver(&resp[..m]), Some(0x55));
        let mut got = [0u8; 64];
        let p = hs.read_message(&resp[8..m], &mut got).unwrap();
        assert_eq!(&got[..p], &0x66u32.to_le_bytes());
        let theirs = hs.into_stateless_transport_mode().unwrap();
        check_transport(&ours, &theirs);
    }

    #[test]
    fn wrong_psk_fails_against_snow_both_ways() {
        // Ours initiates, snow (other key) responds.
        let mut init = [0u8; 256];
        let (_ini, n) = Initiator::start(&key(1), 1, MODE_TUN, 7, &mut init).unwrap();
        let mut hs = snow_builder(&key(2)).build_responder().unwrap();
        let mut payload = [0u8; 64];
        assert!(hs
            .read_message(&init[4..n - MAC1_LEN], &mut payload)
            .is_err());
        // Snow initiates, ours (other key) responds.
        let mut hs = snow_builder(&key(1)).build_initiator().unwrap();
        let mut init = [0u8; INIT_LEN];
        init[0] = TYPE_INIT;
        hs.write_message(&[0; INIT_PAYLOAD_LEN], &mut init[4..INIT_NOISE_LEN])
            .unwrap();
        with_mac1(&key(1), &mut init);
        assert!(Responder::read(&key(1), MODE_TUN, &init).is_ok());
        assert_eq!(
            Responder::read(&key(2), MODE_TUN, &init).err(),
            Some(HandshakeError::Auth)
        );
        // Even with the mac1 of the other key, the Noise part does not verify.
        with_mac1(&key(2), &mut init);
        assert_eq!(
            Responder::read(&key(2), MODE_TUN, &init).err(),
            Some(HandshakeError::Auth)
        );
    }

    #[test]
    fn same_ephemeral_keys_give_the_same_bytes_as_snow() {
        let k = key(11);
        let (ei, er) = (seq(0x10), seq(0x90));
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        payload[..4].copy_from_slice(&7u32.to_le_bytes());
        payload[4] = MODE_TUN;
        payload[5..].copy_from_slice(&99u64.to_le_bytes());

        // snow <-> snow
        let mut si = snow_builder(&k)
            .fixed_ephemeral_key_for_testing_only(&ei)
            .build_initiator()
            .unwrap();
        let mut sr = snow_builder(&k)
            .fixed_ephemeral_key_for_testing_only(&er)
            .build_responder()
            .unwrap();
        let mut snow_init = [0u8; INIT_LEN];
        snow_init[0] = TYPE_INIT;
        si.write_message(&payload, &mut snow_init[4..INIT_NOISE_LEN])
            .unwrap();
        let mut scratch = [0u8; 64];
        sr.read_message(&snow_init[4..INIT_NOISE_LEN], &mut scratch)
            .unwrap();
        with_mac1(&k, &mut snow_init);
        let mut snow_resp = [0u8; RESP_LEN];
        snow_resp[0] = TYPE_RESP;
        snow_resp[4..8].copy_from_slice(&7u32.to_le_bytes());
        sr.write_message(&8u32.to_le_bytes(), &mut snow_resp[8..])
            .unwrap();
        si.read_message(&snow_resp[8..], &mut scratch).unwrap();

        // ours <-> ours with the same ephemeral secrets
        let mut init = [0u8; INIT_LEN];
        let (mut ini, _) =
            Initiator::start_with(&k, Ephemeral::from_secret(&ei), 7, MODE_TUN, 99, &mut init)
                .unwrap();
        assert_eq!(init, snow_init);
        let r = Responder::read(&k, MODE_TUN, &init).unwrap();
        let mut resp = [0u8; RESP_LEN];
        let (_, srv) = r
            .answer_with(Ephemeral::from_secret(&er), 8, &mut resp)
            .unwrap();
        assert_eq!(resp, snow_resp);
        assert_eq!(ini.finish(&resp), Ok(8));
        assert_eq!(&ini.sym.h[..], si.get_handshake_hash());
        assert_eq!(&ini.sym.h[..], sr.get_handshake_hash());
        let cli = ini.into_transport().unwrap();
        let (si, sr) = (
            si.into_stateless_transport_mode().unwrap(),
            sr.into_stateless_transport_mode().unwrap(),
        );
        check_transport(&cli, &sr);
        check_transport(&srv, &si);
        // Same sending key as snow's on each side: identical DATA messages.
        let mut wire = [0u8; 128];
        let w = seal(&cli, 8, 5, b"same bytes", &mut wire).unwrap();
        assert_eq!(&wire[..w], &snow_data(&si, 8, 5, b"same bytes")[..]);
        let w = seal(&srv, 7, 6, b"other way", &mut wire).unwrap();
        assert_eq!(&wire[..w], &snow_data(&sr, 7, 6, b"other way")[..]);
    }
}
