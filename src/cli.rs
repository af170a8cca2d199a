//! Command-line interface: the public structs below (one per subcommand) and the static
//! tables that describe them, read by one small table-driven parser ([`parse`]).
//!
//! Every option that also exists in the UCI file / environment is an `Option<_>` (or a
//! `Vec<_>` for lists) so that "not given on the command line" can be told apart from a
//! value, and the layers defaults < UCI < env < CLI can be merged in `config`.
//!
//! The parser follows the rules of argh (which it replaced to save ~20 KB on mips):
//! `--name VALUE` (no `--name=VALUE`), switches, `-v` for `--verbose`, repeatable
//! options, one positional, `--` ends options, `--help` or `help` anywhere (before `--`)
//! prints the help of the command it belongs to, an option given twice that is not
//! repeatable is an error.
//!
//! What each command and option means is written once, in the tables (`TOP`, `REFLECT`,
//! ...) that `--help` prints; the structs carry no doc comments of their own, so the two
//! cannot drift apart.
use std::fmt::Write as _;

#[derive(Debug)]
pub struct Top {
    pub version: bool,
    pub cmd: Option<Cmd>,
}

#[derive(Debug)]
pub enum Cmd {
    Reflect(Reflect),
    Tunnel(Tunnel),
    Bridge(Bridge),
    Mktun(Mktun),
    Rmtun(Rmtun),
    Genkey(Genkey),
    Run(Run),
    Config(Config),
    Selftest(Selftest),
}

#[derive(Debug, Default)]
pub struct Reflect {
    pub dev: Option<String>,
    pub mode: Option<String>,
    pub address: Vec<String>,
    pub mtu: Option<String>,
    pub range: Vec<String>,
    pub mac: Option<String>,
    pub icmp_echo: bool,
    pub user: Option<String>,
    pub verbose: bool,
    pub syslog: bool,
    pub section: Option<String>,
}

#[derive(Debug, Default)]
pub struct Tunnel {
    pub mode: Option<String>,
    pub dev: Option<String>,
    pub listen: Option<String>,
    pub remote: Option<String>,
    pub transport: Option<String>,
    pub key_file: Option<String>,
    pub plaintext: bool,
    pub address: Vec<String>,
    pub mtu: Option<String>,
    pub keepalive: Option<String>,
    pub timeout: Option<String>,
    pub user: Option<String>,
    pub verbose: bool,
    pub syslog: bool,
    pub section: Option<String>,
}

#[derive(Debug)]
pub struct Bridge {
    pub action: BridgeAction,
}

#[derive(Debug)]
pub enum BridgeAction {
    Up(BridgeUp),
    Down(BridgeDown),
    Status(BridgeStatus),
}

#[derive(Debug, Default)]
pub struct BridgeUp {
    pub ifname: Option<String>,
    pub tap: Option<String>,
    pub bridge: Option<String>,
    pub user: Option<String>,
    pub state_file: Option<String>,
    pub dry_run: bool,
    pub section: Option<String>,
}

#[derive(Debug, Default)]
pub struct BridgeDown {
    pub bridge: Option<String>,
    pub state_file: Option<String>,
    pub dry_run: bool,
    pub section: Option<String>,
}

#[derive(Debug, Default)]
pub struct BridgeStatus {
    pub bridge: Option<String>,
    pub state_file: Option<String>,
    pub section: Option<String>,
}

#[derive(Debug)]
pub struct Mktun {
    pub dev: String,
    pub mode: String,
    pub user: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug)]
pub struct Rmtun {
    pub dev: String,
    pub mode: String,
}

#[derive(Debug)]
pub struct Genkey {
    pub path: String,
}

#[derive(Debug)]
pub struct Run {
    pub section: String,
}

#[derive(Debug)]
pub struct Config {
    pub action: ConfigAction,
}

#[derive(Debug)]
pub enum ConfigAction {
    Check(ConfigCheck),
    Show(ConfigShow),
}

#[derive(Debug)]
pub struct ConfigCheck {}

#[derive(Debug)]
pub struct ConfigShow {
    pub section: Option<String>,
}

#[derive(Debug)]
pub struct Selftest {}

// ---------------------------------------------------------------------------------------
// The tables: what each command accepts and its help text.

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `--name`, no value
    Switch,
    /// `--name VALUE`, at most once
    Value,
    /// `--name VALUE`, exactly once
    Required,
    /// `--name VALUE`, any number of times (a list)
    Repeat,
}

/// One option: `--long` (and `-short` when not 0) with its help line.
struct Opt {
    long: &'static str,
    short: u8,
    kind: Kind,
    help: &'static str,
}

/// A positional argument: its name in the usage line, whether it must be given.
struct Pos {
    name: &'static str,
    required: bool,
    help: &'static str,
}

/// One command (or the top level): its options, its positional or its subcommands.
struct Spec {
    name: &'static str,
    about: &'static str,
    opts: &'static [Opt],
    pos: Option<Pos>,
    subs: &'static [&'static Spec],
    /// one of `subs` has to follow (bridge, config); optional at the top level
    sub_required: bool,
}

const fn opt(long: &'static str, kind: Kind, help: &'static str) -> Opt {
    Opt {
        long,
        short: 0,
        kind,
        help,
    }
}

