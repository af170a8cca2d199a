//! poll(2) over a fixed set of descriptors, through nix. Nothing here allocates, so
//! the packet loops build a set on every turn.
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// What to wait for on a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    In,
    Out,
    InOut,
}

impl Want {
    fn flags(self) -> PollFlags {
        match self {
            Want::In => PollFlags::POLLIN,
            Want::Out => PollFlags::POLLOUT,
            Want::InOut => PollFlags::POLLIN | PollFlags::POLLOUT,
        }
    }
}

/// Up to `N` descriptors to wait on; [`PollSet::add`] gives each its slot number.
pub struct PollSet<'fd, const N: usize> {
    fds: heapless::Vec<PollFd<'fd>, N>,
}

/// Which slots of a [`PollSet`] are ready (readable, writable, or hung up / in error,
/// which the next read or write reports).
#[derive(Clone, Copy, Debug)]
pub struct Ready<const N: usize>([bool; N]);

impl<const N: usize> Ready<N> {
    /// Whether slot `i` is ready; `None` (a descriptor not added this turn) never is.
    pub fn is(&self, i: Option<usize>) -> bool {
        i.is_some_and(|i| self.0.get(i).copied().unwrap_or(false))
    }

    /// Whether any slot is ready.
    pub fn any(&self) -> bool {
        self.0.contains(&true)
    }
}

impl<'fd, const N: usize> Default for PollSet<'fd, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'fd, const N: usize> PollSet<'fd, N> {
    pub fn new() -> Self {
        PollSet {
            fds: heapless::Vec::new(),
        }
    }

    /// Adds `fd`; its slot number, or None when the set is full (a caller's bug: the
    /// set is sized for the most descriptors the loop ever has).
    pub fn add(&mut self, fd: BorrowedFd<'fd>, want: Want) -> Option<usize> {
        let i = self.fds.len();
        self.fds.push(PollFd::new(fd, want.flags())).ok()?;
        Some(i)
    }

    /// Waits up to `timeout` (rounded up to whole milliseconds, at most 65 s) for any
    /// descriptor. A signal ends the wait early with nothing ready.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Ready<N>> {
        // whole milliseconds, rounded up, in u64 (u128 division is 2 KB on mips)
        let ms = timeout
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(timeout.subsec_nanos().div_ceil(1_000_000)))
            .min(u64::from(u16::MAX)) as u16;
        let mut ready = [false; N];
        match nix::poll::poll(&mut self.fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => {
                for (r, fd) in ready.iter_mut().zip(self.fds.iter()) {
                    *r = fd.revents().is_some_and(|e| !e.is_empty());
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(Ready(ready))
    }
}

/// Waits up to `timeout` for `fd` alone. A signal counts as "not yet".
pub fn wait_one(fd: BorrowedFd<'_>, want: Want, timeout: Duration) -> io::Result<bool> {
    let mut set = PollSet::<1>::new();
    let i = set.add(fd, want);
    Ok(set.wait(timeout)?.is(i))
}

/// Waits up to `timeout_ms` for `fd` to become readable. EINTR counts as "not yet".
pub fn poll_in(fd: BorrowedFd<'_>, timeout_ms: u16) -> io::Result<bool> {
    wait_one(fd, Want::In, Duration::from_millis(u64::from(timeout_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn slots_report_what_is_ready() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut set = PollSet::<2>::new();
        let rb = set.add(b.as_fd(), Want::In);
        let wa = set.add(a.as_fd(), Want::Out);
        let r = set.wait(Duration::from_millis(100)).unwrap();
        assert!(!r.is(rb) && r.is(wa) && r.any());
        assert!(!r.is(None));
        assert_eq!(set.add(a.as_fd(), Want::In), None, "full");
        drop(set);
        a.write_all(b"x").unwrap();
        assert!(poll_in(b.as_fd(), 100).unwrap());
        let mut set = PollSet::<1>::new();
        let i = set.add(a.as_fd(), Want::In);
        let t = std::time::Instant::now();
        assert!(!set.wait(Duration::from_micros(20_500)).unwrap().is(i));
        assert!(t.elapsed() >= Duration::from_millis(20), "rounded up");
    }
}
