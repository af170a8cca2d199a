//! Capabilities: check CAP_NET_ADMIN before doing anything that needs it, and drop
//! every capability (optionally switching user) once the devices are open.
//!
//! Through the `caps` crate (capget/capset/prctl); `no_new_privs` through nix's prctl.
use super::SysError;
use caps::{CapSet, Capability};
use nix::unistd::{Gid, Uid};

/// Every capability the caps crate knows. Its own `caps::all()`, `caps::read` and the
/// bounding set's `clear` build a HashSet, which links hashbrown and std's RandomState
/// (about 4 KB on mips); these loops over a table do the same work without.
const ALL: [Capability; 41] = {
    use Capability::*;
    [
        CAP_CHOWN,
        CAP_DAC_OVERRIDE,
        CAP_DAC_READ_SEARCH,
        CAP_FOWNER,
        CAP_FSETID,
        CAP_KILL,
        CAP_SETGID,
        CAP_SETUID,
        CAP_SETPCAP,
        CAP_LINUX_IMMUTABLE,
        CAP_NET_BIND_SERVICE,
        CAP_NET_BROADCAST,
        CAP_NET_ADMIN,
        CAP_NET_RAW,
        CAP_IPC_LOCK,
        CAP_IPC_OWNER,
        CAP_SYS_MODULE,
        CAP_SYS_RAWIO,
        CAP_SYS_CHROOT,
        CAP_SYS_PTRACE,
        CAP_SYS_PACCT,
        CAP_SYS_ADMIN,
        CAP_SYS_BOOT,
        CAP_SYS_NICE,
        CAP_SYS_RESOURCE,
        CAP_SYS_TIME,
        CAP_SYS_TTY_CONFIG,
        CAP_MKNOD,
        CAP_LEASE,
        CAP_AUDIT_WRITE,
        CAP_AUDIT_CONTROL,
        CAP_SETFCAP,
        CAP_MAC_OVERRIDE,
        CAP_MAC_ADMIN,
        CAP_SYSLOG,
        CAP_WAKE_ALARM,
        CAP_BLOCK_SUSPEND,
        CAP_AUDIT_READ,
        CAP_PERFMON,
        CAP_BPF,
        CAP_CHECKPOINT_RESTORE,
    ]
};

/// How many capabilities of `set` this thread holds. A capability the running kernel
/// does not know reads as an error in the bounding and ambient sets (prctl EINVAL):
/// not held. In the other sets an error is capget failing.
fn count_held(set: CapSet) -> Result<usize, caps::errors::CapsError> {
    let mut held = 0;
    for c in ALL {
        match caps::has_cap(None, set, c) {
            Ok(h) => held += usize::from(h),
            Err(_) if matches!(set, CapSet::Bounding | CapSet::Ambient) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(held)
}

/// Whether `cap` is in this thread's effective set (false when capget fails).
fn has_effective(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)
}

const HOW_TO: &str = "run as root (procd and the init script do), or under systemd with \
    AmbientCapabilities=CAP_NET_ADMIN; add --user NAME to run as that account once the \
    device is set up (file capabilities are refused: they would hand the network to \
    every local user)";

/// Whether this process has CAP_NET_ADMIN in its effective set.
pub fn has_net_admin() -> bool {
    has_effective(Capability::CAP_NET_ADMIN)
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

/// A user from /etc/passwd: what switching to it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub uid: Uid,
    pub gid: Gid,
}

/// Finds `name` (or, if it is a number, that uid) in passwd(5) text. Read here rather
/// than through getpwnam(3): musl's version (with its nscd client and stdio line
/// reader) was about 7 KB on mips for what is a split on ':'.
fn find_user(passwd: &str, name: &str) -> Option<UserEntry> {
    let want_uid = name.parse::<u32>().ok();
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let (user, _pw, uid, gid) = (f.next()?, f.next()?, f.next()?, f.next()?);
        let (uid, gid) = (uid.parse::<u32>().ok()?, gid.parse::<u32>().ok()?);
        (Some(uid) == want_uid || user == name).then(|| UserEntry {
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
        })
    })
}

/// Finds group `name` in group(5) text.
fn find_group(group: &str, name: &str) -> Option<Gid> {
    group.lines().find_map(|line| {
        let mut f = line.split(':');
        let (g, _pw, gid) = (f.next()?, f.next()?, f.next()?);
        (g == name).then(|| gid.parse().ok().map(Gid::from_raw))?
    })
}

fn read_db(path: &str) -> Result<String, SysError> {
    std::fs::read_to_string(path).map_err(|e| SysError::os(format!("cannot read {path}"), e))
}

/// Resolves a user name or numeric uid (from /etc/passwd).
pub fn lookup_user(name: &str) -> Result<UserEntry, SysError> {
    find_user(&read_db("/etc/passwd")?, name)
        .ok_or_else(|| SysError::new(format!("no such user '{name}' in /etc/passwd")))
}

/// Resolves a group name (from /etc/group) or numeric gid.
pub fn lookup_group(name: &str) -> Result<Gid, SysError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    find_group(&read_db("/etc/group")?, name)
        .ok_or_else(|| SysError::new(format!("no such group '{name}' in /etc/group")))
}

