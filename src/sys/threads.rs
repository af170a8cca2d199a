//! Thread helpers for the multi-queue reflector: how many CPUs are online, and waking a
//! thread blocked in a read (SIGALRM to that thread only; the handler installed by
//! [`super::signals::install`] has no SA_RESTART, so the read returns EINTR).

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

/// Interrupts a blocking system call in `thread` (SIGALRM; call after `signals::install`).
pub fn interrupt<T>(thread: &std::thread::JoinHandle<T>) {
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: the handle keeps the thread joinable, so its pthread_t is valid even if the
    // thread has finished; SIGALRM's handler does nothing but return.
    unsafe {
        libc::pthread_kill(thread.as_pthread_t() as libc::pthread_t, libc::SIGALRM);
    }
}
