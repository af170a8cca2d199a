//! `tunbox probe`: the measuring end of a field test against any tunbox reflector.
//!
//! - [`stats`], [`schedule`], [`units`], [`report`]: the pure core (statistics, pacing
//!   schedule, RFC 2544 search, option values, output formats); no I/O, no clock.
//! - [`run`]: the per-probe loop, on a socket and clock given as a [`run::ProbeIo`].
//! - this file: the command: options -> plan -> runs -> output. Kernel calls are in
//!   src/sys/probe.rs.
pub mod report;
pub mod run;
pub mod schedule;
pub mod stats;
pub mod units;

pub use report::{summary_line, Results};

use crate::sys::probe::{monotonic_ns, stdout_is_tty, wait_until, TcpPair, UdpIo};
use crate::sys::{signals, SysError};
use run::{ProbeIo, RunSpec, RunState};
use std::net::SocketAddr;
use std::time::Duration;
use units::{Dec, Pct, Rate};

// The defaults that follow the test (the others are the schema's: config::schema::PROBE).
/// Probes per second of the plain probe when neither --rate nor --interval is given
/// (in thousandths, as every rate).
pub const DEFAULT_MPPS: u64 = 100_000;
/// IP packet size of the plain probe when --size is not given.
pub const DEFAULT_SIZE: usize = 128;
/// The ceiling of the RFC 2544 search when --rate is not given: 1 Gbit/s of frames.
pub const DEFAULT_RFC2544_MAX_BPS: u64 = 1_000_000_000;
/// The RFC 2544 search stops when its step is below the ceiling / this (1 %).
pub const RFC2544_STEPS: u64 = 100;
/// Runs of an RFC 2544 trial that failed while the sender stalled.
pub const RFC2544_ATTEMPTS: u32 = 3;
/// The longest wait for the last replies of a run.
pub const LINGER_MAX_NS: u64 = 2_000_000_000;
/// Probes sent one by one before a run to check the target answers (and fill the
/// neighbour cache); each waits this long.
const WARMUP_TRIES: u32 = 3;
const WARMUP_WAIT_NS: u64 = 1_000_000_000;

/// Exit status when interrupted by Ctrl-C (the figures so far are printed).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Udp,
    Rfc2544,
    Tcp,
}

/// The probe's settings, typed and checked (built by `commands::probe` from the
/// command line, the environment and a `config probe` section); the target is
/// resolved when a run starts ([`Plan::new`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeOptions {
    pub target: String,
    pub port: u16,
    pub mode: Mode,
    /// IP packet sizes (udp), or Ethernet frame sizes (rfc2544)
    pub sizes: Vec<usize>,
    pub rate: Rate,
    pub count: Option<u64>,
    pub duration_ns: Option<u64>,
    pub loss_ok: Pct,
    pub trial_ns: u64,
    pub json: bool,
    /// link monitor: start a run this often (nanoseconds), until SIGTERM
    pub every_ns: Option<u64>,
    pub syslog: bool,
}

/// The options with the target resolved and the sizes checked against its family.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub target: SocketAddr,
    pub opts: &'a ProbeOptions,
}

impl std::ops::Deref for Plan<'_> {
    type Target = ProbeOptions;
    fn deref(&self) -> &ProbeOptions {
        self.opts
    }
}

/// A problem with the options (exit 2) or with the system (exit 1).
#[derive(Debug)]
pub enum ProbeError {
    Usage(String),
    Sys(SysError),
}

impl From<SysError> for ProbeError {
    fn from(e: SysError) -> Self {
        ProbeError::Sys(e)
    }
}

/// Resolves TARGET (an address or a host name) with the port.
pub fn resolve_target(target: &str, port: u16) -> Result<SocketAddr, ProbeError> {
    let t = target.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = t.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    match crate::sys::dns::lookup(t) {
        Ok(ip) => Ok(SocketAddr::new(ip, port)),
        Err(e) => Err(ProbeError::Sys(SysError::new(format!(
            "cannot resolve '{target}': {e} (give an IP address)"
        )))),
    }
}