/// Drops every capability from every set (bounding set too, where we may), after
/// switching to `user` and its primary group when given, then sets no_new_privs and
/// checks that all of it took. Afterwards the process can still use the fds it holds,
/// but cannot reconfigure the network, nor regain anything through a setuid binary.
pub fn drop_privileges(user: Option<&str>) -> Result<(), SysError> {
    // one copy of the message for the five sets, not one per call (size)
    #[inline(never)]
    fn fail(set: &str, e: caps::errors::CapsError) -> SysError {
        SysError::new(format!("cannot drop capabilities ({set}): {e}"))
    }
    // Bounding set first: dropping from it needs CAP_SETPCAP, which we are about to lose.
    let bounding = has_effective(Capability::CAP_SETPCAP);
    if bounding {
        for c in ALL {
            if caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, c).map_err(|e| fail("bounding", e))?;
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
    // Ambient first (it may only hold what permitted and inheritable hold). Kernels
    // before 4.3 have no ambient set: nothing to clear there.
    let ambient = caps::runtime::ambient_set_supported().is_ok();
    if ambient {
        caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
    }
    // one call per set, each with its set as a constant, so that the optimizer keeps
    // only the capset path of `caps::clear` (its bounding-set path builds a HashSet)
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable", e))?;
    caps::clear(None, CapSet::Effective).map_err(|e| fail("effective", e))?;
    caps::clear(None, CapSet::Permitted).map_err(|e| fail("permitted", e))?;
    // Verify: the kernel may refuse silently what it cannot do (e.g. under a
    // securebits lock), and a half-dropped process must not go on.
    let sets = [
        (CapSet::Effective, "effective", true),
        (CapSet::Permitted, "permitted", true),
        (CapSet::Inheritable, "inheritable", true),
        (CapSet::Ambient, "ambient", ambient),
        (CapSet::Bounding, "bounding", bounding),
    ];
    for (set, name, check) in sets {
        if !check {
            continue;
        }
        match count_held(set) {
            Ok(0) => {}
            Ok(held) => {
                return Err(SysError::new(format!(
                    "capabilities are still held after dropping them ({name}: {held} left)"
                )))
            }
            Err(e) => {
                return Err(SysError::new(format!(
                    "cannot read the {name} capabilities back: {e}"
                )))
            }
        }
    }
    // No way back through setuid binaries or file capabilities either.
    nix::sys::prctl::set_no_new_privs().map_err(|e| SysError::os("cannot set no_new_privs", e))?;
    match nix::sys::prctl::get_no_new_privs() {
        Ok(true) => Ok(()),
        Ok(false) => Err(SysError::new("no_new_privs is still off after setting it")),
        Err(e) => Err(SysError::os("cannot read no_new_privs back", e)),
    }
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

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/ash\n\
        broken line\n\
        daemon:*:1:1:daemon:/var:/bin/false\n\
        bad:x:uid:1::/:/bin/false\n\
        network:x:101:101:network:/var:/bin/false\n";

    #[test]
    fn users_by_name_and_by_uid() {
        let network = UserEntry {
            uid: Uid::from_raw(101),
            gid: Gid::from_raw(101),
        };
        assert_eq!(find_user(PASSWD, "network"), Some(network.clone()));
        assert_eq!(find_user(PASSWD, "101"), Some(network));
        assert_eq!(find_user(PASSWD, "daemon").unwrap().gid, Gid::from_raw(1));
        assert_eq!(find_user(PASSWD, "bad"), None, "unparsable uid");
        assert_eq!(find_user(PASSWD, "broken line"), None);
        assert_eq!(find_user(PASSWD, "nobody"), None);
        assert_eq!(find_user(PASSWD, "4242"), None);
        assert_eq!(find_user("", "root"), None);
    }

    #[test]
    fn groups_by_name() {
        let group = "root:x:0:\nnetdev::60:alice,bob\nshort\nodd:x:sixty:\n";
        assert_eq!(find_group(group, "netdev"), Some(Gid::from_raw(60)));
        assert_eq!(find_group(group, "root"), Some(Gid::from_raw(0)));
        assert_eq!(find_group(group, "odd"), None);
        assert_eq!(find_group(group, "short"), None);
        assert_eq!(find_group(group, "wheel"), None);
    }

    #[test]
    fn lookups_read_this_machines_files() {
        assert_eq!(lookup_user("root").unwrap().uid, Uid::from_raw(0));
        assert_eq!(lookup_user("0").unwrap().gid, Gid::from_raw(0));
        assert_eq!(lookup_group("root").unwrap(), Gid::from_raw(0));
        assert_eq!(lookup_group("77").unwrap(), Gid::from_raw(77));
        let e = lookup_user("tbx-no-such-user").unwrap_err().msg;
        assert!(e.contains("no such user 'tbx-no-such-user'"), "{e}");
    }

    #[test]
    fn capget_agrees_with_proc_status() {
        let eff = thread_caps()
            .into_iter()
            .find(|(k, _)| k == "CapEff")
            .unwrap()
            .1;
        assert_eq!(has_net_admin(), eff & (1 << 12) != 0);
        assert_eq!(has_effective(Capability::CAP_SETPCAP), eff & (1 << 8) != 0);
    }

    #[test]
    fn drop_privileges_empties_every_set_of_the_thread() {
        // Capabilities are per thread: drop them on a thread of our own, so the rest of
        // the test process keeps its own.
        std::thread::spawn(|| {
            let had_setpcap = has_effective(Capability::CAP_SETPCAP);
            drop_privileges(None).unwrap();
            assert!(!has_net_admin());
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(
                status
                    .lines()
                    .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])),
                "no_new_privs not set:\n{status}"
            );
            let caps = thread_caps();
            assert!(caps.iter().any(|(k, _)| k == "CapAmb"), "{caps:?}");
            for (k, v) in caps {
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
