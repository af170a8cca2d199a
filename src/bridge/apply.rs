//! The OS side of `tunbox bridge`: read the kernel's state into a [`Snapshot`], carry
//! out planned steps in order, and undo the done ones when a step fails.
//!
//! Test hooks, compiled in only with the cargo feature `test-hooks` (the crash and
//! rollback tests of tests/bridge.rs; a production build ignores these variables and
//! warns about them as unknown): `TUNBOX_TEST_STOP_AFTER_STEP=N` makes the process
//! exit with status 99 right after step N (1-based) of a plan, without any cleanup, as
//! if killed; `TUNBOX_TEST_FAIL_AT_STEP=N` makes step N fail, which exercises the
//! rollback.
use super::plan::{inverse, Snapshot, Step};
use crate::sys::netlink::Rtnl;
use crate::sys::tun::{Mode, Tun};
use crate::sys::{sysctl, SysError};

/// Where the bridge netfilter switches live (only with br_netfilter loaded).
pub const BRIDGE_NF_DIR: &str = "/proc/sys/net/bridge";

pub fn snapshot(rtnl: &mut Rtnl) -> Result<Snapshot, SysError> {
    Ok(Snapshot {
        links: rtnl.links()?,
        addrs: rtnl.addresses()?,
        routes: rtnl.routes()?,
        sysctls: sysctl::read_dir(BRIDGE_NF_DIR, |n| n.starts_with("bridge-nf-call-"))?,
    })
}

/// Identity of the current network namespace: device and inode of /proc/self/ns/net
/// (what `ip netns identify` compares).
pub fn netns_id() -> Result<(u64, u64), SysError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/ns/net")
        .map_err(|e| SysError::os("cannot stat /proc/self/ns/net", e))?;
    Ok((m.dev(), m.ino()))
}

/// Carries out one step.
pub fn exec(rtnl: &mut Rtnl, step: &Step) -> Result<(), SysError> {
    match step {
        Step::CreateBridge { name } => rtnl.create_bridge(name),
        Step::DeleteLink { name } | Step::DeleteTap { name } => {
            let i = rtnl.link_index(name)?;
            rtnl.delete_link(i)
        }
        Step::CreateTap { name, owner } => {
            let tap = Tun::open(name, Mode::Tap)?;
            if let Some(uid) = owner {
                tap.set_owner(*uid)?;
            }
            tap.set_persist(true)
        }
        Step::SetMaster { dev, master, .. } => {
            let i = rtnl.link_index(dev)?;
            let m = match master {
                Some(m) => Some(rtnl.link_index(m)?),
                None => None,
            };
            rtnl.set_master(i, m)
        }
        Step::SetMac { dev, mac, .. } => {
            let i = rtnl.link_index(dev)?;
            rtnl.set_mac(i, *mac)
        }
        Step::SetMtu { dev, mtu, .. } => rtnl.set_mtu(dev, *mtu),
        Step::SetUp { dev, up } => rtnl.set_up(dev, *up),
        // adding and deleting share their code (size)
        Step::AddAddr { dev, addr } | Step::DelAddr { dev, addr } => {
            let mut a = addr.clone();
            a.index = rtnl.link_index(dev)?;
            rtnl.change_addr(&a, matches!(step, Step::AddAddr { .. }))
        }
        Step::AddRoute { dev, route } | Step::DelRoute { dev, route } => {
            let mut r = route.clone();
            r.oif = Some(rtnl.link_index(dev)?);
            rtnl.change_route(&r, matches!(step, Step::AddRoute { .. }))
        }
        Step::SetSysctl { path, value, .. } => sysctl::write(path, value),
    }
}

/// The step number in the test hook variable `name` (feature `test-hooks` only).
#[cfg(feature = "test-hooks")]
fn test_hook(name: &str) -> Option<usize> {
    std::env::var(name).ok()?.parse().ok()
}

/// How applying a plan went wrong.
#[derive(Debug)]
pub struct ApplyError {
    /// The failed step (1-based) and why.
    pub step: usize,
    pub cause: SysError,
    /// Undo steps that failed in turn (empty: everything was rolled back).
    pub rollback_failures: Vec<String>,
}

/// Applies `steps` in order, printing each. On a failure the steps already done are
/// undone in reverse order, and the error says whether that worked.
pub fn run(rtnl: &mut Rtnl, steps: &[Step], log: &mut dyn FnMut(&str)) -> Result<(), ApplyError> {
    #[cfg(feature = "test-hooks")]
    let stop_after = test_hook("TUNBOX_TEST_STOP_AFTER_STEP");
    #[cfg(feature = "test-hooks")]
    let fail_at = test_hook("TUNBOX_TEST_FAIL_AT_STEP");
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        log(&format!("  [{n}/{}] {step}", steps.len()));
        #[cfg(feature = "test-hooks")]
        let result = if fail_at == Some(n) {
            Err(SysError::new(
                "failure injected by TUNBOX_TEST_FAIL_AT_STEP",
            ))
        } else {
            exec(rtnl, step)
        };
        #[cfg(not(feature = "test-hooks"))]
        let result = exec(rtnl, step);
        if let Err(cause) = result {
            let mut rollback_failures = Vec::new();
            for done in steps[..i].iter().rev() {
                if let Some(undo) = inverse(done) {
                    log(&format!("  undo: {undo}"));
                    if let Err(e) = exec(rtnl, &undo) {
                        rollback_failures.push(format!("{undo}: {e}"));
                    }
                }
            }
            return Err(ApplyError {
                step: n,
                cause,
                rollback_failures,
            });
        }
        #[cfg(feature = "test-hooks")]
        if stop_after == Some(n) {
            log("  stopping here: TUNBOX_TEST_STOP_AFTER_STEP");
            std::process::exit(99);
        }
    }
    Ok(())
}