impl Plan<'_> {
    /// Resolves the target and checks the sizes against its address family.
    pub fn new(o: &ProbeOptions) -> Result<Plan<'_>, ProbeError> {
        let target = resolve_target(&o.target, o.port)?;
        if o.mode == Mode::Udp {
            for &s in &o.sizes {
                units::udp_payload(s, target.is_ipv6()).map_err(ProbeError::Usage)?;
            }
        }
        Ok(Plan { target, opts: o })
    }
}

/// Whether the run was interrupted by a signal (the figures so far were printed).
pub type Interrupted = bool;

/// Runs the probe once (the figures to stdout) or, with `every_ns`, as a link monitor
/// until SIGTERM (one summary line per run to the log).
pub fn run(o: &ProbeOptions) -> Result<Interrupted, ProbeError> {
    crate::sys::log::init(o.syslog);
    signals::install();
    if let Some(every) = o.every_ns {
        return monitor(o, every).map(|()| false);
    }
    let plan = Plan::new(o)?;
    match plan.mode {
        Mode::Udp => {
            let show = !plan.json && stdout_is_tty();
            let (all, interrupted) = run_udp(&plan, show, !plan.json)?;
            if plan.json {
                let mut runs = String::new();
                for (i, r) in all.iter().enumerate() {
                    if i > 0 {
                        runs.push(',');
                    }
                    runs.push_str(&report::json(r));
                }
                crate::outln!("{{\"mode\":\"udp\",\"runs\":[{runs}]}}");
            }
            if o.syslog {
                for r in &all {
                    log::info!("{}", summary_line(r));
                }
            }
            Ok(interrupted)
        }
        Mode::Rfc2544 => run_rfc2544(&plan),
        Mode::Tcp => run_tcp(&plan),
    }
}

/// The link monitor: a plain UDP run every `every` nanoseconds (start to start; a run
/// longer than that is followed at once by the next), one summary line per size and
/// run to the log. A target that does not answer, or a name that does not resolve, is
/// logged and tried again next time: that is what a monitor is for. Ends on SIGTERM.
fn monitor(o: &ProbeOptions, every: u64) -> Result<(), ProbeError> {
    log::info!(
        "probe: monitoring {} port {} every {} s",
        o.target,
        o.port,
        Dec::secs(every, 1)
    );
    loop {
        let start = monotonic_ns();
        match Plan::new(o).and_then(|plan| run_udp(&plan, false, false)) {
            Ok((all, _)) => {
                for r in &all {
                    log::info!("{}", summary_line(r));
                }
            }
            Err(ProbeError::Usage(m)) => return Err(ProbeError::Usage(m)),
            Err(ProbeError::Sys(e)) => log::warn!("probe {}: {e}", o.target),
        }
        // wakes at least once a second, so that a signal landing just before the wait
        // is seen within a second
        let next = start.saturating_add(every);
        while !signals::exit_requested() {
            let now = monotonic_ns();
            if now >= next {
                break;
            }
            wait_until::<0>([], [], next.min(now + 1_000_000_000))
                .map_err(|e| io_err("waiting for the next run", e))?;
        }
        if signals::exit_requested() {
            log::info!("probe: stopped");
            return Ok(());
        }
    }
}

fn io_err(what: &str, e: std::io::Error) -> ProbeError {
    ProbeError::Sys(SysError::os(what, e))
}

/// A random tag base, so replies of an earlier probe (another process, an earlier
/// trial) are told apart.
fn tag_base() -> u32 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return monotonic_ns() as u32;
    }
    u32::from_be_bytes(b)
}

/// Buffers of one size: the payload sent and the receive buffer.
fn buffers(payload_len: usize) -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
    (payload, vec![0u8; units::MAX_IP_PACKET])
}

