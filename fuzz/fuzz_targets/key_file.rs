//! Key file contents: what parses writes back (`genkey`'s format) to the same key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::tunnel::Key;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = Key::parse(data) {
        let text = k.file_text();
        assert!(Key::parse(&text[..]) == Ok(k));
    }
});
