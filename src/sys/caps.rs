//! Capabilities: check CAP_NET_ADMIN before doing anything that needs it, and drop
//! every capability (optionally switching user) once the devices are open.
use super::SysError;
use caps::{CapSet, Capability};
use nix::unistd::{Gid, Group, Uid, User};

const HOW_TO: &str = "run as root, or `setcap cap_net_admin+ep /usr/bin/tunbox`, or \
    (systemd) AmbientCapabilities=CAP_NET_ADMIN";

/// Whether this process has CAP_NET_ADMIN in its effective set.
pub fn has_net_admin() -> bool {
    caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN).unwrap_or(false)
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
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::all() {
            let _ = caps::drop(None, CapSet::Bounding, cap);
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
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set)
            .map_err(|e| SysError::new(format!("cannot drop capabilities ({set:?}): {e}")))?;
    }
    // No way back through setuid binaries either.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(())
}
