//! `tunbox bridge up/down/status` and `tunbox mktun/rmtun`.
//!
//! `up` joins the physical port (eth0) and a tap in a Linux bridge: the bridge takes
//! the port's MAC, every address and route of the port moves to the bridge, the
//! bridge-nf-call-* switches go to 0. Before changing anything it records the original
//! state in a state file, so that `down` can put the port back exactly, even after a
//! crash half-way through `up`. The plan (what to change) is pure and lives in
//! [`plan`]; [`apply`] talks to the kernel.
pub mod apply;
pub mod plan;
pub mod state;

use crate::sys::netlink::Rtnl;
use crate::sys::tun::{Mode, Tun};
use crate::sys::{caps, SysError};
use plan::{Options, PlanError, Record, Snapshot, Step};
use std::fmt;
use std::io::Write as _;
use std::path::Path;

/// The state file of a bridge when none is named.
pub fn default_state_file(bridge: &str) -> String {
    format!("/var/run/tunbox/bridge-{bridge}.state")
}

/// An error of `tunbox bridge`, `mktun` or `rmtun`, ready to print.
#[derive(Debug)]
pub struct BridgeError(pub String);

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BridgeError {}

impl From<SysError> for BridgeError {
    fn from(e: SysError) -> Self {
        BridgeError(e.msg)
    }
}

impl From<PlanError> for BridgeError {
    fn from(e: PlanError) -> Self {
        BridgeError(e.0)
    }
}

/// The settings of one bridge, resolved from the command line, TUNBOX_* variables, the
/// UCI `config bridge` section and the schema's defaults (`commands::bridge`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub ifname: String,
    pub tap: String,
    pub bridge: String,
    /// Owner of a tap that `up` creates (user name or uid).
    pub user: Option<String>,
    pub state_file: String,
}

/// A state file's content: the record and what it is bound to (none: version 1).
pub type Stored = (Record, Option<state::Binding>);

/// Opening flags of every state, temporary and lock file: never through a symlink (a
/// link planted in a shared /var/run would redirect the write or the read).
fn no_follow(o: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    o.custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC).bits())
}

/// Reads the state file; `None` when there is none.
pub fn read_record(path: &str) -> Result<Option<Stored>, BridgeError> {
    use std::io::Read as _;
    let mut text = String::new();
    let mut file = match no_follow(std::fs::OpenOptions::new().read(true)).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(SysError::os(format_args!("cannot read state file {path}"), e).into())
        }
    };
    // A record says which addresses, routes and MAC to apply: only one root wrote.
    crate::sys::trust::check_file(&file, &format!("state file {path}"))?;
    file.read_to_string(&mut text)
        .map_err(|e| SysError::os(format_args!("cannot read state file {path}"), e))?;
    state::from_text(&text)
        .map(Some)
        .map_err(|e| BridgeError(format!("state file {path}: {e}")))
}

/// Writes the state file atomically (a temporary file renamed over it, synced), so a
/// crash leaves either the old or the new file, never half of one. The temporary file
/// is created new (`O_EXCL`, no symlink followed, mode 0600); one left by a crashed
/// process of the same PID is removed first (unlinking removes a link, not its target).
pub fn write_record(
    path: &str,
    rec: &Record,
    binding: Option<&state::Binding>,
) -> Result<(), BridgeError> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| SysError::os(format_args!("cannot create {}", dir.display()), e))?;
    }
    let tmp = format!("{path}.tmp.{}", std::process::id());
    let io = |what: &str, e: std::io::Error| SysError::os(format_args!("cannot {what} {tmp}"), e);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", e).into()),
        _ => {}
    }
    let mut f = no_follow(std::fs::OpenOptions::new().write(true).create_new(true))
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    f.write_all(state::to_text(rec, binding).as_bytes())
        .map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("sync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SysError::os(format_args!("cannot rename {tmp} to {path}"), e)
    })?;
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// What the running system's record would be bound to: this network namespace and
/// the port `ifname` as it is now (index 0 and no MAC when there is no such port).
fn binding_here(snap: &Snapshot, ifname: &str) -> Result<state::Binding, BridgeError> {
    let port = snap.link(ifname);
    Ok(state::Binding {
        netns: apply::netns_id()?,
        ifindex: port.map_or(0, |p| p.index),
        mac: port.and_then(|p| p.mac),
    })
}

