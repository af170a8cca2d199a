//! The shared tunnel key: 32 random bytes, the Noise pre-shared key.
//!
//! File format written by `tunbox genkey`: optional `#` comment lines and one line of 64
//! hex digits. A WireGuard-style base64 key (44 characters, e.g. from `wg genkey`) is
//! accepted too. Parsing only; reading and writing the file is done by the caller.
use core::fmt;
use zeroize::{Zeroize, Zeroizing};

pub const KEY_LEN: usize = 32;
const FILE_COMMENT: &[u8] = b"# tunbox tunnel key: copy this file to both ends, keep it secret\n";
/// Length of the key file text [`Key::file_text`] makes.
pub const FILE_TEXT_LEN: usize = FILE_COMMENT.len() + 2 * KEY_LEN + 1;

/// The secret. Wiped from memory on drop; `Debug` does not print it; compared in
/// constant time. The bytes live on the heap, in one place for the key's whole life:
/// moving a `Key` (into the tunnel, its handshake state, a thread) moves a pointer and
/// leaves no copy of the secret behind.
#[derive(Clone)]
pub struct Key(Box<[u8; KEY_LEN]>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0[..], &other.0[..])
    }
}

impl Eq for Key {}

/// Equality of two byte strings in time independent of their contents (for keys,
/// MACs and tags; the lengths are not secret and may end it early).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl Key {
    /// A key from bytes the caller holds (and wipes: this copies them).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut k = Self::zeroed();
        *k.0 = bytes;
        k
    }

    fn zeroed() -> Self {
        Key(Box::new([0u8; KEY_LEN]))
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A fresh random key from the operating system's CSPRNG (getrandom(2)).
    pub fn generate() -> Result<Self, KeyError> {
        // Straight into the key (wiped on drop, also on the error paths).
        let mut k = Self::zeroed();
        getrandom::fill(&mut k.0[..]).map_err(|_| KeyError::Random)?;
        if k.0.iter().all(|b| *b == 0) {
            return Err(KeyError::Random);
        }
        Ok(k)
    }

    /// The text of a key file for this key (comment line + 64 hex digits + newline),
    /// in a buffer that is wiped when dropped.
    pub fn file_text(&self) -> Zeroizing<[u8; FILE_TEXT_LEN]> {
        let mut t = Zeroizing::new([0u8; FILE_TEXT_LEN]);
        let c = FILE_COMMENT.len();
        t[..c].copy_from_slice(FILE_COMMENT);
        for (i, b) in self.0.iter().enumerate() {
            t[c + 2 * i] = HEX[(b >> 4) as usize];
            t[c + 2 * i + 1] = HEX[(b & 15) as usize];
        }
        t[FILE_TEXT_LEN - 1] = b'\n';
        t
    }

    /// Parse the contents of a key file.
    pub fn parse(text: &[u8]) -> Result<Self, KeyError> {
        let text = core::str::from_utf8(text).map_err(|_| KeyError::NotText)?;
        // Decoded straight into the key (wiped on drop, also on the error paths), no
        // intermediate copies of the secret on the stack.
        let mut key = Self::zeroed();
        let mut found = false;
        for (i, line) in text.lines().enumerate() {
            let (line_no, k) = (i + 1, line.trim());
            if k.is_empty() || k.starts_with('#') {
                continue;
            }
            if found {
                return Err(KeyError::ExtraLine { line: line_no });
            }
            let bad = KeyError::BadFormat {
                line: line_no,
                len: k.chars().count(),
            };
            let ok = match k.len() {
                64 => decode_hex(k, &mut key.0),
                44 => decode_base64(k, &mut key.0),
                _ => false,
            };
            if !ok {
                return Err(bad);
            }
            found = true;
        }
        if !found {
            return Err(KeyError::Empty);
        }
        if key.0.iter().all(|b| *b == 0) {
            return Err(KeyError::AllZero);
        }
        Ok(key)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn decode_hex(s: &str, out: &mut [u8; KEY_LEN]) -> bool {
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    for (i, o) in out.iter_mut().enumerate() {
        match (nib(s[2 * i]), nib(s[2 * i + 1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return false,
        }
    }
    true
}

fn decode_base64(s: &str, out: &mut [u8; KEY_LEN]) -> bool {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    // 32 bytes = 43 characters of data + one '=' of padding.
    let s = s.as_bytes();
    if s[43] != b'=' {
        return false;
    }
    // The accumulator holds key bits: wiped when done.
    let mut acc = Zeroizing::new(0u32);
    let mut bits = 0;
    let mut n = 0;
    for &c in &s[..43] {
        let Some(v) = val(c) else {
            return false;
        };
        *acc = (*acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if n < KEY_LEN {
                out[n] = (*acc >> bits) as u8;
            }
            n += 1;
            *acc &= (1 << bits) - 1;
        }
    }
    // 43*6 = 258 bits = 32 bytes + 2 leftover bits that must be zero (canonical form).
    n == KEY_LEN && *acc == 0
}

/// What is wrong with a key file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    NotText,
    Empty,
    ExtraLine { line: usize },
    BadFormat { line: usize, len: usize },
    AllZero,
    Random,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotText => write!(f, "not a text file; expected 64 hex digits (make one with `tunbox genkey PATH`)"),
            Self::Empty => write!(f, "no key in the file; expected a line of 64 hex digits (make one with `tunbox genkey PATH`)"),
            Self::ExtraLine { line } => write!(f, "line {line}: more than one key line; the file must hold exactly one key"),
            Self::BadFormat { line, len } => write!(
                f,
                "line {line}: expected 64 hex digits (or a 44-character base64 key), found {len} characters that are not a key"
            ),
            Self::AllZero => write!(f, "the key is all zeros; make a real one with `tunbox genkey PATH`"),
            Self::Random => write!(f, "the system random number generator failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_format_parse_round_trip() {
        let k = Key::generate().unwrap();
        let text = k.file_text();
        assert!(text.starts_with(b"#"));
        assert_eq!(text.len(), FILE_TEXT_LEN);
        assert_eq!(text[FILE_TEXT_LEN - 1], b'\n');
        assert_eq!(Key::parse(&text[..]).unwrap(), k);
        assert_ne!(Key::generate().unwrap(), k);
    }

    #[test]
    fn secrets_are_held_in_wiping_buffers() {
        let k = Key::from_bytes([0xab; KEY_LEN]);
        // The file text is a `Zeroizing` buffer (wiped on drop), not a `String`.
        let text: Zeroizing<[u8; FILE_TEXT_LEN]> = k.file_text();
        assert!(text.ends_with(b"abababab\n"));
        // Decoding fails cleanly at any position (it writes straight into the key).
        let good = "ab".repeat(32);
        for i in [0, 31, 63] {
            let mut bad = good.clone().into_bytes();
            bad[i] = b'g';
            assert!(matches!(
                Key::parse(&bad),
                Err(KeyError::BadFormat { line: 1, len: 64 })
            ));
        }
        let mut b64 = *b"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
        b64[40] = b'*';
        assert!(matches!(
            Key::parse(&b64),
            Err(KeyError::BadFormat { line: 1, len: 44 })
        ));
    }

    #[test]
    fn hex_upper_and_whitespace() {
        let hex = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
        let k = Key::parse(format!("\n  {hex}  \r\n\n").as_bytes()).unwrap();
        assert_eq!(k.as_bytes()[1], 0x11);
        assert_eq!(k.as_bytes()[31], 0xff);
    }

    #[test]
    fn base64_wireguard_style() {
        // 32 bytes 0x01..=0x20 in standard base64.
        let b64 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
        let k = Key::parse(b64.as_bytes()).unwrap();
        let want: Vec<u8> = (1..=32).collect();
        assert_eq!(&k.as_bytes()[..], &want[..]);
        // Non-canonical trailing bits are refused.
        assert!(Key::parse(b"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyB=").is_err());
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(Key::parse(b""), Err(KeyError::Empty));
        assert_eq!(Key::parse(b"# only a comment\n"), Err(KeyError::Empty));
        assert_eq!(Key::parse(&[0xff, 0xfe]), Err(KeyError::NotText));
        assert_eq!(
            Key::parse(b"abc"),
            Err(KeyError::BadFormat { line: 1, len: 3 })
        );
        let bad = "g".repeat(64);
        assert_eq!(
            Key::parse(bad.as_bytes()),
            Err(KeyError::BadFormat { line: 1, len: 64 })
        );
        let zero = "0".repeat(64);
        assert_eq!(Key::parse(zero.as_bytes()), Err(KeyError::AllZero));
        let one = "1".repeat(64);
        assert_eq!(
            Key::parse(format!("{one}\n{one}\n").as_bytes()),
            Err(KeyError::ExtraLine { line: 2 })
        );
        // Multi-byte UTF-8 of the right byte length must not panic.
        let weird = "é".repeat(32);
        assert!(Key::parse(weird.as_bytes()).is_err());
        let weird44 = "é".repeat(22);
        assert!(Key::parse(weird44.as_bytes()).is_err());
        assert!(KeyError::Empty.to_string().contains("tunbox genkey"));
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = Key::from_bytes([0xAB; 32]);
        assert_eq!(format!("{k:?}"), "Key(..)");
    }

    #[test]
    fn equality_is_by_value_in_constant_time() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
        let a = Key::from_bytes([1; KEY_LEN]);
        let mut other = [1; KEY_LEN];
        assert!(a == Key::from_bytes(other));
        other[KEY_LEN - 1] = 2;
        assert!(a != Key::from_bytes(other));
        // A moved key keeps its bytes in the same heap place (no copy left behind).
        let at = a.as_bytes().as_ptr();
        let moved = Box::new(a);
        assert_eq!(moved.as_bytes().as_ptr(), at);
    }
}
