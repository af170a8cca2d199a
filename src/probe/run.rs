//! The loop of one run (or one RFC 2544 trial): send the probes that are due, take in
//! the replies, sleep until the next probe is due or a reply arrives. It reaches the
//! socket and the clock only through [`ProbeIo`] (src/sys/probe.rs in the program, a
//! fake in tests) and allocates nothing: buffers and statistics are made before it.
use super::schedule::{Pacer, MAX_BURST};
use super::stats::Stats;
use super::units::{mul_div, per_second_milli, read_header, write_header};
use std::io;

const SECOND: u64 = 1_000_000_000;
/// A sender this late (this host busy elsewhere) makes a burst worth noting.
pub const STALL_NS: u64 = 2_000_000;
/// Datagrams taken in at most between two looks at the send schedule.
const RECV_BATCH: usize = 256;

/// The socket and clock the loop runs on.
pub trait ProbeIo {
    /// Monotonic time in nanoseconds.
    fn now(&mut self) -> u64;
    /// Sends one probe (the UDP payload).
    fn send(&mut self, payload: &[u8]) -> io::Result<()>;
    /// The next received payload's length, Ok(None) when nothing is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sleeps until `until` (as [`now`](Self::now)), a reply is readable or a signal
    /// arrives.
    fn wait(&mut self, until: u64) -> io::Result<()>;
    /// Datagrams the kernel dropped because the receive buffer was full, since the
    /// socket was opened (SO_RXQ_OVFL).
    fn rx_dropped(&self) -> u64;
}

/// What to send in one run.
#[derive(Clone, Copy, Debug)]
pub struct RunSpec {
    /// thousandths of packets per second
    pub mpps: u64,
    pub count: Option<u64>,
    pub duration_ns: Option<u64>,
    /// identifies this run's probes (replies of an earlier trial are strays)
    pub tag: u32,
    /// longest wait for replies after the last probe
    pub linger_max_ns: u64,
}

/// The outcome of one run: the statistics and what the sender itself managed.
pub struct RunState {
    pub stats: Stats,
    /// sends the kernel refused for want of buffer space (not sent, not counted as loss)
    pub send_errors: u64,
    /// ICMP errors (port/host/net unreachable) reported on the socket
    pub icmp_errors: u64,
    /// how far behind its schedule the sender fell at worst
    pub max_lag_ns: u64,
    /// replies dropped by the kernel because this socket's receive buffer was full
    pub rx_overflow: u64,
    /// probes the schedule called for while sending was on
    pub planned: u64,
    pub started: u64,
    /// times of the first and the last probe sent
    pub first_send: u64,
    pub last_send: u64,
    pub send_ended: u64,
    pub ended: u64,
    /// stopped by a signal (Ctrl-C)
    pub interrupted: bool,
}

impl Default for RunState {
    fn default() -> Self {
        Self::new()
    }
}

impl RunState {
    pub fn new() -> RunState {
        RunState {
            stats: Stats::new(),
            send_errors: 0,
            icmp_errors: 0,
            max_lag_ns: 0,
            rx_overflow: 0,
            planned: 0,
            started: 0,
            first_send: 0,
            last_send: 0,
            send_ended: 0,
            ended: 0,
            interrupted: false,
        }
    }

    fn reset(&mut self) {
        self.stats.reset();
        self.send_errors = 0;
        self.icmp_errors = 0;
        self.max_lag_ns = 0;
        self.rx_overflow = 0;
        self.planned = 0;
        self.started = 0;
        self.first_send = 0;
        self.last_send = 0;
        self.send_ended = 0;
        self.ended = 0;
        self.interrupted = false;
    }

    /// Nanoseconds spent sending.
    pub fn send_ns(&self) -> u64 {
        self.send_ended.saturating_sub(self.started)
    }

    /// Thousandths of probes per second actually sent: the intervals between the first
    /// and the last probe (0 with fewer than two).
    pub fn send_mpps(&self) -> u64 {
        let span = self.last_send.saturating_sub(self.first_send);
        if self.stats.sent > 1 && span > 0 {
            per_second_milli(self.stats.sent - 1, span)
        } else {
            0
        }
    }

    /// Distinct replies per second (thousandths): the send rate scaled by the share
    /// that came back.
    pub fn recv_mpps(&self) -> u64 {
        mul_div(self.send_mpps(), self.stats.received, self.stats.sent)
    }

    /// The sender woke more than [`STALL_NS`] late at least once and sent the probes
    /// due meanwhile in a burst, which a shallow queue on the path may drop.
    pub fn stalled(&self) -> bool {
        self.max_lag_ns > STALL_NS
    }

    /// The sender fell short of its schedule: fewer probes than planned (more than 1 %
    /// or 2 probes), or more than [`Pacer::LAG_LIMIT_NS`] behind at some point.
    pub fn sender_limited(&self) -> bool {
        let short = self.planned.saturating_sub(self.stats.sent);
        short > 2 && short * 100 > self.planned || self.max_lag_ns > Pacer::LAG_LIMIT_NS
    }
}

