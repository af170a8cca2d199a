//! Sliding replay window over the explicit 64-bit packet counter (the RFC 6479 bitmap
//! ring that WireGuard uses). Packets may arrive reordered by up to [`WINDOW`] positions;
//! each counter is accepted at most once.
//!
//! Use [`ReplayWindow::check`] before decrypting (cheap rejection) and
//! [`ReplayWindow::update`] only after the packet authenticated, so that forged packets
//! can never move the window.

const BLOCK_BITS: u64 = 64;
const BLOCKS: usize = 32;
/// How far behind the highest accepted counter a packet may still be accepted.
pub const WINDOW: u64 = (BLOCKS as u64 - 1) * BLOCK_BITS;
/// Counters at or above this are rejected: the session must be rekeyed long before
/// (WireGuard's REJECT_AFTER_MESSAGES); also keeps `u64::MAX`, reserved by Noise, out.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);

#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Highest accepted counter + 1; 0 while nothing was accepted.
    next: u64,
    ring: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    pub const fn new() -> Self {
        Self {
            next: 0,
            ring: [0; BLOCKS],
        }
    }

    fn slot(counter: u64) -> (usize, u64) {
        let block = ((counter / BLOCK_BITS) % BLOCKS as u64) as usize;
        (block, 1u64 << (counter % BLOCK_BITS))
    }

    /// Would `counter` be accepted? Does not change the window.
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if counter >= self.next {
            return true;
        }
        if self.next - counter > WINDOW {
            return false;
        }
        let (block, bit) = Self::slot(counter);
        self.ring[block] & bit == 0
    }

    /// Mark `counter` as seen. Returns false (and changes nothing) if it would not be
    /// accepted.
    pub fn update(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter >= self.next {
            // Advance: clear the blocks between the old highest block and the new one.
            let new_block = counter / BLOCK_BITS;
            let first_clear = if self.next == 0 {
                0
            } else {
                (self.next - 1) / BLOCK_BITS + 1
            };
            let n = new_block
                .saturating_add(1)
                .saturating_sub(first_clear)
                .min(BLOCKS as u64);
            for i in 0..n {
                let b = ((new_block - i) % BLOCKS as u64) as usize;
                self.ring[b] = 0;
            }
            self.next = counter + 1;
        }
        let (block, bit) = Self::slot(counter);
        self.ring[block] |= bit;
        true
    }

    /// Highest accepted counter, if any.
    pub fn highest(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_duplicates() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.highest(), None);
        for c in 0..5000 {
            assert!(w.check(c));
            assert!(w.update(c), "{c}");
            assert!(!w.update(c), "dup {c}");
        }
        assert_eq!(w.highest(), Some(4999));
    }

    #[test]
    fn counter_zero_accepted_once() {
        let mut w = ReplayWindow::new();
        assert!(w.update(0));
        assert!(!w.check(0));
        assert!(!w.update(0));
    }

    #[test]
    fn reordering_within_window() {
        let mut w = ReplayWindow::new();
        assert!(w.update(WINDOW + 100));
        // Every counter inside the window, in reverse, accepted exactly once.
        // Oldest acceptable: highest + 1 - WINDOW = 101.
        assert!(!w.check(100));
        for c in (101..WINDOW + 100).rev() {
            assert!(w.update(c), "{c}");
        }
        for c in 100..=WINDOW + 100 {
            assert!(!w.check(c), "{c}");
        }
    }

    #[test]
    fn window_edge() {
        let mut w = ReplayWindow::new();
        let top = 10_000;
        assert!(w.update(top));
        // next = top + 1; oldest acceptable = next - WINDOW.
        let oldest = top + 1 - WINDOW;
        assert!(w.check(oldest));
        assert!(!w.check(oldest - 1));
        assert!(w.update(oldest));
        assert!(!w.update(oldest - 1));
    }

    #[test]
    fn big_jump_clears_old_bits() {
        let mut w = ReplayWindow::new();
        for c in 0..64 * 40 {
            assert!(w.update(c));
        }
        // Jump far ahead: old bits must not shadow new counters that share ring slots.
        let j = 1_000_000;
        assert!(w.update(j));
        for c in (j - WINDOW + 1)..j {
            assert!(w.check(c), "{c}");
        }
        // Jump by exactly one block and by exactly the ring size.
        let mut w = ReplayWindow::new();
        assert!(w.update(5));
        assert!(w.update(5 + 64 * BLOCKS as u64));
        assert!(w.check(5 + 64 * BLOCKS as u64 - 1));
        assert!(!w.check(5));
        let mut w = ReplayWindow::new();
        assert!(w.update(69));
        assert!(w.update(69 + 64));
        assert!(!w.check(69));
        assert!(w.check(68 + 64));
    }

    #[test]
    fn rejects_near_max() {
        let mut w = ReplayWindow::new();
        assert!(!w.update(u64::MAX));
        assert!(!w.update(REJECT_AFTER_MESSAGES));
        assert!(w.update(REJECT_AFTER_MESSAGES - 1));
        assert!(!w.update(REJECT_AFTER_MESSAGES - 1));
    }

    #[test]
    fn check_does_not_mutate() {
        let mut w = ReplayWindow::new();
        assert!(w.check(7));
        assert!(w.check(7));
        assert!(w.update(7));
        assert!(!w.check(7));
    }
}
