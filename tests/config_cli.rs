//! The configuration commands, as a user runs them (no root needed).
mod common;
use common::TUNBOX;
use std::process::Command;

fn write_conf(tag: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("tbx-conf-{tag}-{}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

fn tunbox(args: &[&str], conf: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(TUNBOX);
    c.args(args).env("TUNBOX_CONFIG", conf);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = "config reflect 'lab'\n\toption dev 'tun5'\n\tlist address '198.18.0.1/15'\n\n\
config reflect 'off'\n\toption enabled '0'\n";

#[test]
fn check_accepts_a_good_file() {
    let p = write_conf("good", GOOD);
    let (code, out, err) = tunbox(&["config", "check"], &p, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok, 2 section(s): reflect lab; reflect off, disabled"),
        "{out}"
    );
    let _ = std::fs::remove_file(p);
}

#[test]
fn check_rejects_with_file_line_and_option() {
    let p = write_conf(
        "bad",
        "config reflect 'lab'\n\toption mtu 'huge'\nconfig reflect 'b'\n\toption colour 'red'\nconfig frob 'c'\n",
    );
    let (code, _, err) = tunbox(&["config", "check"], &p, &[]);
    let f = p.display();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{f}:2: option 'mtu': 'huge' is not a whole number"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:4: unknown option 'colour' in section 'b'")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:5: unknown section type 'frob'")),
        "{err}"
    );
    assert!(err.contains("3 error(s); nothing was started"), "{err}");
    // run refuses to start the bad section, with the same location
    let (code, _, err) = tunbox(&["run", "lab"], &p, &[]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{f}:2: option 'mtu'")), "{err}");
    let _ = std::fs::remove_file(p);
}

#[test]
fn check_reports_parse_errors_and_bad_env() {
    let p = write_conf("parse", "config reflect 'lab'\n\toption dev 'tun0\n");
    let (code, _, err) = tunbox(&["config", "check"], &p, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{}:2: unterminated single quote", p.display())),
        "{err}"
    );
    let g = write_conf("env", GOOD);
    let (code, _, err) = tunbox(&["config", "check"], &g, &[("TUNBOX_MTU", "12")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("environment TUNBOX_MTU: '12' is not a whole number"),
        "{err}"
    );
    let (code, _, err) = tunbox(&["config", "check"], &g, &[("TUNBOX_DEVV", "x")]);
    assert_eq!(code, 0);
    assert!(err.contains("TUNBOX_DEVV is not a tunbox option"), "{err}");
    let _ = std::fs::remove_file(p);
    let _ = std::fs::remove_file(g);
}

#[test]
fn missing_file_is_named() {
    let p = std::path::Path::new("/nonexistent/tunbox.conf");
    let (code, _, err) = tunbox(&["config", "check"], p, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read config file /nonexistent/tunbox.conf"),
        "{err}"
    );
}

#[test]
fn show_marks_env_and_defaults() {
    let p = write_conf("show", GOOD);
    let (code, out, err) = tunbox(&["config", "show", "lab"], &p, &[("TUNBOX_USER", "nobody")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("tunbox.lab=reflect\n"), "{out}");
    assert!(out.contains("tunbox.lab.dev='tun5'\n"), "{out}");
    assert!(
        out.contains("tunbox.lab.address='198.18.0.1/15'\n"),
        "{out}"
    );
    assert!(out.contains("tunbox.lab.mode='tun'  # default"), "{out}");
    assert!(
        out.contains("tunbox.lab.user='nobody'  # from environment TUNBOX_USER"),
        "{out}"
    );
    assert!(!out.contains("tunbox.off"), "only the asked section: {out}");
    let (code, out, _) = tunbox(&["config", "show"], &p, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("tunbox.off.enabled='0'"), "{out}");
    let _ = std::fs::remove_file(p);
}

#[test]
fn reflect_rejects_bad_cli_values_before_touching_anything() {
    let p = std::path::Path::new("/nonexistent");
    let (code, _, err) = tunbox(&["reflect", "--address", "198.18.0.1"], p, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--address: '198.18.0.1' is not ADDRESS/PREFIX"),
        "{err}"
    );
    let (code, _, err) = tunbox(&["reflect", "--dev", "x/y"], p, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--dev: 'x/y' is not an interface name"),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    let out = Command::new(TUNBOX).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tunbox 0."));
    let out = Command::new(TUNBOX)
        .args(["reflect", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--address") && help.contains("198.18.0.1/15"),
        "{help}"
    );
}

/// `tunbox --help | head -1` and a log collector that went away must not make tunbox
/// panic: stdout is a pipe whose reading end is already closed, so every write fails
/// with EPIPE (SIGPIPE is ignored by Rust programs).
#[test]
fn closed_stdout_is_not_a_panic() {
    let (rd, wr) = nix::unistd::pipe().unwrap();
    drop(rd);
    for args in [
        &["reflect", "--help"][..],
        &["--version"],
        &["config", "show"],
    ] {
        let out = Command::new(TUNBOX)
            .args(args)
            .env("TUNBOX_CONFIG", "/nonexistent")
            .stdout(std::process::Stdio::from(wr.try_clone().unwrap()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
    // a usage error is exit 2 with a pointer to --help
    let out = Command::new(TUNBOX).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Run tunbox --help"));
}

/// `genkey -` writes the key file's text to stdout (as `wg genkey`); a full disk is an
/// error, not a panic.
#[test]
fn genkey_to_stdout() {
    let out = Command::new(TUNBOX).args(["genkey", "-"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text.lines().last().unwrap_or_default();
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{text}"
    );
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(TUNBOX)
        .args(["genkey", "-"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot write the key to stdout") && !err.contains("panicked"),
        "{err}"
    );
}

/// `bridge down --tap X` refuses a state file that records another tap, before asking
/// for privileges or changing anything.
#[test]
fn bridge_down_checks_names_against_the_record() {
    let dir = std::env::temp_dir().join(format!("tbx-down-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("bridge.state");
    // an `up --dry-run` prints a plan but writes nothing: make the record by hand
    let rec = tunbox::bridge::plan::Record {
        ifname: "eth0".into(),
        tap: "tap0".into(),
        bridge: "br-tunbox".into(),
        created_bridge: true,
        created_tap: true,
        port: tunbox::bridge::plan::LinkRecord {
            mtu: 1500,
            up: true,
            mac: Some([2, 0, 0, 0, 0, 1]),
            master: None,
        },
        tap_orig: None,
        bridge_orig: None,
        addrs: Vec::new(),
        routes: Vec::new(),
        sysctls: Vec::new(),
    };
    std::fs::write(&state, tunbox::bridge::state::to_text(&rec, None)).unwrap();
    let st = state.to_str().unwrap();
    let p = std::path::Path::new("/nonexistent");
    let (code, _, err) = tunbox(
        &["bridge", "down", "--state-file", st, "--tap", "tap7"],
        p,
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{st} records tap 'tap0', not 'tap7'")),
        "{err}"
    );
    let (code, _, err) = tunbox(
        &[
            "bridge",
            "down",
            "--state-file",
            st,
            "--ifname",
            "eth1",
            "--dry-run",
        ],
        p,
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("records ifname 'eth0', not 'eth1'"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A variable that is not UTF-8 (ours or anyone's) is not a panic: a foreign one is
/// ignored, a TUNBOX_ one is checked like any other value.
#[test]
fn non_utf8_environment_is_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"\xff");
    let out = Command::new(TUNBOX)
        .args(["reflect", "--dev", "x/y"])
        .env("OTHER", bad)
        .env("TUNBOX_MTU", bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("TUNBOX_MTU") || err.contains("--dev"), "{err}");
}

/// `config check` lists every error (several per section, rules at the option's line)
/// and uci's warnings; `config show SECTION` still prints a section with errors, the
/// errors marked, exit status 2.
#[test]
fn check_lists_every_error_and_show_marks_them() {
    let p = write_conf(
        "every",
        "config tunnel 'a'\n\toption remote 'h:1'\n\toption listen '5000'\n\toption mtu 'x'\n\
         \toption keepalive '30'\n\toption timeout '20'\n\toption frob '1'\n\
         config reflect 'r'\n\toption dev\n\toption mtu 1400;option x y\n\
         config reflect 'q' junk\n",
    );
    let f = p.display();
    let (code, _, err) = tunbox(&["config", "check"], &p, &[]);
    assert_eq!(code, 2, "{err}");
    for want in [
        format!("{f}:2: section 'a': give either 'listen' (server) or 'remote' (client)"),
        // (a section's missing key_file is checked with its `config peer` sections,
        // once its other options are right)
        format!("{f}:4: option 'mtu': 'x' is not a whole number"),
        format!("{f}:6: section 'a': timeout (20 s) must be longer than keepalive (30 s)"),
        format!("{f}:7: unknown option 'frob' in section 'a'"),
        format!("{f}:11: too many arguments ('junk' is one too many)"),
        format!("warning: {f}:9: option 'dev' has no value"),
        format!("warning: {f}:10: uci ignores 'option x y' after the ';'"),
        "5 error(s); nothing was started".to_string(),
    ] {
        assert!(err.contains(&want), "{want}\n{err}");
    }
    let (code, out, err) = tunbox(&["config", "show", "a"], &p, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(out.starts_with("tunbox.a=tunnel\n"), "{out}");
    assert!(out.contains("tunbox.a.remote='h:1'\n"), "{out}");
    assert!(
        out.contains(&format!(
            "tunbox.a.mtu='x'  # ERROR: {f}:4: option 'mtu': 'x' is not"
        )),
        "{out}"
    );
    assert!(out.contains("tunbox.a.frob='1'  # ERROR: "), "{out}");
    assert!(
        out.contains(&format!("# ERROR: {f}:6: section 'a': timeout (20 s)")),
        "{out}"
    );
    assert!(err.contains("`tunbox run` starts nothing"), "{err}");
    let _ = std::fs::remove_file(p);
}

/// Sections by the names uci shows and procd passes: `@TYPE[N]` and the `cfg…` id of
/// an anonymous section.
#[test]
fn show_takes_uci_names() {
    let p = write_conf(
        "names",
        "config reflect 'lab'\n\toption dev 'tun5'\nconfig reflect\n\toption dev 'tun6'\n",
    );
    let (code, out, err) = tunbox(&["config", "show", "@reflect[1]"], &p, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tunbox.cfg026a0a.dev='tun6'\n"), "{out}");
    let (code, out, err) = tunbox(&["config", "show", "cfg026a0a"], &p, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tunbox.cfg026a0a.dev='tun6'\n"), "{out}");
    let (code, out, _) = tunbox(&["config", "show", "@reflect[-2]"], &p, &[]);
    assert_eq!(code, 0);
    assert!(out.contains("tunbox.lab.dev='tun5'\n"), "{out}");
    let (code, _, err) = tunbox(&["config", "show", "@tunnel[0]"], &p, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no section '@tunnel[0]'"), "{err}");
    let (code, out, _) = tunbox(&["config", "check"], &p, &[]);
    assert_eq!(code, 0);
    assert!(
        out.contains("reflect lab; reflect cfg026a0a (@reflect[1])"),
        "{out}"
    );
    let _ = std::fs::remove_file(p);
}

/// TUNBOX_* variables apply to the section being run, not to every section at `config
/// check`; errors they cause name them.
#[test]
fn env_overrides_are_scoped_and_named() {
    let p = write_conf(
        "scope",
        "config tunnel 't'\n\toption remote '198.18.0.9:5000'\n\toption plaintext '1'\n\
         config reflect 'r'\n\toption dev 'tun5'\n",
    );
    let (code, out, err) = tunbox(&["config", "check"], &p, &[("TUNBOX_LISTEN", "6000")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("environment TUNBOX_LISTEN: applied to no section"),
        "{out}"
    );
    // the variable makes the tunnel both server and client: the error names it
    let (code, _, err) = tunbox(
        &["run", "t"],
        &p,
        &[("TUNBOX_LISTEN", "6000"), ("TUNBOX_RANGE", "198.18.0.0/15")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("environment TUNBOX_LISTEN: give either 'listen'"),
        "{err}"
    );
    assert!(
        err.contains("TUNBOX_RANGE is not an option of tunnel sections"),
        "{err}"
    );
    let (code, out, _) = tunbox(&["config", "show", "t"], &p, &[("TUNBOX_TIMEOUT", "5")]);
    assert_eq!(code, 2);
    assert!(
        out.contains("# ERROR: environment TUNBOX_TIMEOUT: timeout (5 s) must be longer"),
        "{out}"
    );
    // a bad value is still an error at `config check`, naming the variable
    let (code, _, err) = tunbox(&["config", "check"], &p, &[("TUNBOX_TIMEOUT", "soon")]);
    assert_eq!(code, 2);
    assert!(err.contains("environment TUNBOX_TIMEOUT: 'soon'"), "{err}");
    let _ = std::fs::remove_file(p);
}

/// A file that is not UTF-8 is not refused as a whole: a comment may hold any byte, a
/// value that is not UTF-8 is an error at its line naming the byte.
#[test]
fn non_utf8_file() {
    let p = std::env::temp_dir().join(format!("tbx-conf-latin1-{}", std::process::id()));
    std::fs::write(
        &p,
        b"# r\xe9flecteur\nconfig reflect 'r'\n\toption dev 'tun5'\n".as_slice(),
    )
    .unwrap();
    let (code, out, err) = tunbox(&["config", "check"], &p, &[]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::write(&p, b"config reflect 'r'\n\toption dev 't\xe9'\n".as_slice()).unwrap();
    let (code, _, err) = tunbox(&["config", "check"], &p, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{}:2: byte 0xe9 in", p.display())),
        "{err}"
    );
    let _ = std::fs::remove_file(p);
}

/// An argument that is not UTF-8 is a usage error (exit 2, named), not a panic.
#[test]
fn non_utf8_argument_is_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(TUNBOX)
        .arg("config")
        .arg(std::ffi::OsStr::from_bytes(b"sh\xffow"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the argument 'sh\u{fffd}ow' is not valid UTF-8"),
        "{err}"
    );
}