/// Sends single probes until one comes back: proves the target answers (and fills the
/// neighbour cache on a LAN so the run does not lose its first packets to ARP).
fn warm_up<I: ProbeIo>(
    io: &mut I,
    plan: &Plan,
    payload: &mut [u8],
    rbuf: &mut [u8],
    st: &mut RunState,
    tag: u32,
) -> Result<bool, ProbeError> {
    for i in 0..WARMUP_TRIES {
        let spec = RunSpec {
            mpps: 1_000,
            count: Some(1),
            duration_ns: None,
            tag: tag.wrapping_add(i),
            linger_max_ns: WARMUP_WAIT_NS,
        };
        run::run(
            io,
            &spec,
            payload,
            rbuf,
            st,
            &signals::exit_requested,
            &mut |_, _| {},
        )
        .map_err(|e| send_error(plan, e))?;
        if st.interrupted {
            return Ok(true);
        }
        if st.stats.received > 0 {
            return Ok(false);
        }
        if st.icmp_errors > 0 && st.stats.sent == 0 {
            break;
        }
    }
    let why = if st.icmp_errors > 0 {
        "ICMP unreachable came back"
    } else {
        "no reply"
    };
    Err(ProbeError::Sys(SysError::new(format!(
        "{} does not answer ({why} to {WARMUP_TRIES} probes in {} s): is a tunbox reflector \
         answering for it, and is the route to it right (`ip route get {}`)?",
        plan.target,
        WARMUP_TRIES as u64 * WARMUP_WAIT_NS / 1_000_000_000,
        plan.target.ip()
    ))))
}

fn send_error(plan: &Plan, e: std::io::Error) -> ProbeError {
    if e.raw_os_error() == Some(libc::EMSGSIZE) {
        ProbeError::Sys(SysError::new(format!(
            "a probe is too big for the path to {} ({e}): use a smaller --size",
            plan.target
        )))
    } else {
        io_err(&format!("probing {}", plan.target), e)
    }
}

