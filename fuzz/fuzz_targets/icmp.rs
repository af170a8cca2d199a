//! Echo request to reply, in place: only a request changes (into the matching reply
//! type); everything else is left as it was; an IPv4 message keeps a valid checksum.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::wire::{icmp, ip};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, msg)) = data.split_first() else {
        return;
    };
    let v6 = flags & 1 == 1;
    let mut m = msg.to_vec();
    if icmp::echo_request_to_reply(&mut m, v6) {
        assert_eq!(m.len(), msg.len());
        assert_eq!(m[0], if v6 { 129 } else { 0 });
        assert_eq!(msg[0], if v6 { 128 } else { 8 });
        assert_eq!(&m[4..], &msg[4..], "only type and checksum change");
        if !v6 && ip::checksum(msg) == 0 {
            assert_eq!(ip::checksum(&m), 0, "a valid checksum stays valid");
        }
    } else {
        assert_eq!(m, msg);
    }
});
