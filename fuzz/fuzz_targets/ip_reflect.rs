//! The TUN reflector's transform and loop guard on any bytes: a reflected packet keeps
//! its length and header checksum and reflects back to the original; a dropped one is
//! left untouched.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::reflect::loop_guard::LoopGuard;
use tunbox::wire::ip;

fuzz_target!(|data: &[u8]| {
    let mut p = data.to_vec();
    match ip::reflect(&mut p) {
        Ok(()) => {
            assert_eq!(p.len(), data.len());
            if data[0] >> 4 == 4 {
                let ihl = usize::from(data[0] & 0x0f) * 4;
                assert_eq!(ip::checksum(&p[..ihl]), ip::checksum(&data[..ihl]));
            }
            let mut back = p.clone();
            assert_eq!(ip::reflect(&mut back), Ok(()));
            assert_eq!(back, data);
        }
        Err(_) => assert_eq!(p, data),
    }
    let guard = LoopGuard::new(&[
        ("198.18.0.1".parse().unwrap(), 24),
        ("2001:2::1".parse().unwrap(), 64),
    ]);
    let mut q = data.to_vec();
    if let Ok(pkt) = ip::IpPacket::new_checked(&mut q) {
        let src = pkt.src();
        // Model: in one of the prefixes and not one of the two addresses.
        let in_prefix = match src {
            std::net::IpAddr::V4(a) => a.octets()[..3] == [198, 18, 0] && a.octets()[3] != 1,
            std::net::IpAddr::V6(a) => {
                a.octets()[..8] == [0x20, 0x01, 0, 2, 0, 0, 0, 0]
                    && a != "2001:2::1".parse::<std::net::Ipv6Addr>().unwrap()
            }
        };
        assert_eq!(guard.check(src).is_err(), in_prefix, "{src}");
    }
});
