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
use std::fmt::Write as _;

/// tunbox: TUN/TAP reflector, encrypted point-to-point tunnel and eth0-to-tap bridge
/// setup for Raspberry Pi and OpenWrt. Configuration comes from the command line, then
/// TUNBOX_* environment variables, then the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG).
#[derive(Debug)]
pub struct Top {
    /// print the version and exit
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

/// answer every packet routed into a TUN (or TAP) device by sending it back with source
/// and destination swapped (a loopback for link tests). Example:
///   tunbox reflect --dev tun0 --address 198.18.0.1/15 --address 2001:2::1/48
/// then `ping 198.18.0.41` or `ping 2001:2::41` is answered.
#[derive(Debug, Default)]
pub struct Reflect {
    /// device name (default: tun0 / tap0 by mode; a name with %d lets the kernel pick)
    pub dev: Option<String>,
    /// device kind: tun (IP packets, default) or tap (Ethernet frames)
    pub mode: Option<String>,
    /// address to put on the device, CIDR form (repeatable), e.g. 198.18.0.1/15
    pub address: Vec<String>,
    /// device MTU (default: leave as the kernel set it, 1500)
    pub mtu: Option<String>,
    /// tap mode: address range answered (repeatable), e.g. 198.18.0.0/15
    pub range: Vec<String>,
    /// tap mode: the reflector's MAC (default: a stable locally administered address)
    pub mac: Option<String>,
    /// tap mode: answer ICMP/ICMPv6 echo requests directly with echo replies
    pub icmp_echo: bool,
    /// switch to this user (and its group) after the device is set up
    pub user: Option<String>,
    /// log every packet (LEN: SRC->DST), rate-limited
    pub verbose: bool,
    /// log to the local syslog (logread on OpenWrt) instead of stderr
    pub syslog: bool,
    /// take unset options from this section of the UCI file
    pub section: Option<String>,
}

/// point-to-point tunnel carrying IP (tun) or Ethernet (tap) over UDP or TCP, encrypted
/// and authenticated with a key file shared by both ends (see `tunbox genkey`).
/// Server: tunbox tunnel --listen 5555 --key-file /etc/tunbox/key --address 198.18.1.1/30
/// Client: tunbox tunnel --remote server:5555 --key-file /etc/tunbox/key --address 198.18.1.2/30
#[derive(Debug, Default)]
pub struct Tunnel {
    /// device kind: tun (IP, default) or tap (Ethernet)
    pub mode: Option<String>,
    /// device name (default: tbx%d, the kernel picks the number)
    pub dev: Option<String>,
    /// server: listen on [ADDR:]PORT
    pub listen: Option<String>,
    /// client: connect to HOST:PORT
    pub remote: Option<String>,
    /// udp (default) or tcp
    pub transport: Option<String>,
    /// file with the shared key, made by `tunbox genkey`
    pub key_file: Option<String>,
    /// no encryption (lab use only; wire-compatible with simpletun / socat)
    pub plaintext: bool,
    /// address to put on the tunnel device, CIDR form (repeatable)
    pub address: Vec<String>,
    /// tunnel device MTU (default: fitted to the transport overhead)
    pub mtu: Option<String>,
    /// seconds between keepalives (default 10)
    pub keepalive: Option<String>,
    /// seconds without traffic from the peer before it counts as dead (default 30)
    pub timeout: Option<String>,
    /// switch to this user (and its group) after setup
    pub user: Option<String>,
    /// log every packet, rate-limited
    pub verbose: bool,
    /// log to the local syslog instead of stderr
    pub syslog: bool,
    /// take unset options from this section of the UCI file
    pub section: Option<String>,
}

/// join eth0 and a tap device in a Linux bridge (and undo it exactly)
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

/// create the bridge, move eth0's addresses and routes to it, enslave eth0 and the tap
#[derive(Debug, Default)]
pub struct BridgeUp {
    /// the physical port (default eth0)
    pub ifname: Option<String>,
    /// the tap device to add, created persistent if missing (default tap0)
    pub tap: Option<String>,
    /// the bridge (default br-tunbox)
    pub bridge: Option<String>,
    /// owner of a tap that has to be created (user name or uid)
    pub user: Option<String>,
    /// where the original state is recorded (default /var/run/tunbox/bridge-BRIDGE.state)
    pub state_file: Option<String>,
    /// print the plan and change nothing
    pub dry_run: bool,
    /// take unset options from this section of the UCI file
    pub section: Option<String>,
}

/// put eth0 back exactly as it was and remove what `bridge up` created
#[derive(Debug, Default)]
pub struct BridgeDown {
    /// the bridge (default br-tunbox)
    pub bridge: Option<String>,
    /// the recorded state (default /var/run/tunbox/bridge-BRIDGE.state)
    pub state_file: Option<String>,
    /// print the plan and change nothing
    pub dry_run: bool,
    /// take unset options from this section of the UCI file
    pub section: Option<String>,
}

/// show what is bridged and whether it matches the recorded state
#[derive(Debug, Default)]
pub struct BridgeStatus {
    /// the bridge (default br-tunbox)
    pub bridge: Option<String>,
    /// the recorded state (default /var/run/tunbox/bridge-BRIDGE.state)
    pub state_file: Option<String>,
    /// take unset options from this section of the UCI file
    pub section: Option<String>,
}

/// create a persistent tun/tap device that a given user/group may attach to
#[derive(Debug)]
pub struct Mktun {
    /// device name, e.g. tap0
    pub dev: String,
    /// tun (default) or tap
    pub mode: String,
    /// owner (user name or uid)
    pub user: Option<String>,
    /// group (group name or gid)
    pub group: Option<String>,
}

/// remove a persistent tun/tap device
#[derive(Debug)]
pub struct Rmtun {
    /// device name
    pub dev: String,
    /// tun (default) or tap
    pub mode: String,
}

/// write a new random tunnel key to PATH (mode 0600); copy the same file to both ends
#[derive(Debug)]
pub struct Genkey {
    /// where to write the key (refuses to overwrite)
    pub path: String,
}

/// run one section of the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG); the section's
/// type names the tool: `config reflect 'lab'` runs a reflector. procd and systemd use this.
#[derive(Debug)]
pub struct Run {
    /// the section name
    pub section: String,
}

/// check or show the configuration
#[derive(Debug)]
pub struct Config {
    pub action: ConfigAction,
}

#[derive(Debug)]
pub enum ConfigAction {
    Check(ConfigCheck),
    Show(ConfigShow),
}

/// validate the UCI file and TUNBOX_* variables without starting anything; errors name
/// file, line and option. Exit status 0 when valid.
#[derive(Debug)]
pub struct ConfigCheck {}

/// print the configuration in effect, in the section.option='value' form of `uci show`;
/// values from the environment or from defaults are marked
#[derive(Debug)]
pub struct ConfigShow {
    /// only this section
    pub section: Option<String>,
}

/// check that this box can run tunbox: /dev/net/tun, CAP_NET_ADMIN, network namespaces;
/// then run a reflector in a throwaway namespace and ping / connect through it
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
pub struct Spec {
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
TUNBOX_* environment variables, then the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG).",
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
        (Some("bridge"), _) => Some(Cmd::Bridge(Bridge {
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
        (Some("config"), _) => Some(Cmd::Config(Config {
            action: ConfigAction::Show(ConfigShow {
                section: p.pos.map(str::to_owned),
            }),
        })),
        (Some(_), _) => Some(Cmd::Selftest(Selftest {})),
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
