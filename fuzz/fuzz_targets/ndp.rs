//! Neighbour solicitation parsing: anything accepted had hop limit 255 and names the
//! target the message carries.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::wire::ndp;

fuzz_target!(|data: &[u8]| {
    if data.len() < 33 {
        return;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&data[..16]);
    dst.copy_from_slice(&data[16..32]);
    let hop = data[32];
    let mut msg = data[33..].to_vec();
    if msg.is_empty() {
        msg.push(135);
    }
    msg[0] = 135; // the caller has checked the type
    if let Ok(target) = ndp::parse_solicit(&msg, &src, &dst, hop) {
        assert_eq!(hop, 255);
        assert_eq!(&msg[8..24], &target[..]);
        let _ = ndp::solicited_node(&target);
    }
});
