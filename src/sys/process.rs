//! Helper processes (the self-test's reflector and echo server) and the throwaway
//! network namespace they run in.
//!
//! Children are forked, not threads: std's thread machinery (pthread_create, spawn
//! hooks, join packets) was about 8 KB of a router binary that has no other use for
//! threads. A child reports through a pipe and stops when the parent closes its end of
//! another one, which also happens when the parent dies, so a child never outlives
//! its parent's interest in it.
use super::SysError;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

/// A forked helper process.
pub struct Child {
    pid: Pid,
    report: File,
    stop: Option<OwnedFd>,
}

/// The child's end: where it reports, and how it learns it should stop.
pub struct ChildSide<'a> {
    pub report: &'a mut File,
    stop: &'a OwnedFd,
}

impl ChildSide<'_> {
    /// Whether the parent asked the child to stop (its end of the stop pipe closed).
    pub fn stop_requested(&self) -> bool {
        super::poll::poll_in(self.stop.as_fd(), 0).unwrap_or(true)
    }

    /// The stop pipe, to wait on together with other descriptors: it becomes
    /// readable (end of file) when the child should stop.
    pub fn stop_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stop.as_fd()
    }
}

/// Forks; the child runs `body` and exits 0 if it returned true, 1 otherwise, without
/// returning into the caller's code. Call it before the process starts a second
/// thread: a forked copy of a threaded process may deadlock in the allocator. (Not
/// checked through /proc/self/status: under qemu-user that counts the emulator's own
/// threads, and the self-test, the only caller, forks before it starts any.)
/// `body` is `dyn`: one copy of the fork code for every caller (size).
pub fn spawn_child(body: &mut dyn FnMut(ChildSide<'_>) -> bool) -> Result<Child, SysError> {
    let (report_r, report_w) = nix::unistd::pipe().map_err(|e| SysError::os("pipe", e))?;
    let (stop_r, stop_w) = nix::unistd::pipe().map_err(|e| SysError::os("pipe", e))?;
    let _ = io::stdout().flush();
    // SAFETY: the process has one thread (see above), so the child may allocate
    // and run ordinary Rust code; it leaves through _exit, never back into the caller.
    match unsafe { nix::unistd::fork() }.map_err(|e| SysError::os("fork", e))? {
        ForkResult::Child => {
            drop((report_r, stop_w));
            let mut report = File::from(report_w);
            let ok = body(ChildSide {
                report: &mut report,
                stop: &stop_r,
            });
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => Ok(Child {
            pid: child,
            report: File::from(report_r),
            stop: Some(stop_w),
        }),
    }
}

impl Child {
    /// Tells the child to stop, then collects its report and whether it succeeded.
    pub fn finish(mut self) -> (bool, String) {
        self.stop = None;
        let mut text = String::new();
        let _ = self.report.read_to_string(&mut text);
        let ok = matches!(waitpid(self.pid, None), Ok(WaitStatus::Exited(_, 0)));
        (ok, text)
    }
}

/// Moves this process into a new, empty network namespace (only `lo`, down). It
/// vanishes with the process.
pub fn unshare_net() -> io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    Ok(())
}
