//! ChaCha20-Poly1305 (RFC 8439) for tunbox's tunnel, as two non-generic functions.
//!
//! Why a crate of its own: the AEAD's code is generic (the cipher, the MAC and their SIMD
//! backends are instantiated where they are used), so it is compiled with the optimisation
//! level of the crate that calls it. tunbox is built for size (`opt-level = "z"`), which
//! left ChaCha20's AVX2 helpers and intrinsics as out-of-line calls: 1.5 Gbit/s seal+open
//! of 1400-byte packets on x86_64. Instantiated here, and this crate built at opt-level 3
//! (the workspace's `[profile.release.package]`), it does 2.35-2.5 Gbit/s while the rest of
//! the binary stays small; every use in tunbox (data packets and the handshake) goes
//! through these two functions, so there is one copy.
//!
//! The AEAD is composed here from the `chacha20` and `poly1305` crates exactly as RFC 8439
//! section 2.8 and the `chacha20poly1305` crate do it (block 0 of the keystream keys
//! Poly1305, the text is XORed with blocks 1.., the MAC covers the padded AAD, the padded
//! ciphertext and both lengths), with one difference in how: the keystream is written in
//! runs of four blocks (the SIMD backends' batch) and XORed into the text 8 bytes at a time
//! here. The crates XOR byte by byte and leave widening that loop to LLVM's vectorizer,
//! which the release build never runs on it: with fat LTO the dependencies are compiled
//! for the LTO link, where loop vectorization is left to the link's own pass pipeline, and
//! that runs at the binary's opt-level "z", which has none. In `perf`, 4 x 64 single-byte
//! XOR loops per 256-byte batch. Seal+open on one x86_64 core (tests/cipher_speed.rs):
//! 1400-byte packets 2,337 -> 3,070 Mbit/s, 64-byte 747 -> 867 (the same as with LTO off
//! or the whole binary at opt-level 3); 208 bytes smaller on mipsel.
#![no_std]

use chacha20::cipher::consts::U10;
use chacha20::cipher::{Block, KeyIvInit, StreamCipherCore};
use chacha20::ChaChaCore;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use zeroize::Zeroize;

/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;

/// ChaCha20: 20 rounds.
type Core = ChaChaCore<U10>;

/// Bytes in a ChaCha20 block.
const BLOCK: usize = 64;

/// Blocks of keystream written at a time: the AVX2 and NEON backends make four at once.
const RUN: usize = 4;

/// Blocks the 32-bit block counter allows after block 0 (RFC 8439's limit on the text).
const MAX_BLOCKS: usize = u32::MAX as usize;

/// The key of one ChaCha20-Poly1305 cipher (wiped on drop).
pub struct Cipher {
    key: [u8; 32],
}

impl Drop for Cipher {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher { key: *key }
    }

    /// ChaCha20 at block 1 for `nonce`, and Poly1305 keyed by block 0, fed `aad`.
    fn start(&self, nonce: &[u8; 12], aad: &[u8]) -> (Core, Poly1305) {
        let mut core = Core::new(&self.key.into(), nonce.into());
        let mut block0 = Block::<Core>::default();
        core.write_keystream_block(&mut block0);
        let mut mac = Poly1305::new(poly1305::Key::from_slice(&block0[..32]));
        block0.as_mut_slice().zeroize();
        mac.update_padded(aad);
        (core, mac)
    }

    /// Encrypts `text` in place and returns the tag over `aad` and the ciphertext; `None`
    /// when `text` is longer than one nonce may cover (256 GiB).
    #[inline(never)]
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], text: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        if text.len() / BLOCK >= MAX_BLOCKS {
            return None;
        }
        let (mut core, mut mac) = self.start(nonce, aad);
        apply_keystream(&mut core, text);
        mac_text(&mut mac, aad, text);
        Some(mac.finalize().into())
    }

    /// Verifies `tag` over `aad` and `text`, then decrypts `text` in place; `false` (and
    /// `text` unchanged) when the tag does not verify.
    #[inline(never)]
    pub fn open(&self, nonce: &[u8; 12], aad: &[u8], text: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        if text.len() / BLOCK >= MAX_BLOCKS {
            return false;
        }
        let (mut core, mut mac) = self.start(nonce, aad);
        mac_text(&mut mac, aad, text);
        // a constant-time comparison (subtle, inside `verify`)
        if mac.verify(tag.into()).is_err() {
            return false;
        }
        apply_keystream(&mut core, text);
        true
    }
}

