use super::schema::{self, Kind};
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FILE: &str = "config reflect 'lab'\n\
    \toption dev 'tun7'\n\
    \toption mtu '1400'\n\
    \tlist address '198.18.0.1/15'\n\
    \tlist address '2001:2::1/48'\n\
    config reflect 'bad'\n\
    \toption mtu 'big'\n\
    config reflect 'typo'\n\
    \toption devv 'x'\n";

fn lab() -> uci::UciFile {
    uci::parse("/etc/config/tunbox", FILE).unwrap()
}

#[test]
fn layers_in_order() {
    let f = lab();
    let s = f.section("lab").unwrap();
    // file only
    let r = resolve(&schema::REFLECT, Some((&f.path, s)), &[], &[]).unwrap();
    assert_eq!(r.one::<String>("dev").as_deref(), Some("tun7"));
    assert_eq!(
        r.one::<crate::sys::tun::Mode>("mode"),
        Some(crate::sys::tun::Mode::Tun)
    );
    assert_eq!(r.setting("mode").unwrap().source, Source::Default);
    assert_eq!(
        r.setting("address").unwrap().values,
        ["198.18.0.1/15", "2001:2::1/48"]
    );
    assert_eq!(
        r.setting("mtu").unwrap().source,
        Source::Uci {
            file: "/etc/config/tunbox".into(),
            line: 3
        }
    );
    // env beats the file; a list from env splits on spaces and commas
    let e = env(&[
        ("TUNBOX_DEV", "tun8"),
        ("TUNBOX_ADDRESS", "198.18.9.1/24, 2001:2::9/64"),
    ]);
    let r = resolve(&schema::REFLECT, Some((&f.path, s)), &e, &[]).unwrap();
    assert_eq!(r.one::<String>("dev").as_deref(), Some("tun8"));
    assert_eq!(
        r.setting("dev").unwrap().source,
        Source::Env("TUNBOX_DEV".into())
    );
    assert_eq!(
        r.setting("address").unwrap().values,
        ["198.18.9.1/24", "2001:2::9/64"]
    );
    // the command line beats both
    let cli = vec![("dev", vec!["tun9".to_string()]), ("address", vec![])];
    let r = resolve(&schema::REFLECT, Some((&f.path, s)), &e, &cli).unwrap();
    assert_eq!(r.one::<String>("dev").as_deref(), Some("tun9"));
    assert_eq!(r.setting("dev").unwrap().source, Source::Cli);
    assert_eq!(
        r.all::<(std::net::IpAddr, u8)>("address").len(),
        2,
        "an empty CLI list does not override"
    );
}

#[test]
fn bad_value_names_file_line_option() {
    let f = lab();
    let e = resolve(
        &schema::REFLECT,
        Some((&f.path, f.section("bad").unwrap())),
        &[],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/config/tunbox:7: option 'mtu': 'big' is not a whole number from 68 to 65535"
    );
}

#[test]
fn unknown_option_names_file_line() {
    let f = lab();
    let e = resolve(
        &schema::REFLECT,
        Some((&f.path, f.section("typo").unwrap())),
        &[],
        &[],
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("/etc/config/tunbox:9: unknown option 'devv' in section 'typo'"),
        "{s}"
    );
    assert!(s.contains("known options: enabled, mode, dev"), "{s}");
}

#[test]
fn bad_env_and_cli_values_name_their_source() {
    let e = resolve(&schema::REFLECT, None, &env(&[("TUNBOX_MTU", "9")]), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment TUNBOX_MTU: '9' is not a whole number from 68 to 65535"
    );
    let cli = vec![("address", vec!["198.18.0.1".to_string()])];
    let e = resolve(&schema::REFLECT, None, &[], &cli).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("--address: '198.18.0.1' is not ADDRESS/PREFIX"),
        "{e}"
    );
}

#[test]
fn wrong_section_type() {
    let f = lab();
    let e = resolve(
        &schema::TUNNEL,
        Some((&f.path, f.section("lab").unwrap())),
        &[],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/etc/config/tunbox:1: section 'lab' is a 'reflect' section, not 'tunnel'"
    );
}

#[test]
fn list_given_for_single_option() {
    let f = uci::parse("f", "config reflect x\nlist dev a\n").unwrap();
    let e = resolve(&schema::REFLECT, Some(("f", &f.sections[0])), &[], &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "f:2: 'dev' takes one value: use `option`, not `list`"
    );
}

#[test]
fn show_marks_sources() {
    let f = lab();
    let cli = vec![("verbose", vec!["1".to_string()])];
    let r = resolve(
        &schema::REFLECT,
        Some((&f.path, f.section("lab").unwrap())),
        &env(&[("TUNBOX_USER", "nobody")]),
        &cli,
    )
    .unwrap();
    let out = r.show(&[]);
    assert!(out.starts_with("tunbox.lab=reflect\n"), "{out}");
    assert!(out.contains("tunbox.lab.dev='tun7'\n"), "{out}");
    assert!(
        out.contains("tunbox.lab.address='198.18.0.1/15' '2001:2::1/48'\n"),
        "{out}"
    );
    assert!(out.contains("tunbox.lab.mode='tun'  # default\n"), "{out}");
    assert!(
        out.contains("tunbox.lab.user='nobody'  # from environment TUNBOX_USER\n"),
        "{out}"
    );
    assert!(
        out.contains("tunbox.lab.verbose='1'  # from command line\n"),
        "{out}"
    );
}

