//! The figures of a run as a person (table, progress line, one-line summary for syslog)
//! or a script (JSON) reads them. Pure formatting into strings.
use super::run::RunState;
use super::stats::Rtt;
use super::units::{mul_div, Dec, Pct};
use std::fmt::Write as _;

/// The result of one run at one size, everything the outputs show.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    pub target: String,
    pub port: u16,
    /// IP packet bytes
    pub size: usize,
    /// thousandths of packets per second (as the other rates)
    pub asked_mpps: u64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: Pct,
    pub duplicates: u64,
    pub reordered: u64,
    /// replies dropped by this host's socket buffer: not network loss
    pub rx_overflow: u64,
    /// sends refused locally (buffer full): never sent, not counted as loss
    pub send_errors: u64,
    pub icmp_errors: u64,
    pub stray: u64,
    pub rtt: Option<Rtt>,
    /// nanoseconds spent sending
    pub send_ns: u64,
    pub send_mpps: u64,
    pub recv_mpps: u64,
    /// the sender could not keep to the asked rate
    pub sender_limited: bool,
    /// how late the sender woke at worst (then caught up in a burst), nanoseconds
    pub max_lag_ns: u64,
    pub interrupted: bool,
}

impl Results {
    pub fn new(target: &str, port: u16, size: usize, asked_mpps: u64, st: &RunState) -> Results {
        let s = &st.stats;
        Results {
            target: target.to_string(),
            port,
            size,
            asked_mpps,
            sent: s.sent,
            received: s.received,
            lost: s.lost(),
            loss_pct: s.loss_pct(),
            duplicates: s.duplicates,
            reordered: s.reordered,
            rx_overflow: st.rx_overflow,
            send_errors: st.send_errors,
            icmp_errors: st.icmp_errors,
            stray: s.stray,
            rtt: s.rtt(),
            send_ns: st.send_ns(),
            send_mpps: st.send_mpps(),
            recv_mpps: st.recv_mpps(),
            sender_limited: st.sender_limited(),
            max_lag_ns: st.max_lag_ns,
            interrupted: st.interrupted,
        }
    }

    pub fn send_bps(&self) -> u64 {
        bps(self.send_mpps, self.size)
    }

    pub fn recv_bps(&self) -> u64 {
        bps(self.recv_mpps, self.size)
    }

    /// Lost replies the network can be blamed for: what our own socket dropped is
    /// counted apart.
    pub fn network_lost(&self) -> u64 {
        self.lost.saturating_sub(self.rx_overflow)
    }
}

/// Bits per second of `size`-byte packets at `mpps` thousandths of packets/s.
pub fn bps(mpps: u64, size: usize) -> u64 {
    mul_div(mpps, size as u64 * 8, 1000)
}

fn ms(ns: u64) -> Dec {
    Dec::ms(ns)
}

/// The warnings that keep a result honest.
pub fn notes(r: &Results) -> Vec<String> {
    let mut v = Vec::new();
    if r.interrupted {
        v.push("interrupted: figures so far".to_string());
    }
    if r.sender_limited {
        v.push(format!(
            "this host could not send at the asked rate ({} pps asked, {} sent): \
             the figures are for the lower rate",
            Dec::pps(r.asked_mpps, 0),
            Dec::pps(r.send_mpps, 0)
        ));
    }
    if r.lost > 0 && !r.sender_limited && r.max_lag_ns > super::run::STALL_NS {
        v.push(format!(
            "this host stalled the sender for up to {} ms, which then caught up in a burst: \
             a shallow queue on the path may have dropped some of it",
            ms(r.max_lag_ns)
        ));
    }
    if r.rx_overflow > 0 {
        v.push(format!(
            "{} replies were dropped by this host's receive buffer (SO_RXQ_OVFL), not by \
             the network; they are in 'lost'",
            r.rx_overflow
        ));
    }
    if r.send_errors > 0 {
        v.push(format!(
            "{} sends refused by this host (buffer full); not sent, not counted as loss",
            r.send_errors
        ));
    }
    if r.icmp_errors > 0 {
        v.push(format!(
            "{} ICMP errors (unreachable) came back for the probes",
            r.icmp_errors
        ));
    }
    if r.stray > 0 {
        v.push(format!(
            "{} datagrams that were not this run's probes were ignored",
            r.stray
        ));
    }
    v
}