/// Refuses a record bound to another namespace or another device.
fn check_binding(
    path: &str,
    rec: &Record,
    recorded: Option<&state::Binding>,
    here: &state::Binding,
    what: &str,
) -> Result<(), BridgeError> {
    match recorded {
        Some(b) if b != here => Err(BridgeError(format!(
            "state file {path} records {} of another network namespace or a device replaced \
             since ({b}; here: {here}): {what} does not use it. If that bridge is gone, remove \
             {path}; for a bridge here too, give it its own --state-file",
            rec.ifname
        ))),
        _ => Ok(()),
    }
}

/// Held while `up` or `down` changes things, so two of them cannot interleave.
///
/// The lock file (`STATE_FILE.lock`) is left in place afterwards, on purpose: unlinking
/// it while or after holding the flock would let a waiting process lock the unlinked
/// inode while a third creates and locks a new file of the same name, so two `up` or
/// `down` could run at once. An empty file in /var/run is the price.
struct Lock(#[allow(dead_code)] crate::sys::lock::FileLock);

fn lock(state_file: &str) -> Result<Lock, BridgeError> {
    let path = format!("{state_file}.lock");
    if let Some(dir) = Path::new(&path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| SysError::os(format_args!("cannot create {}", dir.display()), e))?;
    }
    // Not create_new: the lock file stays (see above); never through a symlink.
    let f = no_follow(
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true),
    )
    .open(&path)
    .map_err(|e| SysError::os(format_args!("cannot open lock file {path}"), e))?;
    crate::sys::lock::try_lock_exclusive(f)
        .map(Lock)
        .map_err(|e| {
            BridgeError(format!(
                "another `tunbox bridge up/down` holds {path} ({e}): wait for it to finish"
            ))
        })
}

fn remove_record(path: &str) -> Result<(), BridgeError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SysError::os(format_args!("cannot remove state file {path}"), e).into()),
    }
}

/// After a fully rolled-back `up`: puts the state file back as it was before (`old`,
/// or no file). On failure the file still holds the record of the undone `up`, which
/// disagrees with the kernel; the error names the path and says what follows
/// (`status` reports it as not matching, `down` removes it).
fn restore_record(path: &str, old: Option<&Stored>) -> Result<(), String> {
    let r = match old {
        Some((old, b)) => write_record(path, old, b.as_ref()),
        None => remove_record(path),
    };
    r.map_err(|e| {
        format!(
            "the changes were undone, but the state file could not be put back ({e}): \
             {path} still records the undone `bridge up`; `tunbox bridge status` shows it as \
             not matching and `tunbox bridge down` removes it"
        )
    })
}

fn print_plan(steps: &[Step]) {
    for (i, s) in steps.iter().enumerate() {
        crate::outln!("  [{}/{}] {s}", i + 1, steps.len());
    }
}

/// Applies the steps; on failure says whether everything done was undone.
fn apply_steps(rtnl: &mut Rtnl, steps: &[Step], what: &str) -> Result<(), (BridgeError, bool)> {
    let mut log = |line: &str| crate::outln!("{line}");
    apply::run(rtnl, steps, &mut log).map_err(|e| {
        let undone = e.rollback_failures.is_empty();
        let mut msg = format!("{what}: step {} failed: {}", e.step, e.cause);
        if e.rollback_failures.is_empty() {
            msg.push_str("; the steps before it were undone");
        } else {
            msg.push_str("; undoing the steps before it failed too:");
            for f in &e.rollback_failures {
                msg.push_str("\n  ");
                msg.push_str(f);
            }
            msg.push_str("\n`tunbox bridge down` restores the recorded state");
        }
        (BridgeError(msg), undone)
    })
}

fn read_snapshot() -> Result<(Rtnl, Snapshot), BridgeError> {
    let mut rtnl = Rtnl::new()?;
    let snap = apply::snapshot(&mut rtnl)?;
    Ok((rtnl, snap))
}