const fn leaf(name: &'static str, about: &'static str, opts: &'static [Opt]) -> Spec {
    Spec {
        name,
        about,
        opts,
        pos: None,
        subs: &[],
        sub_required: false,
    }
}

use Kind::{Repeat, Required, Switch, Value};

const SECTION: Opt = opt(
    "section",
    Value,
    "take unset options from this section of the UCI file",
);
const DRY_RUN: Opt = opt("dry-run", Switch, "print the plan and change nothing");
const BRIDGE_NAME: Opt = opt("bridge", Value, "the bridge (default br-tunbox)");
const STATE_FILE: Opt = opt(
    "state-file",
    Value,
    "the recorded state (default /var/run/tunbox/bridge-BRIDGE.state)",
);
const MODE_TUN_TAP: Opt = opt("mode", Value, "tun (default) or tap");

static TOP: Spec = Spec {
    name: "",
    about: "tunbox: TUN/TAP reflector, encrypted point-to-point tunnel and eth0-to-tap bridge
setup for Raspberry Pi and OpenWrt. Configuration comes from the command line, then
TUNBOX_* environment variables, then the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG).
`tunbox probe --help`: loss, RTT, jitter and RFC 2544 throughput against a reflector.",
    opts: &[opt("version", Switch, "print the version and exit")],
    pos: None,
    subs: &[
        &REFLECT, &TUNNEL, &BRIDGE, &MKTUN, &RMTUN, &GENKEY, &RUN, &CONFIG, &SELFTEST,
    ],
    sub_required: false,
};

static REFLECT: Spec = leaf(
    "reflect",
    "answer every packet routed into a TUN (or TAP) device by sending it back with source
and destination swapped (a loopback for link tests). Example:
  tunbox reflect --dev tun0 --address 198.18.0.1/15 --address 2001:2::1/48
then `ping 198.18.0.41` or `ping 2001:2::41` is answered.",
    &[
        opt(
            "dev",
            Value,
            "device name (default: tun0 / tap0 by mode; a name with %d lets the kernel pick)",
        ),
        opt(
            "mode",
            Value,
            "device kind: tun (IP packets, default) or tap (Ethernet frames)",
        ),
        opt(
            "address",
            Repeat,
            "address to put on the device, CIDR form (repeatable), e.g. 198.18.0.1/15",
        ),
        opt(
            "mtu",
            Value,
            "device MTU (default: leave as the kernel set it, 1500)",
        ),
        opt(
            "range",
            Repeat,
            "tap mode: address range answered (repeatable), e.g. 198.18.0.0/15",
        ),
        opt(
            "mac",
            Value,
            "tap mode: the reflector's MAC (default: a stable locally administered address)",
        ),
        opt(
            "icmp-echo",
            Switch,
            "tap mode: answer ICMP/ICMPv6 echo requests directly with echo replies",
        ),
        opt(
            "user",
            Value,
            "switch to this user (and its group) after the device is set up",
        ),
        Opt {
            long: "verbose",
            short: b'v',
            kind: Switch,
            help: "log every packet (LEN: SRC->DST), rate-limited",
        },
        opt(
            "syslog",
            Switch,
            "log to the local syslog (logread on OpenWrt) instead of stderr",
        ),
        SECTION,
    ],
);

static TUNNEL: Spec = leaf(
    "tunnel",
    "point-to-point tunnel carrying IP (tun) or Ethernet (tap) over UDP or TCP, encrypted
and authenticated with a key file shared by both ends (see `tunbox genkey`).
Server: tunbox tunnel --listen 5555 --key-file /etc/tunbox/key --address 198.18.1.1/30
Client: tunbox tunnel --remote server:5555 --key-file /etc/tunbox/key --address 198.18.1.2/30",
    &[
        opt(
            "mode",
            Value,
            "device kind: tun (IP, default) or tap (Ethernet)",
        ),
        opt(
            "dev",
            Value,
            "device name (default: tbx%d, the kernel picks the number)",
        ),
        opt("listen", Value, "server: listen on [ADDR:]PORT"),
        opt("remote", Value, "client: connect to HOST:PORT"),
        opt("transport", Value, "udp (default) or tcp"),
        opt(
            "key-file",
            Value,
            "file with the shared key, made by `tunbox genkey`",
        ),
        opt(
            "plaintext",
            Switch,
            "no encryption (lab use only; wire-compatible with simpletun / socat)",
        ),
        opt(
            "address",
            Repeat,
            "address to put on the tunnel device, CIDR form (repeatable)",
        ),
        opt(
            "mtu",
            Value,
            "tunnel device MTU (default: fitted to the transport overhead)",
        ),
        opt(
            "keepalive",
            Value,
            "seconds between keepalives (default 10)",
        ),
        opt(
            "timeout",
            Value,
            "seconds without traffic from the peer before it counts as dead (default 30)",
        ),
        opt(
            "user",
            Value,
            "switch to this user (and its group) after setup",
        ),
        Opt {
            long: "verbose",
            short: b'v',
            kind: Switch,
            help: "log every packet, rate-limited",
        },
        opt(
            "syslog",
            Switch,
            "log to the local syslog instead of stderr",
        ),
        SECTION,
    ],
);

static BRIDGE: Spec = Spec {
    name: "bridge",
    about: "join eth0 and a tap device in a Linux bridge (and undo it exactly)",
    opts: &[],
    pos: None,
    subs: &[&BRIDGE_UP, &BRIDGE_DOWN, &BRIDGE_STATUS],
    sub_required: true,
};

