//! SIGTERM/SIGINT (exit) and SIGUSR1 (print counters), installed without SA_RESTART so
//! a blocking read or poll returns EINTR and the loop looks at the flags.
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicBool, Ordering};

static EXIT: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);
static EXIT_AT_ONCE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    match sig {
        libc::SIGUSR1 => USR1.store(true, Ordering::Relaxed),
        // the tick only interrupts a blocking syscall (see `start_tick`)
        libc::SIGALRM => {}
        _ => {
            if EXIT_AT_ONCE.load(Ordering::Relaxed) {
                // SAFETY: _exit is async-signal-safe; see `exit_at_once`.
                unsafe { libc::_exit(0) }
            }
            EXIT.store(true, Ordering::Relaxed)
        }
    }
}

/// While on, SIGTERM/SIGINT/SIGHUP end the process at once (exit status 0) instead of
/// setting the flag: for a wait with nothing to clean up that may block in a call the
/// flag cannot cut short (a DNS look-up waiting for a server that does not answer
/// retries through EINTR). Call after [`install`].
pub fn exit_at_once(on: bool) {
    EXIT_AT_ONCE.store(on, Ordering::Relaxed);
}

pub fn install() {
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGALRM,
    ] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// Blocks every signal in the calling thread, for helper threads (the tunnel's crypto
/// workers): a process-directed signal goes to a thread that does not block it, and the
/// kernel picks another thread than the loop's when the loop's already has one pending,
/// so an unblocked helper could take the SIGTERM or the tick meant to cut the loop's
/// poll short.
pub fn block_all() {
    use nix::sys::signal::{pthread_sigmask, SigmaskHow};
    let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), None);
}

/// True once SIGTERM, SIGINT or SIGHUP arrived.
pub fn exit_requested() -> bool {
    EXIT.load(Ordering::Relaxed)
}

/// True once per SIGUSR1.
pub fn take_usr1() -> bool {
    // a plain load first: this runs once per packet, and a swap is a locked write
    USR1.load(Ordering::Relaxed) && clear_usr1()
}

/// The swap of [`take_usr1`], out of line: an atomic swap of a byte is a long ll/sc
/// loop on mips, and the flag is rarely set (size).
#[inline(never)]
fn clear_usr1() -> bool {
    USR1.swap(false, Ordering::Relaxed)
}

/// Interrupts a blocking read once a second (SIGALRM, no SA_RESTART). A loop that
/// blocks in read(2) checks its flags, then reads; a signal landing between the two
/// would otherwise wait for the next packet. With the tick it waits at most a second,
/// while a busy loop pays no extra system call per packet. Call after [`install`].
pub fn start_tick() -> std::io::Result<()> {
    let second = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    let t = libc::itimerval {
        it_interval: second,
        it_value: second,
    };
    // SAFETY: setitimer with a valid itimerval; the old value is not wanted.
    if unsafe { libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
