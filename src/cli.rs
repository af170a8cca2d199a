//! Command-line interface: one argh struct per subcommand, nothing else.
//!
//! Every option that also exists in the UCI file / environment is an `Option<_>` (or a
//! `Vec<_>` for lists) so that "not given on the command line" can be told apart from a
//! value, and the layers defaults < UCI < env < CLI can be merged in `config`.
use argh::FromArgs;

/// tunbox: TUN/TAP reflector, encrypted point-to-point tunnel and eth0-to-tap bridge
/// setup for Raspberry Pi and OpenWrt. Configuration comes from the command line, then
/// TUNBOX_* environment variables, then the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG).
#[derive(FromArgs, Debug)]
pub struct Top {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,

    #[argh(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
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
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "reflect")]
pub struct Reflect {
    /// device name (default: tun0 / tap0 by mode; a name with %d lets the kernel pick)
    #[argh(option)]
    pub dev: Option<String>,
    /// device kind: tun (IP packets, default) or tap (Ethernet frames)
    #[argh(option)]
    pub mode: Option<String>,
    /// address to put on the device, CIDR form (repeatable), e.g. 198.18.0.1/15
    #[argh(option)]
    pub address: Vec<String>,
    /// device MTU (default: leave as the kernel set it, 1500)
    #[argh(option)]
    pub mtu: Option<String>,
    /// tap mode: address range answered (repeatable), e.g. 198.18.0.0/15
    #[argh(option)]
    pub range: Vec<String>,
    /// tap mode: the reflector's MAC (default: a stable locally administered address)
    #[argh(option)]
    pub mac: Option<String>,
    /// tap mode: answer ICMP/ICMPv6 echo requests directly with echo replies
    #[argh(switch)]
    pub icmp_echo: bool,
    /// switch to this user (and its group) after the device is set up
    #[argh(option)]
    pub user: Option<String>,
    /// log every packet (LEN: SRC->DST), rate-limited
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log to the local syslog (logread on OpenWrt) instead of stderr
    #[argh(switch)]
    pub syslog: bool,
    /// take unset options from this section of the UCI file
    #[argh(option)]
    pub section: Option<String>,
}

/// point-to-point tunnel carrying IP (tun) or Ethernet (tap) over UDP or TCP, encrypted
/// and authenticated with a key file shared by both ends (see `tunbox genkey`).
/// Server: tunbox tunnel --listen 5555 --key-file /etc/tunbox/key --address 198.18.1.1/30
/// Client: tunbox tunnel --remote server:5555 --key-file /etc/tunbox/key --address 198.18.1.2/30
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "tunnel")]
pub struct Tunnel {
    /// device kind: tun (IP, default) or tap (Ethernet)
    #[argh(option)]
    pub mode: Option<String>,
    /// device name (default: tbx%d, the kernel picks the number)
    #[argh(option)]
    pub dev: Option<String>,
    /// server: listen on [ADDR:]PORT
    #[argh(option)]
    pub listen: Option<String>,
    /// client: connect to HOST:PORT
    #[argh(option)]
    pub remote: Option<String>,
    /// udp (default) or tcp
    #[argh(option)]
    pub transport: Option<String>,
    /// file with the shared key, made by `tunbox genkey`
    #[argh(option)]
    pub key_file: Option<String>,
    /// no encryption (lab use only; wire-compatible with simpletun / socat)
    #[argh(switch)]
    pub plaintext: bool,
    /// address to put on the tunnel device, CIDR form (repeatable)
    #[argh(option)]
    pub address: Vec<String>,
    /// tunnel device MTU (default: fitted to the transport overhead)
    #[argh(option)]
    pub mtu: Option<String>,
    /// seconds between keepalives (default 10)
    #[argh(option)]
    pub keepalive: Option<String>,
    /// seconds without traffic from the peer before it counts as dead (default 30)
    #[argh(option)]
    pub timeout: Option<String>,
    /// switch to this user (and its group) after setup
    #[argh(option)]
    pub user: Option<String>,
    /// log every packet, rate-limited
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log to the local syslog instead of stderr
    #[argh(switch)]
    pub syslog: bool,
    /// take unset options from this section of the UCI file
    #[argh(option)]
    pub section: Option<String>,
}

