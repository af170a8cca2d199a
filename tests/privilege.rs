//! Privilege boundaries: a tunbox given file capabilities refuses to be steered by an
//! unprivileged user, and a privileged tunbox never acts on a state file someone else
//! could have written (issue: local privilege escalation through `setcap`).
mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// A private directory (0755, so uid 65534 can reach what is in it), removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tbx-priv-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A state file that would put an address and a default route on eth0.
fn planted_record(path: &str) {
    let rec = tunbox::bridge::plan::Record {
        ifname: "eth0".into(),
        tap: "tap0".into(),
        bridge: "br-tunbox".into(),
        created_bridge: false,
        created_tap: false,
        port: tunbox::bridge::plan::LinkRecord {
            mtu: 1500,
            up: true,
            mac: Some([2, 0, 0, 0, 0, 1]),
            master: None,
        },
        tap_orig: None,
        bridge_orig: None,
        addrs: vec![tunbox::sys::netlink::AddrEntry {
            index: 0,
            addr: "198.18.9.9".parse().unwrap(),
            prefix_len: 24,
            peer: None,
            broadcast: None,
            scope: 0,
            flags: 0,
            label: None,
            lifetimes: None,
            proto: None,
            metric: None,
        }],
        routes: Vec::new(),
        sysctls: Vec::new(),
    };
    std::fs::write(path, tunbox::bridge::state::to_text(&rec, None)).unwrap();
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[cfg_attr(
    tunbox_qemu,
    ignore = "under qemu-user the kernel runs qemu, so the binary's file capabilities never apply"
)]
#[test]
fn file_capabilities_do_not_let_a_user_steer_tunbox() {
    if !need_root() {
        return;
    }
    let dir = Dir::new("fcaps");
    let bin = dir.path("tunbox");
    std::fs::copy(TUNBOX, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let set = Command::new("setcap")
        .args(["cap_net_admin+ep", &bin])
        .output()
        .expect("setcap (apt: libcap2-bin)");
    assert!(set.status.success(), "setcap: {}", text(&set));

    let state = dir.path("state");
    planted_record(&state);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(
        state.as_str(),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();

    let ns = Netns::new("fcaps");
    let before = ns.ip_out(&["addr"]);
    let as_nobody = |args: &[&str]| {
        ns.run(
            10,
            "setpriv",
            &[
                &["--reuid=65534", "--regid=65534", "--clear-groups", &bin][..],
                args,
            ]
            .concat(),
        )
    };
    for args in [
        &["bridge", "down", "--state-file", &state][..],
        &["reflect", "--dev", "tun9", "--address", "198.18.0.1/24"][..],
    ] {
        let out = as_nobody(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains("refusing to run for uid 65534 with privileges from file capabilities")
                && t.contains("setcap -r"),
            "{args:?}: {t}"
        );
    }
    assert_eq!(
        ns.ip_out(&["addr"]),
        before,
        "nothing changed in the namespace"
    );
    // Commands that need no privileges still work, with the capabilities dropped.
    let out = as_nobody(&["genkey", "-"]);
    assert!(out.status.success(), "{}", text(&out));
    let key = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        key.lines()
            .any(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit())),
        "{key}"
    );
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn root_never_applies_a_state_file_another_user_could_have_written() {
    if !need_root() {
        return;
    }
    let dir = Dir::new("owner");
    let ns = Netns::new("owner");
    let before = ns.ip_out(&["addr"]);
    let state = dir.path("state");
    for (owner, mode, why) in [
        (65534, 0o644, "is owned by uid 65534, not root"),
        (0, 0o666, "is writable by every user (mode 0666)"),
        (0, 0o664, "is writable by its group (mode 0664)"),
    ] {
        planted_record(&state);
        nix::unistd::chown(
            state.as_str(),
            Some(nix::unistd::Uid::from_raw(owner)),
            None,
        )
        .unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = ns.run(10, TUNBOX, &["bridge", "down", "--state-file", &state]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(
            t.contains(&format!("state file {state} {why}")) && t.contains("chown root:root"),
            "{t}"
        );
    }
    assert_eq!(
        ns.ip_out(&["addr"]),
        before,
        "nothing changed in the namespace"
    );
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn root_never_runs_a_config_file_another_user_could_have_written() {
    if !need_root() {
        return;
    }
    let dir = Dir::new("conf");
    let ns = Netns::new("conf");
    let conf = dir.path("tunbox");
    std::fs::write(
        &conf,
        "config reflect 'lab'\n\toption dev 'tun7'\n\tlist address '198.18.0.1/24'\n",
    )
    .unwrap();
    for (owner, mode, why) in [
        (65534, 0o644, "is owned by uid 65534, not root"),
        (0, 0o646, "is writable by every user (mode 0646)"),
    ] {
        nix::unistd::chown(conf.as_str(), Some(nix::unistd::Uid::from_raw(owner)), None).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = ns.run_env(10, TUNBOX, &["run", "lab"], &[("TUNBOX_CONFIG", &conf)]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{t}");
        assert!(t.contains(&format!("config file {conf} {why}")), "{t}");
        assert!(!ns.ip_out(&["link"]).contains("tun7"), "nothing was set up");
    }
    // `config check` only reads: it still checks a file of someone else's.
    let out = ns.run_env(
        10,
        TUNBOX,
        &["config", "check"],
        &[("TUNBOX_CONFIG", &conf)],
    );
    assert!(out.status.success(), "{}", text(&out));
}
