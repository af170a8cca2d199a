//! Key file I/O for the tunnel: `tunbox genkey PATH` and loading `--key-file`.
//! The format itself is parsed in [`crate::tunnel::key`].
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::tunnel::{Key, KeyError};

/// Key files are tiny; anything bigger is the wrong file.
const MAX_KEY_FILE: u64 = 4096;

#[derive(Debug)]
pub enum KeyFileError {
    Exists(PathBuf),
    Io {
        path: PathBuf,
        op: &'static str,
        err: io::Error,
    },
    TooBig {
        path: PathBuf,
        len: u64,
    },
    Format {
        path: PathBuf,
        err: KeyError,
    },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists(p) => write!(
                f,
                "{}: already exists; refusing to overwrite a key (remove it first if you really mean to replace it, then copy the new file to the other end too)",
                p.display()
            ),
            Self::Io { path, op, err } => {
                write!(f, "key file {}: cannot {op}: {err}", path.display())?;
                match err.kind() {
                    io::ErrorKind::NotFound if *op == "read" => {
                        write!(f, " (make one with `tunbox genkey {}` and copy it to both ends)", path.display())
                    }
                    io::ErrorKind::NotFound => write!(f, " (does the directory exist?)"),
                    io::ErrorKind::PermissionDenied => write!(f, " (run as root or fix the file's owner)"),
                    _ => Ok(()),
                }
            }
            Self::TooBig { path, len } => {
                write!(f, "key file {}: {len} bytes is too big to be a key file (expected one line of 64 hex digits)", path.display())
            }
            Self::Format { path, err } => write!(f, "key file {}: {err}", path.display()),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// The [`KeyFileError::Io`] of `path` (one copy of its construction for every error
/// site: size).
#[inline(never)]
fn io_error(path: &Path, op: &'static str, err: io::Error) -> KeyFileError {
    KeyFileError::Io {
        path: path.into(),
        op,
        err,
    }
}

/// Write a new random key to `path` with mode 0600. Refuses to overwrite anything.
pub fn genkey(path: &Path) -> Result<(), KeyFileError> {
    let key = Key::generate().map_err(|err| KeyFileError::Format {
        path: path.into(),
        err,
    })?;
    let io_err = |op, err| io_error(path, op, err);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                KeyFileError::Exists(path.into())
            } else {
                io_err("create", e)
            }
        })?;
    // The umask can only remove bits, but be explicit anyway.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io_err("chmod", e))?;
    let text = key.file_text(); // wiped on drop
    f.write_all(&text[..]).map_err(|e| io_err("write", e))?;
    f.sync_all().map_err(|e| io_err("sync", e))?;
    Ok(())
}

/// A loaded key and, if the file is readable by group or others, a warning to log.
pub struct LoadedKey {
    pub key: Key,
    pub warning: Option<String>,
}

/// Read and parse the key file at `path`.
pub fn load(path: &Path) -> Result<LoadedKey, KeyFileError> {
    let io_err = |op, err| io_error(path, op, err);
    let f = fs::File::open(path).map_err(|e| io_err("read", e))?;
    let meta = f.metadata().map_err(|e| io_err("read", e))?;
    if !meta.is_file() {
        return Err(io_err(
            "read",
            crate::io_error(io::ErrorKind::Other, "not a regular file"),
        ));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyFileError::TooBig {
            path: path.into(),
            len: meta.len(),
        });
    }
    // A fixed buffer (no reallocation leaving a copy behind), wiped when dropped on
    // every path: after parsing, and with whatever part was read when a read fails.
    let mut buf = zeroize::Zeroizing::new([0u8; MAX_KEY_FILE as usize + 1]);
    let mut n = 0;
    let mut f = f;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("read", e)),
        }
    }
    if n as u64 > MAX_KEY_FILE {
        return Err(KeyFileError::TooBig {
            path: path.into(),
            len: n as u64,
        });
    }
    let key = Key::parse(&buf[..n]).map_err(|err| KeyFileError::Format {
        path: path.into(),
        err,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    Ok(LoadedKey {
        key,
        warning: mode_warning(path, mode),
    })
}

/// The permissions a key file may have without a warning: 0600, or 0640 with a
/// dedicated group (README: `chgrp tunbox`, `chmod 640`, for a daemon that drops to
/// `--user tunbox`). Anything readable by others, or writable by the group or others,
/// gets one.
fn mode_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o027 != 0).then(|| {
        format!(
            "key file {} is {} (mode {:03o}); run `chmod 600 {}` (or 640 with a group of its \
             own, see README)",
            path.display(),
            if mode & 0o004 != 0 {
                "readable by others"
            } else {
                "writable by its group or others"
            },
            mode,
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tunbox-keyfile-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn genkey_writes_0600_and_refuses_to_overwrite() {
        let d = tmpdir("gen");
        let p = d.join("key");
        genkey(&p).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k1 = load(&p).unwrap();
        assert!(k1.warning.is_none());
        let before = fs::read(&p).unwrap();
        let e = genkey(&p).unwrap_err();
        assert!(matches!(e, KeyFileError::Exists(_)));
        assert!(e.to_string().contains("refusing to overwrite"));
        assert_eq!(fs::read(&p).unwrap(), before, "existing key untouched");
        // A second key is different.
        let p2 = d.join("key2");
        genkey(&p2).unwrap();
        assert_ne!(load(&p2).unwrap().key, k1.key);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn load_errors_name_the_file_and_the_fix() {
        let d = tmpdir("load");
        let missing = d.join("nope");
        let e = load(&missing).err().unwrap().to_string();
        assert!(e.contains("nope") && e.contains("tunbox genkey"), "{e}");

        let bad = d.join("bad");
        fs::write(&bad, "hello\n").unwrap();
        let e = load(&bad).err().unwrap().to_string();
        assert!(
            e.contains("bad") && e.contains("line 1") && e.contains("64 hex"),
            "{e}"
        );

        let big = d.join("big");
        fs::write(&big, vec![b'a'; 5000]).unwrap();
        assert!(matches!(load(&big), Err(KeyFileError::TooBig { .. })));

        assert!(load(&d).is_err(), "a directory is not a key file");

        let open = d.join("open");
        fs::write(&open, "11".repeat(32)).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
        let w = load(&open).unwrap().warning.unwrap();
        assert!(w.contains("chmod 600") && w.contains("644"), "{w}");
        // README's 0640 with a group of its own, and 0600/0400: no warning.
        for ok in [0o640, 0o600, 0o400, 0o440] {
            fs::set_permissions(&open, fs::Permissions::from_mode(ok)).unwrap();
            assert!(load(&open).unwrap().warning.is_none(), "{ok:o}");
        }
        for bad in [0o660, 0o604, 0o620, 0o606] {
            fs::set_permissions(&open, fs::Permissions::from_mode(bad)).unwrap();
            let w = load(&open).unwrap().warning.unwrap();
            assert!(w.contains(&format!("{bad:03o}")), "{w}");
        }

        let e = genkey(&d.join("no/such/dir/key"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does the directory exist"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