/// Prints the live line (on a terminal) each second.
fn progress_printer(show: bool) -> impl FnMut(&RunState, u64) {
    move |st, secs| {
        if show {
            crate::out!("{}", report::progress_line(st, secs));
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
    }
}

fn clear_progress(show: bool) {
    if show {
        crate::out!("\r\x1b[K");
    }
}

/// The plain probe: one run per size, printing each run's table when `tables` (and
/// the live line when `show`). Returns the results and whether it was interrupted.
fn run_udp(
    plan: &Plan,
    show: bool,
    tables: bool,
) -> Result<(Vec<Results>, Interrupted), ProbeError> {
    let mut io = UdpIo::open(plan.target)?;
    let tag = tag_base();
    let mut st = RunState::new();
    let mut all = Vec::new();
    let mut warmed = false;
    for (i, &size) in plan.sizes.iter().enumerate() {
        let len = units::udp_payload(size, plan.target.is_ipv6()).map_err(ProbeError::Usage)?;
        let (mut payload, mut rbuf) = buffers(len);
        if !warmed {
            if warm_up(
                &mut io,
                plan,
                &mut payload,
                &mut rbuf,
                &mut st,
                tag.wrapping_add(1000),
            )? {
                return Ok((all, true));
            }
            warmed = true;
        }
        let mpps = plan.rate.mpps(size);
        let spec = RunSpec {
            mpps,
            count: plan.count,
            duration_ns: plan.duration_ns,
            tag: tag.wrapping_add(i as u32),
            linger_max_ns: LINGER_MAX_NS,
        };
        let mut progress = progress_printer(show);
        run::run(
            &mut io,
            &spec,
            &mut payload,
            &mut rbuf,
            &mut st,
            &signals::exit_requested,
            &mut progress,
        )
        .map_err(|e| send_error(plan, e))?;
        clear_progress(show);
        let r = Results::new(
            &plan.target.ip().to_string(),
            plan.target.port(),
            size,
            mpps,
            &st,
        );
        if tables {
            crate::outln!("{}", report::table(&r));
        }
        let interrupted = r.interrupted;
        all.push(r);
        if interrupted {
            break;
        }
    }
    if all.iter().all(|r| r.received == 0) && !all.iter().any(|r| r.interrupted) {
        return Err(ProbeError::Sys(SysError::new(format!(
            "no probe came back from {}",
            plan.target
        ))));
    }
    let interrupted = all.iter().any(|r| r.interrupted);
    Ok((all, interrupted))
}

/// RFC 2544 throughput and latency per frame size. Returns whether it was interrupted.
fn run_rfc2544(plan: &Plan) -> Result<bool, ProbeError> {
    let mut io = UdpIo::open(plan.target)?;
    let show = !plan.json && stdout_is_tty();
    let v6 = plan.target.is_ipv6();
    let mut tag = tag_base();
    let mut st = RunState::new();
    let mut rows = Vec::new();
    let mut warmed = false;
    let mut interrupted = false;
    let ip_str = plan.target.ip().to_string();
    let port = plan.target.port();
    for &frame in &plan.sizes {
        let ip = units::frame_to_ip(frame).unwrap_or(0);
        let mut row = report::Rfc2544Row {
            frame,
            ip,
            skipped: None,
            max_mpps: 0,
            ceiling_mpps: 0,
            trials: 0,
            sender_limited: false,
            latency: None,
        };
        let len = match units::udp_payload(ip, v6) {
            Ok(l) => l,
            Err(_) => {
                row.skipped = Some(format!(
                    "a {ip}-byte IP packet cannot carry an IPv6 probe ({} needed)",
                    units::min_ip_packet(true)
                ));
                rows.push(row);
                continue;
            }
        };
        let (mut payload, mut rbuf) = buffers(len);
        if !warmed {
            if warm_up(&mut io, plan, &mut payload, &mut rbuf, &mut st, tag)? {
                interrupted = true;
                break;
            }
            tag = tag.wrapping_add(WARMUP_TRIES);
            warmed = true;
        }
        // the ceiling: pps from --rate; a bit rate counts whole frames here
        let ceiling = plan.rate.mpps(frame);
        row.ceiling_mpps = ceiling;
        let mut search = schedule::Search::new(ceiling, RFC2544_STEPS);
        let mut trial = |io: &mut UdpIo, st: &mut RunState, mpps: u64, tag: u32| {
            let spec = RunSpec {
                mpps,
                count: None,
                duration_ns: Some(plan.trial_ns),
                tag,
                linger_max_ns: LINGER_MAX_NS,
            };
            run::run(
                io,
                &spec,
                &mut payload,
                &mut rbuf,
                st,
                &signals::exit_requested,
                &mut |_, _| {},
            )
            .map_err(|e| send_error(plan, e))
        };
        while let Some(mpps) = search.next_rate() {
            tag = tag.wrapping_add(1);
            if show {
                crate::out!(
                    "\r  {frame} B: trial {} at {} Mb/s ({} pps)\x1b[K",
                    search.trials() + 1,
                    Dec::mbps(report::bps(mpps, frame), 2),
                    Dec::pps(mpps, 0)
                );
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
            }
            // A trial that lost probes while this host stalled the sender (which then
            // sent a burst) says nothing about the link: it is run again, twice at most.
            let mut attempt = 0;
            let passed = loop {
                attempt += 1;
                trial(&mut io, &mut st, mpps, tag)?;
                if st.interrupted {
                    break false;
                }
                let limited = st.sender_limited();
                let passed = !limited && st.stats.loss_pct() <= plan.loss_ok;
                if passed || limited || !st.stalled() || attempt == RFC2544_ATTEMPTS {
                    row.sender_limited |= limited || (!passed && st.stalled());
                    break passed;
                }
                tag = tag.wrapping_add(1);
            };
            if st.interrupted {
                interrupted = true;
                break;
            }
            search.record(passed);
        }
        row.trials = search.trials();
        row.max_mpps = search.result();
        if !interrupted && row.max_mpps > 0 {
            // RFC 2544 section 26.2: latency at the throughput found
            tag = tag.wrapping_add(1);
            trial(&mut io, &mut st, row.max_mpps, tag)?;
            interrupted = st.interrupted;
            row.latency = Some(Results::new(&ip_str, port, ip, row.max_mpps, &st));
        }
        clear_progress(show);
        rows.push(row);
        if interrupted {
            break;
        }
    }
    if plan.json {
        crate::outln!(
            "{}",
            report::rfc2544_json(&ip_str, port, plan.loss_ok, plan.trial_ns, &rows)
        );
    } else {
        crate::out!(
            "{}",
            report::rfc2544_table(&ip_str, port, plan.loss_ok, plan.trial_ns, &rows)
        );
        if interrupted {
            crate::outln!("  note: interrupted: the sizes above are all that was measured");
        }
    }
    Ok(interrupted)
}

/// Single-stream TCP goodput through the reflector. Returns whether it was interrupted.
fn run_tcp(plan: &Plan) -> Result<bool, ProbeError> {
    use std::io::{ErrorKind, Read as _, Write as _};
    let mut pair = TcpPair::open(plan.target, Duration::from_secs(3))?;
    // always set for --tcp (--count does not apply; the schema has a default)
    let Some(duration) = plan.duration_ns else {
        return Err(ProbeError::Usage("--tcp needs --duration".into()));
    };
    let wbuf: Vec<u8> = (0..65536).map(|i| (i * 7) as u8).collect();
    let mut rbuf = vec![0u8; 65536];
    let start = monotonic_ns();
    let end = start + duration;
    let mut tick = start + 1_000_000_000;
    let mut total: u64 = 0;
    let mut this_second: u64 = 0;
    // bits per second of each second
    let mut per_second: Vec<u64> = Vec::with_capacity((duration / 1_000_000_000) as usize + 1);
    let mut interrupted = false;
    let mut writable = true;
    let ip_str = plan.target.ip().to_string();
    let port = plan.target.port();
    if !plan.json {
        crate::outln!("TCP goodput to {ip_str}:{port} through the reflector, one stream");
    }
    loop {
        if signals::exit_requested() {
            interrupted = true;
            break;
        }
        let now = monotonic_ns();
        if now >= tick || now >= end {
            let bps = units::mul_div(this_second * 8, 1_000_000_000, now - (tick - 1_000_000_000));
            per_second.push(bps);
            if !plan.json {
                crate::outln!(
                    "  {:>4} s  {:>10} Mb/s",
                    per_second.len(),
                    Dec::mbps(bps, 2)
                );
            }
            this_second = 0;
            tick += 1_000_000_000;
            if now >= end {
                break;
            }
        }
        if writable {
            match pair.client.write(&wbuf) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("sending on the TCP connection", e)),
            }
        }
        let mut got_any = false;
        loop {
            match pair.server.read(&mut rbuf) {
                Ok(0) => {
                    return Err(ProbeError::Sys(SysError::new(
                        "the looped-back TCP connection was closed",
                    )))
                }
                Ok(n) => {
                    total += n as u64;
                    this_second += n as u64;
                    got_any = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(io_err("receiving on the TCP connection", e)),
            }
        }
        if !writable || !got_any {
            let (w, _) = pair
                .wait(!writable, tick.min(end))
                .map_err(|e| io_err("waiting on the TCP sockets", e))?;
            writable |= w;
        }
    }
    let ns = monotonic_ns() - start;
    let bps = units::mul_div(total.saturating_mul(8), 1_000_000_000, ns);
    let _ = pair.client.shutdown(std::net::Shutdown::Both);
    if plan.json {
        let mut ps = String::new();
        for (i, v) in per_second.iter().enumerate() {
            use std::fmt::Write as _;
            let sep = if i > 0 { "," } else { "" };
            let _ = write!(ps, "{sep}{}", Dec::mbps(*v, 3));
        }
        crate::outln!(
            "{{\"mode\":\"tcp\",\"target\":{},\"port\":{port},\"bytes\":{total},\"seconds\":{},\
             \"mbps\":{},\"per_second_mbps\":[{}],\"interrupted\":{interrupted}}}",
            report::json_str(&ip_str),
            Dec::secs(ns, 3),
            Dec::mbps(bps, 3),
            ps
        );
    } else {
        crate::outln!(
            "  total   {:>10} Mb/s  ({} bytes in {} s){}",
            Dec::mbps(bps, 2),
            total,
            Dec::secs(ns, 1),
            if interrupted { ", interrupted" } else { "" }
        );
    }
    if total == 0 && !interrupted {
        return Err(ProbeError::Sys(SysError::new(format!(
            "no data came back through {}",
            plan.target
        ))));
    }
    Ok(interrupted)
}
