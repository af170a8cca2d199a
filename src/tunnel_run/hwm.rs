//! The server's high-water mark of client handshake timestamps, kept across restarts
//! in `/var/run/tunbox/tunnel-KEYNAME.hwm` (KEYNAME: `HandshakeKey::fingerprint` in
//! hex, so servers with different keys never share a file). Without it a restarted
//! server answered initiations recorded before the restart.
//!
//! The file is opened (created, mode 0600, never through a symlink) before privileges
//! are dropped and stays open; the loop rewrites its one fixed-size record in place at
//! its next turn after an answered initiation moved the mark (the client's
//! confirmation follows at once; a crash in between forgets that one mark). It
//! lives under /var/run, a tmpfs: a reboot forgets it, and then the server behaves as
//! before (a recording is answered at most once per `--timeout`, yields no keys, and
//! cannot replace a live session; see `Tunnel::on_init`).
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where the file lives; a test build (`--features test-hooks`) takes
/// `TUNBOX_TEST_RUN_DIR` instead, so tests do not share /var/run/tunbox.
pub fn run_dir() -> PathBuf {
    #[cfg(feature = "test-hooks")]
    if let Some(d) = std::env::var_os("TUNBOX_TEST_RUN_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from("/var/run/tunbox")
}

const MAGIC: &[u8] = b"tunbox-hwm 1 ";
/// `tunbox-hwm 1 ` + 20 decimal digits + newline.
const RECORD_LEN: usize = MAGIC.len() + 20 + 1;

/// The open file and the mark last written.
pub struct HwmFile {
    file: File,
    path: PathBuf,
    written: Option<u64>,
    failed: bool,
}

fn record(ts: u64) -> [u8; RECORD_LEN] {
    let mut r = [b'0'; RECORD_LEN];
    r[..MAGIC.len()].copy_from_slice(MAGIC);
    let mut v = ts;
    for i in (MAGIC.len()..MAGIC.len() + 20).rev() {
        r[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    r[RECORD_LEN - 1] = b'\n';
    r
}

fn parse(r: &[u8]) -> Option<u64> {
    let digits = r.strip_prefix(MAGIC)?.strip_suffix(b"\n")?;
    if digits.len() != 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl HwmFile {
    /// Opens (creating) the file of the key named `fingerprint` in `dir`; returns it
    /// with the mark it holds.
    pub fn open(dir: &Path, fingerprint: [u8; 8]) -> io::Result<(HwmFile, Option<u64>)> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        let mut name = String::from("tunnel-");
        for b in fingerprint {
            name.push_str(&format!("{b:02x}"));
        }
        name.push_str(".hwm");
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        let mut buf = [0u8; RECORD_LEN + 1];
        let n = file.read_at(&mut buf, 0)?;
        let mark = parse(&buf[..n]);
        Ok((
            HwmFile {
                file,
                path,
                written: mark,
                failed: false,
            },
            mark,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `mark` if it moved. Allocates nothing. An error is returned once (for
    /// the log), then writing is given up.
    pub fn save(&mut self, mark: Option<u64>) -> io::Result<()> {
        let Some(ts) = mark else {
            return Ok(());
        };
        if self.failed || self.written.is_some_and(|w| w >= ts) {
            return Ok(());
        }
        let r = self.file.write_all_at(&record(ts), 0);
        match r {
            Ok(()) => {
                self.written = Some(ts);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::noise::HandshakeKey;
    use crate::tunnel::Key;

    #[test]
    fn mark_survives_a_reopen_and_only_grows() {
        let dir = std::env::temp_dir().join(format!("tbx-hwm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let k = HandshakeKey::new(Key::from_bytes([5; 32])).fingerprint();
        let (mut f, m) = HwmFile::open(&dir, k).unwrap();
        assert_eq!(m, None);
        f.save(Some(1_700_000_000_123_456_789)).unwrap();
        f.save(Some(5)).unwrap(); // older: not written
        let (_f2, m) = HwmFile::open(&dir, k).unwrap();
        assert_eq!(m, Some(1_700_000_000_123_456_789));
        // Another key has a file of its own.
        let other = HandshakeKey::new(Key::from_bytes([6; 32])).fingerprint();
        let (_f3, m) = HwmFile::open(&dir, other).unwrap();
        assert_eq!(m, None);
        // A garbled file reads as no mark, and is overwritten.
        std::fs::write(f.path(), "junk").unwrap();
        let (mut f4, m) = HwmFile::open(&dir, k).unwrap();
        assert_eq!(m, None);
        f4.save(Some(u64::MAX)).unwrap();
        assert_eq!(HwmFile::open(&dir, k).unwrap().1, Some(u64::MAX));
        // Never through a symlink.
        let target = dir.join("target");
        std::fs::write(&target, "x").unwrap();
        let link_dir = dir.join("links");
        std::fs::create_dir_all(&link_dir).unwrap();
        let name = f.path().file_name().unwrap().to_owned();
        std::os::unix::fs::symlink(&target, link_dir.join(name)).unwrap();
        assert!(HwmFile::open(&link_dir, k).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn record_format() {
        assert_eq!(&record(42)[..], b"tunbox-hwm 1 00000000000000000042\n");
        assert_eq!(parse(&record(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse(b"tunbox-hwm 1 42\n"), None);
    }
}
