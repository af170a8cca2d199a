//! musl's `pthread_setname_np`, replaced for the calling thread only.
//!
//! std names every thread it spawns through `pthread_setname_np(pthread_self(), name)`.
//! musl's version formats `/proc/self/task/%d/comm` with `snprintf` even though the
//! calling-thread case never uses that path, which links musl's whole printf (about 11 KB
//! on mips) into a binary that has no other use for it. This definition is found before
//! libc.a's when the static binary is linked, so that object is never pulled in.
//! Naming the calling thread is `prctl(PR_SET_NAME)`, as in musl; naming another thread
//! is not supported (nothing in tunbox or std does it) and says so with ENOTSUP.

/// Only musl builds export it under the libc name; elsewhere it is a plain function, so
/// the host tests can check it without interposing on glibc's.
///
/// # Safety
/// `name` must point to a NUL-terminated string, as for the libc function.
#[cfg_attr(target_env = "musl", unsafe(no_mangle))]
pub unsafe extern "C" fn pthread_setname_np(
    thread: libc::pthread_t,
    name: *const libc::c_char,
) -> libc::c_int {
    // SAFETY: pthread_self has no preconditions.
    if thread != unsafe { libc::pthread_self() } {
        return libc::ENOTSUP;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    if unsafe { libc::strlen(name) } > 15 {
        return libc::ERANGE; // the kernel's TASK_COMM_LEN is 16 with the NUL
    }
    // SAFETY: PR_SET_NAME reads at most 16 bytes of a NUL-terminated string.
    if unsafe { libc::prctl(libc::PR_SET_NAME, name as libc::c_ulong, 0, 0, 0) } != 0 {
        return std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL);
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comm() -> String {
        std::fs::read_to_string("/proc/thread-self/comm")
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn names_the_calling_thread_and_refuses_others() {
        // pthread_t is a pointer on musl (not Send): carried across as an integer
        let main = unsafe { libc::pthread_self() } as usize;
        std::thread::spawn(move || {
            let r = unsafe { pthread_setname_np(libc::pthread_self(), c"tbx-name-test".as_ptr()) };
            assert_eq!(r, 0);
            assert_eq!(comm(), "tbx-name-test");
            let long = c"sixteen-chars-xx";
            assert_eq!(
                unsafe { pthread_setname_np(libc::pthread_self(), long.as_ptr()) },
                libc::ERANGE
            );
            assert_eq!(comm(), "tbx-name-test");
            assert_eq!(
                unsafe { pthread_setname_np(main as libc::pthread_t, c"other".as_ptr()) },
                libc::ENOTSUP
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    #[cfg(target_env = "musl")]
    fn std_thread_names_go_through_it() {
        let name = std::thread::Builder::new()
            .name("tbx-std-name".into())
            .spawn(comm)
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(name, "tbx-std-name");
    }
}