#[test]
fn unknown_env_vars_are_reported() {
    let e = env(&[
        ("TUNBOX_DEV", "x"),
        ("TUNBOX_KEY_FILE", "/k"),
        ("TUNBOX_CONFIG", "/c"),
        ("TUNBOX_DEVV", "x"),
        ("TUNBOX_CROSS_TARGETS", "mips-unknown-linux-musl"),
        ("TUNBOX_TEST_STOP_AFTER_STEP", "3"),
        ("PATH", "/bin"),
    ]);
    if cfg!(feature = "test-hooks") {
        assert_eq!(unknown_env_vars(&e), ["TUNBOX_DEVV"]);
    } else {
        assert_eq!(
            unknown_env_vars(&e),
            ["TUNBOX_DEVV", "TUNBOX_TEST_STOP_AFTER_STEP"]
        );
    }
}

#[test]
fn value_kinds() {
    let ok: &[(Kind, &str)] = &[
        (Kind::Bool, "yes"),
        (Kind::Cidr, "2001:2::1/48"),
        (Kind::Mac, "02:00:5e:10:00:01"),
        (Kind::Range, "198.18.0.0/15"),
        (Kind::Range, "198.18.0.7"),
        (Kind::Range, "2001:2::/48"),
        (Kind::Listen, "5555"),
        (Kind::Listen, "0.0.0.0:5555"),
        (Kind::Listen, "[::]:5555"),
        (Kind::HostPort, "peer.example:5555"),
        (Kind::HostPort, "[2001:2::1]:5555"),
        (Kind::IfName, "tbx%d"),
        (Kind::Path, "/etc/tunbox/key"),
    ];
    for (k, v) in ok {
        assert_eq!(k.check(v), Ok(()), "{k:?} {v}");
    }
    let bad: &[(Kind, &str)] = &[
        (Kind::Bool, "maybe"),
        (Kind::Cidr, "198.18.0.1/33"),
        (Kind::Cidr, "x/8"),
        (Kind::Mac, "01:00:5e:00:00:01"),
        (Kind::Mac, "02:00:5e:00:00"),
        (Kind::Mac, "+2:00:5e:00:00:01"),
        (Kind::Mac, "02:00-5e:00:00:01"),
        (Kind::Range, "198.18.0.1/15"),
        (Kind::Range, "224.0.0.0/8"),
        (Kind::Listen, "0"),
        (Kind::HostPort, "peer"),
        (Kind::HostPort, ":5555"),
        (Kind::IfName, "a-very-long-interface-name"),
        (Kind::Path, "relative/key"),
        (Kind::Transport, "sctp"),
        (Kind::Mode, "tan"),
    ];
    for (k, v) in bad {
        assert!(k.check(v).is_err(), "{k:?} {v} should be rejected");
    }
}

/// Every error of a section is returned, the bad option is kept (for `config show`)
/// and the good ones are merged.
#[test]
fn resolve_all_goes_on_after_errors() {
    let f = uci::parse(
        "/c",
        "config tunnel 't'\n\toption mtu 'x'\n\toption colour 'red'\n\toption dev 'tun3'\n",
    )
    .unwrap();
    let s = f.section("t").unwrap();
    let (r, errors) = resolve_all(&schema::TUNNEL, Some(("/c", s)), &[], &[]);
    let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with("/c:3: unknown option 'colour'"),
        "{msgs:?}"
    );
    assert!(msgs[1].starts_with("/c:2: option 'mtu': 'x'"), "{msgs:?}");
    assert_eq!(r.one::<String>("dev").as_deref(), Some("tun3"));
    assert!(r.setting("mtu").is_none());
    let names: Vec<&str> = r.broken.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["colour", "mtu"]);
    // `resolve` keeps them all in one error, printed one per line
    let e = resolve(&schema::TUNNEL, Some(("/c", s)), &[], &[]).unwrap_err();
    assert_eq!(e.to_string(), msgs.join("\n"));
    assert_eq!(e.into_all().len(), 2);
    let shown = r.show(&errors);
    assert!(
        shown.contains("tunbox.t.mtu='x'  # ERROR: /c:2: option 'mtu'"),
        "{shown}"
    );
    assert!(
        shown.contains("tunbox.t.colour='red'  # ERROR: "),
        "{shown}"
    );
    assert!(shown.contains("tunbox.t.dev='tun3'\n"), "{shown}");
}