/// Feeds Poly1305 the padded ciphertext, then its last block: the lengths of the AAD and
/// the text, little-endian.
fn mac_text(mac: &mut Poly1305, aad: &[u8], text: &[u8]) {
    mac.update_padded(text);
    let mut block = poly1305::Block::default();
    block[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    block[8..].copy_from_slice(&(text.len() as u64).to_le_bytes());
    mac.update(&[block]);
}

/// XORs the keystream into `text`, `RUN` blocks at a time.
fn apply_keystream(core: &mut Core, text: &mut [u8]) {
    let mut ks = [Block::<Core>::default(); RUN];
    for chunk in text.chunks_mut(RUN * BLOCK) {
        let blocks = chunk.len().div_ceil(BLOCK);
        core.write_keystream_blocks(&mut ks[..blocks]);
        for (part, block) in chunk.chunks_mut(BLOCK).zip(&ks) {
            xor(part, block);
        }
    }
    for block in ks.iter_mut() {
        block.as_mut_slice().zeroize();
    }
}

/// `part ^= key[..part.len()]`, 8 bytes at a time.
#[inline(always)]
fn xor(part: &mut [u8], key: &[u8]) {
    let key = &key[..part.len()];
    let mut words = part.chunks_exact_mut(8);
    let mut keys = key.chunks_exact(8);
    for (w, k) in (&mut words).zip(&mut keys) {
        let x = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])
            ^ u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]);
        w.copy_from_slice(&x.to_ne_bytes());
    }
    for (b, k) in words.into_remainder().iter_mut().zip(keys.remainder()) {
        *b ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 section 2.8.2.
    #[test]
    fn rfc8439_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut text = *plain;
        let c = Cipher::new(&key);
        let tag = c.seal(&nonce, &aad, &mut text).unwrap();
        assert_eq!(&text[..4], &[0xd3, 0x1a, 0x8d, 0x34]);
        assert_eq!(
            tag,
            [
                0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60,
                0x06, 0x91
            ]
        );
        let mut bad = tag;
        bad[0] ^= 1;
        let sealed = text;
        assert!(!c.open(&nonce, &aad, &mut text, &bad));
        assert_eq!(text, sealed, "a failed open leaves the text as it was");
        assert!(c.open(&nonce, &aad, &mut text, &tag));
        assert_eq!(&text, plain);
    }

    /// The same ciphertext and tag as the `chacha20poly1305` crate for every text length up
    /// to five 4-block runs and beyond (each boundary of the 64-byte block, the 256-byte
    /// run and the 8-byte XOR word), with AADs of several lengths; every one opens again,
    /// and any flipped bit of the tag, the text or the AAD is refused with the text unchanged.
    #[test]
    fn same_as_the_chacha20poly1305_crate() {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        use chacha20poly1305::ChaCha20Poly1305;
        let mut seed = 0x9e37_79b9u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        };
        let mut buf = [0u8; 1400];
        let mut refbuf = [0u8; 1400];
        let lengths = (0..=300).chain([
            511, 512, 513, 1023, 1024, 1025, 1279, 1280, 1281, 1399, 1400,
        ]);
        for (i, len) in lengths.enumerate() {
            let key: [u8; 32] = core::array::from_fn(|_| next());
            let nonce: [u8; 12] = core::array::from_fn(|_| next());
            let aad_all: [u8; 40] = core::array::from_fn(|_| next());
            let aad = &aad_all[..[0, 1, 13, 16, 17, 32, 40][i % 7]];
            for b in buf[..len].iter_mut() {
                *b = next();
            }
            let plain = buf;
            refbuf[..len].copy_from_slice(&buf[..len]);
            let ours = Cipher::new(&key);
            let theirs = ChaCha20Poly1305::new((&key).into());
            let tag = ours.seal(&nonce, aad, &mut buf[..len]).unwrap();
            let ref_tag = theirs
                .encrypt_in_place_detached((&nonce).into(), aad, &mut refbuf[..len])
                .unwrap();
            assert_eq!(buf[..len], refbuf[..len], "ciphertext, length {len}");
            assert_eq!(tag[..], ref_tag[..], "tag, length {len}");
            let sealed = buf;
            let mut bad = tag;
            bad[len % TAG_LEN] ^= 1 << (len % 8);
            assert!(
                !ours.open(&nonce, aad, &mut buf[..len], &bad),
                "forged tag, length {len}"
            );
            assert_eq!(buf[..len], sealed[..len]);
            if len > 0 {
                buf[len / 2] ^= 0x80;
                assert!(
                    !ours.open(&nonce, aad, &mut buf[..len], &tag),
                    "flipped bit, {len}"
                );
                buf[len / 2] ^= 0x80;
                assert_eq!(buf[..len], sealed[..len]);
            }
            if !aad.is_empty() {
                let mut aad2 = aad_all;
                aad2[0] ^= 1;
                let aad2 = &aad2[..aad.len()];
                assert!(
                    !ours.open(&nonce, aad2, &mut buf[..len], &tag),
                    "aad, {len}"
                );
            }
            assert!(
                ours.open(&nonce, aad, &mut buf[..len], &tag),
                "length {len}"
            );
            assert_eq!(buf[..len], plain[..len], "opened, length {len}");
        }
    }
}