/// `tunbox bridge up`.
pub fn up(s: &Settings, dry_run: bool) -> Result<(), BridgeError> {
    if !dry_run {
        caps::require_net_admin("setting up a bridge")?;
    }
    let _lock = if dry_run {
        None
    } else {
        Some(lock(&s.state_file)?)
    };
    let owner = match &s.user {
        Some(u) => Some(caps::lookup_user(u)?.uid.as_raw()),
        None => None,
    };
    let opts = Options {
        ifname: s.ifname.clone(),
        tap: s.tap.clone(),
        bridge: s.bridge.clone(),
        owner,
    };
    let stored = read_record(&s.state_file)?;
    let (mut rtnl, snap) = read_snapshot()?;
    let here = binding_here(&snap, &s.ifname)?;
    if let Some((r, b)) = &stored {
        check_binding(&s.state_file, r, b.as_ref(), &here, "`bridge up`")?;
    }
    let recorded = stored.as_ref().map(|(r, _)| r);
    let (rec, steps) = plan::plan_up(&opts, &snap, recorded)?;
    if steps.is_empty() {
        crate::outln!(
            "bridge {} is up with {} and {}: nothing to do",
            s.bridge,
            s.ifname,
            s.tap
        );
        if recorded.is_none() {
            log::warn!(
                "no state file {}: the original state of {} is unknown, `tunbox bridge down` cannot restore it",
                s.state_file,
                s.ifname
            );
        }
        return Ok(());
    }
    if dry_run {
        crate::outln!(
            "would record the state of {} in {} and then:",
            s.ifname,
            s.state_file
        );
        print_plan(&steps);
        return Ok(());
    }
    for a in rec.addrs.iter().filter(|a| a.lifetimes.is_some()) {
        log::warn!(
            "{}/{} on {} has a lease (a DHCP client manages it): point the client at {} \
             or it may re-add the address to {} or let it expire on the bridge",
            a.addr,
            a.prefix_len,
            s.ifname,
            s.bridge,
            s.ifname
        );
    }
    // Rewritten only when its text would change. Compared as text, not as records: the
    // derived comparison of every address and route inlined here was about 1 KB on mipsel,
    // and the text is what the file holds.
    if stored.as_ref().map(|(r, b)| state::to_text(r, b.as_ref()))
        != Some(state::to_text(&rec, Some(&here)))
    {
        write_record(&s.state_file, &rec, Some(&here))?;
    }
    crate::outln!(
        "bridge {}: original state recorded in {}",
        s.bridge,
        s.state_file
    );
    if let Err((e, undone)) = apply_steps(&mut rtnl, &steps, "bridge up") {
        // Everything was undone: the file goes back to what it said before. Otherwise
        // it stays, for `down`.
        if undone {
            if let Err(w) = restore_record(&s.state_file, stored.as_ref()) {
                log::warn!("{w}");
            }
        }
        return Err(e);
    }
    if rec.created_tap && s.user.is_some() {
        warn_if_tun_node_closed(s.user.as_deref().unwrap_or_default());
    }
    crate::outln!(
        "bridge {} is up: {} and {} are its ports, {} address(es) and {} route(s) moved",
        s.bridge,
        s.ifname,
        s.tap,
        rec.addrs.len(),
        rec.routes.len()
    );
    Ok(())
}

/// What `bridge down` was told about the bridge besides its state file: each given
/// name must be the one the record holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    pub ifname: Option<String>,
    pub tap: Option<String>,
    pub bridge: Option<String>,
}

impl Expect {
    /// Compares with the record; the error names both and the way out.
    pub fn check(&self, rec: &Record, state_file: &str) -> Result<(), BridgeError> {
        for (what, given, recorded) in [
            ("ifname", &self.ifname, &rec.ifname),
            ("tap", &self.tap, &rec.tap),
            ("bridge", &self.bridge, &rec.bridge),
        ] {
            if let Some(g) = given.as_ref().filter(|g| *g != recorded) {
                return Err(BridgeError(format!(
                    "{state_file} records {what} '{recorded}', not '{g}': nothing was changed; \
                     leave out --{what} to restore what the file records, or name the state file \
                     of the other bridge with --state-file"
                )));
            }
        }
        Ok(())
    }
}