/// True for the errors an ICMP message leaves on a connected UDP socket.
fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN)
    )
}

/// Takes in waiting replies (at most [`RECV_BATCH`]).
fn drain<I: ProbeIo>(io: &mut I, tag: u32, buf: &mut [u8], st: &mut RunState) -> io::Result<()> {
    for _ in 0..RECV_BATCH {
        let n = match io.recv(buf) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) if is_icmp_error(&e) => {
                st.icmp_errors += 1;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
            Err(e) => return Err(e),
        };
        let now = io.now();
        match read_header(&buf[..n]) {
            Some((t, seq, sent_at)) if t == tag && u64::from(seq) < st.stats.sent => {
                st.stats
                    .on_reply(u64::from(seq), now.saturating_sub(sent_at), n);
            }
            _ => st.stats.stray += 1,
        }
    }
    Ok(())
}

/// Runs one series of probes: `payload` is the UDP payload to send (its first 16 bytes
/// are overwritten with the probe header), `rbuf` takes replies (at least as long).
/// `progress` is called once a second with the figures so far and the seconds elapsed;
/// `stop` is polled (a signal). Returns early, with `interrupted` set, when `stop` says so.
pub fn run<I: ProbeIo>(
    io: &mut I,
    spec: &RunSpec,
    payload: &mut [u8],
    rbuf: &mut [u8],
    st: &mut RunState,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(&RunState, u64),
) -> io::Result<()> {
    st.reset();
    let dropped0 = io.rx_dropped();
    let start = io.now();
    st.started = start;
    let count = spec.count.map(|c| c.min(u64::from(u32::MAX)));
    let pacer = Pacer::new(start, spec.mpps, count, spec.duration_ns);
    let mut tick = start + SECOND;
    let mut now = start;
    loop {
        if stop() {
            st.interrupted = true;
            break;
        }
        drain(io, spec.tag, rbuf, st)?;
        now = io.now();
        if now >= tick {
            progress(st, (now - start) / SECOND);
            tick += SECOND;
        }
        if pacer.finished(now, st.stats.sent) {
            break;
        }
        let due = pacer.due(now);
        if due > st.stats.sent + 1 {
            // more than one probe is due: the sender woke late and catches up in a burst
            let lag = now.saturating_sub(pacer.due_at(st.stats.sent));
            st.max_lag_ns = st.max_lag_ns.max(lag);
        }
        let mut burst = 0;
        let mut backoff = false;
        while st.stats.sent < due && burst < MAX_BURST {
            let t = io.now();
            write_header(payload, spec.tag, st.stats.sent as u32, t);
            match io.send(payload) {
                Ok(()) => {
                    if st.stats.sent == 0 {
                        st.first_send = t;
                    }
                    st.last_send = t;
                    st.stats.sent += 1;
                }
                Err(e) if is_icmp_error(&e) => st.icmp_errors += 1,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOBUFS) =>
                {
                    st.send_errors += 1;
                    backoff = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(e),
            }
            burst += 1;
        }
        if st.stats.sent < due {
            let lag = now.saturating_sub(pacer.due_at(st.stats.sent));
            st.max_lag_ns = st.max_lag_ns.max(lag);
            if backoff {
                // the local queue is full: give it a millisecond rather than spin
                io.wait(now + 1_000_000)?;
            }
            continue;
        }
        if pacer.finished(now, st.stats.sent) {
            break;
        }
        io.wait(pacer.due_at(st.stats.sent).min(tick))?;
    }
    st.send_ended = now;
    st.planned = pacer.due(now).max(st.stats.sent);
    // wait for the last replies: four times the longest round trip seen, at least 200 ms
    let linger = st
        .stats
        .rtt()
        .map_or(spec.linger_max_ns, |r| {
            r.max.saturating_mul(4).max(200_000_000)
        })
        .min(spec.linger_max_ns);
    let end = now.saturating_add(linger);
    while !st.interrupted && st.stats.received < st.stats.sent {
        if stop() {
            st.interrupted = true;
            break;
        }
        drain(io, spec.tag, rbuf, st)?;
        now = io.now();
        if now >= tick {
            progress(st, (now - start) / SECOND);
            tick += SECOND;
        }
        if now >= end {
            break;
        }
        io.wait(end.min(tick))?;
    }
    st.ended = io.now();
    st.rx_overflow = io.rx_dropped().saturating_sub(dropped0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A simulated path: the clock moves only when the loop waits (or a send costs
    /// time); each probe comes back `delay` later unless `lose` says otherwise.
    struct Sim {
        now: u64,
        delay: u64,
        send_cost: u64,
        lose: fn(u32) -> bool,
        queue: VecDeque<(u64, Vec<u8>)>,
        waits: u64,
        /// the wait number that oversleeps by 10 ms (a busy host)
        stall_at: u64,
    }

    impl Sim {
        fn new(delay: u64, lose: fn(u32) -> bool) -> Sim {
            Sim {
                now: 1_000,
                delay,
                send_cost: 0,
                lose,
                queue: VecDeque::new(),
                waits: 0,
                stall_at: u64::MAX,
            }
        }
    }

    impl ProbeIo for Sim {
        fn now(&mut self) -> u64 {
            self.now
        }
        fn send(&mut self, p: &[u8]) -> io::Result<()> {
            let seq = u32::from_be_bytes(p[4..8].try_into().unwrap());
            if !(self.lose)(seq) {
                self.queue.push_back((self.now + self.delay, p.to_vec()));
            }
            self.now += self.send_cost;
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            match self.queue.front() {
                Some((t, _)) if *t <= self.now => {
                    let (_, p) = self.queue.pop_front().unwrap();
                    buf[..p.len()].copy_from_slice(&p);
                    Ok(Some(p.len()))
                }
                _ => Ok(None),
            }
        }
        fn wait(&mut self, until: u64) -> io::Result<()> {
            self.waits += 1;
            let next = self.queue.front().map_or(u64::MAX, |(t, _)| *t);
            self.now = self.now.max(until.min(next));
            if self.waits == self.stall_at {
                self.now += 10_000_000;
            }
            Ok(())
        }
        fn rx_dropped(&self) -> u64 {
            0
        }
    }

    fn spec(pps: u64, count: Option<u64>, duration_ns: Option<u64>) -> RunSpec {
        RunSpec {
            mpps: pps * 1000,
            count,
            duration_ns,
            tag: 9,
            linger_max_ns: 2 * SECOND,
        }
    }

    fn go(sim: &mut Sim, s: &RunSpec) -> (RunState, u64) {
        let mut st = RunState::new();
        let (mut p, mut r) = (vec![0u8; 64], vec![0u8; 2048]);
        let mut ticks = 0;
        run(sim, s, &mut p, &mut r, &mut st, &|| false, &mut |_, _| {
            ticks += 1
        })
        .unwrap();
        (st, ticks)
    }

    #[test]
    fn paced_run_with_loss_and_delay() {
        let mut sim = Sim::new(20_000_000, |seq| seq % 10 == 3);
        let (st, ticks) = go(&mut sim, &spec(1000, None, Some(3 * SECOND)));
        assert_eq!(st.stats.sent, 3000);
        assert_eq!(st.stats.lost(), 300);
        assert_eq!((st.stats.duplicates, st.stats.reordered), (0, 0));
        let r = st.stats.rtt().unwrap();
        assert_eq!((r.min, r.max, r.jitter), (20_000_000, 20_000_000, 0));
        assert!(
            st.send_mpps().abs_diff(1_000_000) < 500,
            "{}",
            st.send_mpps()
        );
        assert!(!st.sender_limited());
        // it slept between probes instead of spinning: about one wait per probe
        assert!(sim.waits <= 3 * 3000, "{}", sim.waits);
        assert_eq!(ticks, 3);
        // it waited for the replies still on the way, no longer than needed
        assert!(st.ended - st.send_ended >= 20_000_000);
    }

    #[test]
    fn count_and_stray() {
        let mut sim = Sim::new(1_000, |_| false);
        sim.queue.push_back((0, vec![1, 2, 3]));
        let (st, _) = go(&mut sim, &spec(100, Some(5), None));
        assert_eq!(
            (st.stats.sent, st.stats.received, st.stats.stray),
            (5, 5, 1)
        );
        assert_eq!(st.planned, 5);
    }

    /// A late wake-up is made good by a burst (the rate holds) and noted as a stall.
    #[test]
    fn stall_is_caught_up_and_noted() {
        let mut sim = Sim::new(1_000, |_| false);
        sim.stall_at = 100;
        let (st, _) = go(&mut sim, &spec(1000, None, Some(SECOND)));
        assert_eq!(st.stats.sent, 1000);
        assert!(st.stalled() && !st.sender_limited(), "{}", st.max_lag_ns);
        assert!(st.max_lag_ns >= 9_000_000, "{}", st.max_lag_ns);
        let (st, _) = go(
            &mut Sim::new(1_000, |_| false),
            &spec(1000, None, Some(SECOND)),
        );
        assert!(!st.stalled(), "{}", st.max_lag_ns);
    }

    /// A sender slower than the schedule is caught: it says so instead of reporting the
    /// missing probes as loss.
    #[test]
    fn slow_sender_is_reported() {
        let mut sim = Sim::new(1_000, |_| false);
        sim.send_cost = 2_000_000; // 2 ms per send, 1000/s asked
        let (st, _) = go(&mut sim, &spec(1000, None, Some(SECOND)));
        assert!(
            st.sender_limited(),
            "sent {} of {}",
            st.stats.sent,
            st.planned
        );
        assert_eq!(st.stats.lost(), 0);
        assert!(st.send_mpps() < 600_000);
    }
}
