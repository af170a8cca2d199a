//! The bridge state file: whatever reads, writes back to text that reads the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::bridge::state;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((rec, binding)) = state::from_text(text) {
        let again = state::to_text(&rec, binding.as_ref());
        assert_eq!(state::from_text(&again), Ok((rec, binding)), "{again}");
    }
});
