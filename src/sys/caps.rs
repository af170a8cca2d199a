//! Capabilities: check CAP_NET_ADMIN before doing anything that needs it, and drop
//! every capability (optionally switching user) once the devices are open.
//!
//! Talks to capget/capset/prctl directly: the `caps` crate did the same through a
//! HashSet per call, which cost about 8 KB of code (hashbrown, RandomState) on mips.
use super::SysError;
use nix::unistd::{Gid, Group, Uid, User};

const CAP_NET_ADMIN: u32 = 12;
const CAP_SETPCAP: u32 = 8;
/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, passed as two 32-bit halves.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This thread's capability sets (`[low 32 caps, high 32 caps]`), or None if capget fails.
fn capget() -> Option<[CapData; 2]> {
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as the v3 ABI requires.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    (r == 0).then_some(data)
}

/// Whether `cap` is in this thread's effective set.
fn has_effective(cap: u32) -> bool {
    capget().is_some_and(|d| d[(cap / 32) as usize].effective & (1 << (cap % 32)) != 0)
}

const HOW_TO: &str = "run as root, or `setcap cap_net_admin+ep /usr/bin/tunbox`, or \
    (systemd) AmbientCapabilities=CAP_NET_ADMIN";

/// Whether this process has CAP_NET_ADMIN in its effective set.
pub fn has_net_admin() -> bool {
    has_effective(CAP_NET_ADMIN)
}

/// Fails with an actionable message when CAP_NET_ADMIN is missing. `what` says what
/// needs it, e.g. "creating tun0".
pub fn require_net_admin(what: &str) -> Result<(), SysError> {
    if has_net_admin() {
        Ok(())
    } else {
        Err(SysError::new(format!(
            "tunbox needs CAP_NET_ADMIN for {what}: {HOW_TO}"
        )))
    }
}

/// Resolves a user name or numeric uid.
pub fn lookup_user(name: &str) -> Result<User, SysError> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    match found {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(SysError::new(format!("no such user '{name}'"))),
        Err(e) => Err(SysError::os(format!("cannot look up user '{name}'"), e)),
    }
}

/// Resolves a group name or numeric gid.
pub fn lookup_group(name: &str) -> Result<Gid, SysError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(SysError::new(format!("no such group '{name}'"))),
        Err(e) => Err(SysError::os(format!("cannot look up group '{name}'"), e)),
    }
}

/// Drops every capability from every set (bounding set too, where we may), after
/// switching to `user` and its primary group when given. Afterwards the process can
/// still use the fds it holds, but cannot reconfigure the network.
pub fn drop_privileges(user: Option<&str>) -> Result<(), SysError> {
    // Bounding set first: dropping from it needs CAP_SETPCAP, which we are about to lose.
    if has_effective(CAP_SETPCAP) {
        // Up to the kernel's last capability: PR_CAPBSET_DROP answers EINVAL past it.
        for cap in 0..64 {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                break;
            }
        }
    }
    if let Some(name) = user {
        let u = lookup_user(name)?;
        nix::unistd::setgroups(&[u.gid])
            .map_err(|e| SysError::os(format!("cannot set groups for user '{name}'"), e))?;
        nix::unistd::setgid(u.gid)
            .map_err(|e| SysError::os(format!("cannot switch to group {}", u.gid), e))?;
        nix::unistd::setuid(u.uid)
            .map_err(|e| SysError::os(format!("cannot switch to user '{name}'"), e))?;
    }
    // Ambient first (it may only hold what permitted and inheritable hold). Kernels before
    // 4.3 have no ambient set and answer EINVAL: nothing to clear there.
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if r != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(SysError::os("cannot drop capabilities (ambient)", err));
        }
    }
    let mut hdr = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let empty = [CapData::default(); 2];
    // SAFETY: header and a two-element data array, as the v3 ABI requires.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, empty.as_ptr()) } != 0 {
        return Err(SysError::os(
            "cannot drop capabilities (effective, permitted, inheritable)",
            std::io::Error::last_os_error(),
        ));
    }
    if capget().is_none_or(|d| {
        d.iter()
            .any(|c| c.effective | c.permitted | c.inheritable != 0)
    }) {
        return Err(SysError::new(
            "capabilities are still held after dropping them",
        ));
    }
    // No way back through setuid binaries either.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Cap*:` lines of this thread's status, as numbers.
    fn thread_caps() -> Vec<(String, u64)> {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        status
            .lines()
            .filter(|l| l.starts_with("Cap"))
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap())
            })
            .collect()
    }

    #[test]
    fn capget_agrees_with_proc_status() {
        let eff = thread_caps()
            .into_iter()
            .find(|(k, _)| k == "CapEff")
            .unwrap()
            .1;
        assert_eq!(has_net_admin(), eff & (1 << CAP_NET_ADMIN) != 0);
        assert_eq!(has_effective(CAP_SETPCAP), eff & (1 << CAP_SETPCAP) != 0);
    }

    #[test]
    fn drop_privileges_empties_every_set_of_the_thread() {
        // Capabilities are per thread: drop them on a thread of our own, so the rest of
        // the test process keeps its own.
        std::thread::spawn(|| {
            let had_setpcap = has_effective(CAP_SETPCAP);
            drop_privileges(None).unwrap();
            assert!(!has_net_admin());
            for (k, v) in thread_caps() {
                if k == "CapBnd" && !had_setpcap {
                    continue; // dropping the bounding set needs CAP_SETPCAP
                }
                assert_eq!(v, 0, "{k} after drop_privileges");
            }
        })
        .join()
        .unwrap();
    }
}
