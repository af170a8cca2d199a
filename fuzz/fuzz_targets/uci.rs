//! UCI configuration files (`tunbox::config::uci::parse`, the entry point as of this
//! commit; src/config/uci.rs is being rewritten): never a panic, and an error names
//! the file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = tunbox::config::uci::parse("/etc/config/tunbox", text) {
        assert!(e.to_string().contains("/etc/config/tunbox"), "{e}");
    }
});