/// join eth0 and a tap device in a Linux bridge (and undo it exactly)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "bridge")]
pub struct Bridge {
    #[argh(subcommand)]
    pub action: BridgeAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum BridgeAction {
    Up(BridgeUp),
    Down(BridgeDown),
    Status(BridgeStatus),
}

/// create the bridge, move eth0's addresses and routes to it, enslave eth0 and the tap
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "up")]
pub struct BridgeUp {
    /// the physical port (default eth0)
    #[argh(option)]
    pub ifname: Option<String>,
    /// the tap device to add, created persistent if missing (default tap0)
    #[argh(option)]
    pub tap: Option<String>,
    /// the bridge (default br-tunbox)
    #[argh(option)]
    pub bridge: Option<String>,
    /// owner of a tap that has to be created (user name or uid)
    #[argh(option)]
    pub user: Option<String>,
    /// where the original state is recorded (default /var/run/tunbox/bridge-BRIDGE.state)
    #[argh(option)]
    pub state_file: Option<String>,
    /// print the plan and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// take unset options from this section of the UCI file
    #[argh(option)]
    pub section: Option<String>,
}

/// put eth0 back exactly as it was and remove what `bridge up` created
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "down")]
pub struct BridgeDown {
    /// the bridge (default br-tunbox)
    #[argh(option)]
    pub bridge: Option<String>,
    /// the recorded state (default /var/run/tunbox/bridge-BRIDGE.state)
    #[argh(option)]
    pub state_file: Option<String>,
    /// print the plan and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// take unset options from this section of the UCI file
    #[argh(option)]
    pub section: Option<String>,
}

/// show what is bridged and whether it matches the recorded state
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "status")]
pub struct BridgeStatus {
    /// the bridge (default br-tunbox)
    #[argh(option)]
    pub bridge: Option<String>,
    /// the recorded state (default /var/run/tunbox/bridge-BRIDGE.state)
    #[argh(option)]
    pub state_file: Option<String>,
    /// take unset options from this section of the UCI file
    #[argh(option)]
    pub section: Option<String>,
}

/// create a persistent tun/tap device that a given user/group may attach to
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "mktun")]
pub struct Mktun {
    /// device name, e.g. tap0
    #[argh(option)]
    pub dev: String,
    /// tun (default) or tap
    #[argh(option, default = "String::from(\"tun\")")]
    pub mode: String,
    /// owner (user name or uid)
    #[argh(option)]
    pub user: Option<String>,
    /// group (group name or gid)
    #[argh(option)]
    pub group: Option<String>,
}

/// remove a persistent tun/tap device
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rmtun")]
pub struct Rmtun {
    /// device name
    #[argh(option)]
    pub dev: String,
    /// tun (default) or tap
    #[argh(option, default = "String::from(\"tun\")")]
    pub mode: String,
}

/// write a new random tunnel key to PATH (mode 0600); copy the same file to both ends
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "genkey")]
pub struct Genkey {
    /// where to write the key (refuses to overwrite)
    #[argh(positional)]
    pub path: String,
}

/// run one section of the UCI file (/etc/config/tunbox or $TUNBOX_CONFIG); the section's
/// type names the tool: `config reflect 'lab'` runs a reflector. procd and systemd use this.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct Run {
    /// the section name
    #[argh(positional)]
    pub section: String,
}

/// check or show the configuration
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "config")]
pub struct Config {
    #[argh(subcommand)]
    pub action: ConfigAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ConfigAction {
    Check(ConfigCheck),
    Show(ConfigShow),
}

/// validate the UCI file and TUNBOX_* variables without starting anything; errors name
/// file, line and option. Exit status 0 when valid.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
pub struct ConfigCheck {}

/// print the configuration in effect, in the section.option='value' form of `uci show`;
/// values from the environment or from defaults are marked
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
pub struct ConfigShow {
    /// only this section
    #[argh(positional)]
    pub section: Option<String>,
}

/// check that this box can run tunbox: /dev/net/tun, CAP_NET_ADMIN, network namespaces;
/// then run a reflector in a throwaway namespace and ping / connect through it
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "selftest")]
pub struct Selftest {}