/// The block printed for one run.
pub fn table(r: &Results) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}:{}  {} B IP packets, {} pps asked, {} s",
        r.target,
        r.port,
        r.size,
        Dec::pps(r.asked_mpps, 0),
        Dec::secs(r.send_ns, 1)
    );
    let _ = writeln!(
        o,
        "  sent        {:>10}   {:>10} pps {:>9} Mb/s",
        r.sent,
        Dec::pps(r.send_mpps, 1),
        Dec::mbps(r.send_bps(), 2)
    );
    let _ = writeln!(
        o,
        "  received    {:>10}   {:>10} pps {:>9} Mb/s",
        r.received,
        Dec::pps(r.recv_mpps, 1),
        Dec::mbps(r.recv_bps(), 2)
    );
    let _ = writeln!(
        o,
        "  lost        {:>10}   {:>10} %",
        r.lost,
        Dec::pct(r.loss_pct, 3)
    );
    let _ = writeln!(o, "  duplicated  {:>10}", r.duplicates);
    let _ = writeln!(o, "  reordered   {:>10}   (RFC 4737)", r.reordered);
    match &r.rtt {
        Some(t) => {
            let _ = writeln!(
                o,
                "  rtt ms      min {}  avg {}  p50 {}  p90 {}  p99 {}  max {}",
                ms(t.min),
                ms(t.avg),
                ms(t.p50),
                ms(t.p90),
                ms(t.p99),
                ms(t.max)
            );
            let _ = writeln!(
                o,
                "  jitter ms   {} (RFC 3550)   PDV ms {} (RFC 5481, p99 - min)",
                ms(t.jitter),
                ms(t.pdv)
            );
        }
        None => {
            let _ = writeln!(o, "  rtt         no replies");
        }
    }
    for n in notes(r) {
        let _ = writeln!(o, "  note: {n}");
    }
    o
}

/// The live line shown each second on a terminal (no newline: it is redrawn).
pub fn progress_line(st: &RunState, secs: u64) -> heapless::String<160> {
    let mut o = heapless::String::new();
    let s = &st.stats;
    let _ = write!(
        o,
        "\r{secs:>4} s  sent {}  received {}  lost {} %",
        s.sent,
        s.received,
        Dec::pct(s.loss_pct(), 2)
    );
    if let Some(t) = s.rtt() {
        let _ = write!(o, "  rtt avg {} ms", ms(t.avg));
    }
    let _ = write!(o, "\x1b[K");
    o
}

