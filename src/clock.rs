//! Durations as whole u64 milliseconds/nanoseconds. `Duration::as_millis` and friends
//! return u128, and dividing a u128 links a 128-bit division routine (about 2 KB on
//! 32-bit mips); u64 holds 584 years of nanoseconds, so saturating is enough.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Whole milliseconds, saturating at u64::MAX. Not inlined: 64-bit saturating
/// arithmetic is long on 32-bit targets (size).
#[inline(never)]
pub fn millis(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// Nanoseconds, saturating at u64::MAX.
pub fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// The wall clock in nanoseconds since the Unix epoch (0 if before it). Read by the
/// loops and passed into the cores, which read no clock themselves.
pub fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(nanos)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_units_and_saturation() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::new(3, 5_000_000)), 3_005);
        assert_eq!(nanos(Duration::new(2, 7)), 2_000_000_007);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(nanos(Duration::from_secs(u64::MAX / 1000)), u64::MAX);
        assert_eq!(
            nanos(Duration::from_secs(584 * 365 * 86_400)),
            584 * 365 * 86_400 * 1_000_000_000
        );
    }
}