static BRIDGE_UP: Spec = leaf(
    "up",
    "create the bridge, move eth0's addresses and routes to it, enslave eth0 and the tap",
    &[
        opt("ifname", Value, "the physical port (default eth0)"),
        opt(
            "tap",
            Value,
            "the tap device to add, created persistent if missing (default tap0)",
        ),
        BRIDGE_NAME,
        opt(
            "user",
            Value,
            "owner of a tap that has to be created (user name or uid)",
        ),
        opt(
            "state-file",
            Value,
            "where the original state is recorded (default /var/run/tunbox/bridge-BRIDGE.state)",
        ),
        DRY_RUN,
        SECTION,
    ],
);

static BRIDGE_DOWN: Spec = leaf(
    "down",
    "put eth0 back exactly as it was and remove what `bridge up` created",
    &[BRIDGE_NAME, STATE_FILE, DRY_RUN, SECTION],
);

static BRIDGE_STATUS: Spec = leaf(
    "status",
    "show what is bridged and whether it matches the recorded state",
    &[BRIDGE_NAME, STATE_FILE, SECTION],
);

static MKTUN: Spec = leaf(
    "mktun",
    "create a persistent tun/tap device that a given user/group may attach to",
    &[
        opt("dev", Required, "device name, e.g. tap0"),
        MODE_TUN_TAP,
        opt("user", Value, "owner (user name or uid)"),
        opt("group", Value, "group (group name or gid)"),
    ],
);

static RMTUN: Spec = leaf(
    "rmtun",
    "remove a persistent tun/tap device",
    &[opt("dev", Required, "device name"), MODE_TUN_TAP],
);

static GENKEY: Spec = Spec {
    pos: Some(Pos {
        name: "path",
        required: true,
        help: "where to write the key (refuses to overwrite)",
    }),
    ..leaf(
        "genkey",
        "write a new random tunnel key to PATH (mode 0600); copy the same file to both ends",
        &[],
    )
};

static RUN: Spec = Spec {
    pos: Some(Pos {
        name: "section",
        required: true,
        help: "the section name",
    }),
    ..leaf(
        "run",
        "run one section of the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG); the section's
type names the tool: `config reflect 'lab'` runs a reflector. procd and systemd use this.",
        &[],
    )
};

static CONFIG: Spec = Spec {
    name: "config",
    about: "check or show the configuration",
    opts: &[],
    pos: None,
    subs: &[&CONFIG_CHECK, &CONFIG_SHOW],
    sub_required: true,
};

static CONFIG_CHECK: Spec = leaf(
    "check",
    "validate the UCI file and TUNBOX_* variables without starting anything; errors name
file, line and option. Exit status 0 when valid.",
    &[],
);

static CONFIG_SHOW: Spec = Spec {
    pos: Some(Pos {
        name: "section",
        required: false,
        help: "only this section",
    }),
    ..leaf(
        "show",
        "print the configuration in effect, in the section.option='value' form of `uci show`;
values from the environment or from defaults are marked",
        &[],
    )
};

static SELFTEST: Spec = leaf(
    "selftest",
    "check that this box can run tunbox: /dev/net/tun, CAP_NET_ADMIN, network namespaces;
then run a reflector in a throwaway namespace and ping / connect through it",
    &[],
);

// ---------------------------------------------------------------------------------------
// The engine.

/// Why parsing stopped without a command to run: help was asked for (print `output` to
/// stdout, exit 0) or the command line is wrong (print `output` and a pointer to
/// `command --help` to stderr, exit 2).
#[derive(Debug)]
pub struct Early {
    /// true for help, false for a usage error
    pub help: bool,
    /// the help text or the error message
    pub output: String,
    /// the command the error is about, e.g. `tunbox bridge up`
    pub command: String,
}

/// What the engine found: the command path (top level first), the options given (long
/// name, value; "" for a switch) and the positional.
struct Parsed<'a> {
    path: Vec<&'static Spec>,
    vals: Vec<(&'static str, &'a str)>,
    pos: Option<&'a str>,
}

impl Parsed<'_> {
    fn leaf_has(&self, name: &str) -> bool {
        self.path
            .iter()
            .any(|s| s.opts.iter().any(|o| o.long == name))
    }
    fn one(&self, name: &str) -> Option<String> {
        debug_assert!(self.leaf_has(name), "no option --{name}");
        self.vals
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
    fn all(&self, name: &str) -> Vec<String> {
        debug_assert!(self.leaf_has(name), "no option --{name}");
        self.vals
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
            .collect()
    }
    fn flag(&self, name: &str) -> bool {
        self.one(name).is_some()
    }
    fn pos(&self) -> String {
        self.pos.unwrap_or_default().to_owned()
    }
}