/// `tunbox bridge down`.
pub fn down(state_file: &str, expect: &Expect, dry_run: bool) -> Result<(), BridgeError> {
    // Checked before asking for CAP_NET_ADMIN, so that a wrong name is the error shown.
    match read_record(state_file)? {
        None => {
            crate::outln!("no state file {state_file}: nothing recorded, nothing to restore");
            return Ok(());
        }
        Some((rec, _)) => expect.check(&rec, state_file)?,
    }
    if !dry_run {
        caps::require_net_admin("taking a bridge down")?;
    }
    let _lock = if dry_run {
        None
    } else {
        Some(lock(state_file)?)
    };
    // Read again under the lock: an `up` or `down` may have finished meanwhile.
    let Some((rec, bound)) = read_record(state_file)? else {
        crate::outln!("no state file {state_file}: nothing recorded, nothing to restore");
        return Ok(());
    };
    expect.check(&rec, state_file)?;
    let (mut rtnl, snap) = read_snapshot()?;
    // Never apply a foreign record: its addresses, routes and MAC belong elsewhere.
    let here = binding_here(&snap, &rec.ifname)?;
    check_binding(state_file, &rec, bound.as_ref(), &here, "`bridge down`")?;
    if bound.is_none() {
        log::warn!(
            "state file {state_file} was written by an older tunbox and does not say which \
             namespace and device it describes: applying it as the record of {} here",
            rec.ifname
        );
    }
    let steps = plan::plan_down(&rec, &snap)?;
    if dry_run {
        if steps.is_empty() {
            crate::outln!(
                "{} is as recorded: would only remove {state_file}",
                rec.ifname
            );
        } else {
            crate::outln!("would restore {} from {state_file}:", rec.ifname);
            print_plan(&steps);
        }
        return Ok(());
    }
    apply_steps(&mut rtnl, &steps, "bridge down").map_err(|(e, _)| e)?;
    remove_record(state_file)?;
    crate::outln!(
        "bridge {} is down: {} restored as recorded in {state_file}",
        rec.bridge,
        rec.ifname
    );
    Ok(())
}

/// What `status` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Health {
    /// Bridged and matching the record, or not bridged and nothing recorded.
    Consistent,
    /// Half up, or changed since: `up` would still have work to do.
    Incomplete,
}

