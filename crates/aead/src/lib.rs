//! ChaCha20-Poly1305 (RFC 8439) for tunbox's tunnel, as two non-generic functions.
//!
//! Why a crate of its own: the AEAD's code is generic (the cipher, the MAC and their SIMD
//! backends are instantiated where they are used), so it is compiled with the optimisation
//! level of the crate that calls it. tunbox is built for size (`opt-level = "z"`), which
//! left ChaCha20's AVX2 helpers and intrinsics as out-of-line calls: 1.5 Gbit/s seal+open
//! of 1400-byte packets on x86_64. Instantiated here, and this crate built at opt-level 3
//! (the workspace's `[profile.release.package]`), it does 2.35-2.5 Gbit/s while the rest of
//! the binary stays small (3.4 with everything at opt-level 3); every use in tunbox
//! (data packets and the handshake) goes through these two functions, so there is one copy.
#![no_std]

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

/// Length of the authentication tag.
pub const TAG_LEN: usize = 16;

/// The ChaCha20-Poly1305 key schedule of one key (the key is wiped on drop).
pub struct Cipher(ChaCha20Poly1305);

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher(ChaCha20Poly1305::new(Key::from_slice(key)))
    }

    /// Encrypts `text` in place and returns the tag over `aad` and the ciphertext.
    #[inline(never)]
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], text: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        self.0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, text)
            .ok()
            .map(Into::into)
    }

    /// Verifies `tag` over `aad` and `text`, then decrypts `text` in place; `false` (and
    /// `text` unchanged) when the tag does not verify.
    #[inline(never)]
    pub fn open(&self, nonce: &[u8; 12], aad: &[u8], text: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, text, Tag::from_slice(tag))
            .is_ok()
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
}
