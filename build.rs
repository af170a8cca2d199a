//! Test configuration only (the binary does not change): environment variables that
//! make tests unrunnable become cfgs, so those tests are reported as *ignored* instead
//! of passing without having run.
//! - `TUNBOX_SKIP_NETNS=1` (not root, or a container without network namespaces):
//!   cfg `tunbox_no_netns`, which ignores every test that needs root.
//! - `TUNBOX_CROSS_NATIVE_STATIC=1` (targets/build.sh, a static binary run natively):
//!   cfg `tunbox_static_native`, which ignores the test that fakes the clock by LD_PRELOAD.
//! - `TUNBOX_CROSS_QEMU=1` (targets/build.sh, tests run under qemu-user): cfg
//!   `tunbox_qemu`, which ignores the tests of what qemu-user does not emulate (file
//!   capabilities of the binary it interprets, the IP_MTU socket option).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(tunbox_no_netns)");
    println!("cargo::rustc-check-cfg=cfg(tunbox_static_native)");
    println!("cargo::rustc-check-cfg=cfg(tunbox_qemu)");
    println!("cargo::rerun-if-env-changed=TUNBOX_CROSS_QEMU");
    println!("cargo::rerun-if-env-changed=TUNBOX_SKIP_NETNS");
    println!("cargo::rerun-if-env-changed=TUNBOX_CROSS_NATIVE_STATIC");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("TUNBOX_SKIP_NETNS").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=tunbox_no_netns");
    }
    if std::env::var_os("TUNBOX_CROSS_QEMU").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=tunbox_qemu");
    }
    if std::env::var_os("TUNBOX_CROSS_NATIVE_STATIC").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=tunbox_static_native");
    }
}
