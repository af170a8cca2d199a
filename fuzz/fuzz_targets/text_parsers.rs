//! CIDR, MAC and [HOST:]PORT parsing of configuration values: what parses prints back
//! to something that parses to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::wire::cidr::Cidr;
use tunbox::wire::ethernet::MacAddr;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = s.parse::<Cidr>() {
        assert_eq!(c.to_string().parse::<Cidr>(), Ok(c), "{s}");
    }
    if let Ok(m) = s.parse::<MacAddr>() {
        assert_eq!(m.to_string().parse::<MacAddr>().ok(), Some(m), "{s}");
    }
    // The name as of this commit; src/config/schema.rs is being rewritten.
    if let Ok((host, port)) = tunbox::config::schema::split_host_port(s) {
        assert!(s.contains(host) && s.ends_with(&port.to_string()), "{s}");
    }
    if let Ok(a) = tunbox::config::schema::parse_listen(s) {
        assert_ne!(a.port(), 0, "{s}");
    }
});
