//! The reflector: reads a packet from the device, transforms it in place, writes it
//! back. The loop is generic over [`PacketIo`] so tests can drive it without a kernel.
//!
//! Fast path (TUN): the device is opened with a `virtio_net_hdr` before every packet and
//! with checksum and segmentation offloads, so one read returns a TCP super-packet of up
//! to 64 KiB; swapping its addresses leaves the pseudo-header sum as it was, so it is
//! written back with the header as read. With several CPUs the device has one queue per
//! CPU and a thread reads each (IFF_MULTI_QUEUE); every thread counts on its own and the
//! counters are summed when reported (no 64-bit atomics: 32-bit mips has none).
//!
//! The loops always run on threads of their own (TAP and a single queue: one); the
//! main thread only waits: for signals, and for `tunbox status` clients on the status
//! socket, whose document it makes from counters the threads hand over when asked
//! (see [`Shared::fresh`]).
use crate::ratelimit::{RateLimit, VerboseLog};

use crate::status::StatusSocket;
use crate::sys::tun::{self as tundev, Mode, OpenFlags, Tun};
use crate::sys::{caps, netlink::Rtnl, signals, threads, SysError};
use crate::wire::cidr::Cidr;
use crate::wire::ethernet::MacAddr;
use crate::wire::ip::{self, DropReason, IpPacket};
use crate::wire::virtio::{self, VirtioNetHdr};
use log::{info, warn};
use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod loop_guard;
pub mod tap;

/// Buffers hold the largest packet a TUN device can hand over (64 KiB) plus its
/// `virtio_net_hdr`.
pub const BUF_SIZE: usize = 65536 + virtio::HDR_LEN;

/// Most queues (threads) a reflector opens.
pub const MAX_QUEUES: usize = 64;

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
/// no 64-bit atomics are needed (32-bit mips and ARMv6 have none); a thread hands a
/// copy over when asked ([`Shared`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    /// Reads that returned a super-packet (TSO/USO) the kernel left unsegmented.
    pub super_packets: u64,
    pub drops: [u64; DropReason::COUNT],
    /// TAP: the reflector's own counters, copied in when a thread hands its counters
    /// over ([`Reflector::tap_counts`]); zero in the loop's own copy.
    pub tap: tap::TapCounts,
}

impl Stats {
    /// Adds another thread's counters to these.
    pub fn add(&mut self, o: &Stats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_errors += o.tx_errors;
        self.super_packets += o.super_packets;
        for (a, b) in self.drops.iter_mut().zip(o.drops) {
            *a += b;
        }
        self.tap.add(&o.tap);
    }

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
            extra: &[
                ("tx errors", self.tx_errors),
                ("super-packets", self.super_packets),
            ],
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
    /// A TAP reflector's counters of its own (logged after the loop's summary, on
    /// SIGUSR1 and at exit, and shown by `tunbox status`).
    fn tap_counts(&self) -> Option<&tap::TapCounts> {
        None
    }
}

/// The loop's counters with the reflector's own.
fn snapshot<R: Reflector>(st: &LoopState, refl: &R) -> Stats {
    let mut s = st.stats;
    if let Some(t) = refl.tap_counts() {
        s.tap = *t;
    }
    s
}

/// The counter line, and the TAP reflector's detail line.
fn log_counters(dev: &str, s: &Stats, tap: bool) {
    info!("{dev}: {}", s.summary());
    if tap {
        info!("{dev}: {}", s.tap.summary());
    }
}

/// The TUN (IP) reflector, with the [`loop_guard::LoopGuard`] of its own prefixes.
#[derive(Default)]
pub struct TunReflector {
    pub guard: loop_guard::LoopGuard,
}