/// One line for syslog or a link monitor: `tunbox probe 198.18.0.41:7007 128B: ...`.
pub fn summary_line(r: &Results) -> String {
    let mut o = format!(
        "probe {}:{} {}B: sent {} received {} lost {}% dup {} reordered {}",
        r.target,
        r.port,
        r.size,
        r.sent,
        r.received,
        Dec::pct(r.loss_pct, 2),
        r.duplicates,
        r.reordered
    );
    if let Some(t) = &r.rtt {
        let _ = write!(
            o,
            " rtt min/avg/p99/max {}/{}/{}/{} ms jitter {} ms",
            ms(t.min),
            ms(t.avg),
            ms(t.p99),
            ms(t.max),
            ms(t.jitter)
        );
    }
    if r.sender_limited {
        o.push_str(" (sender below asked rate)");
    }
    if r.rx_overflow > 0 {
        let _ = write!(o, " (local receive drops {})", r.rx_overflow);
    }
    o
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A fixed-point figure for JSON, three decimals.
fn num(v: u64, exp: u32) -> String {
    Dec(v, exp, 3).to_string()
}

/// The RTT object (nanoseconds), or null.
pub fn json_rtt(rtt: &Option<Rtt>) -> String {
    match rtt {
        Some(t) => format!(
            "{{\"min_ns\":{},\"avg_ns\":{},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"max_ns\":{},\
             \"jitter_rfc3550_ns\":{},\"pdv_rfc5481_ns\":{}}}",
            t.min, t.avg, t.p50, t.p90, t.p99, t.max, t.jitter, t.pdv
        ),
        None => "null".to_string(),
    }
}

/// One run as a JSON object.
pub fn json(r: &Results) -> String {
    format!(
        "{{\"target\":{},\"port\":{},\"size\":{},\"asked_pps\":{},\"seconds\":{},\
         \"sent\":{},\"received\":{},\"lost\":{},\"loss_pct\":{},\"duplicates\":{},\
         \"reordered\":{},\"rx_overflow\":{},\"send_errors\":{},\"icmp_errors\":{},\
         \"stray\":{},\"rtt\":{},\"send_pps\":{},\"recv_pps\":{},\"send_bps\":{},\
         \"recv_bps\":{},\"sender_limited\":{},\"max_lag_ns\":{},\"interrupted\":{}}}",
        json_str(&r.target),
        r.port,
        r.size,
        num(r.asked_mpps, 3),
        num(r.send_ns, 9),
        r.sent,
        r.received,
        r.lost,
        num(r.loss_pct.0.into(), 4),
        r.duplicates,
        r.reordered,
        r.rx_overflow,
        r.send_errors,
        r.icmp_errors,
        r.stray,
        json_rtt(&r.rtt),
        num(r.send_mpps, 3),
        num(r.recv_mpps, 3),
        r.send_bps(),
        r.recv_bps(),
        r.sender_limited,
        r.max_lag_ns,
        r.interrupted
    )
}

/// One RFC 2544 frame size: the throughput found and the latency at it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rfc2544Row {
    /// Ethernet frame bytes incl. FCS
    pub frame: usize,
    /// the IP packet sent for it
    pub ip: usize,
    /// why this size was not measured (too small for the address family)
    pub skipped: Option<String>,
    /// thousandths of packets per second
    pub max_mpps: u64,
    /// the highest rate tried (the search's ceiling)
    pub ceiling_mpps: u64,
    pub trials: u32,
    /// a trial could not be sent at its rate (this host's limit, not the link's)
    pub sender_limited: bool,
    /// the latency trial at `max_pps`
    pub latency: Option<Results>,
}

impl Rfc2544Row {
    /// Frame bits per second at the throughput found.
    pub fn max_bps(&self) -> u64 {
        bps(self.max_mpps, self.frame)
    }
}

