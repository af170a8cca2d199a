//! The replay window against a model (every accepted counter remembered): a counter is
//! accepted iff it is below the limit, never accepted before, and less than WINDOW
//! behind the highest; `check` agrees with `update` and changes nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use tunbox::tunnel::replay::{ReplayWindow, REJECT_AFTER_MESSAGES, WINDOW};

fuzz_target!(|data: &[u8]| {
    let mut w = ReplayWindow::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut highest: Option<u64> = None;
    for op in data.chunks(3) {
        let d = u64::from(u16::from_le_bytes([op[0], *op.get(1).unwrap_or(&0)]));
        let h = highest.unwrap_or(0);
        let c = match op.get(2).copied().unwrap_or(0) % 6 {
            0 => d,
            1 => h.saturating_add(d),
            2 => h.saturating_sub(d),
            3 => h.saturating_sub(WINDOW).saturating_add(d % 3),
            4 => REJECT_AFTER_MESSAGES.wrapping_sub(2).wrapping_add(d % 4),
            _ => h.saturating_add(d << 20),
        };
        let accept = c < REJECT_AFTER_MESSAGES
            && !seen.contains(&c)
            && highest.is_none_or(|h| c > h || h - c < WINDOW);
        let before = w.clone();
        assert_eq!(w.check(c), accept, "check {c} (highest {highest:?})");
        assert_eq!(w.highest(), before.highest());
        assert_eq!(w.update(c), accept, "update {c} (highest {highest:?})");
        if accept {
            seen.insert(c);
            highest = Some(highest.map_or(c, |h| h.max(c)));
        }
        assert_eq!(w.highest(), highest);
    }
});