impl Reflector for TunReflector {
    fn process(&mut self, buf: &mut [u8], len: usize) -> Result<usize, DropReason> {
        let src = IpPacket::new_checked(&mut buf[..len])?.src();
        // the structural and address rules first (a multicast packet is `multicast`,
        // whatever its source); a dropped packet is never written, swapped or not
        ip::reflect(&mut buf[..len])?;
        self.guard.check(src).map(|()| len)
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
    /// Bytes of `virtio_net_hdr` before every packet (0 without IFF_VNET_HDR).
    pub hdr_len: usize,
    verbose_limit: VerboseLog,
    drop_limit: RateLimit,
}

impl LoopState {
    pub fn new(dev: &str, verbose: bool) -> LoopState {
        LoopState {
            stats: Stats::default(),
            verbose,
            dev: dev.to_string(),
            hdr_len: 0,
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

/// Runs until `stop()` says so, logging the counters on SIGUSR1. Allocates nothing per
/// packet.
pub fn run_loop<I: PacketIo, R: Reflector>(
    io: &mut I,
    refl: &mut R,
    buf: &mut [u8],
    st: &mut LoopState,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    run_loop_with(io, refl, buf, st, &mut |st, refl| {
        if signals::take_usr1() {
            log_counters(&st.dev, &snapshot(st, refl), refl.tap_counts().is_some());
        }
        stop()
    })
}

/// The loop itself: `control` runs before every read (and after every interrupted
/// one) and says whether to stop. Allocates nothing per packet.
pub fn run_loop_with<I: PacketIo, R: Reflector>(
    io: &mut I,
    refl: &mut R,
    buf: &mut [u8],
    st: &mut LoopState,
    control: &mut dyn FnMut(&mut LoopState, &R) -> bool,
) -> io::Result<()> {
    let h = st.hdr_len;
    while !control(st, refl) {
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
        let Some(len) = n.checked_sub(h) else {
            st.drop_packet(DropReason::Truncated, n);
            continue;
        };
        st.stats.rx_bytes += len as u64;
        if h > 0 && VirtioNetHdr::new_checked(buf).is_some_and(|v| v.is_gso()) {
            st.stats.super_packets += 1;
        }
        if st.verbose && st.verbose_limit.allow(Instant::now(), &st.dev) {
            if let Some((src, dst)) = refl.addrs(&mut buf[h..n]) {
                info!("{len}: {src}->{dst}");
            } else {
                info!("{len}: not IP");
            }
        }
        // the header goes back as read: a reflected super-packet keeps its segmentation
        // and partial checksum (the pseudo-header sum is the same with swapped addresses)
        match refl.process(&mut buf[h..], len) {
            Ok(out) => match io.send(&buf[..h + out]) {
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
            Err(reason) => st.drop_packet(reason, len),
        }
    }
    Ok(())
}

impl LoopState {
    /// Counts a dropped packet and logs it, rate-limited.
    fn drop_packet(&mut self, reason: DropReason, n: usize) {
        self.stats.drops[reason.index()] += 1;
        // NotForUs is a TAP reflector ignoring ordinary LAN traffic: counted only.
        if reason != DropReason::NotForUs && self.drop_limit.allow(Instant::now()) {
            let skipped = self.drop_limit.take_suppressed();
            let level = if reason.is_routine() {
                log::Level::Info
            } else {
                log::Level::Warn
            };
            log::log!(
                level,
                "{}: dropped a {n}-byte packet: {reason} ({} dropped so far, {skipped} messages suppressed)",
                self.dev,
                self.stats.dropped()
            );
        }
    }
}

/// What the queue threads of a reflector share: a stop flag, and a slot per thread
/// where it leaves a copy of its counters when asked (and at its end). Each thread
/// counts in plain integers of its own; the only per-packet cost of reporting is a
/// relaxed 32-bit load of `report_gen` before each read. A request (SIGUSR1, a
/// `tunbox status` client) raises it and interrupts threads blocked in a read; each
/// then locks its own slot once to copy its counters in, so the counters summed are
/// exact as of the request, and a reader holds a slot's lock only to copy it out.
pub struct Shared {
    stop: AtomicBool,
    /// Raised to ask every thread for its counters.
    report_gen: AtomicU32,
    /// (the request the counters answer, or [`ENDED`]; the counters)
    slots: Vec<Mutex<(u32, Stats)>>,
    /// The first error that ended a thread.
    error: Mutex<Option<io::Error>>,
}

/// A slot's request number once its thread has ended: answers every request.
const ENDED: u32 = u32::MAX;

impl Shared {
    pub fn new(queues: usize) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            report_gen: AtomicU32::new(0),
            slots: (0..queues)
                .map(|_| Mutex::new((0, Stats::default())))
                .collect(),
            error: Mutex::new(None),
        }
    }

    /// Asks every thread to stop (they see it at their next packet or interruption).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks for fresh counters; returns the request's number for [`Shared::answered`].
    pub fn request_report(&self) -> u32 {
        self.report_gen
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// Whether every thread has left counters for request `gen` (or ended).
    pub fn answered(&self, gen: u32) -> bool {
        self.slots.iter().all(|s| {
            s.lock()
                .map(|s| s.0 == gen || s.0 == u32::MAX)
                .unwrap_or(true)
        })
    }

    /// Asks every thread for its counters now and sums them. Exact as of this call for
    /// every thread that answers within a second: a busy one answers before its next
    /// read, one blocked in a read is interrupted (again every few milliseconds, in
    /// case the signal came just before the read); a thread that does not answer in
    /// time counts with the figures it last handed over. The threads take no lock and
    /// make no system call for this except when asked.
    pub fn fresh(&self, workers: &[threads::Thread]) -> Stats {
        let gen = self.request_report();
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.answered(gen) && Instant::now() < deadline {
            for w in workers {
                w.interrupt();
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.total()
    }

    /// The counters of all threads, summed.
    pub fn total(&self) -> Stats {
        let mut t = Stats::default();
        for s in &self.slots {
            if let Ok(s) = s.lock() {
                t.add(&s.1);
            }
        }
        t
    }

    fn publish(&self, idx: usize, gen: u32, stats: &Stats) {
        if let Ok(mut s) = self.slots[idx].lock() {
            *s = (gen, *stats);
        }
    }
}

/// One queue's thread: the loop until [`Shared::request_stop`] or SIGTERM/SIGINT,
/// leaving its counters (with the reflector's own) in slot `idx` when asked and at the
/// end. Per packet it adds one relaxed 32-bit load; it allocates nothing.
pub fn queue_loop<I: PacketIo, R: Reflector>(
    io: &mut I,
    refl: &mut R,
    buf: &mut [u8],
    st: &mut LoopState,
    shared: &Shared,
    idx: usize,
) -> io::Result<()> {
    let mut seen = shared.report_gen.load(Ordering::Relaxed);
    let res = run_loop_with(io, refl, buf, st, &mut |st, refl| {
        let gen = shared.report_gen.load(Ordering::Relaxed);
        if gen != seen {
            seen = gen;
            shared.publish(idx, gen, &snapshot(st, refl));
        }
        shared.stopping() || signals::exit_requested()
    });
    st.finish();
    if res.is_err() {
        shared.request_stop();
    }
    shared.publish(idx, ENDED, &snapshot(st, refl));
    res
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
    let mut dev = open_queues(o, 1, OpenFlags::default())?;
    Ok(dev.queues.remove(0))
}

/// The device's queues and what was negotiated for them.
pub struct Device {
    pub queues: Vec<Tun>,
    /// `virtio_net_hdr` bytes before each packet (0: plain packets).
    pub hdr_len: usize,
    /// `TUN_F_*` offloads the kernel took.
    pub offloads: u32,
}

impl Device {
    /// "offloads: csum on, tso4 on, tso6 on, uso off; queues 2"
    pub fn describe(&self) -> String {
        let on = |b: u32| if self.offloads & b != 0 { "on" } else { "off" };
        let mut s = if self.hdr_len == 0 {
            "offloads: none (no virtio header)".to_string()
        } else {
            format!(
                "offloads: csum {}, tso4 {}, tso6 {}, uso {}",
                on(tundev::TUN_F_CSUM),
                on(tundev::TUN_F_TSO4),
                on(tundev::TUN_F_TSO6),
                on(tundev::TUN_F_USO4 | tundev::TUN_F_USO6)
            )
        };
        let _ = write!(s, "; queues {}", self.queues.len());
        s
    }
}

/// Offload sets tried in turn: USO needs Linux 6.2, TSO and CSUM are much older.
const OFFLOAD_SETS: [u32; 4] = [
    tundev::TUN_F_CSUM
        | tundev::TUN_F_TSO4
        | tundev::TUN_F_TSO6
        | tundev::TUN_F_TSO_ECN
        | tundev::TUN_F_USO4
        | tundev::TUN_F_USO6,
    tundev::TUN_F_CSUM | tundev::TUN_F_TSO4 | tundev::TUN_F_TSO6 | tundev::TUN_F_TSO_ECN,
    tundev::TUN_F_CSUM | tundev::TUN_F_TSO4 | tundev::TUN_F_TSO6,
    tundev::TUN_F_CSUM,
];

/// Opens up to `want` queues of the device with the flags in `fast` (each falls back to
/// the plain way when the kernel or an existing device refuses it), negotiates offloads
/// and configures addresses, MTU and link state.
pub fn open_queues(o: &ReflectOptions, want: usize, fast: OpenFlags) -> Result<Device, SysError> {
    let configures = !o.addresses.is_empty() || o.mtu.is_some();
    if configures || !device_exists(&o.dev) {
        let what = if device_exists(&o.dev) {
            format!("configuring {}", o.dev)
        } else {
            format!("creating {} device '{}'", o.mode.as_str(), o.dev)
        };
        caps::require_net_admin(&what)?;
    }
    let mut flags = OpenFlags {
        multi_queue: fast.multi_queue && want > 1,
        ..fast
    };
    // an existing single-queue device (made by mktun) refuses IFF_MULTI_QUEUE, and a
    // very old kernel IFF_VNET_HDR: one queue, then plain packets
    let first = loop {
        match Tun::open_with(&o.dev, o.mode, flags) {
            Ok(t) => break t,
            Err(e) if flags.multi_queue => {
                info!("{}: not opened with several queues ({e}); one queue", o.dev);
                flags.multi_queue = false;
            }
            Err(e) if flags.vnet_hdr => {
                info!("{}: not opened with offloads ({e}); plain packets", o.dev);
                flags.vnet_hdr = false;
            }
            Err(e) => return Err(e),
        }
    };
    let mut dev = Device {
        hdr_len: 0,
        offloads: 0,
        queues: vec![],
    };
    if flags.vnet_hdr {
        match first.set_vnet_hdr_len(virtio::HDR_LEN) {
            Ok(()) => {
                dev.hdr_len = virtio::HDR_LEN;
                dev.offloads = first.negotiate_offload(&OFFLOAD_SETS);
            }
            // the kernel's default header is the 10-byte one anyway
            Err(e) => return Err(e),
        }
    }
    let name = first.name().to_string();
    dev.queues.push(first);
    while flags.multi_queue && dev.queues.len() < want {
        match Tun::open_with(&name, o.mode, flags) {
            Ok(t) => dev.queues.push(t),
            Err(e) => {
                warn!("{name}: queue {} not opened: {e}", dev.queues.len() + 1);
                break;
            }
        }
    }
    if caps::has_net_admin() {
        configure_link(dev.queues[0].name(), o.mtu, None, &o.addresses)?;
    }
    for q in &dev.queues {
        q.set_nonblocking(true)?;
    }
    Ok(dev)
}

/// `, addresses A/L B/L` for the start-up line, or nothing without addresses.
pub(crate) struct AddressList<'a>(pub &'a [(IpAddr, u8)]);

impl std::fmt::Display for AddressList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.0.is_empty() {
            f.write_str(", addresses")?;
        }
        for (a, l) in self.0 {
            write!(f, " {a}/{l}")?;
        }
        Ok(())
    }
}

/// Sets the MTU and the MAC (where given) of device `name`, adds `addresses` and sets
/// it up (the reflector's and the tunnel's devices).
pub(crate) fn configure_link(
    name: &str,
    mtu: Option<u32>,
    mac: Option<crate::wire::ethernet::MacAddr>,
    addresses: &[(IpAddr, u8)],
) -> Result<(), SysError> {
    let mut nl = Rtnl::new()?;
    let idx = nl.link_index(name)?;
    if let Some(mtu) = mtu {
        nl.set_mtu(name, mtu)?;
    }
    if let Some(mac) = mac {
        nl.set_mac(idx, mac.0)?;
    }
    for &(addr, len) in addresses {
        nl.add_address(idx, addr, len)?;
    }
    nl.set_up(name, true)?;
    Ok(())
}

/// `tunbox reflect`: open, configure, drop privileges, loop until SIGTERM/SIGINT.
pub fn run(o: &ReflectOptions) -> Result<(), SysError> {
    crate::sys::log::init(o.syslog);
    let tun_mode = o.mode == Mode::Tun;
    let want = if tun_mode {
        o.queues
            .unwrap_or_else(threads::online_cpus)
            .clamp(1, MAX_QUEUES)
    } else {
        1
    };
    // TAP keeps plain frames and one thread: its neighbour state is the loop's own
    let fast = OpenFlags {
        vnet_hdr: tun_mode,
        multi_queue: tun_mode,
    };
    let dev = open_queues(o, want, fast)?;
    let name = dev.queues[0].name().to_string();
    info!(
        "reflecting on {name} ({}){}",
        o.mode.as_str(),
        AddressList(&o.addresses)
    );
    if tun_mode {
        info!("{name}: {}", dev.describe());
    }
    let (tap_refl, excluded) = match o.mode {
        Mode::Tap => {
            let (r, e) = tap::setup(o, &name);
            (Some(r), e)
        }
        Mode::Tun => (None, Vec::new()),
    };
    // `tunbox status`: made before privileges are dropped, owned by the service user
    let status = StatusSocket::for_service(&name, o.user.as_deref(), "reflector")?;
    caps::drop_privileges(o.user.as_deref())?;
    signals::install();
    for q in &dev.queues {
        q.set_nonblocking(false)?;
    }
    // offloads stay on a persistent device after its last reader is gone, and a reader
    // without the virtio header (the C reference, `tunbox tunnel`) would then be handed
    // super-packets: they are turned off again at the end (not after SIGKILL)
    let keeper = (dev.offloads != 0)
        .then(|| dev.queues[0].try_clone().ok())
        .flatten();
    let head = status_head(o, &name, &dev, tap_refl.as_ref(), &excluded);
    let res = run_threads(o, dev, tap_refl, status.map(|s| (s, head)));
    if let Some(k) = keeper {
        let _ = k.set_offload(0);
    }
    // One line about the failure: the caller logs the error it is given.
    res.map_err(|e| {
        if crate::sys::tun::device_gone(&e) {
            SysError::new(format!(
                "device {name} went away (deleted?): reading it failed with {e}"
            ))
        } else {
            SysError::os(format_args!("reading {name}"), e)
        }
    })
}

/// Starts the loop of one queue on a thread of its own.
fn spawn_queue<R: Reflector + Send + 'static>(
    tun: Tun,
    mut refl: R,
    mut st: LoopState,
    shared: &Arc<Shared>,
    idx: usize,
) -> io::Result<threads::Thread> {
    let shared = Arc::clone(shared);
    threads::spawn(move || {
        let mut buf = vec![0u8; BUF_SIZE];
        // an error ends this thread and asks the others to stop; the first is kept
        if let Err(e) = queue_loop(&mut TunIo(&tun), &mut refl, &mut buf, &mut st, &shared, idx) {
            if let Ok(mut first) = shared.error.lock() {
                first.get_or_insert(e);
            }
        }
    })
}

/// One thread per queue (TAP: one, with the TAP reflector); this thread serves
/// `tunbox status`, logs the counters on SIGUSR1 and stops them all on SIGTERM/SIGINT
/// or when one of them fails.
fn run_threads(
    o: &ReflectOptions,
    dev: Device,
    mut tap_refl: Option<tap::TapReflector>,
    status: Option<(StatusSocket, String)>,
) -> io::Result<()> {
    let name = dev.queues[0].name().to_string();
    let is_tap = tap_refl.is_some();
    let shared = Arc::new(Shared::new(dev.queues.len()));
    let mut workers = Vec::with_capacity(dev.queues.len());
    for (idx, tun) in dev.queues.into_iter().enumerate() {
        let mut st = LoopState::new(&name, o.verbose);
        st.hdr_len = dev.hdr_len;
        let spawned = match tap_refl.take() {
            Some(r) => spawn_queue(tun, r, st, &shared, idx),
            None => {
                let guard = loop_guard::LoopGuard::new(&o.addresses);
                spawn_queue(tun, TunReflector { guard }, st, &shared, idx)
            }
        };
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                shared.request_stop();
                let e = crate::io_error(
                    io::ErrorKind::Other,
                    format!("cannot start the thread of queue {}: {e}", idx + 1),
                );
                if let Ok(mut first) = shared.error.lock() {
                    first.get_or_insert(e);
                }
                // its slot stays empty: mark it ended so reports do not wait for it
                shared.publish(idx, ENDED, &Stats::default());
            }
        }
    }
    let started = Instant::now();
    while !shared.stopping() && !signals::exit_requested() {
        if signals::take_usr1() {
            log_counters(&name, &shared.fresh(&workers), is_tap);
        }
        match &status {
            // a client wakes this thread at once, a signal too (EINTR)
            Some((s, head)) => {
                if let Ok(true) = crate::sys::poll_in(s.listener().as_fd(), 200) {
                    s.serve(|| {
                        let t = shared.fresh(&workers);
                        status_doc(head, &t, started.elapsed().as_secs(), is_tap)
                    });
                }
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    shared.request_stop();
    while !shared.answered(ENDED) {
        for w in &workers {
            w.interrupt();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for w in workers {
        w.join();
    }
    log_counters(&name, &shared.total(), is_tap);
    match shared.error.lock().ok().and_then(|mut e| e.take()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The part of the status document that does not change (see [`crate::status`]).
fn status_head(
    o: &ReflectOptions,
    name: &str,
    dev: &Device,
    tap: Option<&tap::TapReflector>,
    excluded: &[IpAddr],
) -> String {
    use crate::status::{json_opt_str, json_str};
    let mut h = String::from("{\"version\":1,\"tool\":\"reflect\",\"device\":");
    json_str(&mut h, name);
    let _ = write!(
        h,
        ",\"pid\":{},\"mode\":\"{}\",\"queues\":{},\"offloads\":[",
        std::process::id(),
        o.mode.as_str(),
        dev.queues.len()
    );
    // the lists' items (names, addresses, prefixes) need no escaping
    let mut sep = "";
    for (bits, n) in [
        (tundev::TUN_F_CSUM, "csum"),
        (tundev::TUN_F_TSO4, "tso4"),
        (tundev::TUN_F_TSO6, "tso6"),
        (tundev::TUN_F_USO4 | tundev::TUN_F_USO6, "uso"),
    ] {
        if dev.offloads & bits != 0 {
            let _ = write!(h, "{sep}\"{n}\"");
            sep = ",";
        }
    }
    h.push_str("],\"addresses\":[");
    sep = "";
    for (a, l) in &o.addresses {
        let _ = write!(h, "{sep}\"{a}/{l}\"");
        sep = ",";
    }
    h.push_str("],\"ranges\":[");
    sep = "";
    for r in &o.ranges {
        let _ = write!(h, "{sep}\"{r}\"");
        sep = ",";
    }
    h.push_str("],\"excluded\":[");
    sep = "";
    for a in excluded {
        let _ = write!(h, "{sep}\"{a}\"");
        sep = ",";
    }
    h.push(']');
    h.push_str(",\"mac\":");
    json_opt_str(&mut h, tap.map(|t| t.config().mac.to_string()).as_deref());
    let _ = write!(h, ",\"icmp_echo\":{}", o.icmp_echo);
    h
}

/// The status document: `head`, then the uptime and the counters.
fn status_doc(head: &str, t: &Stats, uptime: u64, tap: bool) -> String {
    use crate::status::json_counts;
    use crate::wire::tap::{DropReason as TapDrop, Reply};
    let mut o = String::with_capacity(head.len() + 1024);
    o.push_str(head);
    let _ = write!(
        o,
        ",\"uptime_secs\":{uptime},\"rx_packets\":{},\"rx_bytes\":{},\"tx_packets\":{},\
         \"tx_bytes\":{},\"tx_errors\":{},\"super_packets\":{},\"drops\":",
        t.rx_packets, t.rx_bytes, t.tx_packets, t.tx_bytes, t.tx_errors, t.super_packets
    );
    json_counts(
        &mut o,
        &DropReason::ALL.map(|r| (r.name(), t.drop_count(r))),
    );
    o.push_str(",\"replies\":");
    if tap {
        json_counts(
            &mut o,
            &Reply::ALL.map(|r| (r.name(), t.tap.replies[r.index()])),
        );
        o.push_str(",\"ignored\":");
        json_counts(
            &mut o,
            &TapDrop::ALL.map(|r| (r.name(), t.tap.drops[r.index()])),
        );
    } else {
        o.push_str("null,\"ignored\":null");
    }
    o.push_str("}\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Json;
    use crate::wire::tap::{DropReason as TapDrop, Reply};

    #[test]
    fn the_status_document_has_every_counter() {
        let mut t = Stats {
            rx_packets: 5,
            tx_packets: 3,
            super_packets: 1,
            ..Default::default()
        };
        t.drops[DropReason::Multicast.index()] = 2;
        let head = "{\"version\":1,\"tool\":\"reflect\"";
        let d = status_doc(head, &t, 7, false);
        assert!(d.ends_with("}\n"));
        let j = Json::parse(&d).expect("JSON");
        assert_eq!(j.get("uptime_secs").num(), Some(7));
        assert_eq!(j.get("rx_packets").num(), Some(5));
        assert_eq!(j.get("super_packets").num(), Some(1));
        assert_eq!(j.get("drops").get("multicast").num(), Some(2));
        assert_eq!(j.get("drops").get("would_loop").num(), Some(0));
        assert_eq!(
            (j.get("replies"), j.get("ignored")),
            (&Json::Null, &Json::Null)
        );
        t.tap.replies[Reply::Arp.index()] = 4;
        t.tap.drops[TapDrop::NotOurMac.index()] = 6;
        let j = Json::parse(&status_doc(head, &t, 7, true)).expect("JSON");
        assert_eq!(j.get("replies").get("arp_reply").num(), Some(4));
        assert_eq!(j.get("replies").get("echo_reply").num(), Some(0));
        assert_eq!(j.get("ignored").get("not_our_mac").num(), Some(6));
        assert_eq!(j.get("ignored").get("no_room").num(), Some(0));
    }

    #[test]
    fn counters_sum_with_the_tap_detail() {
        let mut a = Stats::default();
        a.tap.replies[1] = 2;
        let mut b = a;
        b.rx_packets = 3;
        b.add(&a);
        assert_eq!((b.rx_packets, b.tap.replies[1]), (3, 4));
    }
}