/// `tunbox bridge status`: what is bridged and whether it matches the record.
pub fn status(bridge: &str, state_file: &str) -> Result<Health, BridgeError> {
    let stored = read_record(state_file)?;
    let (_, snap) = read_snapshot()?;
    if let Some((r, Some(b))) = &stored {
        let here = binding_here(&snap, &r.ifname)?;
        if *b != here {
            crate::outln!(
                "state file {state_file}: recorded for another namespace or device ({b}; here: {here}): not ours"
            );
        }
    }
    let rec = stored.map(|(r, _)| r);
    let bridge = rec.as_ref().map_or(bridge, |r| r.bridge.as_str());
    match snap.link(bridge) {
        None => crate::outln!("bridge {bridge}: not there"),
        Some(b) => {
            let mut ports = String::new();
            for l in snap.links.iter().filter(|l| l.master == Some(b.index)) {
                if !ports.is_empty() {
                    ports.push(' ');
                }
                ports.push_str(&l.name);
            }
            crate::outln!(
                "bridge {bridge}: {}, mtu {}, mac {}, ports: {}",
                if b.up { "up" } else { "down" },
                b.mtu,
                plan::MacText(&b.mac),
                if ports.is_empty() { "none" } else { &ports }
            );
            for a in snap
                .addrs
                .iter()
                .filter(|a| a.index == b.index && plan::movable_addr(a))
            {
                crate::outln!("  address {}", plan::AddrText(a));
            }
            for r in snap
                .routes
                .iter()
                .filter(|r| plan::movable_route(r, b.index))
            {
                crate::outln!("  route {}", plan::RouteText(r));
            }
        }
    }
    let Some(rec) = rec else {
        crate::outln!("no state file {state_file}: nothing recorded by `tunbox bridge up`");
        return Ok(if snap.link(bridge).is_some() {
            Health::Incomplete
        } else {
            Health::Consistent
        });
    };
    crate::outln!(
        "recorded in {state_file}: port {} (mtu {}, {}), {} address(es), {} route(s); created by up: {}",
        rec.ifname,
        rec.port.mtu,
        if rec.port.up { "up" } else { "down" },
        rec.addrs.len(),
        rec.routes.len(),
        match (rec.created_bridge, rec.created_tap) {
            (true, true) => format!("{} and {}", rec.bridge, rec.tap),
            (true, false) => rec.bridge.clone(),
            (false, true) => rec.tap.clone(),
            (false, false) => "nothing".into(),
        }
    );
    let opts = Options {
        ifname: rec.ifname.clone(),
        tap: rec.tap.clone(),
        bridge: rec.bridge.clone(),
        owner: None,
    };
    let (moved_a, moved_r) = plan::moved_to(&snap, &rec);
    match plan::plan_up(&opts, &snap, Some(&rec)) {
        Ok((_, steps)) if steps.is_empty() => {
            crate::outln!(
                "matches the recorded state: {moved_a} address(es) and {moved_r} route(s) on {}",
                rec.bridge
            );
            Ok(Health::Consistent)
        }
        Ok((_, steps)) => {
            crate::outln!("does NOT match: `tunbox bridge up` would still do:");
            print_plan(&steps);
            crate::outln!("(`tunbox bridge down` restores {} as recorded)", rec.ifname);
            Ok(Health::Incomplete)
        }
        Err(e) => {
            crate::outln!("does NOT match: {e}");
            Ok(Health::Incomplete)
        }
    }
}

/// A persistent device is of no use to its owner when /dev/net/tun is closed to them
/// (some systems ship it 0600): say so, with the fix.
fn warn_if_tun_node_closed(who: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata("/dev/net/tun") {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o006 != 0o006 {
            log::warn!(
                "/dev/net/tun is mode {mode:04o}: {who} cannot open it to attach; \
                 `chmod 0666 /dev/net/tun` (the device's owner check still applies)"
            );
        }
    }
}

/// `tunbox mktun`: a persistent tun/tap device a given user/group may attach to.
pub fn mktun(
    dev: &str,
    mode: Mode,
    user: Option<&str>,
    group: Option<&str>,
) -> Result<String, BridgeError> {
    caps::require_net_admin("creating a persistent tun/tap device")?;
    let uid = match user {
        Some(u) => Some(caps::lookup_user(u)?.uid.as_raw()),
        None => None,
    };
    let gid = match group {
        Some(g) => Some(caps::lookup_group(g)?.as_raw()),
        None => None,
    };
    let t = Tun::open(dev, mode)?;
    if let Some(uid) = uid {
        t.set_owner(uid)?;
    }
    if let Some(gid) = gid {
        t.set_group(gid)?;
    }
    t.set_persist(true)?;
    if let Some(who) = user.or(group) {
        warn_if_tun_node_closed(who);
    }
    Ok(t.name().to_string())
}

/// `tunbox rmtun`: removes a persistent tun/tap device (of that mode only).
pub fn rmtun(dev: &str, mode: Mode) -> Result<(), BridgeError> {
    caps::require_net_admin("removing a tun/tap device")?;
    let mut rtnl = Rtnl::new()?;
    let links = rtnl.links()?;
    let Some(l) = links.iter().find(|l| l.name == dev) else {
        return Err(BridgeError(format!("no network device called '{dev}'")));
    };
    let is_tap = l.ether;
    if l.kind.as_deref() != Some("tun") || is_tap != (mode == Mode::Tap) {
        return Err(BridgeError(format!(
            "'{dev}' is not a {} device: rmtun removes only tun/tap devices of the given --mode",
            mode.as_str()
        )));
    }
    rtnl.delete_link(l.index)?;
    Ok(())
}

#[cfg(test)]
mod tests;