fn command_path(prog: &str, path: &[&'static Spec]) -> String {
    let mut s = String::from(prog);
    for spec in &path[1..] {
        s.push(' ');
        s.push_str(spec.name);
    }
    s
}

/// Parses `args` (without the program name) against the tables. `prog` is the program
/// name used in help and errors.
pub fn parse(prog: &str, args: &[&str]) -> Result<Top, Early> {
    let p = parse_raw(prog, args)?;
    let cmd = match (p.path.get(1).map(|s| s.name), p.path.get(2).map(|s| s.name)) {
        (None, _) => None,
        (Some("reflect"), _) => Some(Cmd::Reflect(Reflect {
            dev: p.one("dev"),
            mode: p.one("mode"),
            address: p.all("address"),
            mtu: p.one("mtu"),
            range: p.all("range"),
            mac: p.one("mac"),
            icmp_echo: p.flag("icmp-echo"),
            user: p.one("user"),
            verbose: p.flag("verbose"),
            syslog: p.flag("syslog"),
            section: p.one("section"),
        })),
        (Some("tunnel"), _) => Some(Cmd::Tunnel(Tunnel {
            mode: p.one("mode"),
            dev: p.one("dev"),
            listen: p.one("listen"),
            remote: p.one("remote"),
            transport: p.one("transport"),
            key_file: p.one("key-file"),
            plaintext: p.flag("plaintext"),
            address: p.all("address"),
            mtu: p.one("mtu"),
            keepalive: p.one("keepalive"),
            timeout: p.one("timeout"),
            user: p.one("user"),
            verbose: p.flag("verbose"),
            syslog: p.flag("syslog"),
            section: p.one("section"),
        })),
        (Some("bridge"), Some("up")) => Some(Cmd::Bridge(Bridge {
            action: BridgeAction::Up(BridgeUp {
                ifname: p.one("ifname"),
                tap: p.one("tap"),
                bridge: p.one("bridge"),
                user: p.one("user"),
                state_file: p.one("state-file"),
                dry_run: p.flag("dry-run"),
                section: p.one("section"),
            }),
        })),
        (Some("bridge"), Some("down")) => Some(Cmd::Bridge(Bridge {
            action: BridgeAction::Down(BridgeDown {
                bridge: p.one("bridge"),
                state_file: p.one("state-file"),
                dry_run: p.flag("dry-run"),
                section: p.one("section"),
            }),
        })),
        (Some("bridge"), Some("status")) => Some(Cmd::Bridge(Bridge {
            action: BridgeAction::Status(BridgeStatus {
                bridge: p.one("bridge"),
                state_file: p.one("state-file"),
                section: p.one("section"),
            }),
        })),
        (Some("mktun"), _) => Some(Cmd::Mktun(Mktun {
            dev: p.one("dev").unwrap_or_default(),
            mode: p.one("mode").unwrap_or_else(|| "tun".into()),
            user: p.one("user"),
            group: p.one("group"),
        })),
        (Some("rmtun"), _) => Some(Cmd::Rmtun(Rmtun {
            dev: p.one("dev").unwrap_or_default(),
            mode: p.one("mode").unwrap_or_else(|| "tun".into()),
        })),
        (Some("genkey"), _) => Some(Cmd::Genkey(Genkey { path: p.pos() })),
        (Some("run"), _) => Some(Cmd::Run(Run { section: p.pos() })),
        (Some("config"), Some("check")) => Some(Cmd::Config(Config {
            action: ConfigAction::Check(ConfigCheck {}),
        })),
        (Some("config"), Some("show")) => Some(Cmd::Config(Config {
            action: ConfigAction::Show(ConfigShow {
                section: p.pos.map(str::to_owned),
            }),
        })),
        (Some("selftest"), _) => Some(Cmd::Selftest(Selftest {})),
        // The engine only ends on a command the tables hold (and requires the subcommand
        // of bridge/config), so this is a table row without an arm above.
        _ => None,
    };
    Ok(Top {
        version: p.flag("version"),
        cmd,
    })
}

/// The engine: walks `args` once, descending into subcommands, and checks what is
/// required at the end. Knows nothing of the structs above.
fn parse_raw<'a>(prog: &str, args: &[&'a str]) -> Result<Parsed<'a>, Early> {
    let mut p = Parsed {
        path: vec![&TOP],
        vals: Vec::new(),
        pos: None,
    };
    let mut spec: &'static Spec = &TOP;
    let mut help = false;
    let mut ended = false;
    let mut rest = args.iter();
    let err = |p: &Parsed, msg: String| Early {
        help: false,
        output: msg,
        command: command_path(prog, &p.path),
    };
    while let Some(&a) = rest.next() {
        if !ended && (a == "--help" || a == "help") {
            help = true;
            continue;
        }
        if !ended && a.starts_with('-') {
            if a == "--" {
                ended = true;
                continue;
            }
            if help {
                return Err(err(
                    &p,
                    "Trailing arguments are not allowed after `help`.".into(),
                ));
            }
            let found = spec.opts.iter().find(|o| match a.strip_prefix("--") {
                Some(long) => long == o.long,
                None => o.short != 0 && a.len() == 2 && a.as_bytes()[1] == o.short,
            });
            let Some(o) = found else {
                return Err(err(&p, ["Unrecognized argument: ", a].concat()));
            };
            if o.kind == Switch {
                p.vals.push((o.long, ""));
                continue;
            }
            let Some(&v) = rest.next() else {
                let msg = ["No value provided for option '", a, "'."].concat();
                return Err(err(&p, msg));
            };
            if o.kind != Repeat && p.vals.iter().any(|(n, _)| *n == o.long) {
                let msg = [
                    "Error parsing option '",
                    a,
                    "' with value '",
                    v,
                    "': duplicate values provided",
                ]
                .concat();
                return Err(err(&p, msg));
            }
            p.vals.push((o.long, v));
            continue;
        }
        if let Some(&sub) = spec.subs.iter().find(|s| s.name == a) {
            spec = sub;
            p.path.push(sub);
            ended = false;
            continue;
        }
        if spec.pos.is_some() && p.pos.is_none() {
            p.pos = Some(a);
            continue;
        }
        return Err(err(&p, ["Unrecognized argument: ", a].concat()));
    }
    if help {
        return Err(Early {
            help: true,
            output: help_text(prog, &p.path),
            command: command_path(prog, &p.path),
        });
    }
    let mut msg = String::new();
    if let Some(pos) = spec.pos.as_ref().filter(|x| x.required && p.pos.is_none()) {
        msg = [
            "Required positional arguments not provided:\n    ",
            pos.name,
        ]
        .concat();
    }
    for o in spec.opts.iter().filter(|o| o.kind == Required) {
        if !p.vals.iter().any(|(n, _)| *n == o.long) {
            if msg.is_empty() {
                msg.push_str("Required options not provided:");
            }
            msg.push_str("\n    --");
            msg.push_str(o.long);
        }
    }
    if spec.sub_required {
        msg.push_str("One of the following subcommands must be present:\n    help");
        for s in spec.subs {
            msg.push_str("\n    ");
            msg.push_str(s.name);
        }
    }
    if msg.is_empty() {
        Ok(p)
    } else {
        Err(err(&p, msg))
    }
}

