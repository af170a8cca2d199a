//! Threads for the multi-queue reflector, straight on pthreads: std::thread's machinery
//! (names, result packets, scoped spawning, RUST_MIN_STACK) costs about 20 KiB on mipsel,
//! and the reflector needs none of it. Also how many CPUs are online, and waking a
//! thread blocked in a read (SIGALRM to that thread only; the handler installed by
//! [`super::signals::install`] has no SA_RESTART, so the read returns EINTR). Futex wait
//! and wake for the tunnel's crypto pool.
use std::io;
use std::sync::atomic::AtomicU32;

/// Online CPUs (sysconf), at least 1.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 {
        1
    } else {
        n as usize
    }
}

/// Stack of each thread: the loops keep their buffers on the heap; logging and the
/// kernel's signal frame need a few KiB (musl's default is 128 KiB, glibc's 8 MiB).
const STACK: usize = 256 * 1024;

type Job = Box<dyn FnOnce() + Send>;

/// A running thread; [`Thread::join`] waits for it. Dropping it without joining
/// detaches it.
pub struct Thread {
    id: libc::pthread_t,
    joined: bool,
}

extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `spawn` passed a Box<Job> it gave up; it is taken back exactly once.
    let job = unsafe { Box::from_raw(arg as *mut Job) };
    job();
    std::ptr::null_mut()
}

/// Starts `f` on a new thread. It inherits the signal handlers, credentials and
/// capabilities of the caller.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> io::Result<Thread> {
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job) as *mut libc::c_void;
    // SAFETY: attr is initialised before use and destroyed after; `start` takes the
    // box back, or it is freed here when the thread could not be made.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            drop(Box::from_raw(arg as *mut Job));
            return Err(crate::io_error(
                io::ErrorKind::Other,
                "pthread_attr_init failed",
            ));
        }
        libc::pthread_attr_setstacksize(&mut attr, STACK);
        let mut id: libc::pthread_t = std::mem::zeroed();
        let r = libc::pthread_create(&mut id, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            drop(Box::from_raw(arg as *mut Job));
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(Thread { id, joined: false })
    }
}

/// Sleeps while `a` holds `v` (FUTEX_WAIT, process-private); may return early (a
/// signal, a spurious wake, `a` no longer `v`): the caller looks again.
pub fn futex_wait(a: &AtomicU32, v: u32) {
    // SAFETY: the address is a live, aligned u32; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            a.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            v,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes up to `n` threads sleeping in [`futex_wait`] on `a`.
pub fn futex_wake(a: &AtomicU32, n: i32) {
    // SAFETY: as in `futex_wait`.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            a.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n,
        );
    }
}

impl Thread {
    /// Interrupts a blocking system call in the thread (SIGALRM; call after
    /// `signals::install`). Harmless once the thread has ended but is not yet joined.
    pub fn interrupt(&self) {
        // SAFETY: the thread is not joined or detached yet, so its id is valid.
        unsafe {
            libc::pthread_kill(self.id, libc::SIGALRM);
        }
    }

    /// Waits for the thread to end.
    pub fn join(mut self) {
        self.joined = true;
        // SAFETY: joined once; the id is valid until then.
        unsafe {
            libc::pthread_join(self.id, std::ptr::null_mut());
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        if !self.joined {
            // SAFETY: valid, never joined: detaching lets it clean up when it ends.
            unsafe {
                libc::pthread_detach(self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn runs_and_joins() {
        let n = Arc::new(AtomicU32::new(0));
        let ts: Vec<Thread> = (0..3)
            .map(|i| {
                let n = Arc::clone(&n);
                spawn(move || {
                    n.fetch_add(1 << i, Ordering::Relaxed);
                })
                .unwrap()
            })
            .collect();
        for t in ts {
            t.join();
        }
        assert_eq!(n.load(Ordering::Relaxed), 0b111);
        assert!(online_cpus() >= 1);
    }

    #[test]
    fn interrupt_wakes_a_blocking_read() {
        crate::sys::signals::install();
        let (r, w) = nix::unistd::pipe().unwrap();
        let got = Arc::new(AtomicU32::new(0));
        let got2 = Arc::clone(&got);
        let t = spawn(move || {
            let mut b = [0u8; 1];
            let e = nix::unistd::read(&r, &mut b).unwrap_err();
            got2.store(e as u32, Ordering::Relaxed);
        })
        .unwrap();
        // the read may not have started yet: interrupt until it has returned
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
            t.interrupt();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        t.join();
        drop(w);
        assert_eq!(got.load(Ordering::Relaxed), libc::EINTR as u32);
    }
}
