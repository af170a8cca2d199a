//! `tunbox selftest` as a technician runs it.
mod common;
use common::*;
use std::process::Command;

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn selftest_passes_and_leaves_nothing_behind() {
    if !need_root() {
        return;
    }
    // run inside a namespace of our own, so even a failure can't touch the root one
    let ns = Netns::new("self");
    let out = ns.run(60, TUNBOX, &["selftest"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "ping IPv4 198.18.0.41        pass",
        "ping IPv6 2001:2::41         pass",
        "TCP IPv4 198.18.7.7:7777     pass",
        "TCP IPv6 [2001:2::7]:7778    pass",
        "PASSED: 4 of 4 checks",
    ] {
        assert!(text.contains(line), "missing '{line}' in:\n{text}");
    }
    // the throwaway namespace held the device; ours never saw it
    let links = ns.cmd("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("tbxself0"));
}

#[cfg_attr(
    tunbox_no_netns,
    ignore = "needs root and network namespaces (TUNBOX_SKIP_NETNS set)"
)]
#[test]
fn selftest_without_cap_net_admin_says_what_is_missing() {
    if !need_root() {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args([TUNBOX, "selftest"])
        .output()
        .expect("setpriv (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("MISSING  CAP_NET_ADMIN: tunbox needs CAP_NET_ADMIN"),
        "{text}"
    );
    assert!(
        text.contains("AmbientCapabilities=CAP_NET_ADMIN")
            && !text.contains("setcap cap_net_admin"),
        "{text}"
    );
    assert!(text.contains("FAILED: prerequisites missing"), "{text}");
}