/// A rule between options points at the option's line (not the `config` line), names
/// the variable or command-line option that set it, and is skipped when one of its
/// options has a bad value.
#[test]
fn rule_errors_are_located_at_the_option() {
    let text = "config tunnel 't'\n\toption keepalive '30'\n\n\toption timeout '20'\n";
    let f = uci::parse("/c", text).unwrap();
    let s = f.section("t").unwrap();
    let r = resolve(&schema::TUNNEL, Some(("/c", s)), &[], &[]).unwrap();
    let e = r
        .rule_error(&["timeout", "keepalive"], format_args!("too short"))
        .unwrap();
    assert_eq!(e.to_string(), "/c:4: section 't': too short");
    // nothing set: the section's line
    let e = r
        .rule_error(&["listen", "remote"], format_args!("none"))
        .unwrap();
    assert_eq!(e.to_string(), "/c:1: section 't': none");
    // an override in the environment is what changed the outcome: it is named
    let env = env(&[("TUNBOX_KEEPALIVE", "40")]);
    let r = resolve(&schema::TUNNEL, Some(("/c", s)), &env, &[]).unwrap();
    let e = r
        .rule_error(&["timeout", "keepalive"], format_args!("too short"))
        .unwrap();
    assert_eq!(e.to_string(), "environment TUNBOX_KEEPALIVE: too short");
    let cli = [("timeout", vec!["5".to_string()])];
    let r = resolve(&schema::TUNNEL, Some(("/c", s)), &env, &cli).unwrap();
    let e = r
        .rule_error(&["timeout", "keepalive"], format_args!("too short"))
        .unwrap();
    assert_eq!(e.to_string(), "--timeout: too short");
    // a bad value: its own error is reported, the rule is not judged
    let bad = env_bad();
    let (r, errors) = resolve_all(&schema::TUNNEL, Some(("/c", s)), &bad, &[]);
    assert_eq!(errors.len(), 1);
    assert!(r
        .rule_error(&["timeout", "keepalive"], format_args!("x"))
        .is_none());
}

fn env_bad() -> Vec<(String, String)> {
    env(&[("TUNBOX_TIMEOUT", "soon")])
}

/// The tools' own rules report every error, not the first.
#[test]
fn tool_rules_report_every_error() {
    use crate::commands::ToolOptions;
    let text = "config tunnel 't'\n\toption listen '5000'\n\toption remote 'h:1'\n\
                \toption keepalive '30'\n\toption timeout '20'\n";
    let f = uci::parse("/c", text).unwrap();
    let r = resolve(
        &schema::TUNNEL,
        Some(("/c", f.section("t").unwrap())),
        &[],
        &[],
    )
    .unwrap();
    let e = crate::tunnel_run::TunnelOptions::from_resolved(&r).unwrap_err();
    let all: Vec<String> = e.into_all().iter().map(|e| e.to_string()).collect();
    // (a section's missing key_file is checked with its `config peer` sections,
    // which may give the keys instead: see commands::tunnel's peer tests)
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all[0].starts_with("/c:3: section 't': give either"),
        "{all:?}"
    );
    assert!(
        all[1].starts_with("/c:5: section 't': timeout (20 s)"),
        "{all:?}"
    );
}

/// `config check` applies no variable to a section but checks their values against
/// every section type that has the option; a tool's section warns about variables of
/// other section types.
#[test]
fn env_checks_and_scoping() {
    let e = env(&[
        ("TUNBOX_MTU", "12"),
        ("TUNBOX_RANGE", "198.18.0.0/15"),
        ("TUNBOX_LISTEN", "6000"),
        ("TUNBOX_DEVV", "x"),
    ]);
    let errors = check_env(&e);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0]
        .to_string()
        .starts_with("environment TUNBOX_MTU: '12'"));
    assert_eq!(
        env_applied(&schema::TUNNEL, &e),
        ["TUNBOX_MTU", "TUNBOX_LISTEN"]
    );
    assert_eq!(env_not_for(&schema::TUNNEL, &e), ["TUNBOX_RANGE"]);
    assert_eq!(env_not_for(&schema::REFLECT, &e), ["TUNBOX_LISTEN"]);
}

/// A file that is not UTF-8: comments may hold any byte (uci ignores them); a name or
/// value that is not UTF-8 is an error at its line, naming the byte.
#[test]
fn non_utf8_bytes() {
    let f = uci::parse(
        "/c",
        b"# caf\xe9\nconfig reflect 'r' # \xff\xfe\n\toption dev 'tun0'\n",
    )
    .unwrap();
    assert_eq!(
        f.section("r").unwrap().option("dev").unwrap().values,
        ["tun0"]
    );
    let e = uci::parse(
        "/c",
        b"config reflect 'r'\n\toption key_file '/etc/caf\xe9'\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/c:2: byte 0xe9 in '/etc/caf\u{fffd}' is not UTF-8"),
        "{e}"
    );
    let (_, errors) = uci::parse_all("/c", b"config reflect 'r\xc3'\nconfig x\xff\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[1].line, Some(2));
}
