//! SIGTERM/SIGINT (exit) and SIGUSR1 (print counters), installed without SA_RESTART so
//! a blocking read or poll returns EINTR and the loop looks at the flags.
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicBool, Ordering};

static EXIT: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    if sig == libc::SIGUSR1 {
        USR1.store(true, Ordering::Relaxed);
    } else {
        EXIT.store(true, Ordering::Relaxed);
    }
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
    ] {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
}

/// True once SIGTERM, SIGINT or SIGHUP arrived.
pub fn exit_requested() -> bool {
    EXIT.load(Ordering::Relaxed)
}

/// True once per SIGUSR1.
pub fn take_usr1() -> bool {
    USR1.swap(false, Ordering::Relaxed)
}

/// Asks the loop to stop (used by the self-test, which runs a loop on a thread).
pub fn request_exit() {
    EXIT.store(true, Ordering::Relaxed);
}
