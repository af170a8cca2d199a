//! An exclusive advisory lock on a file (flock), held as long as the value lives.
use std::fs::File;
use std::io;

/// The locked file; dropping it unlocks.
pub struct FileLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// Locks `f` exclusively without waiting: `Err` (EWOULDBLOCK) when another process
/// holds it.
pub fn try_lock_exclusive(f: File) -> io::Result<FileLock> {
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map(FileLock)
        .map_err(|(_, e)| e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let path = std::env::temp_dir().join(format!("tbx-lock-{}", std::process::id()));
        let open = || File::create(&path).unwrap();
        let held = try_lock_exclusive(open()).unwrap();
        let e = try_lock_exclusive(open()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        assert!(try_lock_exclusive(open()).is_ok());
        let _ = std::fs::remove_file(&path);
    }
}
