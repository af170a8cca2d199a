//! The reflector: reads a packet from the device, transforms it in place, writes it
//! back. The loop is generic over [`PacketIo`] so tests can drive it without a kernel.
use crate::ratelimit::{RateLimit, VerboseLog};

use crate::sys::tun::{Mode, Tun};
use crate::sys::{caps, netlink::Rtnl, signals, SysError};
use crate::wire::cidr::Cidr;
use crate::wire::ethernet::MacAddr;
use crate::wire::ip::{self, DropReason, IpPacket};
use log::{info, warn};
use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Instant;

pub mod tap;

/// Buffers hold the largest packet a TUN device can hand over (64 KiB), so segmentation
/// offloads can come later without a redesign.
pub const BUF_SIZE: usize = 65536;

/// The resolved settings of one reflector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReflectOptions {
    pub dev: String,
    pub mode: Mode,
    pub addresses: Vec<(IpAddr, u8)>,
    pub mtu: Option<u32>,
    pub user: Option<String>,
    pub verbose: bool,
    pub syslog: bool,
    /// TAP: the ranges answered (at least one).
    pub ranges: Vec<Cidr>,
    /// TAP: the MAC that answers; default [`tap::default_mac`].
    pub mac: Option<MacAddr>,
    /// TAP: answer echo requests with echo replies.
    pub icmp_echo: bool,
    /// TUN: queues (one thread each); `None` = one per online CPU.
    pub queues: Option<usize>,
}

/// Packet and drop counters. Plain integers: only the loop's thread touches them, so
/// no 64-bit atomics are needed (32-bit mips and ARMv6 have none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub drops: [u64; DropReason::COUNT],
}

impl Stats {
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r.index()]
    }

    /// The counter line, in the format shared with the tunnel ([`crate::counters`]).
    pub fn summary(&self) -> heapless::String<{ crate::counters::LINE_CAP }> {
        crate::counters::Line {
            rx_packets: self.rx_packets,
            rx_bytes: self.rx_bytes,
            tx_packets: self.tx_packets,
            tx_bytes: self.tx_bytes,
            extra: &[("tx errors", self.tx_errors)],
            drops: &DropReason::ALL.map(|r| (r.name(), self.drop_count(r))),
        }
        .to_heapless()
    }
}

/// A source and sink of packets: the TUN/TAP device, or a fake in tests.
pub trait PacketIo {
    /// Reads one packet; `WouldBlock` when none is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one packet.
    fn send(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Waits (bounded) until a packet may be there.
    fn wait(&mut self) -> io::Result<()>;
}

/// What to do with each packet: transform it in place and say how many bytes to send
/// back, or why it is dropped.
pub trait Reflector {
    fn process(&mut self, buf: &mut [u8], len: usize) -> Result<usize, DropReason>;
    /// Source and destination of a packet as read, for verbose logging.
    fn addrs(&self, buf: &mut [u8]) -> Option<(IpAddr, IpAddr)>;
    /// Logs counters of its own (after the loop's summary, on SIGUSR1 and at exit).
    fn log_detail(&self, _dev: &str) {}
}

/// The TUN (IP) reflector.
#[derive(Default)]
pub struct TunReflector;

impl Reflector for TunReflector {
    fn process(&mut self, buf: &mut [u8], len: usize) -> Result<usize, DropReason> {
        ip::reflect(&mut buf[..len]).map(|()| len)
    }
    fn addrs(&self, buf: &mut [u8]) -> Option<(IpAddr, IpAddr)> {
        IpPacket::new_checked(buf).ok().map(|p| (p.src(), p.dst()))
    }
}

/// The loop's mutable state besides the buffer.
pub struct LoopState {
    pub stats: Stats,
    pub verbose: bool,
    pub dev: String,
    verbose_limit: VerboseLog,
    drop_limit: RateLimit,
}

impl LoopState {
    pub fn new(dev: &str, verbose: bool) -> LoopState {
        LoopState {
            stats: Stats::default(),
            verbose,
            dev: dev.to_string(),
            verbose_limit: VerboseLog::new(),
            drop_limit: RateLimit::new(5, 1),
        }
    }

    pub fn log_stats(&self) {
        info!("{}: {}", self.dev, self.stats.summary());
    }