/// Help width and the column descriptions start in (argh's layout).
const WRAP: usize = 80;
const DESC_COL: usize = 20;

/// Appends `  NAME  description` with the description from column 20, wrapped at 80.
fn entry(out: &mut String, short: u8, dashes: &str, name: &str, desc: &str) {
    let start = out.len();
    out.push_str("  ");
    if short != 0 {
        out.push('-');
        out.push(short as char);
        out.push_str(", ");
    }
    out.push_str(dashes);
    out.push_str(name);
    let mut line = start;
    if out.len() - line >= DESC_COL {
        out.push('\n');
        line = out.len();
    }
    let mut fresh = true;
    for word in desc.split_ascii_whitespace() {
        if !fresh && out.len() - line + 1 + word.len() > WRAP {
            out.push('\n');
            line = out.len();
            fresh = true;
        }
        if fresh {
            while out.len() - line < DESC_COL {
                out.push(' ');
            }
            fresh = false;
        } else {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push('\n');
}

/// The help of the last command in `path`, laid out like argh's.
fn help_text(prog: &str, path: &[&'static Spec]) -> String {
    let spec = path[path.len() - 1];
    let mut out = String::from("Usage: ");
    out.push_str(&command_path(prog, path));
    for o in spec.opts {
        let optional = o.kind != Required;
        out.push_str(if optional { " [" } else { " " });
        if o.short != 0 {
            out.push('-');
            out.push(o.short as char);
        } else {
            out.push_str("--");
            out.push_str(o.long);
        }
        if o.kind != Switch {
            let dots = if o.kind == Repeat { "..." } else { "" };
            let _ = write!(out, " <{}{dots}>", o.long);
        }
        if optional {
            out.push(']');
        }
    }
    if let Some(pos) = &spec.pos {
        let (l, r) = if pos.required { ("", "") } else { ("[", "]") };
        let _ = write!(out, " [--] {l}<{}>{r}", pos.name);
    }
    if !spec.subs.is_empty() {
        let (l, r) = if spec.sub_required {
            ("", "")
        } else {
            ("[", "]")
        };
        let _ = write!(out, " {l}<command>{r} [<args>]");
    }
    out.push_str("\n\n");
    out.push_str(spec.about);
    if let Some(pos) = &spec.pos {
        out.push_str("\n\nPositional Arguments:\n");
        entry(&mut out, 0, "", pos.name, pos.help);
    } else {
        out.push('\n');
    }
    out.push_str("\nOptions:\n");
    for o in spec.opts {
        entry(&mut out, o.short, "--", o.long, o.help);
    }
    entry(&mut out, 0, "", "--help, help", "display usage information");
    if !spec.subs.is_empty() {
        out.push_str("\nCommands:\n");
        for s in spec.subs {
            entry(&mut out, 0, "", s.name, s.about);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> Cmd {
        match parse("tunbox", args) {
            Ok(Top { cmd: Some(c), .. }) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// The usage error for `args`: (message, command path).
    fn usage_err(args: &[&str]) -> (String, String) {
        match parse("tunbox", args) {
            Err(e) if !e.help => (e.output, e.command),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn help(args: &[&str]) -> String {
        match parse("tunbox", args) {
            Err(e) if e.help => e.output,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn top_level() {
        let t = parse("tunbox", &[]).unwrap();
        assert!(!t.version && t.cmd.is_none());
        let t = parse("tunbox", &["--version"]).unwrap();
        assert!(t.version && t.cmd.is_none());
    }

    #[test]
    fn reflect_all_options() {
        let args = [
            "reflect",
            "--dev",
            "tap1",
            "--mode",
            "tap",
            "--address",
            "198.18.0.1/15",
            "--address",
            "2001:2::1/48",
            "--mtu",
            "1400",
            "--range",
            "198.18.0.0/15",
            "--mac",
            "02:00:00:00:00:01",
            "--icmp-echo",
            "--user",
            "nobody",
            "-v",
            "--syslog",
            "--section",
            "lab",
        ];
        let Cmd::Reflect(r) = ok(&args) else { panic!() };
        assert_eq!(r.dev.as_deref(), Some("tap1"));
        assert_eq!(r.mode.as_deref(), Some("tap"));
        assert_eq!(r.address, ["198.18.0.1/15", "2001:2::1/48"]);
        assert_eq!(r.mtu.as_deref(), Some("1400"));
        assert_eq!(r.range, ["198.18.0.0/15"]);
        assert_eq!(r.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert!(r.icmp_echo && r.verbose && r.syslog);
        assert_eq!(r.user.as_deref(), Some("nobody"));
        assert_eq!(r.section.as_deref(), Some("lab"));

        let Cmd::Reflect(r) = ok(&["reflect"]) else {
            panic!()
        };
        assert!(r.dev.is_none() && r.address.is_empty() && !r.verbose && !r.icmp_echo);
        let Cmd::Reflect(r) = ok(&["reflect", "--verbose"]) else {
            panic!()
        };
        assert!(r.verbose);
    }

    #[test]
    fn tunnel_all_options() {
        let args = [
            "tunnel",
            "--mode",
            "tap",
            "--dev",
            "tbx1",
            "--listen",
            "5555",
            "--remote",
            "h:1",
            "--transport",
            "tcp",
            "--key-file",
            "/k",
            "--plaintext",
            "--address",
            "198.18.1.1/30",
            "--address",
            "fd00::1/64",
            "--mtu",
            "1300",
            "--keepalive",
            "5",
            "--timeout",
            "20",
            "--user",
            "u",
            "-v",
            "--syslog",
            "--section",
            "s",
        ];
        let Cmd::Tunnel(t) = ok(&args) else { panic!() };
        assert_eq!(t.mode.as_deref(), Some("tap"));
        assert_eq!(t.dev.as_deref(), Some("tbx1"));
        assert_eq!(t.listen.as_deref(), Some("5555"));
        assert_eq!(t.remote.as_deref(), Some("h:1"));
        assert_eq!(t.transport.as_deref(), Some("tcp"));
        assert_eq!(t.key_file.as_deref(), Some("/k"));
        assert!(t.plaintext && t.verbose && t.syslog);
        assert_eq!(t.address, ["198.18.1.1/30", "fd00::1/64"]);
        assert_eq!(t.mtu.as_deref(), Some("1300"));
        assert_eq!(t.keepalive.as_deref(), Some("5"));
        assert_eq!(t.timeout.as_deref(), Some("20"));
        assert_eq!(t.user.as_deref(), Some("u"));
        assert_eq!(t.section.as_deref(), Some("s"));
    }

    #[test]
    fn bridge_actions() {
        let args = [
            "bridge",
            "up",
            "--ifname",
            "eth1",
            "--tap",
            "tap9",
            "--bridge",
            "br0",
            "--user",
            "u",
            "--state-file",
            "/s",
            "--dry-run",
            "--section",
            "b",
        ];
        let Cmd::Bridge(Bridge {
            action: BridgeAction::Up(u),
        }) = ok(&args)
        else {
            panic!()
        };
        assert_eq!(u.ifname.as_deref(), Some("eth1"));
        assert_eq!(u.tap.as_deref(), Some("tap9"));
        assert_eq!(u.bridge.as_deref(), Some("br0"));
        assert_eq!(u.user.as_deref(), Some("u"));
        assert_eq!(u.state_file.as_deref(), Some("/s"));
        assert!(u.dry_run);
        assert_eq!(u.section.as_deref(), Some("b"));

        let args = [
            "bridge",
            "down",
            "--bridge",
            "br0",
            "--state-file",
            "/s",
            "--dry-run",
        ];
        let Cmd::Bridge(Bridge {
            action: BridgeAction::Down(d),
        }) = ok(&args)
        else {
            panic!()
        };
        assert_eq!(d.bridge.as_deref(), Some("br0"));
        assert_eq!(d.state_file.as_deref(), Some("/s"));
        assert!(d.dry_run && d.section.is_none());

        let args = ["bridge", "status", "--section", "b"];
        let Cmd::Bridge(Bridge {
            action: BridgeAction::Status(s),
        }) = ok(&args)
        else {
            panic!()
        };
        assert_eq!(s.section.as_deref(), Some("b"));
        assert!(s.bridge.is_none() && s.state_file.is_none());
    }

    #[test]
    fn mktun_rmtun_defaults() {
        let Cmd::Mktun(m) = ok(&["mktun", "--dev", "tap0"]) else {
            panic!()
        };
        assert_eq!((m.dev.as_str(), m.mode.as_str()), ("tap0", "tun"));
        assert!(m.user.is_none() && m.group.is_none());
        let args = [
            "mktun", "--dev", "tap0", "--mode", "tap", "--user", "u", "--group", "g",
        ];
        let Cmd::Mktun(m) = ok(&args) else { panic!() };
        assert_eq!(m.mode, "tap");
        assert_eq!(
            (m.user.as_deref(), m.group.as_deref()),
            (Some("u"), Some("g"))
        );
        let Cmd::Rmtun(r) = ok(&["rmtun", "--dev", "tun3"]) else {
            panic!()
        };
        assert_eq!((r.dev.as_str(), r.mode.as_str()), ("tun3", "tun"));
        let Cmd::Rmtun(r) = ok(&["rmtun", "--mode", "tap", "--dev", "t"]) else {
            panic!()
        };
        assert_eq!(r.mode, "tap");
    }

    #[test]
    fn positionals_and_double_dash() {
        let Cmd::Genkey(g) = ok(&["genkey", "/etc/k"]) else {
            panic!()
        };
        assert_eq!(g.path, "/etc/k");
        let Cmd::Genkey(g) = ok(&["genkey", "--", "-k"]) else {
            panic!()
        };
        assert_eq!(g.path, "-k");
        let Cmd::Genkey(g) = ok(&["genkey", "--", "help"]) else {
            panic!()
        };
        assert_eq!(g.path, "help");
        let Cmd::Run(r) = ok(&["run", "lab"]) else {
            panic!()
        };
        assert_eq!(r.section, "lab");
        let c = ok(&["config", "show"]);
        assert!(matches!(
            c,
            Cmd::Config(Config {
                action: ConfigAction::Show(ConfigShow { section: None })
            })
        ));
        let Cmd::Config(Config {
            action: ConfigAction::Show(s),
        }) = ok(&["config", "show", "x"])
        else {
            panic!()
        };
        assert_eq!(s.section.as_deref(), Some("x"));
        assert!(matches!(
            ok(&["config", "check"]),
            Cmd::Config(Config {
                action: ConfigAction::Check(_)
            })
        ));
        assert!(matches!(ok(&["selftest"]), Cmd::Selftest(_)));
        // an option's value is taken as it is, even when it looks like an option or help
        let Cmd::Reflect(r) = ok(&["reflect", "--dev", "--help"]) else {
            panic!()
        };
        assert_eq!(r.dev.as_deref(), Some("--help"));
        let Cmd::Reflect(r) = ok(&["reflect", "--user", "help"]) else {
            panic!()
        };
        assert_eq!(r.user.as_deref(), Some("help"));
    }

    #[test]
    fn usage_errors() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["foo"], "Unrecognized argument: foo", "tunbox"),
            (&["--foo"], "Unrecognized argument: --foo", "tunbox"),
            (&["-h"], "Unrecognized argument: -h", "tunbox"),
            (&["reflect", "--dev"], "No value provided for option '--dev'.", "tunbox reflect"),
            (&["reflect", "--dev=x"], "Unrecognized argument: --dev=x", "tunbox reflect"),
            (&["reflect", "-x"], "Unrecognized argument: -x", "tunbox reflect"),
            (&["reflect", "-"], "Unrecognized argument: -", "tunbox reflect"),
            (&["reflect", "x"], "Unrecognized argument: x", "tunbox reflect"),
            (&["reflect", "--", "--dev"], "Unrecognized argument: --dev", "tunbox reflect"),
            (
                &["reflect", "--dev", "a", "--dev", "b"],
                "Error parsing option '--dev' with value 'b': duplicate values provided",
                "tunbox reflect",
            ),
            (
                &["tunnel", "--help", "--dev", "x"],
                "Trailing arguments are not allowed after `help`.",
                "tunbox tunnel",
            ),
            (
                &["bridge"],
                "One of the following subcommands must be present:\n    help\n    up\n    down\n    status",
                "tunbox bridge",
            ),
            (&["bridge", "foo"], "Unrecognized argument: foo", "tunbox bridge"),
            (&["bridge", "up", "--bogus"], "Unrecognized argument: --bogus", "tunbox bridge up"),
            (&["bridge", "status", "--dry-run"], "Unrecognized argument: --dry-run", "tunbox bridge status"),
            (
                &["config"],
                "One of the following subcommands must be present:\n    help\n    check\n    show",
                "tunbox config",
            ),
            (&["mktun"], "Required options not provided:\n    --dev", "tunbox mktun"),
            (&["mktun", "--mode", "tap"], "Required options not provided:\n    --dev", "tunbox mktun"),
            (&["rmtun"], "Required options not provided:\n    --dev", "tunbox rmtun"),
            (
                &["rmtun", "--dev", "a", "--dev", "b"],
                "Error parsing option '--dev' with value 'b': duplicate values provided",
                "tunbox rmtun",
            ),
            (&["genkey"], "Required positional arguments not provided:\n    path", "tunbox genkey"),
            (&["genkey", "a", "b"], "Unrecognized argument: b", "tunbox genkey"),
            (&["run"], "Required positional arguments not provided:\n    section", "tunbox run"),
            (&["config", "check", "x"], "Unrecognized argument: x", "tunbox config check"),
            (&["config", "show", "a", "b"], "Unrecognized argument: b", "tunbox config show"),
            (&["selftest", "x"], "Unrecognized argument: x", "tunbox selftest"),
            (&["reflect", "--version"], "Unrecognized argument: --version", "tunbox reflect"),
        ];
        for (args, msg, cmd) in cases {
            assert_eq!(
                usage_err(args),
                (msg.to_string(), cmd.to_string()),
                "{args:?}"
            );
        }
    }

    #[test]
    fn switches_may_repeat() {
        let Cmd::Reflect(r) = ok(&["reflect", "-v", "--verbose", "-v"]) else {
            panic!()
        };
        assert!(r.verbose);
    }

    #[test]
    fn help_at_every_level() {
        for (args, usage) in [
            (&["--help"][..], "Usage: tunbox [--version] [<command>] [<args>]\n"),
            (&["help"], "Usage: tunbox [--version] [<command>] [<args>]\n"),
            (&["--version", "--help"], "Usage: tunbox [--version]"),
            (&["reflect", "--help"], "Usage: tunbox reflect [--dev <dev>] [--mode <mode>] [--address <address...>]"),
            (&["reflect", "help"], "Usage: tunbox reflect "),
            (&["help", "reflect"], "Usage: tunbox reflect "),
            (&["reflect", "--dev", "x", "--help"], "Usage: tunbox reflect "),
            (&["tunnel", "--help"], "Usage: tunbox tunnel [--mode <mode>]"),
            (&["bridge", "--help"], "Usage: tunbox bridge <command> [<args>]\n"),
            (&["bridge", "help"], "Usage: tunbox bridge <command> [<args>]\n"),
            (&["help", "bridge", "up"], "Usage: tunbox bridge up [--ifname <ifname>]"),
            (&["bridge", "up", "--help"], "Usage: tunbox bridge up [--ifname <ifname>]"),
            (&["bridge", "down", "help"], "Usage: tunbox bridge down [--bridge <bridge>] [--state-file <state-file>] [--dry-run] [--section <section>]\n"),
            (&["bridge", "status", "--help"], "Usage: tunbox bridge status [--bridge <bridge>] [--state-file <state-file>] [--section <section>]\n"),
            (&["mktun", "--help"], "Usage: tunbox mktun --dev <dev> [--mode <mode>] [--user <user>] [--group <group>]\n"),
            (&["rmtun", "--help"], "Usage: tunbox rmtun --dev <dev> [--mode <mode>]\n"),
            (&["genkey", "--help"], "Usage: tunbox genkey [--] <path>\n"),
            (&["genkey", "help"], "Usage: tunbox genkey [--] <path>\n"),
            (&["run", "--help"], "Usage: tunbox run [--] <section>\n"),
            (&["config", "--help"], "Usage: tunbox config <command> [<args>]\n"),
            (&["config", "check", "--help"], "Usage: tunbox config check\n"),
            (&["config", "show", "--help"], "Usage: tunbox config show [--] [<section>]\n"),
            (&["selftest", "--help"], "Usage: tunbox selftest\n"),
        ] {
            let h = help(args);
            assert!(h.starts_with(usage), "{args:?}: {h}");
            assert!(h.contains("\nOptions:\n") && h.ends_with("  --help, help      display usage information\n") || h.contains("\nCommands:\n"), "{args:?}: {h}");
        }
        assert!(
            help(&["--help"]).contains("then the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG)")
        );
    }

    #[test]
    fn help_layout() {
        let h = help(&["bridge", "up", "--help"]);
        let want = "Usage: tunbox bridge up [--ifname <ifname>] [--tap <tap>] [--bridge <bridge>] \
[--user <user>] [--state-file <state-file>] [--dry-run] [--section <section>]

create the bridge, move eth0's addresses and routes to it, enslave eth0 and the tap

Options:
  --ifname          the physical port (default eth0)
  --tap             the tap device to add, created persistent if missing
                    (default tap0)
  --bridge          the bridge (default br-tunbox)
  --user            owner of a tap that has to be created (user name or uid)
  --state-file      where the original state is recorded (default
                    /var/run/tunbox/bridge-BRIDGE.state)
  --dry-run         print the plan and change nothing
  --section         take unset options from this section of the UCI file
  --help, help      display usage information
";
        assert_eq!(h, want);
        let h = help(&["genkey", "--help"]);
        assert!(h.contains("\n\nPositional Arguments:\n  path              where to write the key (refuses to overwrite)\n\nOptions:\n"), "{h}");
        let h = help(&["reflect", "--help"]);
        assert!(
            h.contains("\n  -v, --verbose     log every packet (LEN: SRC->DST), rate-limited\n"),
            "{h}"
        );
        let h = help(&["config", "--help"]);
        assert!(
            h.ends_with(
                "Commands:
  check             validate the UCI file and TUNBOX_* variables without
                    starting anything; errors name file, line and option. Exit
                    status 0 when valid.
  show              print the configuration in effect, in the
                    section.option='value' form of `uci show`; values from the
                    environment or from defaults are marked
"
            ),
            "{h}"
        );
    }

    /// Every help line fits in 80 columns except the usage line and the descriptions
    /// (kept as written), and the tables are ASCII (the wrapping counts bytes).
    #[test]
    fn tables_are_ascii_and_wrapped() {
        fn walk(s: &'static Spec, path: &mut Vec<&'static Spec>) {
            path.push(s);
            assert!(s.about.is_ascii());
            for o in s.opts {
                assert!(o.help.is_ascii() && o.long.is_ascii());
            }
            let h = help_text("tunbox", path);
            let entries = h.split("\nOptions:\n").nth(1).unwrap();
            for line in entries.lines() {
                assert!(line.len() <= WRAP, "{line}");
            }
            for sub in s.subs {
                walk(sub, path);
            }
            path.pop();
        }
        walk(&TOP, &mut Vec::new());
    }
}
