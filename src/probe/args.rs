//! The options of `tunbox probe`. Each value is parsed here, once, into its typed form;
//! defaults are applied by [`super::Plan::from_args`].
use super::units::{parse_duration, parse_pct, parse_rate, parse_sizes, Rate};

fn arg_rate(s: &str) -> Result<Rate, String> {
    parse_rate(s)
}
fn arg_duration(s: &str) -> Result<u64, String> {
    parse_duration(s)
}
fn arg_sizes(s: &str) -> Result<Vec<usize>, String> {
    parse_sizes(&[s.to_string()])
}
fn arg_pct(s: &str) -> Result<f64, String> {
    parse_pct(s)
}
fn arg_count(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("bad count '{s}': a number of probes above 0")),
        Ok(n) => Ok(n),
    }
}
fn arg_port(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("bad port '{s}': 1 to 65535")),
        Ok(n) => Ok(n),
    }
}

/// measure a path against a tunbox reflector: loss, duplicates, reordering (RFC 4737),
/// round-trip time, jitter (RFC 3550) and PDV (RFC 5481); or the RFC 2544 zero-loss
/// throughput (--rfc2544); or TCP goodput (--tcp). Probes are UDP from port P to
/// TARGET:P: the reflector swaps addresses but not ports, so each comes back to the
/// same socket. Needs no privileges. Ctrl-C prints the figures so far.
/// Examples: tunbox probe 198.18.0.41; tunbox probe --rate 50M --size 64,1500
/// 198.18.0.41; tunbox probe --rfc2544 --rate 100M 198.18.0.41
#[derive(argh::FromArgs, Debug)]
#[argh(subcommand, name = "probe")]
pub struct ProbeArgs {
    /// an address answered by a tunbox reflector (a TUN reflector behind a route or a
    /// tunnel, or a TAP reflector on the LAN); IPv4, IPv6 or a host name
    #[argh(positional)]
    pub target: String,

    /// probes per second (1000, 10kpps) or bits per second of IP packets with a unit
    /// (64k, 100M, 1G); default 100 packets/s. With --rfc2544 the highest rate tried
    /// (default 1G), counted in whole Ethernet frames
    #[argh(option, from_str_fn(arg_rate))]
    pub rate: Option<Rate>,

    /// seconds between probes instead of --rate (0.01, 10ms)
    #[argh(option, from_str_fn(arg_duration))]
    pub interval: Option<u64>,

    /// IP packet size in bytes, header included (default 128); a list (64,512,1500) or
    /// the option repeated runs each in turn. With --rfc2544: Ethernet frame sizes incl.
    /// FCS (default 64,128,256,512,1024,1280,1518), sent as IP packets 18 bytes shorter
    #[argh(option, from_str_fn(arg_sizes))]
    pub size: Vec<Vec<usize>>,

    /// how long to send per size (10, 10s, 500ms, 2m); default 10 s unless --count
    #[argh(option, from_str_fn(arg_duration))]
    pub duration: Option<u64>,

    /// stop after this many probes per size (with --duration: whichever comes first)
    #[argh(option, from_str_fn(arg_count))]
    pub count: Option<u64>,

    /// the UDP (or TCP) port P used at both ends; must be free here (default 7007)
    #[argh(option, from_str_fn(arg_port))]
    pub port: Option<u16>,

    /// find the RFC 2544 throughput: per frame size, the highest rate with no loss (or
    /// --loss-ok) by binary search, then the latency at that rate
    #[argh(switch)]
    pub rfc2544: bool,

    /// with --rfc2544: loss in percent a trial may have and still pass (default 0)
    #[argh(option, from_str_fn(arg_pct))]
    pub loss_ok: Option<f64>,

    /// with --rfc2544: length of each trial (default 2s; RFC 2544 asks for 60s)
    #[argh(option, from_str_fn(arg_duration))]
    pub trial: Option<u64>,

    /// single-stream TCP goodput through the reflector instead: a listener on port P
    /// here and a connection to TARGET:P, which the reflector loops back to it
    #[argh(switch)]
    pub tcp: bool,

    /// print the results as JSON (for scripts) instead of the table
    #[argh(switch)]
    pub json: bool,
}