    /// At the end of the loop: what `--verbose` held back since its last line.
    pub fn finish(&mut self) {
        self.verbose_limit.report(&self.dev);
    }
}

/// Runs until `stop()` says so. Allocates nothing per packet.
pub fn run_loop<I: PacketIo, R: Reflector>(
    io: &mut I,
    refl: &mut R,
    buf: &mut [u8],
    st: &mut LoopState,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    while !stop() {
        if signals::take_usr1() {
            st.log_stats();
            refl.log_detail(&st.dev);
        }
        let n = match io.recv(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                io.wait()?;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        st.stats.rx_packets += 1;
        st.stats.rx_bytes += n as u64;
        if st.verbose && st.verbose_limit.allow(Instant::now(), &st.dev) {
            if let Some((src, dst)) = refl.addrs(&mut buf[..n]) {
                info!("{n}: {src}->{dst}");
            } else {
                info!("{n}: not IP");
            }
        }
        match refl.process(buf, n) {
            Ok(out) => match io.send(&buf[..out]) {
                Ok(_) => {
                    st.stats.tx_packets += 1;
                    st.stats.tx_bytes += out as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    st.stats.tx_errors += 1;
                }
                Err(e) => {
                    st.stats.tx_errors += 1;
                    if st.drop_limit.allow(Instant::now()) {
                        warn!("{}: write failed: {e}", st.dev);
                    }
                }
            },
            Err(reason) => {
                st.stats.drops[reason.index()] += 1;
                // NotForUs is a TAP reflector ignoring ordinary LAN traffic: counted only.
                if reason != DropReason::NotForUs && st.drop_limit.allow(Instant::now()) {
                    let skipped = st.drop_limit.take_suppressed();
                    let level = if reason.is_routine() {
                        log::Level::Info
                    } else {
                        log::Level::Warn
                    };
                    log::log!(
                        level,
                        "{}: dropped a {n}-byte packet: {reason} ({} dropped so far, {skipped} messages suppressed)",
                        st.dev,
                        st.stats.dropped()
                    );
                }
            }
        }
    }
    Ok(())
}

/// The kernel device as a [`PacketIo`]. On a non-blocking device (the self-test's
/// thread) `wait` polls for at most a quarter second so a stop request is seen. The
/// daemon sets the device blocking instead, so a packet costs one read and one write
/// like the C reference; signals (and the once-a-second tick) interrupt the read.
pub struct TunIo<'a>(pub &'a Tun);

impl PacketIo for TunIo<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
    fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn wait(&mut self) -> io::Result<()> {
        crate::sys::poll_in(self.0.as_fd(), 250).map(drop)
    }
}

/// Whether a network device of this name exists (in this namespace).
pub fn device_exists(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('%')
        && std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Opens and configures the device as the options say. Needs CAP_NET_ADMIN unless it
/// attaches to an existing persistent device it owns and configures nothing.
pub fn open_device(o: &ReflectOptions) -> Result<Tun, SysError> {
    let configures = !o.addresses.is_empty() || o.mtu.is_some();
    if configures || !device_exists(&o.dev) {
        let what = if device_exists(&o.dev) {
            format!("configuring {}", o.dev)
        } else {
            format!("creating {} device '{}'", o.mode.as_str(), o.dev)
        };
        caps::require_net_admin(&what)?;
    }
    let tun = Tun::open(&o.dev, o.mode)?;
    if caps::has_net_admin() {
        let mut nl = Rtnl::new()?;
        let idx = nl.link_index(tun.name())?;
        if let Some(mtu) = o.mtu {
            nl.set_mtu(tun.name(), mtu)?;
        }
        for &(addr, len) in &o.addresses {
            nl.add_address(idx, addr, len)?;
        }
        nl.set_up(tun.name(), true)?;
    }
    tun.set_nonblocking(true)?;
    Ok(tun)
}

/// `tunbox reflect`: open, configure, drop privileges, loop until SIGTERM/SIGINT.
pub fn run(o: &ReflectOptions) -> Result<(), SysError> {
    crate::sys::log::init(o.syslog);
    let tun = open_device(o)?;
    let mut desc = String::new();
    for (a, l) in &o.addresses {
        let _ = write!(desc, " {a}/{l}");
    }
    info!(
        "reflecting on {} ({}){}{}",
        tun.name(),
        o.mode.as_str(),
        if desc.is_empty() { "" } else { ", addresses" },
        desc
    );
    let mut tap_refl = (o.mode == Mode::Tap).then(|| tap::setup(o, tun.name()));
    caps::drop_privileges(o.user.as_deref())?;
    signals::install();
    tun.set_nonblocking(false)?;
    signals::start_tick().map_err(|e| SysError::os("setitimer", e))?;
    let mut buf = vec![0u8; BUF_SIZE];
    let mut st = LoopState::new(tun.name(), o.verbose);
    let mut io = TunIo(&tun);
    let stop = &signals::exit_requested;
    let res = match &mut tap_refl {
        Some(t) => run_loop(&mut io, t, &mut buf, &mut st, stop),
        None => run_loop(&mut io, &mut TunReflector, &mut buf, &mut st, stop),
    };
    st.finish();
    st.log_stats();
    if let Some(t) = &tap_refl {
        t.log_detail(tun.name());
    }
    // One line about the failure: the caller logs the error it is given.
    res.map_err(|e| {
        if crate::sys::tun::device_gone(&e) {
            SysError::new(format!(
                "device {} went away (deleted?): reading it failed with {e}",
                tun.name()
            ))
        } else {
            SysError::os(format!("reading {}", tun.name()), e)
        }
    })
}
