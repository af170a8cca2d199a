//! Who may steer a privileged tunbox: how the process got its privileges, and whether
//! a file it is about to act on could have been written by someone else.
//!
//! File capabilities (`setcap cap_net_admin+ep`) would hand CAP_NET_ADMIN to every
//! local user, who could then point `--state-file` or `TUNBOX_CONFIG` at a file of
//! their own and have its addresses and routes applied. So a tunbox raised by the
//! kernel at exec (AT_SECURE: file capabilities or a setuid bit) for a user who is
//! not root refuses the commands that need privileges, and state and configuration
//! files are only read when root (or the running user) owns them and nobody else may
//! write them.
use super::SysError;
use std::os::unix::fs::MetadataExt;

/// The real uid of a process the kernel raised at exec (AT_SECURE set: file
/// capabilities or a setuid bit) for a user who is not root; `None` otherwise.
pub fn raised_for_non_root() -> Option<u32> {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process.
    let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
    let uid = nix::unistd::getuid();
    (secure && !uid.is_root()).then(|| uid.as_raw())
}

/// Whether this process runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// What is wrong with a file owned by `owner` with permission bits `mode`, for a
/// process running as `euid`: `None` when only root or `euid` can have written it.
pub fn unsafe_owner(owner: u32, mode: u32, euid: u32) -> Option<String> {
    if owner != 0 && owner != euid {
        Some(format!("is owned by uid {owner}, not root"))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "is writable by {} (mode {:04o})",
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o7777
        ))
    } else {
        None
    }
}

/// Refuses to act on an opened file that someone other than root (or this process's
/// user) could have written. `what` names it, e.g. "state file /var/run/tunbox/x".
pub fn check_file(file: &std::fs::File, what: &str) -> Result<(), SysError> {
    let meta = file
        .metadata()
        .map_err(|e| SysError::os(format_args!("cannot inspect {what}"), e))?;
    let euid = nix::unistd::geteuid().as_raw();
    match unsafe_owner(meta.uid(), meta.mode(), euid) {
        None => Ok(()),
        Some(why) => Err(SysError::new(format!(
            "{what} {why}: tunbox does not act on a file another user could have \
             written; check its content, then `chown root:root` and `chmod go-w` it \
             (or remove it)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_or_the_running_user_may_have_written_it() {
        assert_eq!(unsafe_owner(0, 0o100644, 0), None);
        assert_eq!(unsafe_owner(0, 0o100600, 0), None);
        assert_eq!(unsafe_owner(1000, 0o100644, 1000), None);
        assert_eq!(
            unsafe_owner(1000, 0o100644, 0).as_deref(),
            Some("is owned by uid 1000, not root")
        );
        assert_eq!(
            unsafe_owner(0, 0o100664, 0).as_deref(),
            Some("is writable by its group (mode 0664)")
        );
        assert_eq!(
            unsafe_owner(0, 0o100666, 0).as_deref(),
            Some("is writable by every user (mode 0666)")
        );
    }

    #[test]
    fn a_test_run_by_root_is_not_raised() {
        // The test binary is started plainly: no AT_SECURE.
        assert_eq!(raised_for_non_root(), None);
    }

    #[test]
    fn check_file_reads_the_opened_file() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("tbx-trust-{}", std::process::id()));
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        assert!(check_file(&f, "file").is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = check_file(&f, "state file X").unwrap_err().msg;
        assert!(
            e.starts_with("state file X is writable by every user"),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
