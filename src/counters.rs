//! The one format of the counter lines the reflector and the tunnel log at exit and on
//! SIGUSR1:
//!
//! `rx N packets (B bytes), tx N packets (B bytes)[, NAME N ...], dropped N[ (reason=N ...)]`
//!
//! Fixed-size output (no allocation), so it may be called from the loops.
use core::fmt::{self, Write as _};

/// Capacity of a counter line; a longer line is cut (it takes counts in the billions
/// for most drop reasons at once). The capacity of the TAP reflector's detail line
/// too, so both share one copy of the buffer code.
pub const LINE_CAP: usize = 480;

/// What one counter line shows: traffic, tool-specific counters, drops by reason
/// (only the non-zero ones are listed).
pub struct Line<'a> {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub extra: &'a [(&'static str, u64)],
    pub drops: &'a [(&'static str, u64)],
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx {} packets ({} bytes), tx {} packets ({} bytes)",
            self.rx_packets, self.rx_bytes, self.tx_packets, self.tx_bytes
        )?;
        for (name, n) in self.extra {
            write!(f, ", {name} {n}")?;
        }
        let total: u64 = self.drops.iter().map(|d| d.1).sum();
        write!(f, ", dropped {total}")?;
        let mut sep = " (";
        for (name, n) in self.drops.iter().filter(|d| d.1 > 0) {
            write!(f, "{sep}{name}={n}")?;
            sep = " ";
        }
        if sep == " " {
            f.write_char(')')?;
        }
        Ok(())
    }
}

impl Line<'_> {
    /// The line in a fixed-size buffer.
    pub fn to_heapless(&self) -> heapless::String<LINE_CAP> {
        let mut s = heapless::String::new();
        let _ = write!(s, "{self}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format() {
        let l = Line {
            rx_packets: 2,
            rx_bytes: 168,
            tx_packets: 1,
            tx_bytes: 84,
            extra: &[("tx errors", 0), ("sessions", 1)],
            drops: &[("auth", 2), ("replay", 0), ("short", 1)],
        };
        assert_eq!(
            l.to_heapless().as_str(),
            "rx 2 packets (168 bytes), tx 1 packets (84 bytes), tx errors 0, sessions 1, dropped 3 (auth=2 short=1)"
        );
        let l = Line {
            drops: &[("auth", 0)],
            extra: &[],
            ..l
        };
        assert!(l.to_heapless().ends_with("(84 bytes), dropped 0"));
    }

    /// The reflector's line with every drop reason in the millions still fits.
    #[test]
    fn reflector_line_fits() {
        use crate::wire::ip::DropReason;
        let n = 4_000_000_000u64;
        let l = Line {
            rx_packets: n,
            rx_bytes: n * 1500,
            tx_packets: n,
            tx_bytes: n * 1500,
            extra: &[("tx errors", n)],
            drops: &DropReason::ALL.map(|r| (r.name(), 9_999_999)),
        };
        let full = l.to_string();
        assert!(full.len() < LINE_CAP, "{} bytes: {full}", full.len());
        assert_eq!(l.to_heapless().as_str(), full);
    }
}