/// The classic RFC 2544 table.
pub fn rfc2544_table(
    target: &str,
    port: u16,
    loss_ok: Pct,
    trial_ns: u64,
    rows: &[Rfc2544Row],
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "RFC 2544 throughput to {target}:{port}: highest rate with loss <= {}% \
         (trials of {} s), then latency (round trip) at that rate",
        Dec::pct(loss_ok, 2),
        Dec::secs(trial_ns, 1)
    );
    let _ = writeln!(
        o,
        "  frame  IP pkt    max Mb/s      max pps   loss %   rtt avg ms   rtt p99 ms  trials"
    );
    for r in rows {
        if let Some(why) = &r.skipped {
            let _ = writeln!(o, "  {:>5}  {:>6}   skipped: {why}", r.frame, r.ip);
            continue;
        }
        let (loss, avg, p99) = match &r.latency {
            Some(l) => (
                Dec::pct(l.loss_pct, 3).to_string(),
                l.rtt.map_or("-".into(), |t| ms(t.avg).to_string()),
                l.rtt.map_or("-".into(), |t| ms(t.p99).to_string()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            o,
            "  {:>5}  {:>6}  {:>10}  {:>11}  {:>7}  {:>11}  {:>11}  {:>6}",
            r.frame,
            r.ip,
            Dec::mbps(r.max_bps(), 2),
            Dec::pps(r.max_mpps, 0),
            loss,
            avg,
            p99,
            r.trials
        );
    }
    let mut noted = false;
    for r in rows.iter().filter(|r| r.skipped.is_none()) {
        if r.max_mpps >= r.ceiling_mpps {
            let _ = writeln!(
                o,
                "  note: {} B passed at the highest rate tried; the link may carry more (raise --rate)",
                r.frame
            );
        }
        if r.sender_limited && !noted {
            noted = true;
            let _ = writeln!(
                o,
                "  note: this host could not send some trials at their rate; those counted as \
                 failed, so a result may be this host's limit rather than the link's"
            );
        }
    }
    let _ = writeln!(
        o,
        "  Mb/s counts whole Ethernet frames (frame size x 8 per packet)."
    );
    o
}

/// RFC 2544 results as JSON.
pub fn rfc2544_json(
    target: &str,
    port: u16,
    loss_ok: Pct,
    trial_ns: u64,
    rows: &[Rfc2544Row],
) -> String {
    let mut o = format!(
        "{{\"mode\":\"rfc2544\",\"target\":{},\"port\":{port},\"loss_ok_pct\":{},\
         \"trial_seconds\":{},\"results\":[",
        json_str(target),
        num(loss_ok.0.into(), 4),
        num(trial_ns, 9)
    );
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let _ = write!(
            o,
            "{{\"frame_size\":{},\"ip_size\":{},\"skipped\":{},\"max_pps\":{},\"max_bps\":{},\
             \"ceiling_pps\":{},\"trials\":{},\"sender_limited\":{},\"latency\":{}}}",
            r.frame,
            r.ip,
            r.skipped.as_deref().map_or("null".into(), json_str),
            num(r.max_mpps, 3),
            r.max_bps(),
            num(r.ceiling_mpps, 3),
            r.trials,
            r.sender_limited,
            r.latency.as_ref().map_or("null".into(), json)
        );
    }
    o.push_str("]}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::stats::Stats;

    fn sample() -> Results {
        let mut st = RunState::new();
        st.stats = Stats::new();
        st.stats.sent = 10;
        for (i, rtt) in [
            (0u64, 1_000_000u64),
            (1, 3_000_000),
            (3, 2_000_000),
            (2, 2_000_000),
        ] {
            st.stats.on_reply(i, rtt, 100);
        }
        st.stats.on_reply(3, 2_000_000, 100);
        st.rx_overflow = 1;
        Results::new("198.18.0.41", 7007, 128, 100_000, &st)
    }

    #[test]
    /// jitter by hand: D = 2, 1, 0 ms; J = 2/16 = 0.125, + (1 - 0.125)/16 = 0.180,
    /// + (0 - 0.180)/16 = 0.168 ms; p99 is the histogram bucket of 3 ms (within 0.8 %).
    fn summary_line_for_syslog() {
        let r = sample();
        assert_eq!(r.network_lost(), 5);
        assert_eq!(
            summary_line(&r),
            "probe 198.18.0.41:7007 128B: sent 10 received 4 lost 60.00% dup 1 reordered 1 \
             rtt min/avg/p99/max 1.000/2.000/2.998/3.000 ms jitter 0.168 ms (local receive drops 1)"
        );
    }

    #[test]
    fn json_is_json_and_complete() {
        let r = sample();
        let v: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
        assert_eq!(v["lost"], 6);
        assert_eq!(v["duplicates"], 1);
        assert_eq!(v["rx_overflow"], 1);
        assert_eq!(v["rtt"]["max_ns"], 3_000_000);
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let row = Rfc2544Row {
            frame: 64,
            ip: 46,
            skipped: Some("too \"small\"".into()),
            max_mpps: 0,
            ceiling_mpps: 1_000,
            trials: 0,
            sender_limited: false,
            latency: Some(r),
        };
        let v: serde_json::Value = serde_json::from_str(&rfc2544_json(
            "::1",
            7,
            Pct(0),
            2_000_000_000,
            &[row.clone(), row],
        ))
        .unwrap();
        assert_eq!(v["results"][1]["skipped"], "too \"small\"");
        assert_eq!(v["results"][0]["latency"]["sent"], 10);
        assert_eq!(v["trial_seconds"], 2.0);
        assert_eq!(v["results"][0]["latency"]["asked_pps"], 100.0);
        assert!(
            table(&sample()).contains("note: 1 replies were dropped by this host's receive buffer")
        );
    }
}
